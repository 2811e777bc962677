"""Building blocks shared by the model zoo: PyTorch-equivalent layers.

The reference models are PyTorch definitions. To reproduce them in Keras
exactly (same parameter counts, same output sizes, same initial weight
distributions) this module provides:

* initializer factories matching PyTorch's defaults and the references'
  custom initialisations (a fresh instance per layer, so no two layers share
  an initializer object);
* `conv2d`, which applies PyTorch-style symmetric zero padding. Keras
  `padding="same"` pads asymmetrically for strided convolutions, so strided
  or oddly padded convolutions get an explicit `ZeroPadding2D` layer in
  front of a `"valid"` convolution instead;
* `batch_norm`, a `BatchNormalization` with PyTorch's defaults
  (`momentum=0.1` in PyTorch's convention is `momentum=0.9` in Keras',
  `eps=1e-5`).

Example:

    from tf_sparse.models import layers as L

    x = keras.Input((32, 32, 3))
    y = L.conv2d(x, 16, 3, stride=2, padding=1, use_bias=False, name="conv1",
                 kernel_initializer=L.kaiming_normal("fan_out"))
"""

import math

import keras

BN_MOMENTUM = 0.9  # PyTorch BatchNorm momentum 0.1
BN_EPSILON = 1e-5  # PyTorch BatchNorm eps


# --------------------------------------------------------------------------
# Initializers
# --------------------------------------------------------------------------

def torch_default_kernel():
    """PyTorch's default Conv/Linear weight init.

    `kaiming_uniform_(a=sqrt(5))`, i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    """
    return keras.initializers.VarianceScaling(
        scale=1.0 / 3.0, mode="fan_in", distribution="uniform")


def torch_default_bias(fan_in):
    """PyTorch's default Conv/Linear bias init: U(-1/sqrt(fan_in), +)."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return keras.initializers.RandomUniform(-bound, bound)


def kaiming_normal(mode="fan_in"):
    """`torch.nn.init.kaiming_normal_` with ReLU gain (untruncated normal).

    `mode="fan_in"` is PyTorch's default (open_lth); `mode="fan_out"` is
    torchvision's ResNet init and, equivalently, the WRN reference's
    `normal(0, sqrt(2 / (k*k*out_channels)))`.
    """
    return keras.initializers.VarianceScaling(
        scale=2.0, mode=mode, distribution="untruncated_normal")


# --------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------

def conv2d(x, filters, kernel_size, *, name, stride=1, padding=0,
           use_bias=True, kernel_initializer=None, bias_initializer=None,
           activation=None):
    """A PyTorch-style `Conv2d(k, stride, padding)` applied to `x`.

    If `bias_initializer` is None and `use_bias` is True, the bias gets
    PyTorch's default init computed from the fan-in.
    """
    in_channels = x.shape[-1]
    if kernel_initializer is None:
        kernel_initializer = torch_default_kernel()
    if use_bias and bias_initializer is None:
        bias_initializer = torch_default_bias(in_channels * kernel_size ** 2)
    if padding == 0:
        keras_padding = "valid"
    elif stride == 1 and kernel_size == 2 * padding + 1:
        keras_padding = "same"  # symmetric, identical to PyTorch
    else:
        x = keras.layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
        keras_padding = "valid"
    return keras.layers.Conv2D(
        filters, kernel_size, strides=stride, padding=keras_padding,
        use_bias=use_bias, activation=activation,
        kernel_initializer=kernel_initializer,
        bias_initializer=bias_initializer if use_bias else "zeros",
        name=name)(x)


def dense(x, units, *, name, activation=None, kernel_initializer=None,
          bias_initializer=None):
    """A PyTorch-style `Linear` (with bias) applied to `x`."""
    if kernel_initializer is None:
        kernel_initializer = torch_default_kernel()
    if bias_initializer is None:
        bias_initializer = torch_default_bias(x.shape[-1])
    return keras.layers.Dense(
        units, activation=activation, kernel_initializer=kernel_initializer,
        bias_initializer=bias_initializer, name=name)(x)


def batch_norm(x, *, name, gamma_initializer="ones"):
    """`BatchNormalization` with PyTorch's momentum and epsilon."""
    return keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
        gamma_initializer=gamma_initializer, name=name)(x)


def relu(x, *, name):
    """A named `ReLU` layer applied to `x`."""
    return keras.layers.ReLU(name=name)(x)


def check_num_classes(num_classes):
    """Raises ValueError unless `num_classes` is a positive int (not a bool).

    Example:

        check_num_classes(10)      # fine
        check_num_classes(0)       # ValueError
    """
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) \
            or num_classes < 1:
        raise ValueError(
            f"num_classes must be a positive int, got {num_classes!r}")
