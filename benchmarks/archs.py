"""The benchmark networks, written once for any Keras API module.

`build(name, keras_module)` works with Keras 3 (`import keras`) and with
Keras 2 (`import tf_keras`), so tf-sparse and tensorflow-model-optimization
are timed on the same architectures.
"""


def lenet300_100(k):
    return k.Sequential([
        k.layers.Input((28, 28, 1)), k.layers.Flatten(),
        k.layers.Dense(300, activation="relu", name="fc1"),
        k.layers.Dense(100, activation="relu", name="fc2"),
        k.layers.Dense(10, name="fc3")])


def lenet5_caffe(k):
    return k.Sequential([
        k.layers.Input((28, 28, 1)),
        k.layers.Conv2D(20, 5, activation="relu", name="conv1"),
        k.layers.MaxPooling2D(2),
        k.layers.Conv2D(50, 5, activation="relu", name="conv2"),
        k.layers.MaxPooling2D(2), k.layers.Flatten(),
        k.layers.Dense(500, activation="relu", name="fc1"),
        k.layers.Dense(10, name="fc2")])


def resnet20(k):
    """CIFAR ResNet-20 (16/32/64 channels, 3 blocks per stage)."""
    inputs = k.layers.Input((32, 32, 3))
    x = k.layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    x = k.layers.ReLU()(k.layers.BatchNormalization()(x))
    for stage, width in enumerate((16, 32, 64)):
        for block in range(3):
            stride = 2 if stage > 0 and block == 0 else 1
            y = k.layers.Conv2D(width, 3, strides=stride, padding="same",
                                use_bias=False)(x)
            y = k.layers.ReLU()(k.layers.BatchNormalization()(y))
            y = k.layers.Conv2D(width, 3, padding="same", use_bias=False)(y)
            y = k.layers.BatchNormalization()(y)
            if stride != 1:
                x = k.layers.Conv2D(width, 1, strides=stride,
                                    use_bias=False)(x)
                x = k.layers.BatchNormalization()(x)
            x = k.layers.ReLU()(k.layers.Add()([x, y]))
    x = k.layers.GlobalAveragePooling2D()(x)
    return k.Model(inputs, k.layers.Dense(10)(x))


BUILDERS = {"lenet300_100": lenet300_100, "lenet5_caffe": lenet5_caffe,
            "resnet20": resnet20}
BATCH = {"lenet300_100": 100, "lenet5_caffe": 100, "resnet20": 128}


def build(name, keras_module):
    return BUILDERS[name](keras_module)
