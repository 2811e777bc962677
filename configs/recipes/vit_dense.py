"""Dense fine-tuning of the pretrained small ViT: the reference of the ViT
sparse fine-tuning recipes (same pretraining and schedule, no distillation)."""

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
    c.algorithm = "dense"
    c.sparsity = 0.0
    c.prune = tuple(transformer.layer_type_sparsity(attention=0, ffn=0))
    c.teacher = ""
    return c
