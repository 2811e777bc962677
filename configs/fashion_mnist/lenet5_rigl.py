"""RigL, LeNet-5-Caffe on Fashion-MNIST at 95% sparsity (5% weights).

Training recipe: sparse momentum's MNIST reference (sparse_learning
mnist_cifar/main.py, papers.md A.2; docs/paper_configs.md), the
`fashion_mnist` preset: batch 100, PyTorch's SGD (Nesterov, momentum
0.9, lr 0.1, weight decay 5e-4 coupled), lr x0.1 every 25,000
iterations, 100 epochs, 10% of the training set held out, PyTorch's
default initialisation, no rescaling, uniform density, seed 17.

Algorithm: the RigL paper's defaults (Evci et al. 2020; rigl's MNIST
flags, peers_dynamic_sparse.md section 3): drop fraction 0.3 decayed by
cosine to 0 at 75% of training, an update every 100 steps, growth by the
magnitude of the dense gradient, new weights at 0 with zeroed optimizer
slots.
"""

from tf_sparse import runs


def get_config():
    config = runs.default_config("fashion_mnist")
    config.model = "lenet5_caffe"
    config.sparsity = 0.95
    config.algorithm = "rigl"
    p = config.algorithm_params
    p.drop_fraction = 0.3
    p.decay = "cosine"
    p.update_every = 100
    p.update_end = 0.75
    return config
