"""Dense ResNet-50 on ImageNet: the lottery-ticket papers' ImageNet recipe.

Source: "Stabilizing the LTH" Figure 6 and open_lth's `imagenet_resnet_50`
defaults (papers.md B.4; peers_pruning_lottery.md 2.3): 90 epochs, global
batch 1024, lr 0.4 (0.1 per 256 images, scaled linearly), 5-epoch linear
warm-up, x0.1 at epochs 30, 60 and 80, SGD momentum 0.9, weight decay 1e-4;
76.1% top-1 on TPUs. The dense network that IMP prunes (level 0); lottery
tickets with rewinding to epoch 5-6 (B.5) are tools/lottery.py with
configs/lottery/.
"""

from tf_sparse import runs


def get_config():
    config = runs.default_config("imagenet")
    config.init = "kaiming_normal"     # open_lth's model_init
    config.model = "resnet50"
    config.algorithm = "dense"
    config.sparsity = 0.0
    return config
