"""Keras callbacks: attach an algorithm, log sparsity, save checkpoints.

Example:

    model.fit(train, epochs=10, callbacks=[
        tfs.callbacks.MaskUpdate(tfs.algorithms.Static()),
        tfs.callbacks.SparsitySummaries("runs/sm/tensorboard"),
    ])
"""

import warnings

import keras
import tensorflow as tf

from tf_sparse import backend
from tf_sparse import diagnostics
from tf_sparse import training


class MaskUpdate(keras.callbacks.Callback):
    """Attaches a mask-update algorithm to the model's train step.

    On the TensorFlow backend the callback only wires the algorithm in; the
    updates themselves run inside the compiled train function (see
    `tf_sparse.training`). On the JAX and PyTorch backends the instance is
    an `EagerMaskUpdate`, which runs them between train steps
    (`training.EagerUpdates`).
    """

    def __new__(cls, *args, **kwargs):
        del args, kwargs
        if cls is MaskUpdate and not backend.is_tensorflow():
            cls = EagerMaskUpdate
        return super().__new__(cls)

    def __init__(self, algorithm):
        super().__init__()
        self.algorithm = algorithm

    def set_model(self, model):
        super().set_model(model)
        # set_model runs before fit builds its train function, so the hook
        # is traced into it.
        training.attach(model, self.algorithm)


class EagerMaskUpdate(MaskUpdate):
    """`MaskUpdate` on the JAX and PyTorch backends: runs the algorithm's
    updates between train steps (`training.EagerUpdates`).

    It keeps its own reference to the model: reading `self.model` under JAX
    copies the whole training state back into the variables, which it does
    only on update steps. Its batch hooks run synchronously (Keras does not
    dispatch callbacks with batch hooks asynchronously).
    """

    def __init__(self, algorithm):
        super().__init__(algorithm)
        self.eager = None

    def set_model(self, model):
        super().set_model(model)
        if self.eager is None or self.eager.model is not model:
            self.eager = training.EagerUpdates(model, self.algorithm)

    def on_train_begin(self, logs=None):
        self.eager.train_begin()

    def on_train_batch_begin(self, batch, logs=None):
        self.eager.batch_begin()

    def on_train_batch_end(self, batch, logs=None):
        self.eager.batch_end()

    def on_train_end(self, logs=None):
        self.eager.train_end()


def current_learning_rate(optimizer):
    """The optimizer's learning rate at its current step, as a float."""
    lr = optimizer.learning_rate
    if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
        lr = lr(optimizer.iterations)
    return float(keras.ops.convert_to_numpy(lr))


class SparsitySummaries(keras.callbacks.Callback):
    """Writes density, nonzeros, learning rate and epoch logs to TensorBoard.

    At every epoch end, keyed by the optimizer step: `sparsity/density`
    (global), `sparsity/nonzeros`, `sparsity/<weight path>` (per-layer
    density), `learning_rate`, and the epoch's logs (loss, accuracy, ...).
    """

    def __init__(self, log_dir):
        super().__init__()
        self.log_dir = str(log_dir)
        self._writer = None

    @property
    def writer(self):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        return self._writer

    def on_epoch_end(self, epoch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        rep = diagnostics.report(self.model)
        with self.writer.as_default(step=step):
            tf.summary.scalar("sparsity/density", rep.density)
            tf.summary.scalar("sparsity/nonzeros", rep.total_nonzeros)
            for w in rep.weights:
                tf.summary.scalar(f"sparsity/{w.path}", w.density)
            tf.summary.scalar("learning_rate",
                              current_learning_rate(self.model.optimizer))
            tf.summary.scalar("epoch", epoch + 1)
            for key, value in (logs or {}).items():
                tf.summary.scalar(f"epoch/{key}", float(value))
        self.writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class SaveCheckpoint(keras.callbacks.Callback):
    """Saves a `tfs.checkpoints.TrainingCheckpoint` at every epoch end and,
    with `every_steps`, whenever the optimizer step passes a multiple of it
    (checked at each batch end, so at execution granularity when
    `steps_per_execution` > 1)."""

    def __init__(self, checkpoint, every_steps=0):
        super().__init__()
        if every_steps < 0:
            raise ValueError(f"every_steps must be >= 0, got {every_steps}.")
        self.checkpoint = checkpoint
        self.every_steps = int(every_steps)
        self._epoch = 0
        self._last_saved = None

    def _step(self):
        return int(self.model.optimizer.iterations.numpy())

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if not self.every_steps:
            return
        step = self._step()
        due = step // self.every_steps
        if due and due != self._last_saved:
            self._last_saved = due
            self.checkpoint.save(self._epoch, step=step)

    def on_epoch_end(self, epoch, logs=None):
        self.checkpoint.save(epoch + 1, step=self._step())


class MaskUpdateSummaries(keras.callbacks.Callback):
    """Writes a prune-and-grow algorithm's statistics after each mask update.

    The numbers are the algorithm's state variables, updated in graph by
    the update itself (`tfs.algorithms.PruneGrow`); this callback only reads
    and writes them, keyed by the update's optimizer step:
    `mask_update/{rate, churn, itop, nonzeros, dropped, grown, regrown}` and
    per masked weight `mask_update/{density, dropped, grown, regrown, share,
    rate}/<weight path>`. `itop` is the in-time over-parameterisation rate
    (fraction of all masked weights ever active), `churn` the fraction of
    active weights that are new after the update, `share` the layer's share
    of the regrowth (its redistribution share for sparse momentum).

    When the algorithm can list its update steps, the callback knows from
    the step count alone when to look, so it reads nothing on other batches;
    otherwise it reads the update counter at each batch end. With
    `steps_per_execution` larger than the update interval several updates
    run within one execution; all of them are written, from the algorithm's
    `update_history` (it keeps the last 64).
    """

    def __init__(self, log_dir, algorithm):
        super().__init__()
        self.log_dir = str(log_dir)
        self.algorithm = algorithm
        self._writer = None
        self._steps = None
        self._epoch_start = 0
        self._checked = 0
        self._written = 0

    @property
    def writer(self):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        return self._writer

    def on_train_begin(self, logs=None):
        steps = getattr(self.algorithm, "update_steps", lambda: None)()
        self._steps = None if steps is None else sorted(steps)
        self._checked = int(self.model.optimizer.iterations.numpy())
        state = getattr(self.algorithm, "state", None)
        self._written = (int(state.num_updates.numpy())
                         if state is not None else 0)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = int(self.model.optimizer.iterations.numpy())

    def _maybe_due(self, step):
        if self._steps is None:
            return True
        lo, self._checked = self._checked, step
        return any(lo < s <= step for s in self._steps)

    def on_train_batch_end(self, batch, logs=None):
        if self._maybe_due(self._epoch_start + batch + 1):
            self.write_if_updated()

    def on_epoch_end(self, epoch, logs=None):
        self.write_if_updated()

    def write_if_updated(self):
        """Writes every update since the last write; True if there was one."""
        state = getattr(self.algorithm, "state", None)
        if state is None:
            return False
        now = int(state.num_updates.numpy())
        if now == self._written:
            return False
        if hasattr(self.algorithm, "update_history"):
            updates = self.algorithm.update_history(since=self._written)
            if len(updates) < now - self._written:
                warnings.warn(
                    f"MaskUpdateSummaries: {now - self._written} mask updates "
                    f"ran within one execution, more than the {len(updates)} "
                    "the algorithm keeps; the oldest "
                    f"{now - self._written - len(updates)} are not written "
                    "(lower steps_per_execution).", stacklevel=2)
        else:
            updates = [self.algorithm.summary_values()]
        self._written = now
        for values in updates:
            with self.writer.as_default(step=values["step"]):
                for key in ("rate", "churn", "itop", "nonzeros", "dropped",
                            "grown", "regrown"):
                    tf.summary.scalar(f"mask_update/{key}", values[key])
                for path, layer in values["layers"].items():
                    for key, value in layer.items():
                        tf.summary.scalar(f"mask_update/{key}/{path}", value)
        self.writer.flush()
        return True

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
