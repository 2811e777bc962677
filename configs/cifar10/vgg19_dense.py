"""Dense VGG-19 (the lottery-ticket CIFAR version): the recipe of "Stabilizing
the Lottery Ticket Hypothesis", Figure 2, "VGG-19 (standard)".

Source: papers.md B.4: 112K iterations at batch 64, SGD momentum lr 0.1, x0.1
drops at iterations 56K and 84K (the converted table swaps the ResNet-18 and
VGG-19 drop columns; B.4 gives the corrected values). 781 steps per epoch x
144 epochs = 112,464 iterations. Weight decay 1e-4 and no Nesterov are
open_lth's CIFAR defaults (peers_pruning_lottery.md 2.3); the table does not
state them. Rewinding to iteration 100 is what makes VGG-19 tickets match at
this learning rate (B.5): tools/lottery.py with configs/lottery/.
"""

from tf_sparse import runs


def get_config():
    config = runs.default_config("cifar10")
    config.init = "kaiming_normal"     # open_lth's model_init
    config.model = "vgg19"
    config.algorithm = "dense"
    config.sparsity = 0.0
    config.validation_fraction = 0.0
    config.seed = 0
    config.batch_size = 64
    config.learning_rate = 0.1
    config.momentum = 0.9
    config.nesterov = False
    config.weight_decay = 1e-4
    config.epochs = 144
    config.lr_schedule = "step"
    config.lr_decay_every = "0"
    config.lr_boundaries = (56000, 84000)
    return config
