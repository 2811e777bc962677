"""LeNet-5 on Fashion-MNIST pruned by GMP (cubic, global magnitude) to 90%.

Dense start (all-ones masks), sparsity ramp over the first 70% of training,
a mask update every 5% of training, cosine learning rate: every position is a
fraction of training, so `--config.train_multiplier=4` trains 4x longer with
the same shape. Run with tools/recipe.py.
"""

from tf_sparse import recipes


def get_config():
    c = recipes.default_config()
    c.model = "lenet5_caffe"
    c.algorithm = "gmp"
    c.sparsity = 0.9
    c.epochs = 2
    c.learning_rate = 0.05
    return c
