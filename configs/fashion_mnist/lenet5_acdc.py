"""LeNet-5-Caffe on Fashion-MNIST trained with AC/DC at 95% (tools/train.py).

The IST-DASLab phase pattern in fractions of training (peers_pruning_lottery.md
3.1): dense warm-up 10%, 5% compressed/decompressed phases (global magnitude
top-k), last alternating phase dense, final compressed 15%; momentum of the
masked weights reset at every phase change. Sparse momentum's MNIST training
recipe (the `fashion_mnist` preset, papers.md A.2: PyTorch SGD, 100 epochs).
Writes sparse.keras and dense_cotrained.keras.
"""

import ml_collections

from tf_sparse import runs


def get_config():
    config = runs.default_config("fashion_mnist")
    config.model = "lenet5_caffe"
    config.sparsity = 0.95
    config.algorithm = "acdc"
    config.algorithm_kwargs = ml_collections.ConfigDict(dict(
        warmup=0.1, phase_length=0.05, end_sparse=0.15, tail="dense",
        scope="global", reset_momentum=True))
    return config
