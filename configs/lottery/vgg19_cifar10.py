"""IMP with rewinding on VGG-19, CIFAR-10 (needs the CIFAR-10 data).

Where the numbers come from: Frankle et al. 2019, "Stabilizing the Lottery
Ticket Hypothesis", Figure 2 table (../shared/reference/papers.md B.4):
VGG-19 (open_lth cifar_vgg_19, 20.0M parameters), batch 64, SGD momentum
(0.9), lr 0.1, 112K iterations with x0.1 at 56K and 84K (the converted table
swaps these with ResNet-18's; see the note in papers.md). With 781 steps per
epoch, 143 epochs = 111,683 steps and the drops at 50% / 75% of training.
Rewind point k = 100 iterations: the paper's VGG-19 rewinding result (B.5).
Pruning: 20% of the remaining weights per level, global, output layer
(`fc`) excluded (open_lth's cifar_vgg default); 17 levels = 2.25%
remaining, the density of the paper's VGG-19 stability table (2.2%).
Weight decay 1e-4 (open_lth cifar_vgg default; the Stabilizing table does
not list it); Keras applies it in decoupled form.
"""

from tf_sparse.lottery import config as lottery_config


def get_config():
    c = lottery_config.default_config()
    c.init = "kaiming_normal"     # open_lth's model_init
    c.model = "vgg19"
    c.dataset = "cifar10"
    c.augment = True
    c.epochs = 143
    c.batch_size = 64
    c.optimizer = "sgd"
    c.learning_rate = 0.1
    c.momentum = 0.9
    c.weight_decay = 1e-4
    c.lr_boundaries = (0.5, 0.75)       # 56K and 84K of 112K iterations
    c.lr_decay_factor = 0.1
    c.rewind = "100it"
    c.prune_fraction = 0.2
    c.prune_scope = "global"
    c.keep_dense = ("fc",)
    c.levels = 17
    c.baselines = ("random_prune", "random_reinit")
    return c
