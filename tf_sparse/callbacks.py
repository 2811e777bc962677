"""Keras callbacks: attach an algorithm, log sparsity, save checkpoints.

Example:

    model.fit(train, epochs=10, callbacks=[
        tfs.callbacks.MaskUpdate(tfs.algorithms.Static()),
        tfs.callbacks.SparsitySummaries("runs/sm/tensorboard"),
    ])
"""

import keras
import tensorflow as tf

from tf_sparse import diagnostics
from tf_sparse import training


class MaskUpdate(keras.callbacks.Callback):
    """Attaches a mask-update algorithm to the model's train step.

    The callback only wires the algorithm in; the updates themselves run
    inside the compiled train function (see `tf_sparse.training`).
    """

    def __init__(self, algorithm):
        super().__init__()
        self.algorithm = algorithm

    def set_model(self, model):
        super().set_model(model)
        # set_model runs before fit builds its train function, so the hook
        # is traced into it.
        training.attach(model, self.algorithm)


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
