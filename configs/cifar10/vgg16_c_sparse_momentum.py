"""Sparse momentum, VGG16-C on CIFAR-10 at 5% weights (the CIFAR-10 table).

The density of this row is UNCONFIRMED (papers.md A.4, to check against
the PDF); `--config=<this file>:0.1` sets another.
VGG16-C has 11,307,712 masked weights.
The rest is the reference code's: `paper_configs.sparse_momentum`.
"""

from tf_sparse.runs import paper_configs


def get_config(density=None):
    return paper_configs.sparse_momentum(
        "cifar10", "vgg16_c", density, default_density=0.05)
