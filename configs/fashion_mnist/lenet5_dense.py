"""Dense LeNet-5-Caffe on Fashion-MNIST: the baseline of the accuracy table.

Training recipe: sparse momentum's MNIST reference (sparse_learning
mnist_cifar/main.py, papers.md A.2; docs/paper_configs.md), the
`fashion_mnist` preset: batch 100, PyTorch's SGD (Nesterov, momentum
0.9, lr 0.1, weight decay 5e-4 coupled), lr x0.1 every 25,000
iterations, 100 epochs, 10% of the training set held out, PyTorch's
default initialisation, no rescaling, uniform density, seed 17.
Sparsity 0 gives all-ones masks, so the run goes through the same code
path as the sparse ones.
"""

from tf_sparse import runs


def get_config():
    config = runs.default_config("fashion_mnist")
    config.model = "lenet5_caffe"
    config.sparsity = 0.0
    config.algorithm = "static"
    return config
