"""CIFAR AlexNet-s / AlexNet-b of the sparse-momentum paper.

Reference: `AlexNet(config='s'|'b')` in TimDettmers/sparse_learning
(`sparselearning/models.py`): five strided convolutions with bias, each
followed by BatchNorm and ReLU (no pooling), then a classifier
FC 256-1024-1024-C (`s`) or 256-2048-2048-C (`b`) with BatchNorm1d + ReLU
after the hidden FCs. PyTorch default initialisation. Outputs are logits.

Example:

    model = alexnet_s()
    logits = model(np.zeros((2, 32, 32, 3)))  # shape (2, 10)
"""

import keras

from tf_sparse.models import layers as L

# (filters, kernel, stride, padding) of the five convolutions.
_CONVS = ((96, 11, 2, 2), (256, 5, 2, 2), (384, 3, 2, 1), (384, 3, 2, 1),
          (256, 3, 2, 1))
_WIDTH = {"s": 1024, "b": 2048}


def alexnet(config="s", num_classes=10, input_shape=(32, 32, 3), name=None):
    """AlexNet for CIFAR; `config` is "s" (small) or "b" (big).

    Layers: `conv1`..`conv5` (+ `bn<i>`, `relu<i>`), `fc1`, `fc1_bn`,
    `fc2`, `fc2_bn`, `fc3` (output). On 32x32 inputs the last feature map is
    1x1x256.

    Example:

        model = alexnet("b", num_classes=100)
    """
    if config not in _WIDTH:
        raise ValueError(
            f"AlexNet config must be one of {sorted(_WIDTH)}, got {config!r}")
    L.check_num_classes(num_classes)
    width = _WIDTH[config]
    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs
    for i, (filters, kernel, stride, pad) in enumerate(_CONVS, start=1):
        x = L.conv2d(x, filters, kernel, stride=stride, padding=pad,
                     name=f"conv{i}")
        x = L.batch_norm(x, name=f"bn{i}")
        x = L.relu(x, name=f"relu{i}")
    x = keras.layers.Flatten(name="flatten")(x)
    for i in (1, 2):
        x = L.dense(x, width, name=f"fc{i}")
        x = L.batch_norm(x, name=f"fc{i}_bn")
        x = L.relu(x, name=f"fc{i}_relu")
    outputs = L.dense(x, num_classes, name="fc3")
    return keras.Model(inputs, outputs, name=name or f"alexnet_{config}")


def alexnet_s(num_classes=10, input_shape=(32, 32, 3), name="alexnet_s"):
    """AlexNet-s: FC 1024-1024. 5,066,784 masked / 5,077,066 trainable."""
    return alexnet("s", num_classes, input_shape, name)


def alexnet_b(num_classes=10, input_shape=(32, 32, 3), name="alexnet_b"):
    """AlexNet-b: FC 2048-2048. 8,484,896 masked / 8,501,322 trainable."""
    return alexnet("b", num_classes, input_shape, name)
