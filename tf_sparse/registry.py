"""Which weights of which layer types can be masked.

Built-in Keras layers are known by type. A custom layer declares its prunable
weights either by being registered or by implementing
`get_prunable_weights()` (the same duck-typed protocol as
tensorflow-model-optimization's `PrunableLayer`).

Biases and normalisation weights are never prunable.

Example:

    class MyProjection(keras.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], 64), name="w")

    tfs.register_prunable(MyProjection, ["w"])
"""

import keras

# Checked in order: the first matching type wins. Values are attribute names
# on the layer that hold the prunable variables.
_BUILTIN = (
    (keras.layers.SeparableConv1D, ("depthwise_kernel", "pointwise_kernel")),
    (keras.layers.SeparableConv2D, ("depthwise_kernel", "pointwise_kernel")),
    (keras.layers.DepthwiseConv1D, ("kernel",)),
    (keras.layers.DepthwiseConv2D, ("kernel",)),
    (keras.layers.Conv1DTranspose, ("kernel",)),
    (keras.layers.Conv2DTranspose, ("kernel",)),
    (keras.layers.Conv3DTranspose, ("kernel",)),
    (keras.layers.Conv1D, ("kernel",)),
    (keras.layers.Conv2D, ("kernel",)),
    (keras.layers.Conv3D, ("kernel",)),
    (keras.layers.EinsumDense, ("kernel",)),
    (keras.layers.Dense, ("kernel",)),
    (keras.layers.Embedding, ("embeddings",)),
)

_CUSTOM = {}


def register_prunable(layer_class, weight_names):
    """Declares the prunable weights of a custom layer class.

    Args:
      layer_class: a subclass of `keras.layers.Layer`.
      weight_names: attribute names of the layer that hold the variables to
        mask, e.g. `["kernel"]`.
    """
    if not (isinstance(layer_class, type)
            and issubclass(layer_class, keras.layers.Layer)):
        raise TypeError(
            "register_prunable expects a keras.layers.Layer subclass, got "
            f"{layer_class!r}.")
    names = tuple(weight_names)
    if not names or not all(isinstance(n, str) for n in names):
        raise ValueError(
            "weight_names must be a non-empty list of attribute names, got "
            f"{weight_names!r}.")
    _CUSTOM[layer_class] = names


def prunable_variables(layer):
    """Returns the list of `(name, variable)` of a layer that can be masked.

    An empty list means the layer has nothing to prune (or is unknown).
    """
    if hasattr(layer, "get_prunable_weights"):
        return [(v.name, v) for v in layer.get_prunable_weights()]
    names = None
    for cls in type(layer).__mro__:
        if cls in _CUSTOM:
            names = _CUSTOM[cls]
            break
    if names is None:
        for cls, attrs in _BUILTIN:
            if isinstance(layer, cls):
                names = attrs
                break
    if names is None:
        return []
    if getattr(layer, "lora_enabled", False):
        raise ValueError(
            f"Layer {layer.name!r} has LoRA enabled; tf-sparse masks the base "
            "kernel and cannot mask a LoRA-merged kernel. Sparsify before "
            "enabling LoRA.")
    result = []
    for attr in names:
        variable = getattr(layer, attr, None)
        if variable is None:
            continue
        if not isinstance(variable, keras.Variable):
            raise TypeError(
                f"Attribute {attr!r} of layer {layer.name!r} is a "
                f"{type(variable).__name__}, not a keras.Variable; it cannot "
                "be masked.")
        result.append((attr, variable))
    return result
