"""SET, LeNet-5-Caffe on Fashion-MNIST at 95% sparsity (5% weights).

Training recipe: the same as lenet5_static (sparse momentum's MNIST
defaults, papers.md A.2; 20 epochs; kept weights rescaled by
1/sqrt(density) at initialisation), so the methods differ only in how the
masks change.
Algorithm: SET's paper defaults (Mocanu et al. 2018): each epoch (except
the last) every layer drops zeta = 0.3 of its active weights with the
smallest |w| and regrows as many at random positions; new weights start at
0 with zeroed optimizer slots (rigl's SET baseline,
peers_dynamic_sparse.md section 1).
"""

from tf_sparse import runs


def get_config():
    config = runs.default_config("fashion_mnist")
    config.model = "lenet5_caffe"
    config.sparsity = 0.95
    config.algorithm = "set"
    config.rescale_init = True
    p = config.algorithm_params
    p.drop_fraction = 0.3            # zeta
    p.decay = "constant"
    return config
