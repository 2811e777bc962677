"""Static sparse LeNet-5-Caffe on Fashion-MNIST at 95% sparsity.

Same recipe as lenet300_static (sparse momentum's MNIST defaults, kept
weights rescaled by 1/sqrt(density) at initialisation).
"""

from tf_sparse import runs


def get_config():
    config = runs.default_config("fashion_mnist")
    config.model = "lenet5_caffe"
    config.sparsity = 0.95
    config.algorithm = "static"
    config.rescale_init = True
    return config
