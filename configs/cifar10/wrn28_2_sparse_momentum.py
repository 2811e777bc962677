"""Sparse momentum, WRN-28-2 on CIFAR-10 (the paper's appendix table).

Densities 10% (default), 20%, 30%, 40%, 50%: `--config=<this file>:0.2`.
The appendix reports (papers.md A.4, [REPO-DATA]) sparse momentum accuracy
93.61 / 94.32 / 94.58 / 94.68 / 94.75 at these densities, dense 94.70.
WRN-28-2 has 1,463,984 masked weights.
The rest is the reference code's: `paper_configs.sparse_momentum`.
The reference WRN's initialisation and dropout 0.3 (`init="wrn"`).
"""

from tf_sparse.runs import paper_configs


def get_config(density=None):
    return paper_configs.sparse_momentum(
        "cifar10", "wrn28_2", density, default_density=0.1, init="wrn")
