"""Saving and loading sparse models as `.keras` files, masks included.

A `.keras` file written by `save_model` is an ordinary Keras archive with
two extra members, `tf_sparse/masks.npz` and `tf_sparse/masks.json`: plain
`keras.models.load_model` reads it as a dense model with zeros in place;
`tfs.load_model` reads it back sparse, masks, weights and (when compiled)
optimizer slots included. Loading uses Keras's safe mode by default and
masks are read with `allow_pickle=False`, so a file never executes code.

Example:

    tfs.save_model(model, "sparse.keras")
    model = tfs.load_model("sparse.keras")
"""

import io
import json
import zipfile

import keras
import numpy as np

from tf_sparse import masking
from tf_sparse import sparsification

_MASKS = "tf_sparse/masks.npz"
_INFO = "tf_sparse/masks.json"
FORMAT_VERSION = 1


def save_model(model, filepath, **kwargs):
    """Saves a sparse model to a `.keras` file, with its masks."""
    if not str(filepath).endswith(".keras"):
        raise ValueError(
            f"filepath must end in .keras, got {str(filepath)!r}.")
    model.save(filepath, **kwargs)
    masks = {mw.path: keras.ops.convert_to_numpy(mw.mask).astype(np.uint8)
             for mw in masking.masked_weights(model)}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{str(i): m for i, m in
                                   enumerate(masks.values())})
    info = {"format_version": FORMAT_VERSION, "paths": list(masks)}
    with zipfile.ZipFile(filepath, "a") as archive:
        archive.writestr(_MASKS, buffer.getvalue())
        archive.writestr(_INFO, json.dumps(info))


def read_masks(filepath):
    """The masks stored in a `.keras` file by `save_model`, by weight path."""
    with zipfile.ZipFile(filepath) as archive:
        names = set(archive.namelist())
        if _INFO not in names or _MASKS not in names:
            raise ValueError(
                f"{filepath} holds no tf_sparse masks; it was not written by "
                "tfs.save_model. Load it with keras.models.load_model.")
        info = json.loads(archive.read(_INFO))
        if info.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{filepath}: unsupported tf_sparse mask format "
                f"{info.get('format_version')!r}; this version reads "
                f"{FORMAT_VERSION}.")
        with np.load(io.BytesIO(archive.read(_MASKS)),
                     allow_pickle=False) as data:
            return {path: data[str(i)] for i, path in
                    enumerate(info["paths"])}


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Loads a `.keras` file written by `save_model`, masks attached."""
    masks = read_masks(filepath)
    model = keras.models.load_model(filepath, custom_objects=custom_objects,
                                    compile=compile, safe_mode=safe_mode)
    return sparsification.sparsify(model, masks=masks)
