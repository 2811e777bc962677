"""Saving and loading sparse models as `.keras` files, masks included.

A `.keras` file written by `save_model` is an ordinary Keras archive with
two extra members, `tf_sparse/masks.npz` and `tf_sparse/masks.json`: plain
`keras.models.load_model` reads it as a dense model with zeros in place;
`tfs.load_model` reads it back sparse, masks, weights and (when compiled)
optimizer slots included. Loading uses Keras's safe mode by default and
masks are read with `allow_pickle=False`, so a file never executes code.

A file that is not a readable archive (cut short by a full disk or a
killed copy, or damaged) is a `SavedModelError` naming it and saying what to
do, not zipfile's bare `BadZipFile`.

Example:

    tfs.save_model(model, "sparse.keras")
    model = tfs.load_model("sparse.keras")
"""

import io
import json
import zipfile
import zlib

import os

import keras
import numpy as np

from tf_sparse import masking
from tf_sparse import sparse_compute
from tf_sparse import sparsification

_MASKS = "tf_sparse/masks.npz"
_INFO = "tf_sparse/masks.json"
FORMAT_VERSION = 1

# What a damaged archive raises while it is opened or read.
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError)


class SavedModelError(ValueError):
    """A `.keras` file is missing, damaged or not written by `save_model`;
    the message names it. `path`: the file."""

    def __init__(self, message, path=None):
        super().__init__(message)
        self.path = path


class NoMasksError(SavedModelError):
    """A readable `.keras` file without tf_sparse masks (a plain Keras
    file): load it with `keras.models.load_model`."""


def _damaged(filepath, error, member=None):
    where = f" (member {member})" if member else ""
    size = (f", {os.path.getsize(filepath)} bytes" if os.path.exists(
        filepath) else "")
    return SavedModelError(
        f"{filepath} is not a readable .keras file{where}: {error}{size}. It "
        "was probably cut short (a full disk, an interrupted copy or save) "
        "or damaged; save the model again (tfs.save_model) or copy the file "
        "again.", path=str(filepath))


def save_model(model, filepath, **kwargs):
    """Saves a sparse model to a `.keras` file, with its masks."""
    if not str(filepath).endswith(".keras"):
        raise ValueError(
            f"filepath must end in .keras, got {str(filepath)!r}.")
    if sparse_compute.is_sparse_compute(model):
        # Layers holding only their nonzeros: structure and slots too.
        if kwargs:
            raise ValueError(
                f"Model {model.name!r} computes sparse; its file takes no "
                f"model.save options, got {sorted(kwargs)}.")
        sparse_compute.save_model(model, filepath)
        return
    model.save(filepath, **kwargs)
    masks = {mw.path: keras.ops.convert_to_numpy(mw.mask).astype(np.uint8)
             for mw in masking.masked_weights(model)}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{str(i): m for i, m in
                                   enumerate(masks.values())})
    patterns = {mw.path: mw.pattern for mw in masking.masked_weights(model)}
    info = {"format_version": FORMAT_VERSION, "paths": list(masks),
            "patterns": patterns}
    with zipfile.ZipFile(filepath, "a") as archive:
        archive.writestr(_MASKS, buffer.getvalue())
        archive.writestr(_INFO, json.dumps(info))


def read_masks(filepath):
    """The masks stored in a `.keras` file by `save_model`, by weight path."""
    return _read(filepath)[0]


def read_pattern(filepath):
    """The sparsity pattern the masks of a `.keras` file follow
    ("unstructured" for files written before patterns were saved)."""
    return _pattern_of(filepath, _read(filepath)[1])


def _pattern_of(filepath, info):
    found = set((info.get("patterns") or {}).values()) or {
        masking.UNSTRUCTURED}
    if len(found) > 1:
        raise SavedModelError(
            f"{filepath}: its masks follow several patterns "
            f"({', '.join(sorted(found))}); tfs.load_model restores one "
            "pattern per model.", path=filepath)
    return found.pop()


def _read(filepath):
    """(masks by weight path, the mask index) of a `.keras` file."""
    if not os.path.exists(filepath):
        raise SavedModelError(f"{filepath} does not exist.", path=filepath)
    try:
        archive = zipfile.ZipFile(filepath)
    except _DAMAGED as error:
        raise _damaged(filepath, error) from error
    with archive:
        names = set(archive.namelist())
        if _INFO not in names or _MASKS not in names:
            raise NoMasksError(
                f"{filepath} holds no tf_sparse masks; it was not written by "
                "tfs.save_model. Load it with keras.models.load_model.",
                path=filepath)
        try:
            info = json.loads(archive.read(_INFO))
            if not isinstance(info, dict) or not isinstance(
                    info.get("paths"), list):
                raise ValueError("not a mask index")
        except _DAMAGED as error:
            raise _damaged(filepath, error, _INFO) from error
        except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
            raise _damaged(filepath, f"{_INFO} is not valid ({error})") \
                from error
        if info.get("format_version") != FORMAT_VERSION:
            raise SavedModelError(
                f"{filepath}: unsupported tf_sparse mask format "
                f"{info.get('format_version')!r}; this version reads "
                f"{FORMAT_VERSION}.", path=filepath)
        try:
            with np.load(io.BytesIO(archive.read(_MASKS)),
                         allow_pickle=False) as data:
                return {path: data[str(i)] for i, path in
                        enumerate(info["paths"])}, info
        except _DAMAGED + (ValueError, KeyError, OSError) as error:
            raise _damaged(filepath, error, _MASKS) from error


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Loads a `.keras` file written by `save_model`, masks (and their
    sparsity pattern) attached; a file of a model computing sparse comes
    back computing sparse (`tf_sparse.sparse_compute.load_model`)."""
    if sparse_compute.is_sparse_compute_file(filepath):
        return sparse_compute.load_model(filepath, compile=compile,
                                         custom_objects=custom_objects)
    masks, info = _read(filepath)
    pattern = _pattern_of(filepath, info)
    try:
        model = keras.models.load_model(
            filepath, custom_objects=custom_objects, compile=compile,
            safe_mode=safe_mode)
    except _DAMAGED as error:
        raise _damaged(filepath, error) from error
    return sparsification.sparsify(model, masks=masks, pattern=pattern)
