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

import dataclasses
import inspect

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

    The names are checked now as far as the class allows: a list of
    distinct Python identifiers that are not methods of the class. Whether
    a built layer really holds a variable under each name can only be
    checked on an instance, so `sparsify` does that and names the class,
    the attribute and this call when one is missing.

    Args:
      layer_class: a subclass of `keras.layers.Layer`.
      weight_names: attribute names of the layer that hold the variables to
        mask, e.g. `["kernel"]`. An attribute that a built layer sets to
        None is skipped (an optional weight).

    Example:

        tfs.register_prunable(MyProjection, ["w"])
    """
    if not (isinstance(layer_class, type)
            and issubclass(layer_class, keras.layers.Layer)):
        raise TypeError(
            "register_prunable expects a keras.layers.Layer subclass, got "
            f"{layer_class!r}.")
    if isinstance(weight_names, str):
        raise TypeError(
            "weight_names must be a list of attribute names, not the string "
            f"{weight_names!r}; write [{weight_names!r}].")
    try:
        names = tuple(weight_names)
    except TypeError:
        raise TypeError(
            "weight_names must be a list of attribute names, got "
            f"{weight_names!r}.") from None
    if not names:
        raise ValueError(
            "weight_names must be a non-empty list of attribute names, got "
            f"{weight_names!r}.")
    for name in names:
        if not isinstance(name, str):
            raise TypeError(
                "weight_names must hold strings (attribute names), got "
                f"{name!r} in {weight_names!r}.")
        if not name.isidentifier():
            raise ValueError(
                f"weight name {name!r} of {layer_class.__name__} is not a "
                "Python identifier, so it cannot be an attribute name.")
        if inspect.isfunction(inspect.getattr_static(layer_class, name,
                                                     None)):
            raise ValueError(
                f"weight name {name!r} is a method of "
                f"{layer_class.__name__}, not a weight; give the attribute "
                "that holds the variable (e.g. set in build as "
                "self.<name> = self.add_weight(...)).")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(
            f"weight_names {list(names)} name {repeated[0]!r} twice.")
    _CUSTOM[layer_class] = names


def _registration(layer):
    for cls in type(layer).__mro__:
        if cls in _CUSTOM:
            return cls, _CUSTOM[cls]
    return None, None


def _variable_attributes(layer):
    return sorted(k for k, v in vars(layer).items()
                  if isinstance(v, keras.Variable))


def prunable_variables(layer):
    """Returns the list of `(name, variable)` of a layer that can be masked.

    An empty list means the layer has nothing to prune (or is unknown).
    """
    if hasattr(layer, "get_prunable_weights"):
        return [(v.name, v) for v in layer.get_prunable_weights()]
    registered_class, names = _registration(layer)
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
        if (registered_class is not None and layer.built
                and not hasattr(layer, attr)):
            held = ", ".join(_variable_attributes(layer)) or "none"
            raise ValueError(
                f"Layer {layer.name!r} ({type(layer).__name__}) has no "
                f"attribute {attr!r}, which "
                f"tfs.register_prunable({registered_class.__name__}, "
                f"{list(names)!r}) declared prunable. Its attributes "
                f"holding variables: {held}. Register those names instead.")
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


@dataclasses.dataclass(frozen=True)
class KernelAxes:
    """How a prunable weight enters its layer's product.

    Attributes:
      reduction: the axes the layer sums over (input features, kernel
        positions), in the order the (inputs x outputs) matrix of the
        kernel flattens them.
      output: the other axes, one output channel or unit per index.
      input: the axis of input features or channels (N:M groups run along
        it), or None when the layer sums over none (a depthwise kernel).
    """
    reduction: tuple
    output: tuple
    input: int | None


_DEPTHWISE = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
_SEPARABLE = (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)
_TRANSPOSE = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
              keras.layers.Conv3DTranspose)


def _einsum_axes(equation, ndim):
    inputs, rest = equation.split(",")
    kernel, output = rest.split("->")
    kernel = kernel.replace("...", "")
    output = output.replace("...", "")
    if len(kernel) != ndim:
        return None
    reduction = tuple(i for i, c in enumerate(kernel)
                      if c not in output and c in inputs)
    outputs = tuple(i for i in range(ndim) if i not in reduction)
    return KernelAxes(reduction, outputs, reduction[-1] if reduction else None)


def kernel_axes(layer, name, shape):
    """The `KernelAxes` of the prunable weight `name` (of `shape`) of `layer`.

    Dense (in, out): inputs on axis 0. Convolutions (..., in, out): kernel
    positions and input channels are reduced, input channels on axis -2.
    Transposed convolutions (..., out, in): input channels on axis -1.
    Depthwise kernels (..., in, multiplier): only the kernel positions are
    reduced; there is no input axis. EinsumDense: the kernel's letters
    missing from the output are reduced. Embedding (vocabulary, features):
    the lookup is a product with a one-hot vector, so the vocabulary is the
    reduced axis. Other (registered) layers follow the Dense/Conv convention:
    the last axis is the output, the others are reduced, the input axis is
    the second to last.

    Example:

        kernel_axes(keras.layers.Conv2D(8, 3), "kernel", (3, 3, 4, 8))
        # KernelAxes(reduction=(0, 1, 2), output=(3,), input=2)
    """
    ndim = len(shape)
    last_out = KernelAxes(tuple(range(ndim - 1)), (ndim - 1,),
                          ndim - 2 if ndim >= 2 else None)
    if isinstance(layer, _DEPTHWISE) or (
            isinstance(layer, _SEPARABLE) and name == "depthwise_kernel"):
        return KernelAxes(tuple(range(ndim - 2)), (ndim - 2, ndim - 1), None)
    if isinstance(layer, _TRANSPOSE):
        return KernelAxes(tuple(range(ndim - 2)) + (ndim - 1,), (ndim - 2,),
                          ndim - 1)
    if isinstance(layer, keras.layers.EinsumDense):
        axes = _einsum_axes(layer.equation, ndim)
        if axes is not None:
            return axes
    return last_out
