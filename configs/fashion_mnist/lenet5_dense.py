"""Dense LeNet-5-Caffe on Fashion-MNIST: the baseline of the accuracy table.

Same recipe as lenet5_static (sparse momentum's MNIST defaults,
papers.md A.2; 20 epochs); sparsity 0 gives all-ones masks, so the run
goes through the same code path as the sparse ones.
"""

from tf_sparse import runs


def get_config():
    config = runs.default_config("fashion_mnist")
    config.model = "lenet5_caffe"
    config.sparsity = 0.0
    config.algorithm = "static"
    return config
