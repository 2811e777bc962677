"""Small models, data and a per-step checker for the backend tests.

Everything here uses NumPy for its numbers, so the same seed gives the same
starting weights, masks and batches on every Keras backend.
"""

import keras
import numpy as np

import tf_sparse as tfs

SIZES = (8, 32, 16, 3)


def mlp(seed=0):
    """An MLP 8-32-16-3 with NumPy-drawn weights (the same on every
    backend)."""
    inputs = keras.Input((SIZES[0],))
    x = inputs
    for i, units in enumerate(SIZES[1:]):
        last = i == len(SIZES) - 2
        x = keras.layers.Dense(units, activation=None if last else "relu",
                               name="out" if last else f"fc{i + 1}")(x)
    model = keras.Model(inputs, x, name="mlp")
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32")
                       for w in model.get_weights()])
    return model


def data(n=96, seed=0):
    rng = np.random.default_rng(seed + 100)
    x = rng.normal(size=(n, SIZES[0])).astype("float32")
    y = rng.integers(0, SIZES[-1], size=(n,)).astype("int32")
    return x, y


def compiled(optimizer, sparsity=0.8, seed=0, **sparsify_kwargs):
    model = tfs.sparsify(mlp(seed), sparsity=sparsity, seed=seed,
                         **sparsify_kwargs)
    model.compile(optimizer=optimizer, loss=keras.losses.
                  SparseCategoricalCrossentropy(from_logits=True))
    return model


def masks(model):
    return [np.array(keras.ops.convert_to_numpy(mw.mask))
            for mw in tfs.masked_weights(model)]


def weights(model):
    return [np.array(w) for w in model.get_weights()]


def sync(model):
    """Under JAX, copies the training state back into the variables."""
    if hasattr(model, "jax_state_sync"):
        model.jax_state_sync()


class StepLog(keras.callbacks.Callback):
    """After every train step: the count of nonzero pruned weights (must
    stay 0) and each weight's nonzero count, keyed by the step."""

    def __init__(self, model):
        super().__init__()
        self.target = model
        self.pruned_nonzero = []
        self.counts = {}
        self.step = None

    def on_train_begin(self, logs=None):
        sync(self.target)
        self.step = int(keras.ops.convert_to_numpy(
            self.target.optimizer.iterations))

    def on_train_batch_end(self, batch, logs=None):
        sync(self.target)
        self.step += 1
        bad = 0
        counts = []
        for mw in tfs.masked_weights(self.target):
            w = keras.ops.convert_to_numpy(mw.variable)
            m = keras.ops.convert_to_numpy(mw.mask)
            bad += int(np.count_nonzero((m == 0) & (w != 0)))
            counts.append(int(np.count_nonzero(m)))
        self.pruned_nonzero.append(bad)
        self.counts[self.step] = tuple(counts)


def summary_steps(log_dir):
    """{tag: sorted steps} of the scalars in the event files of `log_dir`
    (read with TensorFlow, which tf-sparse's summaries write with)."""
    import glob  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    found = {}
    for path in glob.glob(f"{log_dir}/events.*"):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                found.setdefault(value.tag, set()).add(int(event.step))
    return {tag: sorted(steps) for tag, steps in found.items()}
