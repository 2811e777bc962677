"""A new, built model with the architecture of another (fresh weights).

`clone_architecture(model)` rebuilds Sequential and functional models with
`keras.models.clone_model` (subclasses of Functional too, such as
keras-hub's task models), and other subclassed models from their config (then
calls them once on zeros of the recorded input shape, so that they create
their weights). The clone has no masks and the same weight list layout, so
`clone.set_weights(values)` fills it from the original's values.

Example:

    plain = clone_architecture(model)
    plain.set_weights(dense_values)
    plain.save("dense.keras")
"""

import keras


def is_functional(model):
    """True for functional models, subclasses of Functional included (the
    task models of keras-hub, e.g. `ViTImageClassifier`)."""
    return any(cls.__name__ == "Functional" for cls in type(model).__mro__)


def clone_architecture(model):
    """A new built model of `model`'s architecture; raises ValueError when a
    subclassed model cannot be rebuilt with the same weights."""
    if isinstance(model, keras.Sequential) or getattr(
            model, "_is_graph_network", False) or is_functional(model):
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
