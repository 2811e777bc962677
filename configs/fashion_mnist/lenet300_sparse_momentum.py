"""Sparse momentum, LeNet-300-100 on Fashion-MNIST at 95% sparsity (5% weights).

Training recipe: the same as lenet300_static (sparse momentum's MNIST
defaults from sparse_learning mnist_cifar/main.py, papers.md A.2: batch
100, Nesterov SGD lr 0.1, momentum 0.9, weight decay 5e-4, uniform density
in every layer, seed 17; 20 epochs with x0.1 decays at 50% and 75% instead
of the reference's 100 epochs; kept weights rescaled by 1/sqrt(density) at
initialisation, see docs/design.md).
Algorithm: the paper's defaults (papers.md A.1/A.2, reference code): prune
rate 0.5 decayed by cosine to 0.005 over training, magnitude pruning,
momentum redistribution and momentum growth, masks updated at the end of
every epoch except the last, momentum read from the SGD buffer.
Ablations: --config.algorithm_params.redistribution=none|magnitude|nonzero|size
and --config.algorithm_params.growth=random|gradient.
"""

from tf_sparse import runs


def get_config():
    config = runs.default_config("fashion_mnist")
    config.model = "lenet300_100"
    config.sparsity = 0.95
    config.algorithm = "sparse_momentum"
    config.rescale_init = True
    p = config.algorithm_params
    p.drop_fraction = 0.5            # initial prune rate
    p.final_drop_fraction = 0.005
    p.decay = "cosine"
    p.growth = "momentum"
    p.redistribution = "momentum"
    return config
