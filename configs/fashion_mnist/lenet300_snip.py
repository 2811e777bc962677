"""SNIP, LeNet-300-100 on Fashion-MNIST at 95% sparsity (5% weights).

Training recipe: the same as lenet300_static (sparse momentum's MNIST
defaults, papers.md A.2; 20 epochs; kept weights rescaled by
1/sqrt(density) at initialisation).
Algorithm: SNIP (Lee et al. 2019): connection sensitivity |g * w| on one
training batch of 100 examples (the paper used one batch; here the run's
first batch) at the dense initialisation, the 5% most sensitive weights
kept by a global ranking (exact count), then static training.
"""

from tf_sparse import runs


def get_config():
    config = runs.default_config("fashion_mnist")
    config.model = "lenet300_100"
    config.sparsity = 0.95
    config.algorithm = "snip"
    config.rescale_init = True
    config.algorithm_params.snip_batch_size = 100
    return config
