"""The run engine: one config schema, one set of factories, one runner loop.

Every kind of experiment runs here: a Fashion-MNIST, CIFAR-10 or ImageNet
training (`run`), a recipe's stages (`tf_sparse.recipes`) and every
training of a lottery (`tf_sparse.lottery`).

    config      the schema: every key, its default, presets, composition
    plan        lengths in steps, resolved once
    workdir     run.json identity check, atomic JSON, legacy folders
    data        the data objects runs train on
    model       the model factory (zoo model, seed, dtype policy, masks)
    optimizer   learning-rate schedule, optimizer, weight decay, loss
    algorithm   the mask-update algorithm by registry name
    runner      Session and the resumable train loop
    engine      a whole run: set-up, training, results

Example:

    from tf_sparse import runs
    config = runs.default_config("fashion_mnist")
    config.algorithm = "sparse_momentum"
    results = runs.run(config, "runs/sm")
"""

from tf_sparse.runs.config import compose
from tf_sparse.runs.config import default_config
from tf_sparse.runs.engine import final_report
from tf_sparse.runs.engine import launch
from tf_sparse.runs.engine import run
from tf_sparse.runs.workdir import RunMismatchError
from tf_sparse.runs.workdir import WorkdirError
