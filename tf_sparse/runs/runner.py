"""The runner loop: train a session between two steps, resumably.

A `Session` is what a run trains: the model (sparsified, maybe wrapped in a
`Distiller`), compiled once with its optimizer, loss and metrics, and its
mask-update algorithm attached, all under a tf.distribute strategy.
`train(session, data, directory, ...)` trains it from where it stands (or
from its last checkpoint in `directory`) to `end_step`:

- positions are batches of the data stream (`data.train(seed, step)`), so
  the batch at step `s` is the same whether a run is whole, resumed, or a
  lottery level that starts at its rewind step;
- one `fit` per stretch of whole epochs, and one for a partial epoch at
  either end (a run resumed mid-epoch, a rewind point inside an epoch);
- a checkpoint (`tf_sparse.checkpoints.TrainingCheckpoint`; on JAX and
  PyTorch a `.keras` file, `runs/keras_checkpoint.py`) at every epoch
  end, every `checkpoint_every_steps` batches, and where training stops;
- on JAX and PyTorch, mask updates between two steps (`runs/eager.py`:
  `tfs.callbacks.MaskUpdate`) instead of inside the compiled step;
- validation every `eval_every_epochs` epochs; TensorBoard summaries of
  sparsity, mask updates, FLOPs and the epoch logs; optional
  under-training diagnostics.

A run killed at any point and started again continues from its last
checkpoint and ends with the same weights, masks, optimizer slots and
algorithm state, bit for bit.

Example:

    session = build_session(config, plan, data)
    train(session, data, "runs/sm", data_seed=17, end_step=plan.total_steps)
"""

import dataclasses
import math
import os
import shutil
import time

import keras
import numpy as np
import tensorflow as tf

from tf_sparse import callbacks as callbacks_lib
from tf_sparse import checkpoints
from tf_sparse import distillation
from tf_sparse import distribute
from tf_sparse import flops
from tf_sparse import masking
from tf_sparse import training
from tf_sparse.runs import algorithm as algorithm_lib
from tf_sparse.runs import config as config_lib
from tf_sparse.runs import eager
from tf_sparse.runs import model as model_lib
from tf_sparse.runs import optimizer as optimizer_lib


@dataclasses.dataclass
class Session:
    """A compiled model with its algorithm, under a strategy.

    `model` is what `fit` trains (a `Distiller` when distilling); `core` is
    the network itself (the student), whose masks and weights are the run's.
    """
    model: keras.Model
    core: keras.Model
    algorithm: object
    strategy: tf.distribute.Strategy
    info: distribute.ReplicaInfo
    loss: object
    on_bad_checkpoint: str = "error"

    @property
    def optimizer(self):
        return self.model.optimizer

    @property
    def iterations(self):
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))


def build_session(config, plan, data, *, strategy=None, info=None,
                  policy="float32", learning_rate=None, model_fn=None,
                  algorithm="config", sparsify=None):
    """Builds, sparsifies, compiles and attaches everything a run trains.

    Args:
      config, plan, data: the run's config, `Plan` and data object.
      strategy, info: the tf.distribute strategy and its description.
      policy: the Keras dtype policy the model is built in.
      learning_rate: the peak learning rate (after batch scaling).
      model_fn: builds the dense network instead of the zoo.
      algorithm: "config" (from `config.algorithm`), or an algorithm object,
        or None for none.
      sparsify: `f(dense model) -> sparse model` instead of the config's
        masks (the lottery's all-ones masks).
    """
    strategy = strategy or tf.distribute.get_strategy()
    info = info or distribute.describe(strategy)
    if algorithm == "config":
        algorithm = algorithm_lib.make(config, plan)
    loss = optimizer_lib.make_loss(config, data.num_classes)
    if sparsify is None and algorithm is not None:
        sparsify = _config_masks(config, data, algorithm, loss)
    sync = bool(config.sync_batch_norm and info.num_replicas > 1)
    teacher = config_lib.option(config, "teacher", "")
    with strategy.scope():
        core = model_lib.build(config, data, policy=policy,
                               sync_batch_norm=sync, model_fn=model_fn)
        if sparsify is not None:
            core = sparsify(core)
        model = core
        if teacher:
            model = distillation.Distiller(
                core, keras.saving.load_model(teacher),
                temperature=config.distill_temperature,
                alpha=config.distill_alpha)
        lr = optimizer_lib.learning_rate(config, plan, learning_rate)
        model.compile(
            optimizer=optimizer_lib.make_optimizer(config, core, lr),
            loss=loss, metrics=optimizer_lib.metrics(data.num_classes),
            steps_per_execution=config.steps_per_execution,
            jit_compile=eager.jit_compile(config),
            run_eagerly=config.run_eagerly)
        if algorithm is not None:
            training.attach(model, algorithm)
    return Session(model=model, core=core, algorithm=algorithm,
                   strategy=strategy, info=info, loss=loss,
                   on_bad_checkpoint=config_lib.option(
                       config, "on_bad_checkpoint", "error"))


def _config_masks(config, data, algorithm, loss):
    """`f(dense model)` attaching the masks `config` starts from: SNIP's
    from the run's first batch on the dense initialisation, else
    `model_lib.sparsify`'s."""
    masks = None
    if getattr(algorithm, "prunes_at_init", False):
        batch = data.first_batch(data_seed(config),
                                 algorithm.batch_size or data.batch_size)
        if eager.applies():
            batch = eager.host_batch(batch)

        def masks(dense):
            return algorithm.initial_masks(
                dense, batch, loss, config.sparsity,
                keep_dense=list(config.keep_dense),
                pattern=model_lib.pattern(config))

    def sparsify(dense):
        return model_lib.sparsify(
            config, dense, gradual=algorithm_lib.is_gradual(config),
            masks=masks(dense) if masks else None)

    return sparsify


def chance_loss(num_classes):
    """The cross-entropy of a uniform prediction over `num_classes`
    classes, ln(classes) (0.0 when unknown): the divergence guard's
    smallest reference.

    >>> round(chance_loss(10), 4)
    2.3026
    """
    return math.log(num_classes) if num_classes and num_classes > 1 else 0.0


def data_seed(config):
    """The seed of the data order: `data_seed`, or `seed` when it is -1."""
    return config.seed if config.data_seed < 0 else config.data_seed


# --------------------------------------------------------------------------
# Progress: positions, checkpoints, stopping
# --------------------------------------------------------------------------


class Diverged(RuntimeError):
    """Training diverged; `report` says at which step, why, the first
    variable that is not finite and the last mask update before it."""

    def __init__(self, report):
        super().__init__(report["message"])
        self.report = report


class Progress(keras.callbacks.Callback):
    """Counts the batches of a run, saves checkpoints and stops training.

    A checkpoint is saved after every finished epoch, whenever the position
    passes a multiple of `every_steps` (at execution granularity), and at
    `stop`, where training ends; each position at most once, and never
    the starting one (a resumed run's checkpoint is already there).
    Positions are batches, not
    `optimizer.iterations`: under float16 loss scaling a step with
    overflowing gradients does not advance the iterations.

    Divergence guard: a training loss that is not finite, or (with
    `divergence_factor` > 0) above that multiple of the first loss this
    training saw, raises `Diverged` before anything of that step is saved.
    The reference is never below `loss_floor` (the engine passes the loss
    of a uniform prediction, ln(classes)): a fine-tuning run starts from a
    trained model at a small loss, and one batch right after a pruning step
    can exceed ten times that without diverging (a keras-hub ViT distilled
    at 90%: 1.36 after a first batch of 0.11, `hub_finetune.md`);
    before every save the weights are checked too (a ReLU can hide
    non-finite weights from the loss), so no checkpoint holds a non-finite
    value and the last one is the last good one.
    """

    def __init__(self, *, position, steps_per_epoch, stop, save,
                 every_steps=0, global_batch=0, divergence_factor=0.0,
                 loss_floor=0.0):
        super().__init__()
        self.position = int(position)
        self.steps_per_epoch = steps_per_epoch
        self.stop = stop
        self.save = save
        self.every_steps = every_steps
        self.global_batch = global_batch
        self.divergence_factor = float(divergence_factor)
        self.loss_floor = float(loss_floor)
        self.steps_run = 0
        self.first_loss = None
        self._epoch_start = self.position
        # The checkpoint due at the starting position is the one a resumed
        # run was restored from: the first batch must not write it again.
        self._last_due = (self.position // every_steps if every_steps
                          else None)
        # Where the last checkpoint is (or, at the start, where the state
        # came from): a position is saved once, even when a step is due by
        # `every_steps` and ends training too.
        self._saved_at = self.position
        self._t0 = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self.position
        self._t0 = time.perf_counter()

    def _check_loss(self, step, logs):
        if not logs or "loss" not in logs:
            return
        loss = float(logs["loss"])
        reason = None
        if not math.isfinite(loss):
            reason = f"the training loss is {loss}"
        elif self.first_loss is None:
            self.first_loss = loss
        elif self.divergence_factor and loss > self.divergence_factor * max(
                self.first_loss, self.loss_floor):
            reference = (
                f"its first value {self.first_loss:.6g}"
                if self.first_loss >= self.loss_floor else
                f"the chance-level loss {self.loss_floor:.6g} (its first "
                f"value was {self.first_loss:.6g})")
            reason = (f"the training loss {loss:.6g} is above "
                      f"divergence_factor={self.divergence_factor:g} x "
                      f"{reference}")
        if reason:
            raise Diverged({"step": step, "loss": loss, "reason": reason,
                            "message": reason})

    def _save(self, position):
        if position == self._saved_at:
            return
        bad = first_non_finite(self.model)
        if bad is not None:
            reason = f"variable {bad} is not finite"
            raise Diverged({"step": position, "loss": None,
                            "reason": reason, "message": reason})
        self.save(position)
        self._saved_at = position
        if self.every_steps:
            # A checkpoint at an epoch end covers the multiples of
            # `every_steps` it passed: the next batch does not save again.
            self._last_due = position // self.every_steps

    def on_train_batch_end(self, batch, logs=None):
        now = self._epoch_start + batch + 1
        self._check_loss(now, logs)
        self.steps_run += now - self.position
        self.position = now
        if self.position >= self.stop:
            self.model.stop_training = True
        if self.every_steps and self.position % self.steps_per_epoch:
            due = self.position // self.every_steps
            if due and due != self._last_due:
                self._last_due = due
                self._save(self.position)

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._t0
        done = self.position - self._epoch_start
        if logs is not None and seconds > 0 and self.global_batch:
            logs["images_per_second"] = done * self.global_batch / seconds
        if (self.position % self.steps_per_epoch == 0
                or self.position >= self.stop):
            self._save(self.position)


def _prebuild(model, strategy, element_spec):
    """Builds metrics, loss and optimizer from the data's shapes.

    Under a distribution strategy Keras 3's `fit` first all-reduces a real
    batch to build the model (`_maybe_symbolic_build`); with
    MultiWorkerMirroredStrategy that reduce fails ("Attempt to convert a
    value (PerReplica...)", keras-team/keras#20585, tensorflow#72388).
    Building from the element spec does the same without data, and the step
    is then skipped for this model instance.
    """
    with strategy.scope():
        model._symbolic_build(data_batch=element_spec)  # pylint: disable=protected-access
    object.__setattr__(model, "_maybe_symbolic_build",
                       lambda iterator=None, data_batch=None: None)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        _rank1_step_logs(model)


def _rank1_step_logs(model):
    """Makes the train and test steps return rank-1 logs.

    With MultiWorkerMirroredStrategy Keras 3 reduces every step output with
    `strategy.reduce("MEAN", value, axis=0)`, which fails on scalar losses
    ("Invalid reduction dimension 0 for input with 0 dimensions"). Shape [1]
    values reduce to the same mean. Wraps the instance's current steps
    (after `training.attach`).
    """
    for name in ("train_step", "test_step"):
        step = getattr(model, name)

        def wrapped(data, _step=step):
            logs = _step(data)
            return {k: tf.reshape(v, [1]) if getattr(v, "shape", None)
                    is not None and v.shape.rank == 0 else v
                    for k, v in logs.items()}

        object.__setattr__(model, name, wrapped)


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------


@dataclasses.dataclass
class Trained:
    """What `train` did: where it started and stopped, the last logs, and
    the divergence report if it diverged."""
    start: int
    position: int
    steps_run: int
    resumed: bool
    logs: dict
    diverged: dict = None


def last_mask_update(algorithm, step):
    """The last step <= `step` at which `algorithm` updates masks, or None
    (an algorithm that cannot list its update steps, or none yet)."""
    steps = getattr(algorithm, "update_steps", None)
    done = [s for s in (steps() if steps else ()) if s <= step]
    return max(done) if done else None


def first_non_finite(model):
    """The path of the first float variable of `model` holding a NaN or an
    infinity, or None."""
    for variable in model.variables:
        value = keras.ops.convert_to_numpy(variable)
        if np.issubdtype(value.dtype, np.floating) and not np.all(
                np.isfinite(value)):
            return variable.path
    return None


def collapse_report(model, images, *, tolerance=1e-6):
    """None, or why `model` has collapsed: it gives every one of `images`
    the same output (for instance when every ReLU of a layer is dead), so
    its loss sits at the entropy of the class prior while nothing is
    non-finite. The outputs count as the same when no output unit varies
    across the images by more than `tolerance` x (1 + its largest |value|).
    """
    outputs = model(images, training=False)
    if isinstance(outputs, (dict, list, tuple)) or len(images) < 2:
        return None
    values = np.asarray(keras.ops.convert_to_numpy(outputs), np.float64)
    values = values.reshape(len(values), -1)
    spread = float(np.max(np.std(values, axis=0)))
    scale = 1.0 + float(np.max(np.abs(values)))
    if not np.isfinite(spread) or spread > tolerance * scale:
        return None
    return {"output_std": spread, "examples": len(values),
            "message": f"the network gives the same output to all "
                       f"{len(values)} evaluation examples (largest spread "
                       f"across examples {spread:.3g}); it has collapsed, "
                       "e.g. every ReLU unit of a layer is dead"}


def divergence_report(session, found, last_checkpoint):
    """`found` (from `Progress`) completed with the first variable that is
    not finite and the last mask update, in one message."""
    bad = first_non_finite(session.model)
    last = last_mask_update(session.algorithm, found["step"])
    report = {**found, "non_finite_variable": bad,
              "last_mask_update": last, "last_checkpoint": last_checkpoint}
    report["message"] = (
        f"training diverged at step {found['step']}: {found['reason']}; "
        f"first variable that is not finite: {bad or 'none'}; last mask "
        f"update: {'none' if last is None else f'step {last}'}; the last "
        f"good checkpoint is {last_checkpoint or 'none'} (kept).")
    return report


def summaries(session, log_dir, *, batch_size=0, log_every_steps=0):
    """The TensorBoard callbacks of a run (chief only)."""
    found = [callbacks_lib.SparsitySummaries(log_dir)]
    algorithm = session.algorithm
    if getattr(algorithm, "state", None) is not None:
        found.append(callbacks_lib.MaskUpdateSummaries(log_dir, algorithm))
    if masking.is_sparse(session.core):
        try:
            flops.rule_for(algorithm)
        except ValueError:
            pass  # no counting rule for this algorithm: FLOPs not logged
        else:
            found.append(flops.FlopsSummaries(log_dir, algorithm,
                                              batch_size=batch_size))
    if log_every_steps:
        found.append(keras.callbacks.TensorBoard(
            log_dir, update_freq=log_every_steps, write_graph=False,
            profile_batch=0))
    return found


def train(session, data, directory, *, data_seed, end_step, start=None,
          stop_step=None, callbacks=(), validation=None, eval_every_epochs=0,
          checkpoint_every_steps=0, keep_checkpoints=2, verbose=0, label="",
          divergence_factor=0.0, loss_floor=0.0, on_bad_checkpoint=None):
    """Trains `session` on `data` to `end_step`, resuming from `directory`.

    Args:
      session: a `Session`.
      data: the run's data object (`tf_sparse.runs.data`).
      directory: holds `checkpoints/`; the latest checkpoint there, if any,
        is restored first.
      data_seed: the data order.
      end_step: the position (batches) training ends at.
      start: called when there is no checkpoint, to set the starting state
        (the lottery's rewound weights, masks and step); the position starts
        at `optimizer.iterations` then.
      stop_step: stop earlier this time (`max_steps`); a later call resumes.
      callbacks: more Keras callbacks (TensorBoard, diagnostics).
      validation: a dataset evaluated every `eval_every_epochs` epochs.
      checkpoint_every_steps: also checkpoint mid-epoch.
      keep_checkpoints: checkpoints kept; 0 deletes them once `end_step` is
        reached.
      verbose: Keras fit verbosity; progress lines when > 0.
      label: shown in progress lines.
      divergence_factor: see `Progress`; a diverged training stops and
        `Trained.diverged` reports it (nothing is saved after the last good
        checkpoint).
      loss_floor: the guard's smallest reference loss (see `Progress`).
      on_bad_checkpoint: "error" or "previous" when the newest checkpoint
        is damaged (`tf_sparse.checkpoints.TrainingCheckpoint`); default:
        the session's (`config.on_bad_checkpoint`).

    Returns:
      a `Trained`.
    """
    info = session.info
    model = session.model
    directory = os.path.join(directory, "checkpoints")
    if info.is_chief:
        # What saves killed half-way left behind (ckpt-N_temp/ folders).
        for path in checkpoints.remove_temporaries(directory):
            if verbose:
                print(f"[{label}] removed {path}, left by an interrupted "
                      "checkpoint save.", flush=True)
    with session.strategy.scope():
        ckpt = (eager.checkpoint if eager.applies()
                else checkpoints.TrainingCheckpoint)(
            directory, model, session.algorithm,
            max_to_keep=max(keep_checkpoints, 1),
            on_bad_checkpoint=on_bad_checkpoint or session.on_bad_checkpoint)
        if eager.applies():
            ckpt.remove_temporaries()
        ckpt.restore(repair=info.is_chief)
        resumed = ckpt.restored_from is not None
        if not resumed and start is not None:
            start()
    writer_ckpt = ckpt
    if not info.is_chief:
        writer_ckpt = checkpoints.TrainingCheckpoint(
            distribute.worker_directory(directory, info), model,
            session.algorithm, max_to_keep=1)
    position = int(keras.ops.convert_to_numpy(ckpt.batches)) or (
        session.iterations)
    first = position
    spe = data.steps_per_epoch
    stop = min(stop_step or end_step, end_step)

    def save(at):
        writer_ckpt.save(at // spe, step=at, batches=at)
        if writer_ckpt is not ckpt:
            shutil.rmtree(writer_ckpt.directory, ignore_errors=True)

    if verbose and info.is_chief and resumed:
        skipped = (f" (damaged, passed over: "
                   f"{', '.join(ckpt.skipped)})" if ckpt.skipped else "")
        print(f"Resuming {label} at step {position} (epoch "
              f"{position // spe + 1}, batch {position % spe + 1}) from "
              f"{ckpt.restored_from}{skipped}.", flush=True)
    progress = Progress(position=position, steps_per_epoch=spe, stop=stop,
                        save=save, every_steps=checkpoint_every_steps,
                        global_batch=data.batch_size,
                        divergence_factor=divergence_factor,
                        loss_floor=loss_floor)
    fit_callbacks = [*eager.mask_update_callbacks(session), progress,
                     *callbacks]
    fit_kwargs = dict(shuffle=False, verbose=verbose if info.is_chief else 0,
                      callbacks=fit_callbacks)
    if validation is not None and eval_every_epochs:
        fit_kwargs.update(validation_data=validation,
                          validation_freq=eval_every_epochs)
    logs = {}
    diverged = None
    built = info.strategy == "default"
    while progress.position < stop:
        position = progress.position
        epoch, offset = divmod(position, spe)
        if offset or stop - position < spe:
            epochs, steps = epoch + 1, min(spe - offset, stop - position)
        else:
            epochs, steps = epoch + (stop - position) // spe, spe
        train_data = data.train(data_seed, position)
        if not built:
            _prebuild(model, session.strategy, train_data.element_spec)
            built = True
        t0 = time.time()
        if steps < spe:
            train_data = train_data.take(steps)
        try:
            history = model.fit(train_data, initial_epoch=epoch,
                                epochs=epochs, steps_per_epoch=steps,
                                **fit_kwargs)
        except Diverged as error:
            diverged = divergence_report(session, error.report, ckpt.latest)
            if verbose and info.is_chief:
                print(f"[{label}] {diverged['message']}", flush=True)
            break
        logs = {k: float(v[-1]) for k, v in history.history.items()}
        if progress.position == position:
            raise RuntimeError(f"[{label}] training made no progress at step "
                               f"{position}.")
        if verbose and info.is_chief:
            print(f"[{label}] step {progress.position}/{end_step} "
                  + " ".join(f"{k} {v:.4f}" for k, v in logs.items())
                  + f" ({time.time() - t0:.1f}s)", flush=True)
        if progress.position != position + (epochs - epoch - 1) * spe + steps \
                and not model.stop_training:
            raise RuntimeError(
                f"[{label}] training reached step {progress.position}, "
                f"expected {position + (epochs - epoch - 1) * spe + steps}.")
        if model.stop_training:
            break
    if progress.position >= end_step and not keep_checkpoints:
        shutil.rmtree(directory, ignore_errors=True)
    return Trained(start=first, position=progress.position,
                   steps_run=progress.steps_run, resumed=resumed, logs=logs,
                   diverged=diverged)


def evaluate(session, dataset, *, steps=0):
    """`{"loss", "accuracy", ...}` of the model on `dataset` (every batch,
    or the first `steps`). A `Distiller` is evaluated on the hard loss."""
    if steps:
        dataset = dataset.take(steps)
    logs = session.model.evaluate(dataset, verbose=0, return_dict=True)
    return {k: float(v) for k, v in logs.items()}
