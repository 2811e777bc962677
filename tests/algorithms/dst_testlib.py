"""Helpers for the dynamic-sparse-training tests: tiny models with chosen
masks, weights and optimizer slots, and a callback that checks every update.
"""

import keras
import numpy as np
import tensorflow as tf

import tf_sparse as tfs


def chain_model(shapes, masks=None, kernels=None, optimizer=None, seed=0):
    """Dense layers l0, l1, ... with kernels of `shapes`, masks attached.

    `masks`/`kernels`: lists of arrays (flat or shaped) per layer. The model
    is compiled (mse) and its optimizer built, so slots can be written.
    """
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((shapes[0][0],))
    x = inputs
    for i, (_, units) in enumerate(shapes):
        x = keras.layers.Dense(units, name=f"l{i}")(x)
    model = keras.Model(inputs, x)
    if kernels is not None:
        for i, k in enumerate(kernels):
            model.get_layer(f"l{i}").kernel.assign(
                np.asarray(k, np.float32).reshape(shapes[i]))
    if masks is None:
        tfs.sparsify(model, sparsity=0.5, seed=seed)
    else:
        tfs.sparsify(model, masks={
            f"l{i}/kernel": np.asarray(m, np.float32).reshape(shapes[i])
            for i, m in enumerate(masks)})
    model.compile(optimizer or keras.optimizers.SGD(0.1, momentum=0.9), "mse")
    model.optimizer.build(model.trainable_variables)
    return model


def slot(model, layer, attr):
    """The optimizer slot `attr` ("momentums", "_velocities", ...) of the
    kernel of layer `layer`."""
    optimizer = model.optimizer
    variable = model.get_layer(layer).kernel
    return getattr(optimizer, attr)[optimizer._get_variable_index(variable)]


def set_slot(model, layer, attr, value):
    var = slot(model, layer, attr)
    var.assign(np.asarray(value, np.float32).reshape(var.shape))


def masks_of(model):
    return [mw.mask.numpy().reshape(-1) > 0 for mw in tfs.masked_weights(model)]


def weights_of(model):
    return [mw.variable.numpy().reshape(-1).copy()
            for mw in tfs.masked_weights(model)]


def run_update(model, algorithm, step):
    """Attaches (if needed) and runs one update eagerly at `step`, plus the
    base class's zeroing of dropped weights."""
    if tfs.training.attached_algorithm(model) is not algorithm:
        tfs.training.attach(model, algorithm)
    algorithm.update(tf.constant(step, tf.int64), None)
    for mw in algorithm.weights:
        mw.variable.assign(tfs.masking.keep_active(mw.variable, mw.mask))


class CheckEveryUpdate(keras.callbacks.Callback):
    """After each mask update during fit: exact per-layer and total counts,
    the recorded dropped/grown numbers match the mask change, pruned weights
    are zero. Collects one record per update."""

    def __init__(self, algorithm):
        super().__init__()
        self.algorithm = algorithm
        self.records = []
        self.seen = 0
        self.previous = None

    def on_train_begin(self, logs=None):
        self.previous = masks_of(self.model)
        self.budget = int(sum(m.sum() for m in self.previous))

    def on_train_batch_end(self, batch, logs=None):
        state = self.algorithm.state
        n = int(state.num_updates.numpy())
        if n == self.seen:
            return
        assert n == self.seen + 1, "one update per step at most"
        self.seen = n
        now = masks_of(self.model)
        dropped = state.dropped.numpy()
        grown = state.grown.numpy()
        regrown = state.regrown.numpy()
        record = {"step": int(state.last_step.numpy()), "layers": []}
        for i, (old, new) in enumerate(zip(self.previous, now)):
            left = int(np.sum(old & ~new))
            entered = int(np.sum(~old & new))
            # Exact counts: n - r + g per layer.
            assert new.sum() == old.sum() - dropped[i] + grown[i]
            # Net changes are the drops/grows that were not regrowth.
            assert left == dropped[i] - regrown[i]
            assert entered == grown[i] - regrown[i]
            record["layers"].append(
                {"left": left, "entered": entered, "regrown": int(regrown[i]),
                 "n": int(new.sum())})
        total = int(sum(m.sum() for m in now))
        assert total == self.budget, (total, self.budget)
        assert int(state.nonzeros.numpy()) == self.budget
        for mw in tfs.masked_weights(self.model):
            assert np.all(mw.variable.numpy()[mw.mask.numpy() == 0] == 0.0)
        self.records.append(record)
        self.previous = now


def mlp_data(n=128, features=8, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    y = rng.integers(0, classes, size=n).astype("int32")
    return x, y


def mlp(seed=0, sparsity=0.8, strategy_seed=5):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8,))
    x = keras.layers.Dense(32, activation="relu", name="fc1")(inputs)
    x = keras.layers.Dense(16, activation="relu", name="fc2")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(x))
    return tfs.sparsify(model, sparsity=sparsity, seed=strategy_seed)
