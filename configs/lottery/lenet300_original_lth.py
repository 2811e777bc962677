"""IMP on LeNet-300-100 as in the original lottery ticket paper (layer-wise).

Where the numbers come from: Frankle & Carbin 2019 / Frankle et al. 2019
("Stabilizing the LTH", Figure 2 table; ../shared/reference/papers.md B.1,
B.4): Adam lr 1.2e-3 constant, batch 60, 50K iterations (= 50 epochs of the
60,000 training images), layer-wise pruning of 20% per level with the output
layer at half rate (10%), reset to iteration 0. Fashion-MNIST instead of
MNIST.
"""

from tf_sparse.lottery import config as lottery_config


def get_config():
    c = lottery_config.default_config()
    c.model = "lenet300_100"
    c.dataset = "fashion_mnist"
    c.epochs = 50
    c.batch_size = 60
    c.optimizer = "adam"
    c.learning_rate = 1.2e-3
    c.lr_boundaries = ()
    c.rewind = "0"
    c.prune_fraction = 0.2
    c.prune_scope = "layerwise"
    c.layer_rates = "fc3:0.1"
    c.levels = 15
    c.baselines = ("random_prune", "random_reinit")
    return c
