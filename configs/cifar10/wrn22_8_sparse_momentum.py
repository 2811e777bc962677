"""Sparse momentum, WRN-22-8 on CIFAR-10 at 5% weights (the CIFAR-10 table).

The density of this row is UNCONFIRMED (papers.md A.4, to check against
the PDF); `--config=<this file>:0.1` sets another.
WRN-22-8 has 17,147,312 masked weights.
The rest is the reference code's: `paper_configs.sparse_momentum`.
The reference WRN's initialisation and dropout 0.3 (`init="wrn"`).
"""

from tf_sparse.runs import paper_configs


def get_config(density=None):
    return paper_configs.sparse_momentum(
        "cifar10", "wrn22_8", density, default_density=0.05, init="wrn")
