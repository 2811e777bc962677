"""MNIST LeNets of the sparse-momentum and lottery-ticket papers.

Reference: `LeNet_300_100` and `LeNet_5_Caffe` in TimDettmers/sparse_learning
(`sparselearning/models.py`); open_lth's `mnist_lenet_300_100` is the same
network. Both use PyTorch's default initialisation. Outputs are logits.

Example:

    model = lenet300_100()
    model.compile(optimizer="sgd",
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True))
"""

import keras

from tf_sparse.models import layers as L


def lenet300_100(num_classes=10, input_shape=(28, 28, 1),
                 name="lenet300_100"):
    """LeNet-300-100: FC 784-300-100-10 with ReLU.

    Layers `fc1`, `fc2`, `fc3` (output). 266,200 masked weights and 266,610
    trainable parameters for 10 classes.

    Example:

        model = lenet300_100()
        logits = model(np.zeros((2, 28, 28, 1)))  # shape (2, 10)
    """
    L.check_num_classes(num_classes)
    inputs = keras.Input(shape=input_shape, name="input")
    x = keras.layers.Flatten(name="flatten")(inputs)
    x = L.dense(x, 300, activation="relu", name="fc1")
    x = L.dense(x, 100, activation="relu", name="fc2")
    outputs = L.dense(x, num_classes, name="fc3")
    return keras.Model(inputs, outputs, name=name)


def lenet5_caffe(num_classes=10, input_shape=(28, 28, 1),
                 name="lenet5_caffe"):
    """LeNet-5 as in Caffe: conv 20@5x5, pool, conv 50@5x5, pool, FC 500.

    No padding, so a 28x28 input gives a 4x4x50 = 800 feature map. Layers
    `conv1`, `conv2`, `fc3`, `fc4` (output), named as in the reference.
    430,500 masked weights and 431,080 trainable parameters for 10 classes.

    Note: Keras flattens NHWC, PyTorch NCHW; porting `fc3` weights from the
    reference needs a row permutation (the counts are unaffected).

    Example:

        model = lenet5_caffe()
        logits = model(np.zeros((2, 28, 28, 1)))  # shape (2, 10)
    """
    L.check_num_classes(num_classes)
    inputs = keras.Input(shape=input_shape, name="input")
    x = L.conv2d(inputs, 20, 5, activation="relu", name="conv1")
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = L.conv2d(x, 50, 5, activation="relu", name="conv2")
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = L.dense(x, 500, activation="relu", name="fc3")
    outputs = L.dense(x, num_classes, name="fc4")
    return keras.Model(inputs, outputs, name=name)
