"""LeNet-5-Caffe on Fashion-MNIST pruned by GMP to 95% (tools/train.py).

Zhu & Gupta's cubic ramp (tfmot `PolynomialDecay(power=3)` semantics,
peers_pruning_lottery.md 1.2) from a dense start to 95% between 10% and 60%
of training, a mask update every 2% of training, global magnitude ranking;
sparse momentum's MNIST training recipe (the `fashion_mnist` preset,
papers.md A.2: PyTorch SGD, 100 epochs). Positions are fractions of training, so `--config.train_multiplier=2` stretches everything.
"""

import ml_collections

from tf_sparse import runs


def get_config():
    config = runs.default_config("fashion_mnist")
    config.model = "lenet5_caffe"
    config.sparsity = 0.95
    config.algorithm = "gmp"
    config.algorithm_kwargs = ml_collections.ConfigDict(dict(
        begin=0.1, end=0.6, frequency=0.02, schedule="cubic",
        scope="global"))
    return config
