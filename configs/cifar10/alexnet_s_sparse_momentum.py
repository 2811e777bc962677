"""Sparse momentum, AlexNet-s on CIFAR-10 at 10% weights (the CIFAR-10 table).

The density of this row is UNCONFIRMED (papers.md A.4, to check against
the PDF); `--config=<this file>:0.1` sets another.
AlexNet-s has 5,066,784 masked weights.
The rest is the reference code's: `paper_configs.sparse_momentum`.
"""

from tf_sparse.runs import paper_configs


def get_config(density=None):
    return paper_configs.sparse_momentum(
        "cifar10", "alexnet_s", density, default_density=0.1)
