"""One model, compiled once, trained segment by segment for every level.

A lottery run trains the same architecture many times (levels, baselines,
stability copies) from different starting points and masks. `Session` builds
and compiles the model once, with an all-ones mask on every prunable weight,
and for each training sets the starting values, the masks (in place: the
compiled train function reads the mask variables) and `optimizer.iterations`
(so the learning-rate schedule continues from the start step). Pruned
weights are kept at exactly 0 by the masks' constraint after every optimizer
step (see `tf_sparse.masking`).

`Session.train` runs `model.fit` one epoch segment at a time, from the start
step to the next epoch boundary and then epoch by epoch, and after every
segment writes a checkpoint (model + optimizer slots + step) into the
training's `checkpoints/` folder. Called again on the same folder it resumes
from the last checkpoint; since batch s is a function of (data seed, s)
only, the resumed training is the uninterrupted one, bit for bit.
"""

import hashlib
import os
import re
import time

import keras
import numpy as np
import tensorflow as tf

from tf_sparse import masking
from tf_sparse import models as models_lib
from tf_sparse import schedules
from tf_sparse import sparsification
from tf_sparse.lottery import state as state_lib

_CKPT_RE = re.compile(r"^step_(\d+)\.npz$")


def _after_checkpoint(step, directory):
    """Called after each checkpoint is written; tests replace it to simulate
    an interruption."""


def make_optimizer(config, steps):
    lr = schedules.StepDecayLR(
        float(config.learning_rate), boundaries=tuple(config.lr_boundaries),
        factor=float(config.lr_factor), warmup=steps.warmup,
        total_steps=steps.total)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(
            lr, momentum=float(config.momentum), nesterov=bool(config.nesterov),
            weight_decay=float(config.weight_decay) or None)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(
            lr, weight_decay=float(config.weight_decay) or None)
    raise ValueError(f"Unknown optimizer {config.optimizer!r}; accepted: "
                     "sgd, adam.")


def checksum(arrays):
    """sha256 over the bytes of a list of arrays (shape and dtype included)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def latest_checkpoint(directory):
    """(step, path) of the newest `step_<n>.npz` in `directory`, or None."""
    if not os.path.isdir(directory):
        return None
    found = [(int(m.group(1)), os.path.join(directory, name))
             for name in os.listdir(directory)
             for m in [_CKPT_RE.match(name)] if m]
    return max(found) if found else None


class Session:
    """The model of a lottery run and everything needed to train it."""

    def __init__(self, config, data, steps, *, model_fn=None, verbose=1):
        self.config = config
        self.data = data
        self.steps = steps
        self.verbose = verbose
        self.model_name = config.model
        self._model_fn = model_fn or (lambda: models_lib.get_model(
            config.model, num_classes=data.num_classes,
            input_shape=data.element_shape()))
        keras.utils.set_random_seed(int(config.seed))
        model = self._model_fn()
        targets = sparsification.find_targets(model)
        if not targets:
            raise ValueError(f"Model {model.name!r} has no prunable weights.")
        sparsification.sparsify(model, masks={
            t.path: np.ones(tuple(t.variable.shape), np.float32)
            for t in targets})
        self.model = model
        self.masked = masking.masked_weights(model)
        self.paths = [mw.path for mw in self.masked]
        self.shapes = {mw.path: tuple(mw.variable.shape) for mw in self.masked}
        self.sizes = {p: int(np.prod(s)) for p, s in self.shapes.items()}
        index = {id(v): i for i, v in enumerate(state_lib.model_variables(
            model))}
        self.index = {mw.path: index[id(mw.variable)] for mw in self.masked}
        self.optimizer = make_optimizer(config, steps)
        model.compile(optimizer=self.optimizer,
                      loss=keras.losses.SparseCategoricalCrossentropy(
                          from_logits=True),
                      metrics=["accuracy"],
                      steps_per_execution=config.steps_per_execution,
                      jit_compile=config.jit_compile)
        self.optimizer.build(model.trainable_variables)

    # -- values -----------------------------------------------------------

    def current_state(self, step=None, kind="current"):
        step = int(self.optimizer.iterations.numpy()) if step is None else step
        return state_lib.State(
            kind=kind, step=step,
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

    def start_checksum(self):
        return checksum([v.numpy() for v in
                         state_lib.model_variables(self.model)])

    def fresh_init(self, seed):
        """Variables of a newly initialised model (seed `seed`), as a State."""
        keras.utils.set_random_seed(int(seed))
        other = self._model_fn()
        values = [np.asarray(v.numpy()) for v in
                  state_lib.model_variables(other)]
        mine = state_lib.model_variables(self.model)
        if [v.shape for v in values] != [tuple(v.shape) for v in mine]:
            raise ValueError("model_fn built a different architecture.")
        return state_lib.State(kind="reinit", step=0, model=values,
                               optimizer=None, manifest={})

    # -- files ------------------------------------------------------------

    def save(self, path, *, step, kind, with_optimizer=True):
        state_lib.save_state(
            path, self.model, self.optimizer if with_optimizer else None,
            step=step, kind=kind, model_name=self.model_name)

    def load(self, path, *, kind=None, need_optimizer=False):
        return state_lib.load_state(
            path, self.model, self.optimizer, model_name=self.model_name,
            kind=kind, need_optimizer=need_optimizer)

    # -- training ---------------------------------------------------------

    def evaluate(self, dataset):
        logs = self.model.evaluate(dataset, verbose=0, return_dict=True)
        return float(logs["loss"]), float(logs["accuracy"])

    def train(self, start, masks, end_step, data_seed, directory, *,
              label="", log_dir=None):
        """Trains to `end_step`, resuming from `directory/checkpoints`.

        Args:
          start: callable setting the starting state (weights, masks,
            optimizer, iterations); called only when there is no checkpoint.
          masks: the masks of this training (set before resuming).
          end_step: the step to train to (T).
          data_seed: the data order u.
          directory: the training's folder (checkpoints/ goes inside).
          label: shown in progress lines.
          log_dir: TensorBoard folder, or None.

        Returns:
          dict with the last segment's training loss and accuracy, the start
          step, and whether the training was resumed.
        """
        ckpt_dir = os.path.join(directory, "checkpoints")
        latest = latest_checkpoint(ckpt_dir)
        resumed = latest is not None
        if resumed:
            step, path = latest
            saved = self.load(path, kind="checkpoint")
            state_lib.apply_state(self.model, saved, self.optimizer)
            self.set_masks(masks)
            self.optimizer.iterations.assign(saved.step)
            step = saved.step
            if self.verbose:
                print(f"[{label}] resuming from {path} (step {step})",
                      flush=True)
        else:
            start()
            if any(not np.array_equal(self.masks()[p], masks[p])
                   for p in self.paths):
                raise RuntimeError("start() set other masks than `masks`.")
            step = int(self.optimizer.iterations.numpy())
        first = step
        spe = self.steps.steps_per_epoch
        writer = tf.summary.create_file_writer(log_dir) if log_dir else None
        last = {}
        try:
            while step < end_step:
                t0 = time.time()
                seg_end = min(end_step, (step // spe + 1) * spe)
                n = seg_end - step
                ds = self.data.train(data_seed, step).take(n)
                history = self.model.fit(ds, epochs=1, steps_per_epoch=n,
                                         verbose=0, shuffle=False)
                now = int(self.optimizer.iterations.numpy())
                if now != seg_end:
                    raise RuntimeError(
                        f"training reached step {now}, expected {seg_end}.")
                step = seg_end
                last = {k: float(v[-1]) for k, v in history.history.items()}
                self.save(os.path.join(ckpt_dir, f"step_{step:09d}.npz"),
                          step=step, kind="checkpoint")
                for old_step, old in _checkpoints(ckpt_dir)[:-2]:
                    os.remove(old)
                test = None
                if writer is not None:
                    if self.config.eval_every_epoch or step == end_step:
                        test = self.evaluate(self.data.test())
                    self._log(writer, step, last, test)
                if self.verbose:
                    extra = (f" test_acc {test[1]:.4f}" if test else "")
                    print(f"[{label}] step {step}/{end_step} loss "
                          f"{last.get('loss', float('nan')):.4f} acc "
                          f"{last.get('accuracy', float('nan')):.4f}{extra} "
                          f"({time.time() - t0:.1f}s)", flush=True)
                _after_checkpoint(step, ckpt_dir)
        finally:
            if writer is not None:
                writer.close()
        return {"train_loss": last.get("loss"),
                "train_accuracy": last.get("accuracy"),
                "start_step": first, "resumed": resumed}

    def _log(self, writer, step, logs, test):
        lr = self.optimizer.learning_rate
        nonzeros = sum(int(np.count_nonzero(mw.mask.numpy()))
                       for mw in self.masked)
        with writer.as_default(step=step):
            for key, value in logs.items():
                tf.summary.scalar(f"train/{key}", value)
            if test is not None:
                tf.summary.scalar("test/loss", test[0])
                tf.summary.scalar("test/accuracy", test[1])
            tf.summary.scalar("learning_rate", float(np.asarray(lr)))
            tf.summary.scalar("density", nonzeros / sum(self.sizes.values()))
        writer.flush()


def _checkpoints(directory):
    found = [(int(m.group(1)), os.path.join(directory, name))
             for name in os.listdir(directory)
             for m in [_CKPT_RE.match(name)] if m]
    return sorted(found)
