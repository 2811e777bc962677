"""Iterative magnitude pruning with rewinding, resumable, one folder per level.

Algorithm (Frankle et al., "Stabilizing the Lottery Ticket Hypothesis",
Algorithm 1; open_lth's `lottery` runner):

1. initialise W_0 and train k steps to W_k (k = 0: W_k = W_0);
2. level 0: train the dense network from W_k for the remaining T - k steps,
   with the learning-rate schedule and the data order continuing from k;
3. level L >= 1: prune `prune_fraction` of the weights that remain after
   level L-1, by magnitude of level L-1's final weights (global or
   layer-wise, some layers excluded or at their own rate); rewind the
   survivors to W_k (`mask * W_k`); train T - k steps again;
4. stop after `levels` levels (or the fewest reaching `target_density`).

`rewind_optimizer` chooses whether the optimizer state (momentum, Adam
moments) is rewound to its value at step k too, or reset to zeros.

Workdir:

    run.json                  the config (identity checked on restart)
    rewind/init.npz           W_0 (written once)
    rewind/rewind.npz         W_k and the optimizer state at k (written once)
    level_00/ ... level_LL/   mask.npz, final.npz, metrics.json,
                              tensorboard/, and baseline sub-folders
    report.md, accuracy.png   written by `tf_sparse.lottery.reports`

Example:

    from configs.lottery import lenet300_fashion_mnist as cfg
    config = cfg.get_config()
    config.levels = 3
    summary = run(config, "runs/lth")
"""

import os

from tf_sparse.lottery import baselines as baselines_lib
from tf_sparse.lottery import pruning
from tf_sparse.lottery import runs
from tf_sparse.lottery import state as state_lib


def level_masks(run, level, previous=None):
    """Masks of `level`: ones at level 0, else pruned from level-1's final
    weights and masks (read from disk unless `previous` is given)."""

    def make():
        if level == 0:
            return run.ones()
        prev_dir = run.level_dir(level - 1)
        if not runs.is_done(prev_dir):
            raise state_lib.StateError(
                f"level {level} needs level {level - 1} finished "
                f"({prev_dir}/metrics.json is missing).")
        final = run.load(os.path.join(prev_dir, "final.npz"), kind="final")
        prev_masks = previous or state_lib.load_masks(
            os.path.join(prev_dir, "mask.npz"), run.shapes)
        return pruning.prune(run.prunable(final), prev_masks, run.pools)

    return runs.load_or_write_masks(run, run.level_dir(level), make)


def run_level(run, level, rewind):
    """Trains IMP level `level` (skipped when done); returns (metrics, masks)."""
    masks = level_masks(run, level)
    metrics = runs.train_branch(
        run, run.level_dir(level), masks=masks, start_state=rewind,
        start_step=run.steps.rewind,
        optimizer_state=run.config.rewind_optimizer,
        data_seed=run.data_seed, kind="imp", level=level,
        label=f"level {level}", start_file=run.rewind_path)
    return metrics, masks


def baseline_levels(run):
    chosen = list(run.config.baseline_levels) or list(range(1, run.levels + 1))
    return [level for level in chosen if 1 <= level <= run.levels]


def run(config, workdir, *, data=None, model_fn=None, verbose=1,
        report=True, strategy=None):
    """Runs (or resumes) IMP with the configured baselines in `workdir`.

    Args:
      config: a lottery config (`tf_sparse.lottery.config.default_config`).
      workdir: the run's folder.
      data: optional data object (default: from `config.dataset`).
      model_fn: optional builder of the (built) Keras model (default: the
        zoo model `config.model`).
      verbose: print progress lines.
      report: write report.md and the plots at the end.
      strategy: a tf.distribute strategy (default: the current one).

    Returns:
      {"levels": [IMP metrics per level], "baselines": {name: [metrics]}}.
    """
    r = runs.prepare(config, workdir, data=data, model_fn=model_fn,
                     verbose=verbose, strategy=strategy)
    init, rewind = runs.ensure_rewind_point(r)
    wanted = set(baseline_levels(r))
    results = {"levels": [], "baselines": {n: [] for n in config.baselines}}
    for level in range(r.levels + 1):
        metrics, masks = run_level(r, level, rewind)
        results["levels"].append(metrics)
        if level in wanted:
            for name in config.baselines:
                m = baselines_lib.run_baseline(r, level, name, masks, init,
                                               rewind)
                if m is not None:
                    results["baselines"][name].append(m)
    if report:
        from tf_sparse.lottery import reports
        reports.write_run_report(workdir)
    return results
