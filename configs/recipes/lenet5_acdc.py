"""LeNet-5 on Fashion-MNIST trained with AC/DC at 90% (global magnitude).

Dense warm-up 10%, 10% compressed/decompressed phases, last alternating
phase dense, final compressed 20% of training; optimizer momentum of the
masked weights reset at every phase change. Both the sparse model and the
co-trained dense model are saved. Run with tools/recipe.py.
"""

import ml_collections

from tf_sparse import recipes


def get_config():
    c = recipes.default_config()
    c.model = "lenet5_caffe"
    c.algorithm = "acdc"
    c.algorithm_kwargs = ml_collections.ConfigDict(dict(
        warmup=0.1, phase_length=0.1, end_sparse=0.2, tail="dense",
        reset_momentum=True, scope="global"))
    c.sparsity = 0.9
    c.epochs = 2
    c.learning_rate = 0.05
    return c
