"""Parameter counting in the papers' convention.

`masked` is the number of weights a sparse-training method prunes: the
kernels of every convolution (incl. transposed, depthwise and separable
convs: depthwise and pointwise kernels) and of every `Dense` /
`EinsumDense`, including the first conv and the last FC. Biases,
BatchNorm/LayerNorm parameters and embeddings are not counted as masked.
Kernels are counted whether or not the layer is currently trainable.

Example:

    from tf_sparse.models import count_parameters, lenet300_100
    count_parameters(lenet300_100())
    # {'masked': 266200, 'total_trainable': 266610, 'total': 266610}
"""

import keras
import numpy as np

MASKABLE_LAYER_TYPES = (
    keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D,
    keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
    keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv1D, keras.layers.SeparableConv2D,
    keras.layers.Dense, keras.layers.EinsumDense,
)
MASKABLE_WEIGHT_NAMES = ("kernel", "depthwise_kernel", "pointwise_kernel")


def _size(variable):
    return int(np.prod(variable.shape, dtype=np.int64))


def _unique(variables):
    seen, out = set(), []
    for v in variables:
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


def _all_layers(model):
    """Every sub-layer below `model`, nested models included."""
    if hasattr(model, "_flatten_layers"):
        return list(model._flatten_layers(include_self=False, recursive=True))
    layers = []
    for layer in getattr(model, "layers", []):
        layers.append(layer)
        layers.extend(_all_layers(layer))
    return layers


def masked_weights(model):
    """The kernel variables counted as `masked`, each once, in layer order."""
    found = []
    for layer in _all_layers(model):
        if isinstance(layer, MASKABLE_LAYER_TYPES):
            found.extend(w for w in layer.weights
                         if w.name in MASKABLE_WEIGHT_NAMES)
    return _unique(found)


def count_parameters(model):
    """Counts `masked`, `total_trainable` and `total` parameters of a model.

    Args:
      model: a built Keras model (or layer).

    Returns:
      `dict(masked=..., total_trainable=..., total=...)` of Python ints.
      `total` includes non-trainable weights such as BatchNorm moving
      statistics.

    Raises:
      ValueError: if the model has no weights yet (it is not built).
    """
    if not getattr(model, "built", True):
        raise ValueError(
            f"Model {getattr(model, 'name', model)!r} is not built; call it "
            "on an input or build it before counting parameters.")
    return dict(
        masked=sum(_size(v) for v in masked_weights(model)),
        total_trainable=sum(_size(v) for v in _unique(model.trainable_weights)),
        total=sum(_size(v) for v in _unique(model.weights)),
    )
