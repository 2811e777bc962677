"""A prepared lottery run and the training of one folder ("branch").

A lottery run trains the same network many times (levels, baselines,
stability copies) from different starting points and masks, each a
training of the run engine (`tf_sparse.runs.runner.train`) on one session
built and compiled once: every prunable weight carries a mask from the
start (all ones for the dense level), and a branch only assigns the mask
variables, the model and optimizer variables and `optimizer.iterations`,
so the learning-rate schedule continues from the start step and the data
order continues from it too.

Every branch lives in its own folder and follows the same protocol:

    mask.npz       the masks it trains with (written once, before training)
    checkpoints/   the engine's checkpoints (while running)
    tensorboard/   train loss/accuracy, test accuracy, learning rate, density
    final.npz      the trained model variables
    metrics.json   written last: the folder is done

A folder with metrics.json is skipped; one without resumes from its last
checkpoint. The starting values are `mask * W_start` (checked bit for bit
before training) and `metrics.json` records their sha256.
"""

import dataclasses
import os
import shutil
import time

import numpy as np

from tf_sparse import masking
from tf_sparse import sparsification
from tf_sparse.lottery import config as config_lib
from tf_sparse.lottery import pruning
from tf_sparse.lottery import state as state_lib
from tf_sparse.runs import engine
from tf_sparse.runs import model as model_lib
from tf_sparse.runs import runner
from tf_sparse.runs import workdir as workdir_lib

REWIND_DIR = "rewind"


def _all_ones(model):
    targets = sparsification.find_targets(model)
    if not targets:
        raise ValueError(f"Model {model.name!r} has no prunable weights.")
    return sparsification.sparsify(model, masks={
        t.path: np.ones(tuple(t.variable.shape), np.float32)
        for t in targets})


@dataclasses.dataclass
class Run:
    """Everything resolved from a config before any training."""
    config: object
    workdir: str
    prepared: engine.Prepared
    steps: config_lib.Steps
    session: runner.Session
    pools: list
    levels: int
    verbose: int
    model_fn: object = None

    def __post_init__(self):
        self.masked = masking.masked_weights(self.session.core)
        self.paths = [mw.path for mw in self.masked]
        self.shapes = {mw.path: tuple(mw.variable.shape)
                       for mw in self.masked}
        self.sizes = {p: int(np.prod(s)) for p, s in self.shapes.items()}
        index = {id(v): i for i, v in enumerate(
            state_lib.model_variables(self.model))}
        self.index = {mw.path: index[id(mw.variable)] for mw in self.masked}

    @property
    def data(self):
        return self.prepared.data

    @property
    def model(self):
        return self.session.model

    @property
    def optimizer(self):
        return self.session.optimizer

    @property
    def data_seed(self):
        return runner.data_seed(self.config)

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

    # -- values -----------------------------------------------------------

    def current_state(self, kind="current"):
        return state_lib.State(
            kind=kind, step=self.session.iterations,
            model=[np.asarray(v.numpy()) for v in
                   state_lib.model_variables(self.model)],
            optimizer=[np.asarray(v.numpy()) for v in
                       state_lib.optimizer_slots(self.optimizer)],
            manifest={})

    def prunable(self, state):
        """{path: array} of the prunable weights in a `State`."""
        return {p: state.model[i] for p, i in self.index.items()}

    def ones(self):
        return {p: np.ones(s, np.float32) for p, s in self.shapes.items()}

    def masks(self):
        return {mw.path: np.asarray(mw.mask.numpy()) for mw in self.masked}

    def set_masks(self, masks):
        missing = set(self.paths) - set(masks)
        if missing:
            raise ValueError(f"masks missing for {sorted(missing)}")
        for mw in self.masked:
            mw.mask.assign(np.asarray(masks[mw.path], np.float32))
        masking.apply_masks(self.model)

    def start_from(self, state, masks, step, *, optimizer_state):
        """Sets masks * state (bitwise: kept entries copied, pruned +0.0),
        the optimizer slots (from `state` or zeros) and the step counter."""
        state_lib.apply_state(self.model, state, self.optimizer,
                              optimizer_state=optimizer_state)
        self.set_masks(masks)
        self.optimizer.iterations.assign(int(step))

    def fresh_init(self, seed):
        """Variables of a newly initialised network (seed `seed`)."""
        other = model_lib.build(self.config, self.data, seed=seed,
                                model_fn=self.model_fn)
        values = [np.asarray(v.numpy())
                  for v in state_lib.model_variables(other)]
        mine = state_lib.model_variables(self.model)
        if [v.shape for v in values] != [tuple(v.shape) for v in mine]:
            raise ValueError("model_fn built a different architecture.")
        return state_lib.State(kind="reinit", step=0, model=values,
                               optimizer=None, manifest={})

    # -- files ------------------------------------------------------------

    def save(self, path, *, step, kind, with_optimizer=True):
        state_lib.save_state(
            path, self.model, self.optimizer if with_optimizer else None,
            step=step, kind=kind, model_name=self.config.model)

    def load(self, path, *, kind=None, need_optimizer=False):
        return state_lib.load_state(
            path, self.model, self.optimizer, model_name=self.config.model,
            kind=kind, need_optimizer=need_optimizer)

    # -- training ---------------------------------------------------------

    def train(self, start, masks, end_step, data_seed, directory, *,
              label="", keep_checkpoints=None):
        """Trains one branch to `end_step` (see `runner.train`); `start`
        sets the starting state when the folder has no checkpoint."""
        self.set_masks(masks)
        callbacks = runner.summaries(self.session,
                                     os.path.join(directory, "tensorboard"))
        if keep_checkpoints is None:
            keep_checkpoints = self.config.keep_checkpoints
        trained = runner.train(
            self.session, self.data, directory, data_seed=data_seed,
            end_step=end_step, start=start, callbacks=callbacks,
            validation=self.data.test(),
            eval_every_epochs=self.config.eval_every_epochs,
            checkpoint_every_steps=self.config.checkpoint_every_steps,
            keep_checkpoints=keep_checkpoints, verbose=self.verbose,
            label=label, divergence_factor=self.config.divergence_factor,
            loss_floor=runner.chance_loss(self.data.num_classes))
        if trained.diverged:
            raise runner.Diverged({**trained.diverged, "message": (
                f"[{label}] {trained.diverged['message']}")})
        if any(not np.array_equal(self.masks()[p], masks[p])
               for p in self.paths):
            raise RuntimeError(f"[{label}] trained with other masks than "
                               "its mask.npz.")
        return trained

    def evaluate(self, dataset):
        scores = runner.evaluate(self.session, dataset)
        return scores["loss"], scores["accuracy"]


def prepare(config, workdir, *, data=None, model_fn=None, verbose=1,
            write=True, strategy=None):
    """Validates the config against the data and the model, then (with
    `write`) records or checks run.json. Raises before writing anything if
    a value cannot be used."""
    config_lib.check(config)
    prepared = engine.Prepared(config, strategy=strategy, data=data)
    steps = config_lib.resolve(config, prepared.data.steps_per_epoch)
    session = prepared.build_session(model_fn=model_fn, algorithm=None,
                                     sparsify=_all_ones)
    with session.strategy.scope():
        session.optimizer.build(session.core.trainable_variables)
    run = Run(config=config, workdir=workdir, prepared=prepared, steps=steps,
              session=session, pools=[], levels=0, verbose=verbose,
              model_fn=model_fn)
    run.pools = pruning.make_pools(
        run.paths, config.prune_fraction, strategy=config.prune_scope,
        exclude=list(config.keep_dense), layer_rates=config.layer_rates)
    if config.target_density > 0:
        run.levels = pruning.levels_for_density(run.sizes, run.pools,
                                                config.target_density)
    else:
        run.levels = config.levels
    pruning.plan_levels(run.sizes, run.pools, run.levels)
    if write:
        workdir_lib.Workdir(workdir).check(
            config, config_lib.IDENTITY, kind="lottery",
            extra={"steps": dataclasses.asdict(steps)})
    return run


def is_done(directory):
    return os.path.exists(os.path.join(directory, "metrics.json"))


def expected_start(run, state, masks):
    """The model variables a training starting from `state` under `masks`
    must hold: kept entries copied, pruned entries +0.0."""
    arrays = [np.array(a, copy=True) for a in state.model]
    for path, i in run.index.items():
        arrays[i] = np.where(np.asarray(masks[path]) > 0, arrays[i],
                             np.zeros_like(arrays[i]))
    return arrays


def load_or_write_masks(run, directory, make):
    """The folder's masks: read if written before, else `make()` saved once."""
    path = os.path.join(directory, "mask.npz")
    if os.path.exists(path):
        return state_lib.load_masks(path, run.shapes)
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
        return workdir_lib.read_json(metrics_path)
    expected = expected_start(run, start_state, masks)

    def start():
        run.start_from(start_state, masks, start_step,
                       optimizer_state=optimizer_state)
        actual = [v.numpy() for v in state_lib.model_variables(run.model)]
        for a, e in zip(actual, expected):
            if a.tobytes() != e.tobytes():
                raise RuntimeError(
                    f"{directory}: starting weights differ from mask * W.")

    t0 = time.time()
    trained = run.train(start, masks, run.steps.total, data_seed, directory,
                        label=label)
    run.save(os.path.join(directory, "final.npz"), step=run.steps.total,
             kind="final", with_optimizer=False)
    test_loss, test_accuracy = run.evaluate(run.data.test())
    counts = pruning.counts(masks)
    total = sum(run.sizes.values())
    metrics = {
        "kind": kind, "level": level,
        "density": sum(counts.values()) / total,
        "nonzeros": sum(counts.values()), "prunable_weights": total,
        "layers": {p: {"nonzeros": counts[p], "size": run.sizes[p]}
                   for p in run.paths},
        "test_accuracy": test_accuracy, "test_loss": test_loss,
        "train_loss": trained.logs.get("loss"),
        "train_accuracy": trained.logs.get("accuracy"),
        "start_step": start_step, "end_step": run.steps.total,
        "data_seed": data_seed,
        "start_checksum": state_lib.checksum(expected),
        "start_file": (os.path.relpath(start_file, run.workdir)
                       if start_file else None),
        "optimizer_state_rewound": bool(optimizer_state),
        **(extra or {}),
    }
    timing = {"seconds": time.time() - t0, "resumed": trained.resumed}
    workdir_lib.write_json(os.path.join(directory, "timing.json"), timing)
    workdir_lib.write_json(metrics_path, metrics)
    if run.verbose:
        print(f"[{label}] done: density {metrics['density']:.4f} test "
              f"accuracy {test_accuracy:.4f}", flush=True)
    return metrics


def pretrain_to(run, init, step, directory, label):
    """W_step: the dense network trained from W_0 to `step` with the run's
    data order, written once to `directory/rewind.npz`."""
    path = os.path.join(directory, "rewind.npz")
    if not os.path.exists(path):
        ones = run.ones()
        folder = os.path.join(directory, "pretrain")
        run.train(lambda: run.start_from(init, ones, 0, optimizer_state=False),
                  ones, step, run.data_seed, folder, label=label,
                  keep_checkpoints=1)
        run.save(path, step=step, kind="rewind")
        shutil.rmtree(os.path.join(folder, "checkpoints"), ignore_errors=True)
    return path


def ensure_rewind_point(run):
    """W_0 (init.npz) and W_k (rewind.npz), each written once.

    The rewind file is never overwritten: if it exists it is read and
    checked (a damaged or foreign file is an error, left in place).
    """
    init_path = run.init_path
    if not os.path.exists(init_path):
        # The session's model holds the fresh initialisation W_0.
        run.optimizer.iterations.assign(0)
        state_lib.apply_state(run.model, run.current_state(), run.optimizer,
                              optimizer_state=False)
        run.save(init_path, step=0, kind="init")
    init = run.load(init_path, kind="init")
    if run.steps.rewind == 0:
        return init, init
    rewind_path = pretrain_to(run, init, run.steps.rewind,
                              os.path.join(run.workdir, REWIND_DIR),
                              label=f"pretrain to k={run.steps.rewind}")
    rewind = run.load(rewind_path, kind="rewind",
                      need_optimizer=run.config.rewind_optimizer)
    if rewind.step != run.steps.rewind:
        raise state_lib.StateError(
            f"{rewind_path} holds step {rewind.step}, but this run rewinds "
            f"to step {run.steps.rewind}.")
    return init, rewind

