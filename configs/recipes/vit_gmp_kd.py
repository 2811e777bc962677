"""Sparse fine-tuning of the small ViT on Fashion-MNIST: GMP + distillation.

Stage 1 pretrains `vit_tiny` dense (AdamW, cosine) and saves it; stage 2
starts from it, prunes the attention projections and feed-forward kernels
(embeddings and classifier dense) by global GMP to 90%, and distils from the
pretrained dense model (T = 4, alpha = 0.5). Run with tools/recipe.py.
"""

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
    c.algorithm = "gmp"
    c.sparsity = 0.9
    c.prune = tuple(transformer.layer_type_sparsity(attention=0, ffn=0))
    c.teacher = "pretrained"
    return c
