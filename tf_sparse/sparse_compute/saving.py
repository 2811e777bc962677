"""`.keras` files of models that compute sparse.

`save_model` writes `model.save`'s archive, whose layer weights are in the
dense layout (zeros in place: the same as the masked model's), plus
`tf_sparse/sparse_compute.npz` and `.json`: the structure and capacity of
every sparse layer, the masks of layers that stay masked, and the
optimizer's variables (the slots of the values have one entry per stored
weight, which a dense model cannot take). `load_model` reads it back: the
dense model, its masks, the sparse form with the same structure and
capacity, and, when the file was compiled, the compiled optimizer with its
state, so training resumes where it stopped. `keras.models.load_model(path,
compile=False)` still reads the file as a plain dense model.

Example:

    tfs.sparse_compute.save_model(model, "sparse.keras")
    model = tfs.sparse_compute.load_model("sparse.keras")
"""

import io
import json
import zipfile

import keras
import numpy as np

from tf_sparse import masking
from tf_sparse.sparse_compute import layers

MEMBER = "tf_sparse/sparse_compute.npz"
INFO = "tf_sparse/sparse_compute.json"
FORMAT_VERSION = 1


def save_model(model, filepath):
    """Saves a model that computes sparse (see the module docstring)."""
    if not str(filepath).endswith(".keras"):
        raise ValueError(
            f"filepath must end in .keras, got {str(filepath)!r}.")
    if not layers.is_sparse_compute(model):
        raise ValueError(
            f"Model {model.name!r} has no layer that computes sparse; save it "
            "with tfs.save_model.")
    model.save(filepath)
    arrays, info = {}, {"format_version": FORMAT_VERSION, "sparse": [],
                        "masked": [], "optimizer": 0}
    for path, holder in layers.sparse_kernels(model):
        key = f"{path}/{holder.name}"
        s = holder.structure()
        arrays[f"mask:{key}"] = holder.mask().astype(np.uint8)
        info["sparse"].append({"path": key, "capacity": s.capacity})
    for mw in masking.masked_weights(model):
        arrays[f"mask:{mw.path}"] = keras.ops.convert_to_numpy(
            mw.mask).astype(np.uint8)
        info["masked"].append({"path": mw.path, "pattern": mw.pattern})
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and optimizer.built:
        for index, variable in enumerate(optimizer.variables):
            arrays[f"optimizer:{index}"] = keras.ops.convert_to_numpy(
                variable)
        info["optimizer"] = len(optimizer.variables)
    buffer = io.BytesIO()
    names = sorted(arrays)
    np.savez_compressed(buffer, **{str(i): arrays[n] for i, n in
                                   enumerate(names)})
    info["arrays"] = names
    with zipfile.ZipFile(filepath, "a") as archive:
        archive.writestr(MEMBER, buffer.getvalue())
        archive.writestr(INFO, json.dumps(info))


def is_sparse_compute_file(filepath):
    """True when `filepath` is a `.keras` file written by `save_model`
    (False for other files, unreadable ones included: their reader says
    what is wrong)."""
    try:
        with zipfile.ZipFile(filepath) as archive:
            return INFO in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def _read(filepath):
    with zipfile.ZipFile(filepath) as archive:
        members = set(archive.namelist())
        if INFO not in members or MEMBER not in members:
            raise ValueError(
                f"{filepath} holds no sparse-compute state; it was not "
                "written by tfs.sparse_compute.save_model (use "
                "tfs.load_model or keras.models.load_model).")
        info = json.loads(archive.read(INFO))
        config = json.loads(archive.read("config.json"))
        if info.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{filepath}: sparse-compute format "
                f"{info.get('format_version')!r}; this version reads "
                f"{FORMAT_VERSION}.")
        with np.load(io.BytesIO(archive.read(MEMBER)),
                     allow_pickle=False) as data:
            arrays = {name: data[str(i)] for i, name in
                      enumerate(info["arrays"])}
    return info, arrays, config


def load_model(filepath, compile=True, custom_objects=None):  # pylint: disable=redefined-builtin
    """Loads a file written by `save_model`: masks, sparse form and (with
    `compile`) the optimizer and its state."""
    info, arrays, config = _read(filepath)
    model = keras.models.load_model(filepath, compile=False,
                                    custom_objects=custom_objects)
    layer_of = dict(masking.iter_layers(model))

    def split(path):
        layer_path, name = path.rsplit("/", 1)
        if layer_path not in layer_of:
            raise ValueError(f"{filepath}: no layer {layer_path!r} in the "
                             "loaded model.")
        return layer_of[layer_path], name

    for entry in info["masked"]:
        layer, name = split(entry["path"])
        masking.attach_masks(layer, {name: arrays[f"mask:{entry['path']}"]},
                             {name: entry["pattern"]})
    for entry in info["sparse"]:
        layer, name = split(entry["path"])
        layers.convert_layer(layer, name, arrays[f"mask:{entry['path']}"],
                             capacity=int(entry["capacity"]))
    compile_config = config.get("compile_config")
    if compile and compile_config:
        model.compile_from_config(compile_config)
        count = int(info.get("optimizer", 0))
        if count:
            optimizer = model.optimizer
            optimizer.build(model.trainable_variables)
            if len(optimizer.variables) != count:
                raise ValueError(
                    f"{filepath}: {count} optimizer variables saved, the "
                    f"rebuilt optimizer has {len(optimizer.variables)}.")
            for index, variable in enumerate(optimizer.variables):
                variable.assign(arrays[f"optimizer:{index}"])
    return model
