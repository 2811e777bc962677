"""Baselines of a lottery level: random pruning, random reinit, reset to 0.

For level L with IMP masks m_L (found with rewind point k):

- `random_prune`: a random mask with exactly m_L's count in every layer
  (open_lth's `randomly_prune`, "layerwise"), started from its own mask times
  W_k and trained k -> T with the run's data order;
- `random_reinit`: m_L on a fresh initialisation (another seed), trained
  k -> T; the fresh values are saved once in the folder (`init.npz`);
- `reset`: m_L on W_0, trained 0 -> T with a fresh optimizer ("resetting"
  as in the original lottery ticket paper). Only meaningful when k > 0
  (with k = 0 it is the IMP level itself, so it is skipped).

Each baseline trains in `level_LL/<name>/` with the folder protocol of
`tf_sparse.lottery.runs` (resumable, skipped when done).
"""

import os

import numpy as np

from tf_sparse.lottery import pruning
from tf_sparse.lottery import runs
from tf_sparse.lottery import state as state_lib

NAMES = ("random_prune", "random_reinit", "reset")

# Salts that keep the baselines' random streams apart.
_PRUNE_SALT = 1
_REINIT_SALT = 2


def random_prune_masks(imp_masks, seed, level):
    """Random masks with IMP's per-layer counts (seeded by seed and level)."""
    return pruning.random_masks_like(imp_masks, seed,
                                     salt=_PRUNE_SALT * 1000 + level)


def reinit_seed(seed, level):
    """Seed of the fresh initialisation of the random-reinit baseline."""
    state = np.random.SeedSequence([seed, _REINIT_SALT, level])
    return int(state.generate_state(1)[0] % (2 ** 31 - 1))


def run_baseline(run, level, name, imp_masks, init, rewind):
    """Trains one baseline of one level; returns its metrics (or None when
    the baseline is the IMP level itself)."""
    config = run.config
    directory = os.path.join(run.level_dir(level), name)
    label = f"level {level} {name}"
    k = run.steps.rewind
    if name == "random_prune":
        masks = runs.load_or_write_masks(
            run, directory,
            lambda: random_prune_masks(imp_masks, config.seed, level))
        return runs.train_branch(
            run, directory, masks=masks, start_state=rewind, start_step=k,
            optimizer_state=config.rewind_optimizer,
            data_seed=run.data_seed, kind=name, level=level, label=label,
            start_file=run.rewind_path)
    if name == "random_reinit":
        masks = runs.load_or_write_masks(run, directory, lambda: imp_masks)
        init_path = os.path.join(directory, "init.npz")
        if not os.path.exists(init_path):
            fresh = run.fresh_init(reinit_seed(config.seed, level))
            state_lib.apply_state(run.model, fresh, run.optimizer,
                                  optimizer_state=False)
            run.save(init_path, step=0, kind="init")
        fresh = run.load(init_path, kind="init")
        return runs.train_branch(
            run, directory, masks=masks, start_state=fresh, start_step=k,
            optimizer_state=False, data_seed=run.data_seed, kind=name,
            level=level, label=label,
            extra={"reinit_seed": reinit_seed(config.seed, level)},
            start_file=init_path)
    if name == "reset":
        if k == 0:
            return None
        masks = runs.load_or_write_masks(run, directory, lambda: imp_masks)
        return runs.train_branch(
            run, directory, masks=masks, start_state=init, start_step=0,
            optimizer_state=False, data_seed=run.data_seed, kind=name,
            level=level, label=label, start_file=run.init_path)
    raise ValueError(f"Unknown baseline {name!r}; accepted: "
                     f"{', '.join(NAMES)}.")
