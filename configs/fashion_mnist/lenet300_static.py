"""Static sparse LeNet-300-100 on Fashion-MNIST at 95% sparsity (the README's main job).

Hyperparameters: sparse momentum's MNIST defaults (Dettmers & Zettlemoyer
2019, sparse_learning mnist_cifar/main.py): batch 100, Nesterov SGD lr 0.1,
momentum 0.9, weight decay 5e-4, uniform density, seed 17; 20 epochs with
x0.1 decays at 50% and 75% of training (the reference trains 100 epochs).
One change from the reference: kept weights are rescaled by 1/sqrt(density)
at initialisation (Evci et al. 2022); at 5% density the reference init
starts with vanishing signal and needs many epochs to leave chance level.
"""

from tf_sparse import runs


def get_config():
    config = runs.default_config("fashion_mnist")
    config.model = "lenet300_100"
    config.sparsity = 0.95
    config.algorithm = "static"
    config.rescale_init = True
    return config
