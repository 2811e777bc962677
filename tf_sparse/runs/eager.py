"""What the run engine does differently when Keras runs on JAX or PyTorch.

The engine is one loop on every backend (`runs/runner.py`); on TensorFlow
mask updates run inside the compiled train step (`training.attach`) and
checkpoints are tf.train's. Elsewhere the runner takes these pieces:

- `check`: refuses, before anything is written, what cannot run there
  (`steps_per_execution` > 1: updates run between two steps);
- `jit_compile`: JAX always jits the step (unless `run_eagerly`);
- `mask_update_callbacks`: `tfs.callbacks.MaskUpdate`, which runs each
  due update between two train steps (`training.EagerUpdates`);
- `checkpoint`: a `KerasCheckpoint` (`runs/keras_checkpoint.py`, one
  `.keras` file per checkpoint) instead of `TrainingCheckpoint`;
- `host_batch`: a batch of the tf.data stream as NumPy arrays, for what
  reads a batch outside `fit` (SNIP's first batch).

Data stays the engine's tf.data stream (Keras's `fit` reads tf.data on
every backend), so the batch at step `s` is the same as on TensorFlow;
tf.distribute strategies are refused by `distribute.create_strategy`.

Example:

    if eager.applies():
        eager.check(config, info)
        callbacks = eager.mask_update_callbacks(session) + callbacks
"""

import numpy as np

from tf_sparse import backend
from tf_sparse import callbacks as callbacks_lib
from tf_sparse.runs import keras_checkpoint


def applies():
    """True when Keras runs on a backend other than TensorFlow."""
    return not backend.is_tensorflow()


def check(config, info):
    """Raises `UnsupportedBackendError` for settings the eager path cannot
    run (nothing on TensorFlow); `info`: the run's `ReplicaInfo`."""
    if not applies():
        return
    if info.strategy != "default":
        backend.require_tensorflow(
            f"tf.distribute strategy {info.strategy!r}",
            "Under this backend the run engine trains on one device.")
    if config.steps_per_execution != 1:
        raise backend.UnsupportedBackendError(
            f"steps_per_execution={config.steps_per_execution} on the "
            f"{backend.name()!r} backend: mask updates run between two train "
            "steps there, so the run engine needs steps_per_execution=1 "
            "(or KERAS_BACKEND=tensorflow, which updates inside the step).")


def jit_compile(config):
    """The `jit_compile` the run's model is compiled with.

    On TensorFlow `jit_compile=False` still runs a compiled graph
    (`tf.function` without XLA), so the config's value stands. JAX has no
    compiled step without XLA: `jit_compile=False` there would run the step
    op by op (Keras's debugging mode, slower), so the step is
    jitted unless `run_eagerly`. PyTorch: the config's value
    (`torch.compile` when True).

    >>> jit_compile(ml_collections.ConfigDict(
    ...     {"jit_compile": False, "run_eagerly": False}))
    True    # under JAX; False on TensorFlow and PyTorch
    """
    if backend.name() == "jax" and not config.run_eagerly:
        return True
    return bool(config.jit_compile)


def mask_update_callbacks(session):
    """`[MaskUpdate(algorithm)]` on JAX / PyTorch (before the runner's own
    callbacks, so a checkpoint after step `s` holds the update of step
    `s`); `[]` on TensorFlow or without an algorithm."""
    if not applies() or session.algorithm is None:
        return []
    return [callbacks_lib.MaskUpdate(session.algorithm)]


def checkpoint(directory, model, algorithm, *, max_to_keep,
               on_bad_checkpoint):
    """The `.keras` checkpoints of a run on JAX / PyTorch."""
    return keras_checkpoint.KerasCheckpoint(
        directory, model, algorithm, max_to_keep=max_to_keep,
        on_bad_checkpoint=on_bad_checkpoint)


def host_batch(batch):
    """A batch of tensors as a tuple of NumPy arrays.

    >>> host_batch((np.zeros(2), np.ones(2)))[1].tolist()
    [1.0, 1.0]
    """
    return tuple(np.asarray(part) for part in batch)
