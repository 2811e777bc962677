"""Run by test_distributed_runs.py in its own processes: trains a sparse ResNet-20
through `tf_sparse.runs.run` (the code behind tools/train_cifar10.py) and
saves every local replica's masks, kernels and batch-norm statistics.

Usage:
  python replica_check.py mirrored ALGORITHM OUT_DIR   # 2 logical CPUs, then 1 device
  python replica_check.py worker ALGORITHM OUT_DIR     # one MultiWorkerMirrored worker
                                                       # (cluster from TF_CONFIG)

Writes OUT_DIR/<run>.npz (arrays "<path>|weights" and "<path>|masks" of shape
[replicas, ...], "<path>|initial_mask") and OUT_DIR/<run>.json (results).
ALGORITHM is a registered algorithm name (sparse momentum updates after
step 3, the end of the first of two 3-step epochs) or "test_random_swap", a
small in-graph algorithm defined here that drops and grows random positions
(stateless RNG keyed by step and layer) every 2 steps.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf_sparse import distribute  # noqa: E402

MODE, ALGORITHM, OUT = sys.argv[1], sys.argv[2], sys.argv[3]
if MODE == "mirrored":
    distribute.split_cpu(2)
    STRATEGIES = {"mirrored": lambda: distribute.create_strategy("mirrored"),
                  "single": lambda: distribute.create_strategy("default")}
else:
    STRATEGIES = {"worker": lambda: distribute.create_strategy("multi_worker")}
# Strategies must exist before other TensorFlow work (MultiWorkerMirrored).
STRATEGIES = {name: make() for name, make in STRATEGIES.items()}

from tf_sparse import algorithms  # noqa: E402
from tf_sparse import masking  # noqa: E402
from tf_sparse import runs  # noqa: E402
from tf_sparse.runs import model as model_lib  # noqa: E402


class RandomSwap(algorithms.MaskAlgorithm):
    """Every 2 steps, moves 3 random active positions of every layer elsewhere."""
    name = "test_random_swap"

    def __init__(self, seed=0):
        super().__init__()
        self.seed = seed

    def should_update(self, step):
        return tf.equal(step % 2, 0)

    def update(self, step, data):
        for i, mw in enumerate(self.weights):
            flat = tf.reshape(mw.mask, [-1])
            key = tf.stack([tf.cast(step, tf.int64), tf.constant(1000 * self.seed + i, tf.int64)])
            scores = tf.random.stateless_uniform(tf.shape(flat), key)
            active = flat > 0
            _, drop = tf.math.top_k(tf.where(active, -scores, -2.0), 3)
            _, grow = tf.math.top_k(tf.where(active, -1.0, scores), 3)
            new = tf.tensor_scatter_nd_update(flat, drop[:, None], tf.zeros([3], flat.dtype))
            new = tf.tensor_scatter_nd_update(new, grow[:, None], tf.ones([3], flat.dtype))
            mw.mask.assign(tf.reshape(new, tf.shape(mw.mask)))


algorithms.register(RandomSwap.name, RandomSwap)


def local_values(variable):
    value = getattr(variable, "value", variable)
    return [np.asarray(v.numpy()) for v in getattr(value, "values", (value,))]


def config():
    c = runs.default_config("cifar10")
    c.model = "resnet20"
    c.algorithm = ALGORITHM
    c.sparsity = 0.8
    c.synthetic_data = True
    c.seed = 3
    c.learning_rate = 0.01  # a calm run: single-device and mirrored stay within float noise
    c.batch_size = 8
    c.eval_batch_size = 8
    c.steps_per_epoch = 3
    c.epochs = 2
    c.eval_every_epochs = 0
    c.eval_steps = 1
    c.log_every_steps = 0
    c.validation_fraction = 0.0
    # The tolerance of the single-device comparison was set for Keras's
    # initialisation; the preset's PyTorch one (smaller kernels before batch
    # norm) amplifies the summation-order noise of the all-reduce past it.
    c.init = "keras"
    return c


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, strategy in STRATEGIES.items():
        info = distribute.describe(strategy)
        run = name if MODE == "mirrored" else f"worker{info.worker_index}"
        # Workers share one workdir, as on a real cluster with a shared file system.
        workdir = os.path.join(OUT, f"workdir_{name}")
        captured = {}
        original = model_lib.sparsify

        def sparsify_and_remember(*args, **kwargs):
            model = original(*args, **kwargs)
            captured["model"] = model
            captured["initial"] = {mw.path: local_values(mw.mask)[0]
                                   for mw in masking.masked_weights(model)}
            return model

        model_lib.sparsify = sparsify_and_remember
        try:
            results = runs.run(config(), workdir, strategy=strategy, verbose=0)
        finally:
            model_lib.sparsify = original
        model = captured["model"]
        arrays = {}
        for mw in masking.masked_weights(model):
            arrays[f"{mw.path}|weights"] = np.stack(local_values(mw.variable))
            arrays[f"{mw.path}|masks"] = np.stack(local_values(mw.mask))
            arrays[f"{mw.path}|initial_mask"] = captured["initial"][mw.path]
        for layer in model._flatten_layers():
            if hasattr(layer, "moving_mean"):
                arrays[f"{layer.name}|moving_mean"] = np.stack(local_values(layer.moving_mean))
        np.savez(os.path.join(OUT, f"{run}.npz"), **arrays)
        with open(os.path.join(OUT, f"{run}.json"), "w") as f:
            json.dump({"test_loss": results["test_loss"], "steps": results["steps"],
                       "replicas": info.num_replicas, "is_chief": info.is_chief,
                       "total_nonzeros": results["total_nonzeros"]}, f)


if __name__ == "__main__":
    main()
