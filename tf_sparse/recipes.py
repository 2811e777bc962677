"""Sparsity-aware recipes: (dense pretraining ->) pruning with GMP or AC/DC,
stretched schedules, distillation and under-training diagnostics.

A recipe is at most two runs of the run engine (`tf_sparse.runs`):

1. optional dense pretraining (`pretrain_epochs` epochs at
   `pretrain_learning_rate`), in `workdir/pretrain/`, resumable like any
   run; the trained network is saved to `pretrained_path` (default
   `workdir/pretrained.keras`) and reused when that file exists;
2. the main stage in `workdir`: `epochs * train_multiplier` epochs with
   algorithm "dense", "static", "gmp" or "acdc" (and its
   `algorithm_kwargs`), starting from the pretrained weights and, with
   `teacher="pretrained"`, distilled from the pretrained network (with
   `teacher_cache=True` from its logits, computed once on the training
   set: `tf_sparse.teacher_cache`). Every
   position in training (learning-rate warm-up and decay, GMP window and
   cadence, AC/DC phases) given as a fraction stretches with
   `train_multiplier`; the under-training diagnostics record the per-epoch
   curves (diagnostics.json).

results.json is the engine's: test metrics, density, the diagnostics
history, and for AC/DC the mask drift and the co-trained dense model's
accuracy (both models saved as `.keras`).

Gradual N:M (`configs/recipes/lenet5_gmp_2of4.py`): GMP with
`pattern="2:4"` from a dense start. The cubic schedule acts on the
sparsity; each update keeps in every group of M the k largest |w|,
k = max(N, floor((1 - s(t)) M + 1/2)), so k falls M -> ... -> N (for 2:4:
4 while s(t) < 0.125, 3 while s(t) < 0.375, then 2); a weight pruned at
one update stays pruned (GMP ranks active weights only). `n_m_ramp` lists
the (step, k) of a config's updates.

Example:

    from configs.recipes import vit_gmp_kd
    results = run(vit_gmp_kd.get_config(), "runs/vit_gmp")
"""

import os

from tf_sparse import patterns
from tf_sparse import teacher_cache
from tf_sparse.algorithms import magnitude
from tf_sparse.runs import algorithm as algorithm_lib
from tf_sparse.runs import config as run_config
from tf_sparse.runs import data as data_lib
from tf_sparse.runs import engine
from tf_sparse.runs import runner
from tf_sparse.runs import workdir as workdir_lib

ALGORITHMS = ("dense", "static", "gmp", "acdc")
Key = run_config.Key

RECIPE = (
    Key("pretrain_epochs", 0, "epochs of dense pretraining (0: none)"),
    Key("pretrain_learning_rate", 0.0, "peak learning rate of the "
        "pretraining (0: learning_rate)"),
    Key("pretrained_path", "", "where the pretrained network is saved and "
        "reused ('': workdir/pretrained.keras)", resumable=True),
    Key("teacher_cache", False, "distil from the teacher's logits computed "
        "once on the training set (workdir/teacher_logits.keras, "
        "tf_sparse.teacher_cache) instead of running it every step; needs "
        "in-memory data without augmentation"),
)
KEYS = run_config.TRAINING + RECIPE

# A short Fashion-MNIST recipe: cosine learning rate, 10% of the training
# set held out, diagnostics every epoch, global GMP to 90% over the first
# 70% of training with an update every 5% (and one at the end).
PRESET = {
    "model": "lenet5_caffe", "seed": 0, "epochs": 2, "learning_rate": 0.05,
    "lr_schedule": "cosine", "validation_fraction": 0.1,
    "eval_every_epochs": 0, "diagnostics": True, "sparsity": 0.9,
    "algorithm": "gmp",
    "algorithm_kwargs": dict(initial_sparsity=0.0, begin=0.0, end=0.7,
                             frequency=0.05, schedule="cubic",
                             scope="global", final_update=True),
}


def default_config():
    """Every key a recipe config may set, with its default (locked)."""
    return run_config.compose(KEYS, PRESET)


def _stage(config, **changes):
    """A copy of `config` with `changes`, the recipe keys left as they are."""
    stage = config.copy_and_resolve_references()
    with stage.unlocked():
        for key, value in changes.items():
            stage[key] = value
    return stage


def pretrained_path(config, workdir):
    return config.pretrained_path or os.path.join(workdir,
                                                  "pretrained.keras")


def pretrain(config, workdir, *, data=None, verbose=0):
    """Dense pretraining (reused if its file exists); returns the path."""
    path = pretrained_path(config, workdir)
    if not os.path.exists(path):
        stage = _stage(config, algorithm="dense", sparsity=0.0, teacher="",
                       diagnostics=False, init_weights="",
                       learning_rate=(config.pretrain_learning_rate
                                      or config.learning_rate))
        results = engine.run(stage, os.path.join(workdir, "pretrain"),
                             data=data, verbose=verbose, kind="pretrain",
                             epochs=config.pretrain_epochs, model_file=path)
        if "diverged" in results:
            raise runner.Diverged(results["diverged"])
    return path


def cached_teacher(config, workdir, data=None):
    """The teacher's logits on the training set, computed once into
    `workdir/teacher_logits.keras` (reused while the teacher file is the
    same); returns that path."""
    if data is None:
        data = data_lib.make_data(config, config.batch_size)
    return teacher_cache.cached(
        config.teacher, data, os.path.join(workdir, "teacher_logits.keras"),
        batch_size=config.eval_batch_size)


def run(config, workdir, *, data=None, verbose=0):
    """Runs (or resumes, or returns the finished) recipe in `workdir`."""
    if config.algorithm not in ALGORITHMS:
        raise ValueError(f"Unknown algorithm {config.algorithm!r}; accepted: "
                         f"{', '.join(ALGORITHMS)}.")
    wd = workdir_lib.Workdir(workdir)
    if wd.exists("results.json"):
        done = wd.read_json("results.json")
        if done.get("finished", True):
            return done
    teacher = config.teacher
    init_weights = config.init_weights
    if config.pretrain_epochs:
        init_weights = pretrain(config, workdir, data=data, verbose=verbose)
        if teacher == "pretrained":
            teacher = init_weights
    elif teacher == "pretrained":
        raise ValueError('teacher="pretrained" needs pretrain_epochs > 0.')
    main = _stage(config, teacher=teacher, init_weights=init_weights)
    if teacher and config.teacher_cache:
        main = _stage(main, teacher=cached_teacher(main, workdir, data))
    return engine.run(main, workdir, data=data, verbose=verbose,
                      kind="recipe",
                      identity=run_config.identity_names(KEYS))


def n_m_ramp(config, plan):
    """`[(step, k), ...]`: the weights kept per group of M at each mask
    update of a GMP config with an N:M `pattern`, run for `plan`
    (`tf_sparse.runs.plan.Plan`); k never goes below N.

    >>> n_m_ramp(config, plan)          # doctest: +SKIP
    [(0, 4), (10, 4), (20, 3), ..., (70, 2)]
    """
    pattern = patterns.parse(config.pattern)
    if pattern.kind != "n:m" or config.algorithm != "gmp":
        raise ValueError(
            f"n_m_ramp needs algorithm='gmp' with an 'N:M' pattern, got "
            f"algorithm={config.algorithm!r}, pattern={config.pattern!r}.")
    gmp = algorithm_lib.make(config, plan)
    return [(step, magnitude.kept_count_py(gmp.target(step), pattern.m,
                                           minimum=pattern.n))
            for step in gmp.update_steps(plan.total_steps)]
