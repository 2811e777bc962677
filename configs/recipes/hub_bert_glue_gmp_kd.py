"""Sparse fine-tuning of a keras-hub BERT on a GLUE task: dense fine-tuning
(the teacher), then GMP with distillation from it, as in Kuznedelev et al.
2023's BERT/GLUE experiments.

Data: `--config.dataset=glue/<task>` (default RTE, sentence pairs), read
from the task's TSV files under `--config.data_dir` (the GLUE download, one
folder per task) or from tfds (`data_source`); nothing is downloaded.
Model: `BertTextClassifier` on a `BertBackbone`; with
`--config.model_kwargs.preset=<preset>` (a keras-hub preset in the local
cache or a preset directory) its weights, and with
`--config.tokenizer=<same preset>` its WordPiece preprocessor; without a
preset, a small BERT from its config class and a word vocabulary built
from the training texts.

Pruned: every attention and feed-forward projection
(`hub.prune_patterns("bert")`) by global GMP, cubic from 0 to 90% over the
first 70% of the sparse stage; embeddings, layer norms, pooler and head
dense (`--config.prune` can add the token embedding:
`hub.prune_patterns("bert", token_embedding=True)`). Distillation T = 4,
alpha = 0.5, from the teacher's cached logits. The paper's exact numbers
could not be confirmed (papers.md C); these are this project's.

  python tools/recipe.py --config=configs/recipes/hub_bert_glue_gmp_kd.py \
      --workdir=runs/bert_rte --config.data_dir=glue_data
"""

import ml_collections

from tf_sparse import recipes
from tf_sparse.models import hub


def get_config():
    c = recipes.default_config()
    c.model = "hub:bert"
    c.model_kwargs = ml_collections.ConfigDict(dict(
        num_layers=2, num_heads=2, hidden_dim=128, intermediate_dim=512))
    c.dataset = "glue/rte"
    c.vocab_size = 8000
    c.sequence_length = 128
    c.batch_size = 32
    c.eval_batch_size = 256
    c.optimizer = "adamw"
    c.weight_decay = 1e-2
    c.weight_decay_exclude = ("*/gamma", "*/beta", "*/bias")
    c.learning_rate = 2e-4
    c.pretrain_learning_rate = 4e-4
    c.warmup = 0.1
    c.pretrain_epochs = 3
    c.epochs = 3
    c.algorithm = "gmp"
    c.sparsity = 0.9
    c.prune = hub.prune_patterns("bert")
    c.teacher = "pretrained"
    c.teacher_cache = True
    c.distill_temperature = 4.0
    c.distill_alpha = 0.5
    c.eval_every_epochs = 1
    return c
