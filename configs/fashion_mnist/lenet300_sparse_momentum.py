"""Sparse momentum, LeNet-300-100 on Fashion-MNIST at 95% sparsity (5% weights).

The training recipe (sparse momentum's MNIST reference) and the
algorithm's paper defaults: `paper_configs.fashion_mnist_row`.
Ablations: --config.algorithm_params.redistribution=none|magnitude|nonzero|size
and --config.algorithm_params.growth=random|gradient.
"""

from tf_sparse.runs import paper_configs


def get_config():
    return paper_configs.fashion_mnist_row("sparse_momentum", "lenet300_100")
