"""AC/DC, ResNet-50 on ImageNet at 90% sparsity (global magnitude).

Source: IST-DASLab/ACDC `configs/neurips/iht_imagenet_resnet50_insta_cosinelr_s90_ep100.yaml`
(peers_pruning_lottery.md 3.1): 100 epochs; SGD lr 0.256, momentum 0.875,
weight decay 3.05e-5 (PyTorch L2); cosine learning rate with a 5-epoch
warm-up; batch 256 per GPU on 4 GPUs (global 1024, lr not rescaled); fp16.
Phases: dense epochs 0-10, then alternating 5-epoch sparse/dense phases to
epoch 75 (sparse first), dense 75-85, final sparse 85-100, i.e.
`ACDCSchedule(warmup=0.1, phase_length=0.05, end_sparse=0.15, tail="dense")`
in fractions of training. One global magnitude threshold over every conv and
the classifier (the first conv and fc are pruned in the "global" configs),
momentum reset after each phase change (the run scripts pass
--reset_momentum_after_recycling). The published checkpoint of this setting
reaches 75.03% top-1 (global magnitude, 90%); 2x training gives ~+1 point.
Training starts dense: AC/DC starts from all-ones masks and prunes to
`sparsity` at every compression.
"""

import ml_collections

from tf_sparse import runs


def get_config():
    config = runs.default_config("imagenet")
    config.model = "resnet50"
    config.sparsity = 0.9              # the compressed phases' target
    config.algorithm = "acdc"
    config.algorithm_kwargs = ml_collections.ConfigDict(dict(
        warmup=0.1, phase_length=0.05, end_sparse=0.15, tail="dense",
        scope="global", reset_momentum=True))
    config.epochs = 100
    config.batch_size = 1024
    config.learning_rate = 0.256
    config.lr_scaling = "none"
    config.lr_reference_batch_size = 0
    config.lr_schedule = "cosine"
    config.final_lr = 0.0
    config.warmup = "5ep"
    config.momentum = 0.875
    config.nesterov = False
    config.weight_decay = 3.05e-5
    config.label_smoothing = 0.0
    return config
