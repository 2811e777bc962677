"""`to_sparse_compute(model)`: every masked Dense, EinsumDense, 1x1 Conv2D
and Embedding layer of a sparse model computes with its nonzeros only.

`tfs.sparsify(model, ..., compute="sparse")` calls it after attaching the
masks. Masked layers with no sparse form (kxk convolutions, depthwise
convolutions, EinsumDense equations that are not one 2-D matmul, e.g. a
kernel axis kept in the output and taken from the input) stay masked and
are named in a
`MaskedLayersKeptWarning`; a model with none to convert is refused.

`room` (>= 1) allocates `ceil(room * nnz)` entries per layer (at most the
layer's size): spare entries a layer can grow into when an algorithm moves
weights between layers (sparse momentum's redistribution). With the default
1.0 every layer keeps exactly its number of weights.

Example:

    model = tfs.sparsify(model, sparsity=0.95)          # masked
    tfs.sparse_compute.to_sparse_compute(model)         # now sparse compute
"""

import math
import numbers
import warnings

import keras
import numpy as np

from tf_sparse.sparse_compute import layers


class MaskedLayersKeptWarning(UserWarning):
    """Some masked layers have no sparse form and stay masked."""


def _check_room(room):
    if isinstance(room, bool) or not isinstance(room, numbers.Real) or not (
            math.isfinite(room) and room >= 1.0):
        raise ValueError(f"room must be a number >= 1.0 (1.0: exactly the "
                         f"nonzeros), got {room!r}.")
    return float(room)


def plan(model):
    """([MaskedWeight to convert], {weight path: why it stays masked})."""
    convert, kept = [], {}
    for mw, kind, why in layers.convertible(model):
        if kind is None:
            kept[mw.path] = why
        elif mw.pattern != "unstructured":
            kept[mw.path] = (f"its pattern {mw.pattern!r} (sparse compute "
                             "stores unstructured nonzeros)")
        else:
            convert.append(mw)
    return convert, kept


def check(model, room=1.0):
    """Raises ValueError when `to_sparse_compute(model, room)` would fail,
    changing nothing; returns the weights it would convert."""
    _check_room(room)
    layers.check_model(model)
    convert, kept = plan(model)
    if not convert:
        reasons = "; ".join(f"{p}: {w}" for p, w in list(kept.items())[:8])
        raise ValueError(
            f"Model {model.name!r} has no masked weight with a sparse compute "
            f"form ({reasons or 'no masks'}). Sparse compute covers Dense, "
            "EinsumDense, 1x1 Conv2D and Embedding layers.")
    for mw in convert:
        layers.check_layer(mw.layer, mw.name, mw.path)
    return convert


def to_sparse_compute(model, room=1.0):
    """Converts every convertible masked weight of `model` in place (see
    the module docstring); returns the model."""
    room = _check_room(room)
    convert = check(model, room)
    _, kept = plan(model)
    for mw in convert:
        mask = keras.ops.convert_to_numpy(mw.mask)
        nnz = int(np.count_nonzero(mask))
        capacity = min(mw.size, int(math.ceil(room * nnz)))
        layers.convert_layer(mw.layer, mw.name, mask, capacity=max(capacity,
                                                                  nnz))
    if kept:
        shown = "; ".join(f"{p} ({w})" for p, w in kept.items())
        warnings.warn(
            f"compute='sparse': {len(kept)} masked weight(s) have no sparse "
            f"form and stay masked (dense compute): {shown}.",
            MaskedLayersKeptWarning, stacklevel=2)
    return model


def is_sparse_compute(model):
    """True if any layer of `model` computes with a sparse weight."""
    return layers.is_sparse_compute(model)


def check_model_ready(model):
    """Raises ValueError when `model` cannot take sparse compute now (not
    the TensorFlow backend, or its optimizer is already built)."""
    layers.check_model(model)


def check_plan(pairs, pattern, model_name):
    """Raises ValueError, before any mask is attached, when none of the
    (layer, weight name) `pairs` a sparsify plan masks has a sparse form,
    or when one that has is refused (a constraint)."""
    convertible = []
    reasons = {}
    for layer, name in pairs:
        kind, why = layers.kind_of(layer, name)
        if kind is None:
            reasons[f"{layer.name}/{name}"] = why
        else:
            convertible.append((layer, name))
    if pattern != "unstructured" or not convertible:
        why = (f"pattern {pattern!r}: sparse compute stores unstructured "
               "nonzeros" if pattern != "unstructured" else "; ".join(
                   f"{p}: {w}" for p, w in list(reasons.items())[:8]))
        raise ValueError(
            f"compute='sparse': no weight of model {model_name!r} that "
            f"sparsify masks has a sparse compute form ({why}). Sparse "
            "compute covers Dense, EinsumDense, 1x1 Conv2D and Embedding "
            "layers with unstructured sparsity; use compute='masked'.")
    for layer, name in convertible:
        layers.check_layer(layer, name, f"{layer.name}/{name}")


def to_dense_compute(model):
    """Gives every sparse-compute layer of `model` its dense weight back
    (zeros in place, no masks); returns the model."""
    for _, holder in layers.sparse_kernels(model):
        layers.restore_layer(holder.layer)
    return model
