"""Iterative IMP with rewinding on ResNet-50, ImageNet (needs ImageNet).

Where the numbers come from: Frankle et al. 2019, "Stabilizing the Lottery
Ticket Hypothesis", Figure 6 and section 5 (../shared/reference/papers.md
B.4, B.5), and open_lth `imagenet_resnet_50`: batch 1024, SGD momentum 0.9,
lr 0.4 with 5 epochs of linear warm-up, x0.1 at epochs 30, 60 and 80 of 90,
weight decay 1e-4; 20% of the remaining weights per level, global; rewinding
to epoch 6, where the paper's iterative ResNet-50 matches the full network
down to 20% of the weights remaining (7 levels: 0.8^7 = 21%).
The paper's one-shot runs (70% pruned at once) are
--config.prune_fraction=0.7 --config.levels=1 with --config.rewind=0.044
(4.4% of training).

Data: ImageNet TFRecord shards or tfds imagenet2012 in --config.data_dir
(see tf_sparse/data/imagenet.py). Keras applies weight decay in decoupled
form.
"""

from tf_sparse.lottery import config as lottery_config


def get_config():
    c = lottery_config.default_config()
    c.init = "kaiming_normal"     # open_lth's model_init
    c.model = "resnet50"
    c.dataset = "imagenet"
    c.epochs = 90
    c.batch_size = 1024
    c.eval_batch_size = 1024
    c.optimizer = "sgd"
    c.learning_rate = 0.4
    c.momentum = 0.9
    c.weight_decay = 1e-4
    c.warmup = "5ep"
    c.lr_boundaries = (30 / 90, 60 / 90, 80 / 90)
    c.lr_decay_factor = 0.1
    c.rewind = "6ep"
    c.prune_fraction = 0.2
    c.prune_scope = "global"
    c.keep_dense = ()
    c.levels = 7
    c.baselines = ("random_reinit", "reset")
    c.eval_every_epochs = 0
    return c
