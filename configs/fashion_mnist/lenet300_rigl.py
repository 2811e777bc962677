"""RigL, LeNet-300-100 on Fashion-MNIST at 95% sparsity (5% weights).

Training recipe: the same as lenet300_static (sparse momentum's MNIST
defaults, papers.md A.2; 20 epochs; kept weights rescaled by
1/sqrt(density) at initialisation; uniform density, so all methods share
one layout; the RigL paper's ERK is --config.distribution=erk).
Algorithm: the RigL paper's defaults (Evci et al. 2020; rigl's MNIST
flags, peers_dynamic_sparse.md section 3): drop fraction 0.3 decayed by
cosine to 0 at 75% of training, an update every 100 steps, growth by the
magnitude of the dense gradient, new weights at 0 with zeroed optimizer
slots.
"""

from tf_sparse import runs


def get_config():
    config = runs.default_config("fashion_mnist")
    config.model = "lenet300_100"
    config.sparsity = 0.95
    config.algorithm = "rigl"
    config.rescale_init = True
    p = config.algorithm_params
    p.drop_fraction = 0.3
    p.decay = "cosine"
    p.update_every = 100
    p.update_end = 0.75
    return config
