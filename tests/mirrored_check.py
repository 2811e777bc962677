"""Run by test_distributed.py in its own process: trains a sparse model under
MirroredStrategy on 2 logical CPUs and on 1 device, and prints JSON with the
per-replica masks and weights.

Usage: python tests/mirrored_check.py OPTIMIZER
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tf_sparse as tfs  # noqa: E402


class RollEvery3(tfs.algorithms.MaskAlgorithm):
    """Moves the first mask by one position every 3 steps (in graph)."""
    name = "roll"

    def should_update(self, step):
        return tf.equal(step % 3, 0)

    def update(self, step, data):
        mw = self.weights[0]
        mw.mask.assign(tf.reshape(tf.roll(tf.reshape(mw.mask, [-1]), 1, 0),
                                  mw.mask.shape))


def train(strategy, optimizer_name):
    with strategy.scope():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((8,))
        x = keras.layers.Dense(16, activation="relu", name="fc1")(inputs)
        model = keras.Model(inputs, keras.layers.Dense(3, name="out")(x))
        tfs.sparsify(model, sparsity=0.75, seed=5)
        optimizer = {"sgd": lambda: keras.optimizers.SGD(0.1, momentum=0.9),
                     "adamw": lambda: keras.optimizers.AdamW(0.01)}[
                         optimizer_name]()
        model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(
            from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = rng.integers(0, 3, size=64).astype("int32")
    model.fit(x, y, batch_size=16, epochs=3, verbose=0, shuffle=False,
              callbacks=[tfs.callbacks.MaskUpdate(RollEvery3())])
    out = {}
    for mw in tfs.masked_weights(model):
        values = getattr(mw.variable.value, "values", (mw.variable.value,))
        masks = getattr(mw.mask.value, "values", (mw.mask.value,))
        out[mw.path] = {
            "weights": [v.numpy().tolist() for v in values],
            "masks": [m.numpy().tolist() for m in masks],
            "devices": [v.device for v in values],
        }
    return out


if __name__ == "__main__":
    name = sys.argv[1]
    result = {
        "mirrored": train(tf.distribute.MirroredStrategy(
            ["/cpu:0", "/cpu:1"]), name),
        "single": train(tf.distribute.get_strategy(), name),
    }
    print(json.dumps(result))
