"""SET, LeNet-300-100 on Fashion-MNIST at 95% sparsity (5% weights).

Training recipe: sparse momentum's MNIST reference (sparse_learning
mnist_cifar/main.py, papers.md A.2; docs/paper_configs.md), the
`fashion_mnist` preset: batch 100, PyTorch's SGD (Nesterov, momentum
0.9, lr 0.1, weight decay 5e-4 coupled), lr x0.1 every 25,000
iterations, 100 epochs, 10% of the training set held out, PyTorch's
default initialisation, no rescaling, uniform density, seed 17.

Algorithm: SET's paper defaults (Mocanu et al. 2018): each epoch (except
the last) every layer drops zeta = 0.3 of its active weights with the
smallest |w| and regrows as many at random positions; new weights start at
0 with zeroed optimizer slots (rigl's SET baseline,
peers_dynamic_sparse.md section 1).
"""

from tf_sparse import runs


def get_config():
    config = runs.default_config("fashion_mnist")
    config.model = "lenet300_100"
    config.sparsity = 0.95
    config.algorithm = "set"
    p = config.algorithm_params
    p.drop_fraction = 0.3            # zeta
    p.decay = "constant"
    return config
