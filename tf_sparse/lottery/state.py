"""Files of a lottery run: model/optimizer states and masks, checked on load.

Every file is a NumPy `.npz` written atomically (to a temporary name in the
same folder, then `os.replace`), so a kill leaves either the old file or the
new one, never half of one. A state file carries a manifest (format, kind,
step, model name, and the name, shape and dtype of every array); the zip
container's CRC catches damaged bytes. Loading checks all of it and raises
`StateError` naming the file and what is wrong:

- not a file of this format (a foreign `.npz`, a TF checkpoint, a text file);
- damaged (truncated, flipped bytes);
- for another model (other model name, other variable count or shapes).

Nothing here overwrites a file that `write_once` already wrote.

Example:

    save_state(path, model, optimizer, step=500, kind="rewind", model_name="lenet300_100")
    state = load_state(path, model, optimizer, model_name="lenet300_100")
    apply_state(model, state, optimizer)
"""

import dataclasses
import hashlib
import json
import os
import zipfile

import keras
import numpy as np

from tf_sparse.runs import workdir

FORMAT = "tf_sparse.lottery.state"
MASK_FORMAT = "tf_sparse.lottery.mask"
VERSION = 1


class StateError(workdir.WorkdirError):
    """A lottery file is missing, damaged, foreign, or for another model."""


@dataclasses.dataclass
class State:
    """Values of a model's variables (and optionally its optimizer's)."""
    kind: str
    step: int
    model: list
    optimizer: list | None
    manifest: dict


def model_variables(model):
    """The variables a state holds: `model.variables` (weights, BN statistics,
    seed-generator states), in the model's stable order. Masks are not among
    them (they live on the layers, see `tf_sparse.masking`)."""
    return list(model.variables)


def optimizer_slots(optimizer):
    """Optimizer variables other than the step counter and a constant
    learning rate: momentum, Adam moments, and so on."""
    skip = {id(optimizer.iterations)}
    lr = getattr(optimizer, "_learning_rate", None)
    if lr is not None and hasattr(lr, "assign"):
        skip.add(id(lr))
    return [v for v in optimizer.variables if id(v) not in skip]


def _describe(variables, strip_prefix=False):
    def name(v):
        path = str(getattr(v, "path", v.name))
        # Optimizer variables are named "<optimizer name>/<slot>"; Keras
        # numbers optimizer names per process (sgd, sgd_1, ...), so only the
        # slot part is stable.
        return path.split("/", 1)[-1] if strip_prefix else path
    return [[name(v), [int(d) for d in v.shape],
             keras.backend.standardize_dtype(v.dtype)] for v in variables]


def _atomic_savez(path, arrays):
    workdir.write_atomically(path, lambda f: np.savez(f, **arrays),
                             binary=True)


def checksum(arrays):
    """sha256 over the bytes of a list of arrays (shape and dtype included)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _manifest_array(manifest):
    return np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8)


def _read_npz(path, expected_format):
    """All arrays and the manifest of one of our files, or a clear error."""
    if not os.path.exists(path):
        raise StateError(f"{path} does not exist.")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        raise StateError(
            f"{path} is damaged or not a tf_sparse lottery file "
            f"({type(e).__name__}: {e}). It was left as it is; delete it "
            "to recompute it, or point to another workdir.") from e
    raw = arrays.pop("__manifest__", None)
    try:
        manifest = json.loads(bytes(raw).decode()) if raw is not None else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StateError(f"{path}: its manifest is damaged ({e}).") from e
    if manifest.get("format") != expected_format:
        raise StateError(
            f"{path} is not a {expected_format} file (found format "
            f"{manifest.get('format')!r}); it was not written by "
            "tf_sparse.lottery for this purpose.")
    if manifest.get("version") != VERSION:
        raise StateError(
            f"{path} has format version {manifest.get('version')!r}; this "
            f"tf_sparse reads version {VERSION}.")
    return arrays, manifest


def save_state(path, model, optimizer=None, *, step, kind, model_name,
               extra=None):
    """Writes the model's (and optimizer's) variables to `path` atomically."""
    variables = model_variables(model)
    slots = optimizer_slots(optimizer) if optimizer is not None else None
    manifest = {"format": FORMAT, "version": VERSION, "kind": kind,
                "step": int(step), "model_name": model_name,
                "variables": _describe(variables),
                "optimizer": (_describe(slots, strip_prefix=True)
                              if slots is not None else None),
                **(extra or {})}
    arrays = {"__manifest__": _manifest_array(manifest)}
    for i, v in enumerate(variables):
        arrays[f"m{i}"] = np.asarray(v.numpy())
    for i, v in enumerate(slots or ()):
        arrays[f"o{i}"] = np.asarray(v.numpy())
    _atomic_savez(path, arrays)


def _check_against(path, described, expected, what):
    if len(described) != len(expected):
        raise StateError(
            f"{path} holds {len(described)} {what} variables but this model "
            f"has {len(expected)}: the file belongs to another model.")
    for (name, shape, dtype), (ename, eshape, edtype) in zip(described,
                                                            expected):
        if list(shape) != list(eshape) or dtype != edtype:
            raise StateError(
                f"{path}: {what} variable {name!r} has shape {tuple(shape)} "
                f"({dtype}) but this model's {ename!r} has shape "
                f"{tuple(eshape)} ({edtype}): the file belongs to another "
                "model.")


def load_state(path, model, optimizer=None, *, model_name, kind=None,
               need_optimizer=False):
    """Reads and checks a state file against `model` (and `optimizer`)."""
    arrays, manifest = _read_npz(path, FORMAT)
    if kind is not None and manifest.get("kind") != kind:
        raise StateError(
            f"{path} holds a {manifest.get('kind')!r} state, expected "
            f"{kind!r}.")
    if manifest.get("model_name") != model_name:
        raise StateError(
            f"{path} was written for model {manifest.get('model_name')!r}, "
            f"not {model_name!r}: the file belongs to another run.")
    described = manifest.get("variables") or []
    _check_against(path, described, _describe(model_variables(model)),
                   "model")
    values = []
    for i, (_, shape, _) in enumerate(described):
        key = f"m{i}"
        if key not in arrays or list(arrays[key].shape) != list(shape):
            raise StateError(f"{path}: array {key} is missing or damaged.")
        values.append(arrays[key])
    opt_values = None
    if manifest.get("optimizer") is not None and optimizer is not None:
        _check_against(path, manifest["optimizer"],
                       _describe(optimizer_slots(optimizer), strip_prefix=True),
                       "optimizer")
        opt_values = [arrays[f"o{i}"]
                      for i in range(len(manifest["optimizer"]))]
    elif need_optimizer:
        raise StateError(
            f"{path} holds no optimizer state, which this run needs "
            "(rewind_optimizer=True).")
    return State(kind=manifest.get("kind"), step=int(manifest["step"]),
                 model=values, optimizer=opt_values, manifest=manifest)


def apply_state(model, state, optimizer=None, *, optimizer_state=True):
    """Assigns a loaded state; optimizer slots are zeroed when the state has
    none or `optimizer_state` is False. Does not touch `iterations`."""
    for v, value in zip(model_variables(model), state.model):
        v.assign(value)
    if optimizer is None:
        return
    slots = optimizer_slots(optimizer)
    if optimizer_state and state.optimizer is not None:
        for v, value in zip(slots, state.optimizer):
            v.assign(value)
    else:
        for v in slots:
            v.assign(np.zeros(v.shape, dtype=keras.backend.standardize_dtype(
                v.dtype)))


def save_masks(path, masks, *, extra=None):
    """Writes {path: 0/1 array} atomically (uint8 arrays, paths in the
    manifest)."""
    manifest = {"format": MASK_FORMAT, "version": VERSION,
                "paths": list(masks),
                "shapes": [list(np.shape(m)) for m in masks.values()],
                **(extra or {})}
    arrays = {"__manifest__": _manifest_array(manifest)}
    for i, m in enumerate(masks.values()):
        arrays[f"k{i}"] = (np.asarray(m) > 0).astype(np.uint8)
    _atomic_savez(path, arrays)


def load_masks(path, expected_shapes=None):
    """Reads masks; checks paths and shapes against {path: shape} if given."""
    arrays, manifest = _read_npz(path, MASK_FORMAT)
    paths = manifest.get("paths") or []
    masks = {}
    for i, p in enumerate(paths):
        key = f"k{i}"
        if key not in arrays:
            raise StateError(f"{path}: mask array for {p} is missing.")
        value = arrays[key]
        if not np.isin(value, (0, 1)).all():
            raise StateError(f"{path}: mask for {p} holds values other than "
                             "0 and 1.")
        masks[p] = value.astype(np.float32)
    if expected_shapes is not None:
        if list(expected_shapes) != paths:
            raise StateError(
                f"{path} has masks for {paths[:6]}... but this model's "
                f"prunable weights are {list(expected_shapes)[:6]}...: the "
                "file belongs to another model.")
        for p, shape in expected_shapes.items():
            if tuple(masks[p].shape) != tuple(shape):
                raise StateError(
                    f"{path}: mask for {p} has shape {masks[p].shape}, the "
                    f"weight has shape {tuple(shape)}.")
    return masks
