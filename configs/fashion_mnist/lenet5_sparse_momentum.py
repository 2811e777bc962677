"""Sparse momentum, LeNet-5-Caffe on Fashion-MNIST at 95% sparsity (5% weights).

Training recipe: sparse momentum's MNIST reference (sparse_learning
mnist_cifar/main.py, papers.md A.2; docs/paper_configs.md), the
`fashion_mnist` preset: batch 100, PyTorch's SGD (Nesterov, momentum
0.9, lr 0.1, weight decay 5e-4 coupled), lr x0.1 every 25,000
iterations, 100 epochs, 10% of the training set held out, PyTorch's
default initialisation, no rescaling, uniform density, seed 17.

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
    config.model = "lenet5_caffe"
    config.sparsity = 0.95
    config.algorithm = "sparse_momentum"
    p = config.algorithm_params
    p.drop_fraction = 0.5            # initial prune rate
    p.final_drop_fraction = 0.005
    p.decay = "cosine"
    p.growth = "momentum"
    p.redistribution = "momentum"
    return config
