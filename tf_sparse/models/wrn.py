"""Wide ResNets (pre-activation) of the sparse-momentum paper.

Reference: `WideResNet(depth, widen_factor, dropRate=0.3)` in
TimDettmers/sparse_learning (`sparselearning/models.py`), the usual
Zagoruyko & Komodakis CIFAR WRN:

* `conv1`: 3x3, 16 filters;
* three stages of (depth - 4) / 6 pre-activation basic blocks with widths
  16k, 32k, 64k (k = widen factor), strides 1, 2, 2;
* `final_bn`, ReLU, global average pool, `fc`.

A block is BN-ReLU-conv3x3-BN-ReLU-dropout-conv3x3 plus a shortcut. When
the block changes width, the shortcut is a 1x1 conv (`..._shortcut`) on the
*pre-activated* input, as in the reference; otherwise it is the identity on
the raw input. Convs have no bias and are initialised N(0, 2/(k*k*out))
(Kaiming normal, fan-out); `fc` has PyTorch's default weight init and a zero
bias. Outputs are logits.

Layer names: `stage<s>_block<b>_{bn1,relu1,conv1,bn2,relu2,dropout,conv2,
shortcut,add}`, `s` and `b` counted from 1.

Example:

    model = wrn(16, 8)           # same as wrn16_8()
    logits = model(np.zeros((2, 32, 32, 3)))  # shape (2, 10)
"""

import keras

from tf_sparse.models import layers as L


def _conv(x, filters, kernel, stride, name):
    return L.conv2d(x, filters, kernel, stride=stride,
                    padding=(kernel - 1) // 2, use_bias=False,
                    kernel_initializer=L.kaiming_normal("fan_out"),
                    name=name)


def _block(x, out_planes, stride, dropout_rate, prefix):
    in_planes = x.shape[-1]
    project = in_planes != out_planes or stride != 1
    act = L.batch_norm(x, name=f"{prefix}_bn1")
    act = L.relu(act, name=f"{prefix}_relu1")
    out = _conv(act, out_planes, 3, stride, f"{prefix}_conv1")
    out = L.batch_norm(out, name=f"{prefix}_bn2")
    out = L.relu(out, name=f"{prefix}_relu2")
    if dropout_rate > 0:
        out = keras.layers.Dropout(dropout_rate, name=f"{prefix}_dropout")(out)
    out = _conv(out, out_planes, 3, 1, f"{prefix}_conv2")
    shortcut = _conv(act, out_planes, 1, stride, f"{prefix}_shortcut") \
        if project else x
    return keras.layers.Add(name=f"{prefix}_add")([shortcut, out])


def wrn(depth, widen_factor, num_classes=10, input_shape=(32, 32, 3),
        dropout_rate=0.3, name=None):
    """WRN-`depth`-`widen_factor`; `depth` must be 6n + 4.

    Example:

        model = wrn(28, 2, dropout_rate=0.0)
    """
    if not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
        raise ValueError(f"WRN depth must be 6n + 4 with n >= 1, got {depth!r}")
    if not isinstance(widen_factor, int) or widen_factor < 1:
        raise ValueError(
            f"widen_factor must be a positive int, got {widen_factor!r}")
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate}")
    L.check_num_classes(num_classes)
    n = (depth - 4) // 6
    widths = (16 * widen_factor, 32 * widen_factor, 64 * widen_factor)

    inputs = keras.Input(shape=input_shape, name="input")
    x = _conv(inputs, 16, 3, 1, "conv1")
    for s, (width, stride) in enumerate(zip(widths, (1, 2, 2)), start=1):
        for b in range(1, n + 1):
            x = _block(x, width, stride if b == 1 else 1, dropout_rate,
                       prefix=f"stage{s}_block{b}")
    x = L.batch_norm(x, name="final_bn")
    x = L.relu(x, name="final_relu")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = L.dense(x, num_classes, name="fc",
                      bias_initializer=keras.initializers.Zeros())
    return keras.Model(inputs, outputs,
                       name=name or f"wrn{depth}_{widen_factor}")


def wrn16_8(num_classes=10, input_shape=(32, 32, 3), dropout_rate=0.3,
            name="wrn16_8"):
    """WRN-16-8: 10,954,160 masked / 10,961,370 trainable."""
    return wrn(16, 8, num_classes, input_shape, dropout_rate, name)


def wrn16_10(num_classes=10, input_shape=(32, 32, 3), dropout_rate=0.3,
             name="wrn16_10"):
    """WRN-16-10: 17,107,632 masked / 17,116,634 trainable."""
    return wrn(16, 10, num_classes, input_shape, dropout_rate, name)


def wrn22_8(num_classes=10, input_shape=(32, 32, 3), dropout_rate=0.3,
            name="wrn22_8"):
    """WRN-22-8: 17,147,312 masked / 17,158,106 trainable."""
    return wrn(22, 8, num_classes, input_shape, dropout_rate, name)


def wrn28_2(num_classes=10, input_shape=(32, 32, 3), dropout_rate=0.3,
            name="wrn28_2"):
    """WRN-28-2: 1,463,984 masked / 1,467,610 trainable."""
    return wrn(28, 2, num_classes, input_shape, dropout_rate, name)
