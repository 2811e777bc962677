"""A prepared lottery run and the training of one folder ("branch").

Every training of a lottery run (a level, a baseline, a stability copy)
lives in its own folder and follows the same protocol:

    mask.npz       the masks it trains with (written once, before training)
    checkpoints/   step_<n>.npz after every epoch segment (while running)
    tensorboard/   train loss/accuracy, test accuracy, learning rate, density
    final.npz      the trained model variables
    metrics.json   written last: the folder is done

A folder with metrics.json is skipped; one without resumes from its last
checkpoint. The starting values are `mask * W_start` (checked bit for bit
against the files before training) and `metrics.json` records their sha256.
"""

import dataclasses
import os
import shutil
import time

import numpy as np

from tf_sparse.lottery import config as config_lib
from tf_sparse.lottery import data as data_lib
from tf_sparse.lottery import pruning
from tf_sparse.lottery import state as state_lib
from tf_sparse.lottery import trainer

REWIND_DIR = "rewind"


@dataclasses.dataclass
class Run:
    """Everything resolved from a config before any training."""
    config: object
    workdir: str
    data: object
    steps: config_lib.Steps
    session: trainer.Session
    pools: list
    levels: int
    verbose: int

    @property
    def data_seed(self):
        return config_lib.data_seed(self.config)

    def level_dir(self, level):
        return os.path.join(self.workdir, f"level_{level:02d}")

    @property
    def init_path(self):
        return os.path.join(self.workdir, REWIND_DIR, "init.npz")

    @property
    def rewind_path(self):
        if self.steps.rewind == 0:
            return self.init_path
        return os.path.join(self.workdir, REWIND_DIR, "rewind.npz")


def prepare(config, workdir, *, data=None, model_fn=None, verbose=1,
            write=True):
    """Validates the config against the data and the model, then (with
    `write`) records or checks `lottery.json`. Raises before writing
    anything if a value cannot be used."""
    config_lib.check(config)
    data = data or data_lib.make_data(config)
    steps = config_lib.resolve(config, data.steps_per_epoch)
    session = trainer.Session(config, data, steps, model_fn=model_fn,
                              verbose=verbose)
    pools = pruning.make_pools(
        session.paths, config.prune_fraction, strategy=config.strategy,
        exclude=list(config.exclude), layer_rates=config.layer_rates)
    if config.target_density > 0:
        levels = pruning.levels_for_density(session.sizes, pools,
                                            config.target_density)
    else:
        levels = config.levels
    pruning.plan_levels(session.sizes, pools, levels)
    if write:
        config_lib.check_workdir(config, workdir, steps)
    return Run(config=config, workdir=workdir, data=data, steps=steps,
               session=session, pools=pools, levels=levels, verbose=verbose)


def is_done(directory):
    return os.path.exists(os.path.join(directory, "metrics.json"))


def expected_start(run, state, masks):
    """The model variables a training starting from `state` under `masks`
    must hold: kept entries copied, pruned entries +0.0."""
    arrays = [np.array(a, copy=True) for a in state.model]
    for path, i in run.session.index.items():
        arrays[i] = np.where(np.asarray(masks[path]) > 0, arrays[i],
                             np.zeros_like(arrays[i]))
    return arrays


def load_or_write_masks(run, directory, make):
    """The folder's masks: read if written before, else `make()` saved once."""
    path = os.path.join(directory, "mask.npz")
    if os.path.exists(path):
        return state_lib.load_masks(path, run.session.shapes)
    masks = make()
    state_lib.save_masks(path, masks, extra={
        "nonzeros": pruning.counts(masks)})
    return masks


def train_branch(run, directory, *, masks, start_state, start_step,
                 optimizer_state, data_seed, kind, level, label, extra=None,
                 start_file=None):
    """Trains one folder from `masks * start_state` at `start_step` to T.

    Returns the folder's metrics (read from metrics.json when done before).
    """
    metrics_path = os.path.join(directory, "metrics.json")
    if is_done(directory):
        return state_lib.read_json(metrics_path)
    session = run.session
    expected = expected_start(run, start_state, masks)

    def start():
        session.start_from(start_state, masks, start_step,
                           optimizer_state=optimizer_state)
        actual = [v.numpy() for v in session.model.variables]
        for a, e in zip(actual, expected):
            if a.tobytes() != e.tobytes():
                raise RuntimeError(
                    f"{directory}: starting weights differ from mask * W.")

    t0 = time.time()
    info = session.train(start, masks, run.steps.total, data_seed, directory,
                         label=label,
                         log_dir=os.path.join(directory, "tensorboard"))
    session.save(os.path.join(directory, "final.npz"), step=run.steps.total,
                 kind="final", with_optimizer=False)
    test_loss, test_accuracy = session.evaluate(run.data.test())
    counts = pruning.counts(masks)
    total = sum(run.session.sizes.values())
    metrics = {
        "kind": kind, "level": level,
        "density": sum(counts.values()) / total,
        "nonzeros": sum(counts.values()), "prunable_weights": total,
        "layers": {p: {"nonzeros": counts[p], "size": run.session.sizes[p]}
                   for p in run.session.paths},
        "test_accuracy": test_accuracy, "test_loss": test_loss,
        "train_loss": info["train_loss"],
        "train_accuracy": info["train_accuracy"],
        "start_step": start_step, "end_step": run.steps.total,
        "data_seed": data_seed,
        "start_checksum": trainer.checksum(expected),
        "start_file": (os.path.relpath(start_file, run.workdir)
                       if start_file else None),
        "optimizer_state_rewound": bool(optimizer_state),
        **(extra or {}),
    }
    timing = {"seconds": time.time() - t0, "resumed": info["resumed"]}
    state_lib.write_json(os.path.join(directory, "timing.json"), timing)
    state_lib.write_json(metrics_path, metrics)
    if not run.config.keep_checkpoints:
        shutil.rmtree(os.path.join(directory, "checkpoints"),
                      ignore_errors=True)
    if run.verbose:
        print(f"[{label}] done: density {metrics['density']:.4f} test "
              f"accuracy {test_accuracy:.4f}", flush=True)
    return metrics


def ensure_rewind_point(run):
    """W_0 (init.npz) and W_k (rewind.npz), each written once.

    The rewind file is never overwritten: if it exists it is read and
    checked (a damaged or foreign file is an error, left in place).
    """
    session = run.session
    init_path = run.init_path
    if os.path.exists(init_path):
        init = session.load(init_path, kind="init")
    else:
        # The session's model holds the fresh initialisation W_0.
        session.optimizer.iterations.assign(0)
        state_lib.apply_state(session.model, session.current_state(),
                              session.optimizer, optimizer_state=False)
        session.save(init_path, step=0, kind="init")
        init = session.load(init_path, kind="init")
    if run.steps.rewind == 0:
        return init, init
    rewind_path = run.rewind_path
    if not os.path.exists(rewind_path):
        directory = os.path.join(run.workdir, REWIND_DIR, "pretrain")
        ones = session.ones()
        session.train(
            lambda: session.start_from(init, ones, 0, optimizer_state=False),
            ones, run.steps.rewind, run.data_seed, directory,
            label=f"pretrain to k={run.steps.rewind}",
            log_dir=os.path.join(directory, "tensorboard"))
        session.save(rewind_path, step=run.steps.rewind, kind="rewind")
        shutil.rmtree(os.path.join(directory, "checkpoints"),
                      ignore_errors=True)
    rewind = session.load(rewind_path, kind="rewind",
                          need_optimizer=run.config.rewind_optimizer)
    if rewind.step != run.steps.rewind:
        raise state_lib.StateError(
            f"{rewind_path} holds step {rewind.step}, but this run rewinds "
            f"to step {run.steps.rewind}.")
    return init, rewind
