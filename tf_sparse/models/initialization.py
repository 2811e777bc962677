"""Initial weights as the PyTorch reference code draws them.

Keras initialises Dense and Conv kernels with Glorot uniform and biases with
zeros; PyTorch's `nn.Linear` and `nn.Conv2d` draw kernel and bias from
U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (`kaiming_uniform_(a=sqrt(5))`), which on
LeNet-300-100's first layer is about half as wide. The sparse-momentum
reference (sparse_learning `models.py`) keeps PyTorch's defaults for
LeNet-300-100, LeNet-5-Caffe, AlexNet and VGG, and for its Wide ResNets draws
convolution kernels from N(0, sqrt(2 / fan_out)) and zeroes the classifier's
bias. `reinitialize(model, scheme, seed)` redraws a built model's kernels and
biases that way:

- "torch": every Dense and Conv kernel and bias ~ U(+-1/sqrt(fan_in));
- "wrn": Conv kernels ~ N(0, sqrt(2/fan_out)), Dense kernels as "torch",
  Dense biases 0;
- "kaiming_normal": Dense and Conv kernels ~ N(0, sqrt(2/fan_in)) (PyTorch's
  `kaiming_normal_`, not truncated), biases as "torch": open_lth's
  `model_init='kaiming_normal'`.

fan_in counts one output unit's inputs (for a depthwise kernel: its window),
fan_out one input channel's outputs, as PyTorch does. Batch-norm scales and
offsets start at 1 and 0 in both frameworks. Draws are seeded per variable,
so a seed gives the same weights.

Example:

    model = get_model("lenet300_100")
    reinitialize(model, "torch", seed=17)
"""

import math

import keras
import numpy as np

SCHEMES = ("torch", "wrn", "kaiming_normal")
_CONV = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)


def fans(layer, kernel_shape):
    """(fan_in, fan_out) of a Dense or Conv kernel, PyTorch's way."""
    shape = tuple(int(d) for d in kernel_shape)
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return receptive, receptive * shape[-1]
    return receptive * shape[-2], receptive * shape[-1]


def _uniform(shape, bound, seed):
    return keras.random.uniform(shape, -bound, bound, seed=draw_seed(seed))


def draw_seed(seed):
    """`seed` as Keras's random ops take it on this backend: JAX takes
    seeds as uint32, so larger ones are folded into that range there;
    TensorFlow and PyTorch take them whole (their draws are unchanged).

    >>> draw_seed(7)
    7
    """
    seed = int(seed)
    if keras.backend.backend() == "jax":
        return seed % (2 ** 32)
    return seed


def reinitialize(model, scheme, seed=0):
    """Redraws the kernels and biases of `model`'s Dense and Conv layers in
    `scheme` (see the module docstring); returns the model."""
    if scheme not in SCHEMES:
        raise ValueError(f"Unknown initialisation {scheme!r}; accepted: "
                         f"keras, {', '.join(SCHEMES)}.")
    dense_like = (keras.layers.Dense, keras.layers.DepthwiseConv2D) + _CONV
    layers = [layer for layer in model._flatten_layers()  # pylint: disable=protected-access
              if isinstance(layer, dense_like) and layer.built]
    for index, layer in enumerate(layers):
        kernel = layer.kernel
        fan_in, fan_out = fans(layer, kernel.shape)
        bound = 1.0 / math.sqrt(fan_in)
        conv = not isinstance(layer, keras.layers.Dense)
        base = int(seed) * 7919 + 2 * index
        if scheme == "wrn" and conv:
            value = keras.random.normal(kernel.shape,
                                        stddev=math.sqrt(2.0 / fan_out),
                                        seed=draw_seed(base))
        elif scheme == "kaiming_normal":
            value = keras.random.normal(kernel.shape,
                                        stddev=math.sqrt(2.0 / fan_in),
                                        seed=draw_seed(base))
        else:
            value = _uniform(kernel.shape, bound, base)
        kernel.assign(keras.ops.cast(value, kernel.dtype))
        bias = getattr(layer, "bias", None)
        if bias is not None:
            if scheme == "wrn" and not conv:
                value = keras.ops.zeros(bias.shape)
            else:
                value = _uniform(bias.shape, bound, base + 1)
            bias.assign(keras.ops.cast(value, bias.dtype))
    return model
