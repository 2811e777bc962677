"""IDX reading: files written byte by byte here, in the format MNIST ships."""

import gzip
import struct

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tf_sparse.data.idx import parse_idx, read_idx

# dtype code -> big-endian dtype, written out here independently of the reader.
CODES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    header = struct.pack(">HBB", 0, code, array.ndim)
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(CODES[code]).tobytes()


def write(path, content: bytes, compress: bool) -> str:
    path = str(path)
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(content)
    return path


@pytest.mark.parametrize("compress", [True, False])
def test_reads_uint8_images_exactly(tmp_path, compress):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    path = write(tmp_path / "train-images-idx3-ubyte", idx_bytes(images, 0x08), compress)
    result = read_idx(path)
    assert result.dtype == np.uint8 and result.shape == (5, 28, 28)
    np.testing.assert_array_equal(result, images)


def test_first_bytes_are_the_first_pixels_row_major(tmp_path):
    content = struct.pack(">HBBIII", 0, 0x08, 3, 2, 2, 3) + bytes(range(12))
    result = read_idx(write(tmp_path / "x.gz", content, True))
    assert result[0, 0].tolist() == [0, 1, 2]
    assert result[0, 1].tolist() == [3, 4, 5]
    assert result[1, 1, 2] == 11


@pytest.mark.parametrize("code, values", [
    (0x09, [-128, -1, 0, 127]),
    (0x0B, [-32768, -2, 300, 32767]),
    (0x0C, [-(2**31), -5, 70000, 2**31 - 1]),
    (0x0D, [-1.5, 0.0, 3.25, 1e30]),
    (0x0E, [-1e300, 0.1, 2.0, np.pi]),
])
def test_reads_big_endian_values_as_native(tmp_path, code, values):
    array = np.array(values, dtype=CODES[code])
    result = read_idx(write(tmp_path / "v.idx", idx_bytes(array, code), True))
    assert result.dtype.byteorder in ("=", "|") and result.dtype == np.dtype(CODES[code]).newbyteorder("=")
    np.testing.assert_array_equal(result, np.array(values, dtype=result.dtype))


def test_result_is_writable(tmp_path):
    result = read_idx(write(tmp_path / "w", idx_bytes(np.zeros(3, np.uint8), 0x08), False))
    result[0] = 7
    assert result[0] == 7


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(0, 5), min_size=1, max_size=4),
       code=st.sampled_from(sorted(CODES)), seed=st.integers(0, 2**32 - 1))
def test_parse_roundtrips_any_shape_and_dtype(shape, code, seed):
    rng = np.random.default_rng(seed)
    array = (rng.normal(size=shape) * 100).astype(CODES[code])
    np.testing.assert_array_equal(parse_idx(idx_bytes(array, code)), array)


def _error(tmp_path, content: bytes, compress=False, name="bad-idx1-ubyte"):
    path = write(tmp_path / name, content, compress)
    with pytest.raises(ValueError) as info:
        read_idx(path)
    message = str(info.value)
    assert path in message, message
    return message


def test_rejects_nonzero_magic_prefix(tmp_path):
    message = _error(tmp_path, struct.pack(">HBBI", 0x0102, 0x08, 1, 1) + b"\x00")
    assert "magic number" in message and "0x01020801" in message


def test_rejects_unknown_dtype_code(tmp_path):
    message = _error(tmp_path, struct.pack(">HBBI", 0, 0x0A, 1, 1) + b"\x00")
    assert "0x0A" in message and "0x08 (uint8)" in message


def test_rejects_zero_dimensions(tmp_path):
    assert "0 dimensions" in _error(tmp_path, struct.pack(">HBB", 0, 0x08, 0))


def test_rejects_truncated_header(tmp_path):
    assert "header" in _error(tmp_path, struct.pack(">HBBI", 0, 0x08, 3, 10))


def test_rejects_file_shorter_than_its_dims(tmp_path):
    content = idx_bytes(np.zeros((4, 28, 28), np.uint8), 0x08)[:-1]
    message = _error(tmp_path, content, compress=True)
    assert "(4, 28, 28)" in message and "truncated" in message


def test_rejects_extra_bytes(tmp_path):
    message = _error(tmp_path, idx_bytes(np.zeros(3, np.uint8), 0x08) + b"\x00")
    assert "extra bytes" in message


def test_rejects_empty_file(tmp_path):
    assert "empty or truncated" in _error(tmp_path, b"")


def test_rejects_truncated_gzip_stream(tmp_path):
    compressed = gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8), 0x08))
    path = tmp_path / "cut.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(ValueError, match="gzip-compressed but could not be decompressed") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope.gz")
