"""RigL, LeNet-5-Caffe on Fashion-MNIST at 95% sparsity (5% weights).

The training recipe (sparse momentum's MNIST reference) and the
algorithm's paper defaults: `paper_configs.fashion_mnist_row`.
"""

from tf_sparse.runs import paper_configs


def get_config():
    return paper_configs.fashion_mnist_row("rigl", "lenet5_caffe")
