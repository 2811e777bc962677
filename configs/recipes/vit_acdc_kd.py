"""Sparse fine-tuning of the small ViT on Fashion-MNIST: AC/DC + distillation.

As vit_gmp_kd.py, with AC/DC (global magnitude top-k, 10% phases, momentum
of the masked weights reset at phase changes) instead of GMP. Saves the
sparse and the co-trained dense model.
"""

import ml_collections

from tf_sparse import recipes
from tf_sparse.models import transformer


def get_config():
    c = recipes.default_config()
    c.model = "vit_tiny"
    c.optimizer = "adamw"
    c.learning_rate = 5e-4
    c.weight_decay = 1e-4
    c.warmup = 0.05
    c.pretrain_epochs = 2
    c.pretrain_learning_rate = 2e-3
    c.epochs = 1
    c.algorithm = "acdc"
    c.algorithm_kwargs = ml_collections.ConfigDict(dict(
        warmup=0.1, phase_length=0.1, end_sparse=0.2, tail="dense",
        reset_momentum=True, scope="global"))
    c.sparsity = 0.9
    c.prune = tuple(transformer.layer_type_sparsity(attention=0, ffn=0))
    c.teacher = "pretrained"
    return c
