"""SNIP, LeNet-300-100 on Fashion-MNIST at 95% sparsity (5% weights).

Training recipe: sparse momentum's MNIST reference (sparse_learning
mnist_cifar/main.py, papers.md A.2; docs/paper_configs.md), the
`fashion_mnist` preset: batch 100, PyTorch's SGD (Nesterov, momentum
0.9, lr 0.1, weight decay 5e-4 coupled), lr x0.1 every 25,000
iterations, 100 epochs, 10% of the training set held out, PyTorch's
default initialisation, no rescaling, uniform density, seed 17.

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
    config.algorithm_params.snip_batch_size = 100
    return config
