"""Sparse fine-tuning of a keras-hub ViT on Fashion-MNIST: AC/DC with
distillation from the dense fine-tuned teacher.

As hub_vit_gmp_kd.py (same teacher, same pruned projections, cached teacher
logits), with AC/DC instead of GMP: a dense warm-up of 10% of training, then
alternating sparse and dense phases of 10% (global magnitude top-k at each
compression, optimizer slots of the masked weights reset at every phase
change), ending with 20% sparse. Saves the sparse and the co-trained dense
model. Run with tools/recipe.py.
"""

import ml_collections

from tf_sparse import recipes
from tf_sparse.models import hub


def get_config():
    c = recipes.default_config()
    c.model = "hub:vit"
    c.model_kwargs = ml_collections.ConfigDict(dict(
        patch_size=7, num_layers=4, num_heads=4, hidden_dim=64, mlp_dim=128))
    # 540 steps per epoch: AC/DC's 10% phases divide training exactly.
    c.batch_size = 100
    c.optimizer = "adamw"
    c.weight_decay = 1e-4
    c.learning_rate = 5e-4
    c.warmup = 0.05
    c.pretrain_epochs = 3
    c.pretrain_learning_rate = 2e-3
    c.epochs = 2
    c.algorithm = "acdc"
    c.algorithm_kwargs = ml_collections.ConfigDict(dict(
        warmup=0.1, phase_length=0.1, end_sparse=0.2, tail="dense",
        reset_momentum=True, scope="global"))
    c.sparsity = 0.9
    c.prune = hub.prune_patterns("vit")
    c.teacher = "pretrained"
    c.teacher_cache = True
    c.distill_temperature = 4.0
    c.distill_alpha = 0.5
    c.eval_every_epochs = 0
    return c
