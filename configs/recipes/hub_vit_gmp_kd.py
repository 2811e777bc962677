"""Sparse fine-tuning of a keras-hub ViT on Fashion-MNIST: gradual magnitude
pruning with distillation from the dense fine-tuned teacher.

The setup of Kuznedelev et al. 2023's transformer experiments on a model
Keras users take from keras-hub (`ViTBackbone` + `ViTImageClassifier`,
built from its config class: no preset weights are reachable offline):

1. dense fine-tuning (the recipe's pretraining stage, 3 epochs, AdamW,
   cosine): the teacher, saved as workdir/pretrained.keras;
2. sparse fine-tuning from the teacher's weights: every Dense/EinsumDense
   projection of the attention and feed-forward blocks (query, key, value,
   attention output, both MLP layers; `hub.prune_patterns("vit")`) pruned
   by global GMP, cubic schedule from 0 to `sparsity` over the first 70% of
   training, an update every 5%; patch and position embeddings, layer norms
   and the head stay dense; distilled from the teacher (T = 4, alpha = 0.5)
   through its logits cached once in the workdir (`teacher_cache`).

The reference notes (papers.md C) could not confirm the paper's exact
fine-tuning hyperparameters; the schedule shape (cubic GMP, KD from the
dense fine-tuned model) is the paper's, the numbers are this project's
choice for a 2-core CPU. Run:

  python tools/recipe.py --config=configs/recipes/hub_vit_gmp_kd.py \
      --workdir=runs/hub_vit_gmp --config.sparsity=0.75
"""

import ml_collections

from tf_sparse import recipes
from tf_sparse.models import hub


def get_config():
    c = recipes.default_config()
    c.model = "hub:vit"
    c.model_kwargs = ml_collections.ConfigDict(dict(
        patch_size=7, num_layers=4, num_heads=4, hidden_dim=64, mlp_dim=128))
    c.batch_size = 128
    c.optimizer = "adamw"
    c.weight_decay = 1e-4
    c.learning_rate = 5e-4
    c.warmup = 0.05
    c.pretrain_epochs = 3
    c.pretrain_learning_rate = 2e-3
    c.epochs = 2
    c.algorithm = "gmp"
    c.sparsity = 0.9
    c.prune = hub.prune_patterns("vit")
    c.teacher = "pretrained"
    c.teacher_cache = True
    c.distill_temperature = 4.0
    c.distill_alpha = 0.5
    c.eval_every_epochs = 0
    return c
