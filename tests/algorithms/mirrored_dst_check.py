"""Run by test_replicas.py in its own process: dynamic sparse training under
MirroredStrategy on 2 logical CPUs and on 1 device, printing JSON with every
replica's masks after each mask update.

Usage: python tests/algorithms/mirrored_dst_check.py
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tf_sparse as tfs  # noqa: E402

STEPS = 12        # 3 epochs of 4 steps (batch 16, 64 examples)


def algorithm(name):
    if name == "sparse_momentum":
        return tfs.algorithms.SparseMomentum(total_steps=STEPS, every=3,
                                             seed=3)
    if name == "set":
        return tfs.algorithms.SET(total_steps=STEPS, every=3, seed=3)
    if name == "rigl":
        return tfs.algorithms.RigL(total_steps=STEPS, every=3, end=1.0,
                                   seed=3)
    if name == "sparse_momentum_ema":
        return tfs.algorithms.SparseMomentum(
            total_steps=STEPS, every=3, momentum_source="ema", seed=3)
    raise ValueError(name)


class Record(keras.callbacks.Callback):
    """Masks of every replica after each update."""

    def __init__(self, alg):
        super().__init__()
        self.alg = alg
        self.seen = 0
        self.history = []

    def on_train_batch_end(self, batch, logs=None):
        n = int(self.alg.state.num_updates.numpy())
        if n == self.seen:
            return
        self.seen = n
        entry = {}
        for mw in tfs.masked_weights(self.model):
            values = getattr(mw.mask.value, "values", (mw.mask.value,))
            entry[mw.path] = [v.numpy().astype(int).tolist() for v in values]
        self.history.append(entry)


def train(strategy, name):
    with strategy.scope():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((8,))
        x = keras.layers.Dense(16, activation="relu", name="fc1")(inputs)
        model = keras.Model(inputs, keras.layers.Dense(3, name="out")(x))
        tfs.sparsify(model, sparsity=0.75, seed=5)
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9)
                      if name != "sparse_momentum_ema"
                      else keras.optimizers.SGD(0.1),
                      keras.losses.SparseCategoricalCrossentropy(
                          from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = rng.integers(0, 3, size=64).astype("int32")
    alg = algorithm(name)
    record = Record(alg)
    model.fit(x, y, batch_size=16, epochs=3, verbose=0, shuffle=False,
              callbacks=[tfs.callbacks.MaskUpdate(alg), record])
    weights = {}
    for mw in tfs.masked_weights(model):
        values = getattr(mw.variable.value, "values", (mw.variable.value,))
        weights[mw.path] = [v.numpy().tolist() for v in values]
    return {"history": record.history, "weights": weights,
            "updates": int(alg.state.num_updates.numpy())}


if __name__ == "__main__":
    out = {}
    for name in ("sparse_momentum", "set", "rigl", "sparse_momentum_ema"):
        out[name] = {
            "mirrored": train(tf.distribute.MirroredStrategy(
                ["/cpu:0", "/cpu:1"]), name),
            "single": train(tf.distribute.get_strategy(), name),
        }
    print(json.dumps(out))
