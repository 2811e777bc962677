"""ImageNet ResNet-50 as defined by torchvision (bottleneck v1.5).

torchvision's `resnet50()`, which is also the network of the sparse-momentum
ImageNet runs (25,557,032 parameters, 25,502,912 in Conv/Linear weights):

* stem: 7x7/2 conv (`conv1`), `bn1`, ReLU, 3x3/2 max pool (PyTorch padding);
* `layer1`..`layer4` with 3, 4, 6, 3 bottleneck blocks of width 64, 128,
  256, 512 (output 4x width); the stride sits on the 3x3 conv (v1.5); the
  first block of each layer has a 1x1 conv + BN projection shortcut;
* global average pool and `fc`.

No conv has a bias (unlike `keras.applications.ResNet50`, whose counts
therefore differ). Convs use Kaiming normal (fan-out), BN gamma 1 / beta 0,
`fc` PyTorch's default init; `zero_init_residual=True` zeroes each block's
last BN gamma as torchvision's option does. Outputs are logits.

Layer names: `conv1`, `bn1`, `relu`, `maxpool`, then
`layer<l>_block<b>_{conv1,bn1,relu1,conv2,bn2,relu2,conv3,bn3,
downsample_conv,downsample_bn,add,relu}` (`b` counted from 1, so torchvision's
`layer1.0.conv1` is `layer1_block1_conv1`), `avg_pool`, `fc`.

Example:

    model = resnet50()
    logits = model(np.zeros((2, 224, 224, 3)))  # shape (2, 1000)
"""

import keras

from tf_sparse.models import layers as L

_EXPANSION = 4


def _conv(x, filters, kernel, stride, name):
    return L.conv2d(x, filters, kernel, stride=stride,
                    padding=(kernel - 1) // 2, use_bias=False,
                    kernel_initializer=L.kaiming_normal("fan_out"), name=name)


def _bottleneck(x, width, stride, zero_init_residual, prefix):
    out_planes = width * _EXPANSION
    out = _conv(x, width, 1, 1, f"{prefix}_conv1")
    out = L.batch_norm(out, name=f"{prefix}_bn1")
    out = L.relu(out, name=f"{prefix}_relu1")
    out = _conv(out, width, 3, stride, f"{prefix}_conv2")
    out = L.batch_norm(out, name=f"{prefix}_bn2")
    out = L.relu(out, name=f"{prefix}_relu2")
    out = _conv(out, out_planes, 1, 1, f"{prefix}_conv3")
    out = L.batch_norm(out, name=f"{prefix}_bn3",
                       gamma_initializer="zeros" if zero_init_residual
                       else "ones")
    if stride != 1 or x.shape[-1] != out_planes:
        shortcut = _conv(x, out_planes, 1, stride, f"{prefix}_downsample_conv")
        shortcut = L.batch_norm(shortcut, name=f"{prefix}_downsample_bn")
    else:
        shortcut = x
    out = keras.layers.Add(name=f"{prefix}_add")([out, shortcut])
    return L.relu(out, name=f"{prefix}_relu")


def bottleneck_resnet(blocks_per_layer, num_classes=1000,
                      input_shape=(224, 224, 3), zero_init_residual=False,
                      name="resnet"):
    """A torchvision-style bottleneck ResNet, e.g. (3, 4, 6, 3) for RN-50.

    Example:

        resnet101 = bottleneck_resnet((3, 4, 23, 3), name="resnet101")
    """
    blocks_per_layer = tuple(blocks_per_layer)
    if len(blocks_per_layer) != 4 or not all(
            isinstance(n, int) and n >= 1 for n in blocks_per_layer):
        raise ValueError("blocks_per_layer must be 4 positive ints, got "
                         f"{blocks_per_layer!r}")
    L.check_num_classes(num_classes)
    inputs = keras.Input(shape=input_shape, name="input")
    x = _conv(inputs, 64, 7, 2, "conv1")
    x = L.batch_norm(x, name="bn1")
    x = L.relu(x, name="relu")
    # PyTorch MaxPool2d(3, 2, padding=1); zero padding is equivalent after
    # the ReLU because activations are >= 0.
    x = keras.layers.ZeroPadding2D(1, name="maxpool_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="maxpool")(x)
    for i, (width, blocks) in enumerate(
            zip((64, 128, 256, 512), blocks_per_layer), start=1):
        for b in range(1, blocks + 1):
            stride = 2 if (i > 1 and b == 1) else 1
            x = _bottleneck(x, width, stride, zero_init_residual,
                            prefix=f"layer{i}_block{b}")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = L.dense(x, num_classes, name="fc")
    return keras.Model(inputs, outputs, name=name)


def resnet50(num_classes=1000, input_shape=(224, 224, 3),
             zero_init_residual=False, name="resnet50"):
    """torchvision ResNet-50: 25,502,912 masked / 25,557,032 trainable.

    Example:

        small = resnet50(input_shape=(64, 64, 3))  # same weights, any size
    """
    return bottleneck_resnet((3, 4, 6, 3), num_classes, input_shape,
                             zero_init_residual, name)
