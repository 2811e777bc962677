"""IMP on LeNet-300-100, Fashion-MNIST, with open_lth's LeNet hyperparameters.

Where the numbers come from: open_lth `mnist_lenet_300_100` default
hparams (read in the code; ../shared/reference/papers.md B.4 and
peers_pruning_lottery.md 2.3): plain SGD (no momentum, no weight decay),
lr 0.1 constant, batch 128, 40 epochs; sparse_global pruning of 20% of the
remaining weights per level with the output layer (`fc3`) excluded;
rewinding to 0 (LeNet is stable at initialisation, LMC paper). The data set
is Fashion-MNIST instead of MNIST (the one installed on this project's
machines). 15 levels leave 0.8^15 = 3.5% of the hidden-layer weights
(3.9% of all prunable weights, since fc3's 1,000 stay).

Rewinding to k > 0: --config.rewind=100it (or "1ep", or 0.05 of training).
"""

from tf_sparse.lottery import config as lottery_config


def get_config():
    c = lottery_config.default_config()
    c.init = "kaiming_normal"     # open_lth's model_init
    c.model = "lenet300_100"
    c.dataset = "fashion_mnist"
    c.seed = 0
    c.epochs = 40
    c.batch_size = 128
    c.optimizer = "sgd"
    c.learning_rate = 0.1
    c.momentum = 0.0
    c.weight_decay = 0.0
    c.lr_boundaries = ()
    c.rewind = "0"
    c.prune_fraction = 0.2
    c.prune_scope = "global"
    c.keep_dense = ("fc3",)
    c.levels = 15
    c.baselines = ("random_prune", "random_reinit")
    return c
