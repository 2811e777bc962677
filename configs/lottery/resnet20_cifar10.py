"""IMP with rewinding on ResNet-20, CIFAR-10 (needs the CIFAR-10 data).

Where the numbers come from: open_lth `cifar_resnet_20` default hparams,
the LMC paper's code (../shared/reference/papers.md B.4): SGD momentum 0.9,
lr 0.1, weight decay 1e-4, batch 128, 160 epochs (62.5K iterations) with x0.1
at epochs 80 and 120; sparse_global 20% per level with the output layer
included; standard pad-crop-flip augmentation. Rewind point k = 500
iterations, where the LMC paper finds IMP ResNet-20 subnetworks become
stable and matching (B.5). 0.8^9 = 13.4% remaining, the LMC paper's
lower edge of the matching range for ResNet-20.

Difference from the reference: Keras applies weight decay in decoupled form
(w -= lr * wd * w after the momentum update), PyTorch adds wd * w to the
gradient before momentum.

Data: set $TF_SPARSE_CIFAR10_DIR or --config.data_dir (see
tf_sparse/data/cifar10.py for the accepted formats).
"""

from tf_sparse.lottery import config as lottery_config


def get_config():
    c = lottery_config.default_config()
    c.init = "kaiming_normal"     # open_lth's model_init
    c.model = "resnet20"
    c.dataset = "cifar10"
    c.augment = True
    c.epochs = 160
    c.batch_size = 128
    c.optimizer = "sgd"
    c.learning_rate = 0.1
    c.momentum = 0.9
    c.weight_decay = 1e-4
    c.lr_boundaries = (0.5, 0.75)       # epochs 80 and 120 of 160
    c.lr_decay_factor = 0.1
    c.rewind = "500it"
    c.prune_fraction = 0.2
    c.prune_scope = "global"
    c.keep_dense = ()
    c.levels = 9
    c.baselines = ("random_prune", "random_reinit")
    return c
