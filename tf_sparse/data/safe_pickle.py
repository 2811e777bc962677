"""Unpickle files that should hold only plain data, refusing anything else.

A pickle can name any importable callable and have it called while loading
(`os.system`, `subprocess.Popen`, ...). Data files from elsewhere, such as
CIFAR-10's python batches, must never run code, so this unpickler resolves only
the few globals that plain data needs:

* the numpy names that rebuild an ndarray (`numpy.core.multiarray._reconstruct`
  or `numpy._core.multiarray._reconstruct`, `numpy.ndarray`, `numpy.dtype`);
* `_codecs.encode`, which Python 3 writes at pickle protocol 2 to rebuild
  `bytes` objects; it is replaced by a function that only turns a latin-1
  string back into bytes.

Dicts, lists, tuples, strings, bytes, numbers, booleans and None need no global.
Any other global raises `UnsafePickleError` before it is looked up.

Example:

    >>> import io, pickle, os
    >>> load_plain_pickle(io.BytesIO(pickle.dumps({b"labels": [1, 2]}, protocol=2)))
    {b'labels': [1, 2]}
    >>> class Evil:
    ...     def __reduce__(self):
    ...         return (os.system, ("echo hacked",))
    >>> load_plain_pickle(io.BytesIO(pickle.dumps(Evil())), name="evil.pkl")
    Traceback (most recent call last):
    ...
    tf_sparse.data.errors.UnsafePickleError: evil.pkl: the pickle asks for the global posix.system...
"""

from __future__ import annotations

import io
import pickle
from typing import BinaryIO

import numpy as np

from tf_sparse.data.errors import UnsafePickleError


def _latin1_bytes(text, encoding="latin1"):
    """Stands in for `_codecs.encode`: Python 3's protocol-2 spelling of bytes."""
    if not isinstance(text, str) or encoding.replace("-", "").lower() != "latin1":
        raise UnsafePickleError(
            f"_codecs.encode called with ({type(text).__name__}, {encoding!r}); "
            "only (str, 'latin1'), Python's encoding of bytes, is admitted")
    return text.encode("latin1")


# The array-rebuilding function itself, whatever module numpy keeps it in.
_NUMPY_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]

ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _NUMPY_RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _NUMPY_RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_bytes,
}


class PlainDataUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only `ALLOWED_GLOBALS` and no persistent ids."""

    def __init__(self, file: BinaryIO, *, name: str = "<pickle>", encoding: str = "bytes"):
        super().__init__(file, encoding=encoding)
        self._name = name

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            allowed = ", ".join(f"{m}.{n}" for m, n in ALLOWED_GLOBALS)
            raise UnsafePickleError(
                f"{self._name}: the pickle asks for the global {module}.{name}, which "
                f"could run code; refused. A data file may only use plain Python data "
                f"and numpy arrays (admitted globals: {allowed}). Do not load this file "
                "with pickle.load either; get the data set again from its source.") from None

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self._name}: the pickle uses persistent id {pid!r}; refused")


def load_plain_pickle(file: BinaryIO, *, name: str = "<pickle>", encoding: str = "bytes"):
    """Unpickles `file` admitting only plain data and numpy arrays.

    `encoding="bytes"` (the default) reads Python 2 strings, as in CIFAR-10's
    files, as bytes; keys then come out as `b"data"`, `b"labels"`.

    Raises:
      UnsafePickleError: (a ValueError) if the pickle names any other global.
      ValueError: naming `name`, if the pickle is truncated or malformed.
    """
    try:
        return PlainDataUnpickler(file, name=name, encoding=encoding).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError,
            KeyError, AttributeError, UnicodeDecodeError, OverflowError, MemoryError) as err:
        raise ValueError(
            f"{name}: not a readable pickle ({type(err).__name__}: {err}); the file is "
            "truncated or corrupt, get it again from its source") from err


def loads_plain_pickle(data: bytes, *, name: str = "<pickle>", encoding: str = "bytes"):
    """Like `load_plain_pickle`, from bytes."""
    return load_plain_pickle(io.BytesIO(data), name=name, encoding=encoding)
