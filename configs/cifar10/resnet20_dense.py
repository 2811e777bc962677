"""Dense CIFAR ResNet-20: the lottery-ticket papers' CIFAR-10 training recipe.

Source: open_lth's `cifar_resnet_20` defaults, the code of the LMC paper
(peers_pruning_lottery.md 2.3, papers.md B.4): batch 128, SGD momentum 0.9
(not Nesterov), lr 0.1, weight decay 1e-4 (PyTorch L2), 160 epochs with x0.1
at epochs 80 and 120, pad-crop-flip augmentation, the whole training set
(no validation split), Kaiming-normal init (the zoo's resnet20).
This is the dense network that IMP prunes (level 0 of a lottery run); the
lottery runs with rewinding are tools/lottery.py with configs/lottery/.
"""

from tf_sparse import runs


def get_config():
    config = runs.default_config("cifar10")
    config.init = "kaiming_normal"     # open_lth's model_init
    config.model = "resnet20"
    config.algorithm = "dense"
    config.sparsity = 0.0
    config.validation_fraction = 0.0
    config.seed = 0
    config.batch_size = 128
    config.learning_rate = 0.1
    config.momentum = 0.9
    config.nesterov = False
    config.weight_decay = 1e-4
    config.epochs = 160
    config.lr_schedule = "step"
    config.lr_decay_every = "0"
    config.lr_boundaries = ("80ep", "120ep")
    return config
