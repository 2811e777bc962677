"""Sparse momentum, WRN-22-8 on CIFAR-10 at 5% weights (the CIFAR-10 table).

Density: papers.md A.4 lists the CIFAR-10 table densities as UNCONFIRMED
("10% for the AlexNets, 5% for VGG16-C/D and the WRNs, 3% for VGG-like",
to check against the PDF); another density is `--config=<this file>:0.1`.
Hyperparameters: sparse momentum's reference code defaults (sparse_learning
main.py; papers.md A.2, [CODE]): batch 100, Nesterov SGD lr 0.1, momentum 0.9,
weight decay 5e-4 (PyTorch L2), 100 epochs, lr x0.1 every 25,000 iterations,
10% of the training set held out, seed 17, pad-crop-flip augmentation and
per-channel normalisation, dropout 0.3 (the reference WRN), uniform density in every layer including the
first conv and the classifier ("constant" init), prune rate 0.5 cosine-annealed
to 0.005, masks updated at the end of every epoch. The author recommended 250
epochs for better accuracy (A.2, ISSUE #10): `--config.epochs=250`.
WRN-22-8 has 17,147,312 masked weights (papers.md A.3).
"""

from tf_sparse import runs


def get_config(density=None):
    config = runs.default_config("cifar10")
    config.model = "wrn22_8"
    density = float(density) if density else 0.05
    config.sparsity = round(1.0 - density, 6)
    config.algorithm = "sparse_momentum"
    config.init = "wrn"              # the reference WRN's (models.py)
    # Prune rate 0.5, cosine-annealed to 0.005 over training (papers.md A.2);
    # masks updated at the end of every epoch (the algorithm's default cadence).
    config.algorithm_params.drop_fraction = 0.5
    config.algorithm_params.final_drop_fraction = 0.005
    config.algorithm_params.decay = "cosine"
    return config
