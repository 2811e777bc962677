"""Turning a sparse model back into a plain Keras model.

`strip(model)` returns a new model of the same architecture with no masks,
whose weights are the sparse model's weights with pruned entries exactly 0.
Its predictions equal the sparse model's exactly (same graph, same values).

Example:

    plain = tfs.strip(model)
    plain.save("model.keras")        # loads anywhere, no tf_sparse needed
"""

import keras

from tf_sparse import masking


def _masked_values(model):
    masks = {id(mw.variable): mw.mask for mw in masking.masked_weights(model)}
    values = []
    for variable in model.weights:
        mask = masks.get(id(variable))
        value = variable if mask is None else masking.keep_active(variable,
                                                                  mask)
        values.append(keras.ops.convert_to_numpy(value))
    return values


def _clone_architecture(model):
    if isinstance(model, keras.Sequential) or getattr(
            model, "_is_graph_network", False) or type(model).__name__ == (
                "Functional"):
        return keras.models.clone_model(model)
    try:
        clone = type(model).from_config(model.get_config())
    except (NotImplementedError, TypeError) as error:
        raise ValueError(
            f"Cannot rebuild subclassed model {type(model).__name__!r} from "
            f"its config ({error}). Give it a get_config/from_config, or "
            "remove the masks in place with tfs.unsparsify(model).") from error
    shapes = getattr(model, "_build_shapes_dict", None) or {}
    if len(shapes) == 1:
        # Call, not build(): a subclassed model without build() only creates
        # its weights when called.
        shape = [1 if d is None else int(d)
                 for d in tuple(shapes.values())[0]]
        clone(keras.ops.zeros(shape, dtype=model.compute_dtype))
    if not clone.built or len(clone.weights) != len(model.weights):
        raise ValueError(
            f"Rebuilt {type(model).__name__!r} has {len(clone.weights)} "
            f"weights, the original {len(model.weights)}; cannot strip it. "
            "Use tfs.unsparsify(model) to remove the masks in place.")
    return clone


def strip(model):
    """A plain Keras copy of a sparse model, pruned weights set to 0."""
    if not masking.is_sparse(model):
        raise ValueError(f"Model {model.name!r} is not sparse; nothing to strip.")
    clone = _clone_architecture(model)
    clone.set_weights(_masked_values(model))
    return clone
