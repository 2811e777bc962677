"""BERT-style encoder on GLUE SST-2 (tfds glue/sst2, download=False):
dense pretraining on SST-2, then GMP fine-tuning with distillation.

Needs the prepared tfds data set (see tf_sparse/data/glue.py for how to get
it); without it the run stops at once with DataNotFoundError. Attention and
feed-forward kernels are pruned to 90% (global), embeddings and classifier
stay dense. Run with tools/recipe.py --config=configs/recipes/bert_sst2_gmp.py.
"""

from tf_sparse import recipes
from tf_sparse.models import transformer


def get_config():
    c = recipes.default_config()
    c.model = "bert_encoder"
    c.dataset = "glue/sst2"
    c.vocab_size = 20000
    c.sequence_length = 64
    c.batch_size = 32
    c.optimizer = "adamw"
    c.learning_rate = 2e-4
    c.pretrain_learning_rate = 5e-4
    c.weight_decay = 1e-2
    c.warmup = 0.1
    c.pretrain_epochs = 2
    c.epochs = 3
    c.algorithm = "gmp"
    c.sparsity = 0.9
    c.prune = tuple(transformer.layer_type_sparsity(attention=0, ffn=0))
    c.teacher = "pretrained"
    c.train_eval_examples = 2000
    c.entropy_examples = 872
    return c
