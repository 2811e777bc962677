"""Checkpoints of a training run: model, masks, optimizer slots, progress.

Masks are tracked through their layers, so `tf.train.Checkpoint(model=...)`
carries them; this module adds the optimizer, the algorithm's state and the
number of finished epochs, and turns TensorFlow's restore failures into
errors that say what went wrong.

Example:

    ckpt = tfs.checkpoints.TrainingCheckpoint("runs/sm/ckpt", model)
    start_epoch = ckpt.restore()          # 0 when the directory is empty
    model.fit(..., initial_epoch=start_epoch,
              callbacks=[tfs.callbacks.SaveCheckpoint(ckpt)])
"""

import tensorflow as tf

from tf_sparse import training


class CheckpointMismatchError(ValueError):
    """A checkpoint does not belong to the model it is restored into."""


class TrainingCheckpoint:
    """A `tf.train.CheckpointManager` over everything a run needs to resume."""

    def __init__(self, directory, model, algorithm=None, max_to_keep=2):
        self.directory = str(directory)
        self.model = model
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False,
                                 name="epoch")
        # Batches trained, where a runner counts them apart from the
        # optimizer's iterations (float16 loss scaling skips steps).
        self.batches = tf.Variable(0, dtype=tf.int64, trainable=False,
                                   name="batches")
        algorithm = algorithm or training.attached_algorithm(model)
        items = dict(algorithm.checkpoint_items()) if algorithm else {}
        self.checkpoint = tf.train.Checkpoint(
            model=model, optimizer=model.optimizer, epoch=self.epoch,
            batches=self.batches, **items)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self.directory, max_to_keep=max_to_keep)

    @property
    def latest(self):
        return self.manager.latest_checkpoint

    def restore(self):
        """Restores the latest checkpoint; returns the epochs already done."""
        path = self.manager.latest_checkpoint
        if path is None:
            return 0
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        try:
            status = self.checkpoint.restore(path)
            status.assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as error:
            raise CheckpointMismatchError(
                f"Checkpoint {path} does not match model "
                f"{self.model.name!r} (another model, other layer shapes, or "
                f"a corrupted file): {str(error)[:500]}") from error
        return int(self.epoch.numpy())

    def save(self, epochs_done, step=None, batches=None):
        """Saves everything; numbered by `step` (default: epochs done).

        `batches`: batches trained so far, if the runner counts them (read
        back as `self.batches` after `restore`).
        """
        self.epoch.assign(epochs_done)
        if batches is not None:
            self.batches.assign(batches)
        return self.manager.save(
            checkpoint_number=epochs_done if step is None else step)
