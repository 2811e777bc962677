"""Dense LeNet-5 on Fashion-MNIST: the reference of the GMP / AC/DC recipes
(same optimizer, schedule and diagnostics)."""

from tf_sparse import recipes


def get_config():
    c = recipes.default_config()
    c.model = "lenet5_caffe"
    c.algorithm = "dense"
    c.sparsity = 0.0
    c.epochs = 2
    c.learning_rate = 0.05
    return c
