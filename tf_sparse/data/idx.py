"""Read IDX files, the format of MNIST and Fashion-MNIST, into numpy arrays.

An IDX file is a header followed by the array's values in big-endian C order:

    bytes 0-1   zero
    byte  2     dtype code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                0x0D float32, 0x0E float64
    byte  3     number of dimensions, d
    4*d bytes   each dimension as a big-endian uint32
    the values  prod(dims) * itemsize bytes, nothing after them

Files may be gzip-compressed (recognised by their content, not their name).

Example:

    >>> from tf_sparse.data.idx import read_idx
    >>> images = read_idx("train-images-idx3-ubyte.gz")   # doctest: +SKIP
    >>> images.shape, images.dtype  # doctest: +SKIP
    ((60000, 28, 28), dtype('uint8'))
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np

# dtype code -> big-endian numpy dtype of the values on disk.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"
_HEADER_BYTES = 4
_DIM_BYTES = 4


def read_idx_bytes(path: str | os.PathLike) -> bytes:
    """Returns the uncompressed content of an IDX file, gunzipping if needed.

    Raises:
      FileNotFoundError: if `path` does not exist.
      ValueError: if the file looks gzipped but the stream is truncated or corrupt.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as err:
        raise ValueError(
            f"IDX file {path!r} is gzip-compressed but could not be decompressed "
            f"({type(err).__name__}: {err}); the file is truncated or corrupt, "
            "download or install it again") from err


def parse_idx(content: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parses the uncompressed bytes of an IDX file into a native-endian array.

    `name` is only used in error messages.

    Example:

        >>> import struct
        >>> parse_idx(struct.pack(">HBBI", 0, 0x08, 1, 3) + bytes([7, 8, 9]))
        array([7, 8, 9], dtype=uint8)
    """
    if len(content) < _HEADER_BYTES:
        raise ValueError(
            f"IDX file {name!r} has {len(content)} bytes, fewer than the "
            f"{_HEADER_BYTES}-byte magic number: it is empty or truncated")
    zeros, dtype_code, ndim = struct.unpack(">HBB", content[:_HEADER_BYTES])
    if zeros != 0:
        raise ValueError(
            f"IDX file {name!r} has magic number 0x{content[:4].hex()}, "
            "which does not start with two zero bytes: not an IDX file "
            "(or a compressed file that is not gzip)")
    if dtype_code not in IDX_DTYPES:
        accepted = ", ".join(f"0x{code:02X} ({dt.name})" for code, dt in IDX_DTYPES.items())
        raise ValueError(
            f"IDX file {name!r} has dtype code 0x{dtype_code:02X}; "
            f"accepted codes are {accepted}")
    if ndim == 0:
        raise ValueError(f"IDX file {name!r} declares 0 dimensions; at least 1 is needed")
    header_bytes = _HEADER_BYTES + _DIM_BYTES * ndim
    if len(content) < header_bytes:
        raise ValueError(
            f"IDX file {name!r} declares {ndim} dimensions, which need a "
            f"{header_bytes}-byte header, but the file has only {len(content)} bytes")
    dims = struct.unpack(f">{ndim}I", content[_HEADER_BYTES:header_bytes])
    dtype = IDX_DTYPES[dtype_code]
    expected_bytes = header_bytes + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(content) != expected_bytes:
        problem = "truncated" if len(content) < expected_bytes else "followed by extra bytes"
        raise ValueError(
            f"IDX file {name!r} declares shape {tuple(dims)} of {dtype.name}, "
            f"which needs {expected_bytes} bytes, but has {len(content)}: "
            f"the data is {problem}")
    values = np.frombuffer(content, dtype=dtype, offset=header_bytes).reshape(dims)
    # A native-endian, writable copy, independent of `content`.
    return values.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads an IDX file (gzipped or raw) into a native-endian numpy array.

    Raises:
      FileNotFoundError: if `path` does not exist.
      ValueError: naming the file, if the magic number, dtype code, dimensions or
        length are wrong, or the gzip stream is corrupt.

    Example:

        >>> labels = read_idx("t10k-labels-idx1-ubyte.gz")   # doctest: +SKIP
        >>> labels.shape  # doctest: +SKIP
        (10000,)
    """
    path = os.fspath(path)
    return parse_idx(read_idx_bytes(path), name=path)
