"""Sparse momentum, WRN-28-2 on CIFAR-10 (the paper's appendix table).

Densities 10% (default), 20%, 30%, 40%, 50%: `--config=<this file>:0.2`.
The appendix reports (papers.md A.4, [REPO-DATA]) sparse momentum accuracy
93.61 / 94.32 / 94.58 / 94.68 / 94.75 at these densities, dense 94.70.
Hyperparameters: sparse momentum's reference code defaults (papers.md A.2,
[CODE]): batch 100, Nesterov SGD lr 0.1, momentum 0.9, weight decay 5e-4
(PyTorch L2), 100 epochs, lr x0.1 every 25,000 iterations, 10% of the training
set held out, seed 17, pad-crop-flip, dropout 0.3 (the reference WRN), uniform
density in every layer, prune rate 0.5 cosine-annealed to 0.005, masks
updated at the end of every epoch. WRN-28-2 has 1,463,984 masked weights.
"""

from tf_sparse import runs


def get_config(density=None):
    config = runs.default_config("cifar10")
    config.model = "wrn28_2"
    density = float(density) if density else 0.1
    config.sparsity = round(1.0 - density, 6)
    config.algorithm = "sparse_momentum"
    config.init = "wrn"              # the reference WRN's (models.py)
    # Prune rate 0.5, cosine-annealed to 0.005 over training (papers.md A.2);
    # masks updated at the end of every epoch (the algorithm's default cadence).
    config.algorithm_params.drop_fraction = 0.5
    config.algorithm_params.final_drop_fraction = 0.005
    config.algorithm_params.decay = "cosine"
    return config
