"""CIFAR ResNets of the lottery-ticket papers (open_lth `cifar_resnet_N`).

The original He et al. CIFAR ResNet as defined in facebookresearch/open_lth:
a 3x3 stem conv with W filters, three stages of D post-activation basic
blocks with W, 2W, 4W filters (D = (N - 2) / 6), global average pool and a
single FC. A stage's first block (stages 2 and 3) downsamples with stride 2
and uses a 1x1 conv + BN shortcut; all other shortcuts are identities. Convs
have no bias. Initialisation follows open_lth's defaults: Kaiming normal
(fan-in) for conv and FC weights, PyTorch-default FC bias, BatchNorm gammas
drawn from U(0, 1). Outputs are logits.

"ResNet-18" of "Stabilizing the LTH" and ResNet-20 of the LMC paper are both
`resnet20()` (272,474 parameters; the papers round this to 274K).

Layer names: `conv1`, `bn1`, `relu1`, then
`stage<s>_block<b>_{conv1,bn1,relu1,conv2,bn2,shortcut_conv,shortcut_bn,
add,relu}` (counted from 1) and `fc`.

Example:

    model = resnet20()
    logits = model(np.zeros((2, 32, 32, 3)))  # shape (2, 10)
"""

import keras

from tf_sparse.models import layers as L


def _conv(x, filters, kernel, stride, name):
    return L.conv2d(x, filters, kernel, stride=stride,
                    padding=(kernel - 1) // 2, use_bias=False,
                    kernel_initializer=L.kaiming_normal("fan_in"), name=name)


def _bn(x, name):
    return L.batch_norm(
        x, name=name,
        gamma_initializer=keras.initializers.RandomUniform(0.0, 1.0))


def _block(x, filters, stride, prefix):
    out = _conv(x, filters, 3, stride, f"{prefix}_conv1")
    out = _bn(out, f"{prefix}_bn1")
    out = L.relu(out, name=f"{prefix}_relu1")
    out = _conv(out, filters, 3, 1, f"{prefix}_conv2")
    out = _bn(out, f"{prefix}_bn2")
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv(x, filters, 1, stride, f"{prefix}_shortcut_conv")
        shortcut = _bn(shortcut, f"{prefix}_shortcut_bn")
    else:
        shortcut = x
    out = keras.layers.Add(name=f"{prefix}_add")([out, shortcut])
    return L.relu(out, name=f"{prefix}_relu")


def cifar_resnet(depth=20, width=16, num_classes=10, input_shape=(32, 32, 3),
                 name=None):
    """open_lth `cifar_resnet_<depth>[_<width>]`; `depth` must be 6D + 2.

    Example:

        model = cifar_resnet(56)        # ResNet-56
        model = cifar_resnet(14, 128)   # a wide variant, 11,093,130 params
    """
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"CIFAR ResNet depth must be 6D + 2 with D >= 1, got {depth!r}")
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive int, got {width!r}")
    L.check_num_classes(num_classes)
    blocks = (depth - 2) // 6

    inputs = keras.Input(shape=input_shape, name="input")
    x = _conv(inputs, width, 3, 1, "conv1")
    x = _bn(x, "bn1")
    x = L.relu(x, name="relu1")
    for s, filters in enumerate((width, 2 * width, 4 * width), start=1):
        for b in range(1, blocks + 1):
            stride = 2 if (s > 1 and b == 1) else 1
            x = _block(x, filters, stride, prefix=f"stage{s}_block{b}")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = L.dense(x, num_classes, name="fc",
                      kernel_initializer=L.kaiming_normal("fan_in"))
    suffix = "" if width == 16 else f"_{width}"
    return keras.Model(inputs, outputs,
                       name=name or f"resnet{depth}{suffix}")


def resnet20(num_classes=10, input_shape=(32, 32, 3), name="resnet20"):
    """ResNet-20 (open_lth cifar_resnet_20): 272,474 parameters."""
    return cifar_resnet(20, 16, num_classes, input_shape, name)
