"""LeNet-5 on Fashion-MNIST trained with AC/DC at 90% (global magnitude).

Dense warm-up 10%, 10% compressed/decompressed phases, last alternating
phase dense, final compressed 20% of training; optimizer momentum of the
masked weights reset at every phase change. Both the sparse model and the
co-trained dense model are saved. Run with tools/recipe.py.
"""

from tf_sparse import recipes


def get_config():
    c = recipes.default_config()
    c.model = "lenet5_caffe"
    c.algorithm = "acdc"
    c.sparsity = 0.9
    c.scope = "global"
    c.epochs = 2
    c.learning_rate = 0.05
    return c
