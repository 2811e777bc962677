"""Golden values of one short run of every experiment kind.

Recorded before the one-engine redesign (issue 12) with the four runners it
replaced, and pinned by tests/test_golden_runs.py: the engine
(`tf_sparse.runs`) gives the same numbers to the bit. What is recorded per
kind:

- `trace`: `(optimizer step, running-mean training loss)` at sampled batch
  ends of every `fit` the run makes, in order;
- `masks` / `weights`: sha256 of every mask and every model variable at the
  end of the last `fit` of the run;
- `results`: the final metrics the run returns (test loss and accuracy,
  density, ...), and for the lottery the files of every level.

A fit is observed by wrapping `keras.Model.fit` so that a recording callback
is added; the runners are called through their public entry points.

Record (only on purpose, e.g. after an intentional fix that the commit
explains):

    python tests/golden_runs.py --write
"""

import hashlib
import json
import os
import platform
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GOLDEN = os.path.join(HERE, "golden", "runs.json")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


# --------------------------------------------------------------------------
# Observation
# --------------------------------------------------------------------------


def sha(arrays):
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def mask_arrays(model):
    from tf_sparse import masking
    return [keras.ops.convert_to_numpy(mw.mask)
            for mw in masking.masked_weights(model)]


class Recorder(keras.callbacks.Callback):
    """Samples the running loss and hashes the model at the end of a fit."""

    def __init__(self, log):
        super().__init__()
        self.log = log

    def on_train_batch_end(self, batch, logs=None):
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        if step % 5 == 0 or batch == 0:
            self.log["trace"].append([step, float(logs["loss"])])

    def on_train_end(self, logs=None):
        self.log["masks"] = sha(mask_arrays(self.model))
        self.log["weights"] = sha(
            [keras.ops.convert_to_numpy(v) for v in self.model.variables])


class observe:
    """Context manager: every `fit` inside records into `self.log`."""

    def __enter__(self):
        self.log = {"trace": [], "masks": None, "weights": None}
        self.original = keras.Model.fit
        original, log = self.original, self.log

        def fit(model, *args, callbacks=None, **kwargs):
            callbacks = list(callbacks or []) + [Recorder(log)]
            return original(model, *args, callbacks=callbacks, **kwargs)

        keras.Model.fit = fit
        return self

    def __exit__(self, *exc):
        keras.Model.fit = self.original


def canary():
    """A hash of a few float32 kernels on fixed inputs: when it differs from
    the recorded one, this machine computes floats differently (another CPU
    or TensorFlow build) and the goldens cannot be compared bit for bit."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(100, 784)).astype("float32"))
    w = tf.constant(rng.normal(size=(784, 300)).astype("float32"))
    img = tf.constant(rng.normal(size=(8, 28, 28, 3)).astype("float32"))
    k = tf.constant(rng.normal(size=(5, 5, 3, 16)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(w)
        logits = tf.matmul(x, w)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            tf.zeros([100], tf.int32), logits))
    grad = tape.gradient(loss, w)
    conv = tf.nn.conv2d(img, k, 1, "SAME")
    return sha([logits.numpy(), grad.numpy(), conv.numpy()])


def _float(value):
    return None if value is None else float(value)


# --------------------------------------------------------------------------
# The kinds
# --------------------------------------------------------------------------


# The settings the golden values were recorded with, where a preset has
# changed since (the presets now follow the papers' reference code).
RECORDED = dict(epochs=20, validation_fraction=0.0, lr_boundaries=(0.5, 0.75),
                lr_decay_every="0", weight_decay_mode="decoupled",
                init="keras")


def _fashion_config(algorithm, **changes):
    from tf_sparse import runs
    c = runs.default_config("fashion_mnist")
    for key, value in RECORDED.items():
        c[key] = value
    c.model = "lenet300_100"
    c.epochs = 2
    c.steps_per_epoch = 20
    c.sparsity = 0.9
    c.algorithm = algorithm
    c.rescale_init = True
    c.seed = 5
    for key, value in changes.items():
        if key == "algorithm_params":
            for k, v in value.items():
                c.algorithm_params[k] = v
        elif key == "algorithm_kwargs":
            with c.unlocked():
                for k, v in value.items():
                    c.algorithm_kwargs[k] = v
        else:
            c[key] = value
    return c


def _train_results(results):
    keys = ("test_loss", "test_accuracy", "density", "total_nonzeros", "steps")
    out = {k: results[k] for k in keys if k in results}
    if "mask_drift" in results:
        out["mask_drift"] = results["mask_drift"]
    return out


def run_train(workdir, config):
    from tf_sparse import runs
    return _train_results(runs.run(config, workdir, verbose=0))


def kind_static(workdir):
    return run_train(workdir, _fashion_config("static"))


def kind_sparse_momentum(workdir):
    return run_train(workdir, _fashion_config(
        "sparse_momentum", algorithm_params={"update_every": 10}))


def kind_set(workdir):
    return run_train(workdir, _fashion_config("set"))


def kind_rigl(workdir):
    return run_train(workdir, _fashion_config(
        "rigl", distribution="erk", algorithm_params={"update_every": 8}))


def kind_snip(workdir):
    return run_train(workdir, _fashion_config(
        "snip", rescale_init=False, algorithm_params={"snip_batch_size": 64}))


def kind_gmp(workdir):
    return run_train(workdir, _fashion_config(
        "gmp", rescale_init=False, algorithm_kwargs=dict(
            begin=0.1, end=0.6, frequency=5, schedule="cubic",
            scope="layerwise")))


def kind_acdc(workdir):
    return run_train(workdir, _fashion_config(
        "acdc", rescale_init=False, epochs=4, algorithm_kwargs=dict(
            warmup=0.25, phase_length=0.125, end_sparse=0.25, tail="dense",
            scope="global", reset_momentum=True)))


def kind_distillation(workdir):
    """A recipe: dense pretraining, then GMP distilled from it."""
    from tf_sparse import recipes
    c = recipes.default_config()
    c.model = "lenet300_100"
    c.epochs = 2
    c.steps_per_epoch = 15
    c.pretrain_epochs = 1
    c.algorithm = "gmp"
    c.sparsity = 0.8
    c.teacher = "pretrained"
    c.train_eval_examples = 500
    c.entropy_examples = 200
    c.algorithm_kwargs.frequency = 0.2
    results = recipes.run(c, workdir)
    out = {k: results[k] for k in ("test_loss", "test_accuracy", "density",
                                   "total_nonzeros", "steps")}
    out["history"] = [{k: v for k, v in h.items() if k != "seconds"}
                      for h in results["history"]]
    return out


def _lottery_config():
    from tf_sparse.lottery import config as lottery_config
    c = lottery_config.default_config()
    c.weight_decay_mode = "decoupled"      # as recorded (Keras's SGD)
    c.model = "lenet300_100"
    c.dataset = "fashion_mnist"
    c.epochs = 1                 # 468 steps of 128
    c.batch_size = 128
    c.learning_rate = 0.1
    c.momentum = 0.9
    c.lr_boundaries = (0.5,)
    c.rewind = "50it"
    c.rewind_optimizer = True
    c.keep_dense = ("fc3",)
    c.levels = 2
    c.baselines = ("random_prune",)
    c.baseline_levels = (2,)
    c.eval_every_epochs = 0
    c.train_eval_examples = 1000
    return c


def _lottery_files(workdir):
    from tf_sparse.runs import workdir as workdir_lib
    out = {}
    for root, _, files in sorted(os.walk(workdir)):
        rel = os.path.relpath(root, workdir)
        for name in sorted(files):
            path = os.path.join(root, name)
            key = os.path.join(rel, name)
            if name == "metrics.json":
                m = workdir_lib.read_json(path)
                out[key] = {k: m[k] for k in (
                    "test_accuracy", "test_loss", "train_loss", "nonzeros",
                    "start_checksum", "start_step", "end_step")}
            elif name in ("final.npz", "mask.npz", "init.npz", "rewind.npz"):
                with np.load(path) as data:
                    out[key] = sha([data[k] for k in sorted(data.files)
                                    if k != "__manifest__"])
    return out


def kind_lottery(workdir):
    """IMP with rewinding to step 50, 2 levels, a random-pruning baseline,
    then the stability pair (2 data orders) of level 1."""
    from tf_sparse.lottery import imp
    from tf_sparse.lottery import stability
    imp.run(_lottery_config(), workdir, verbose=0, report=False)
    c = stability.default_config()
    c.levels = (1,)
    c.kinds = ("imp",)
    c.copies = 2
    c.alphas = 5
    c.barrier = True
    c.pruning = True
    c.train_eval_examples = 1000
    out = stability.run(workdir, c, verbose=0, report=False)
    result = out["results"][0]
    keep = {k: result[k] for k in (
        "data_order_l2", "data_order_angle", "test_barrier", "train_barrier",
        "pruning_l2", "pruning_angle", "density")}
    keep["pairs"] = result["pairs"]
    keep["copies"] = [c["test_accuracy"] for c in result["copies"]]
    return {"files": _lottery_files(workdir), "stability": keep}


def write_cifar10(directory, per_batch=40, seed=0):
    """Small CIFAR-10 python batches (the layout of cifar-10-batches-py)."""
    import pickle
    rng = np.random.default_rng(seed)
    py = os.path.join(directory, "cifar-10-batches-py")
    os.makedirs(py, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch)
        with open(os.path.join(py, name), "wb") as f:
            pickle.dump({b"batch_label": name.encode(),
                         b"labels": labels.tolist(), b"data": data,
                         b"filenames": [b"x.png"] * per_batch}, f, protocol=2)
    return directory


def kind_cifar10(workdir):
    from tf_sparse import runs
    data = write_cifar10(os.path.join(workdir, "data"))
    c = runs.default_config("cifar10")
    c.update(dict(weight_decay_mode="l2", init="keras"))
    c.update(dict(
        model="lenet5_caffe", data_dir=data, data_source="python",
        batch_size=20, eval_batch_size=40, epochs=2, log_every_steps=0,
        algorithm="sparse_momentum", sparsity=0.9, seed=3))
    c.algorithm_params.update_every = 4
    results = runs.run(c, os.path.join(workdir, "run"), verbose=0)
    return {k: results[k] for k in ("test_loss", "test_accuracy", "density",
                                    "total_nonzeros", "steps")}


KINDS = {
    "static": kind_static,
    "sparse_momentum": kind_sparse_momentum,
    "set": kind_set,
    "rigl": kind_rigl,
    "snip": kind_snip,
    "gmp": kind_gmp,
    "acdc": kind_acdc,
    "distillation": kind_distillation,
    "lottery": kind_lottery,
    "cifar10": kind_cifar10,
}


def record(name):
    """Runs one kind in a fresh Keras session; returns its golden record."""
    keras.backend.clear_session()
    with tempfile.TemporaryDirectory() as tmp, observe() as seen:
        results = KINDS[name](os.path.join(tmp, name))
    return {"results": json.loads(json.dumps(results)), **seen.log}


def load():
    with open(GOLDEN) as f:
        return json.load(f)


def main(argv):
    names = [a for a in argv[1:] if not a.startswith("--")] or list(KINDS)
    golden = {"canary": canary(), "machine": platform.machine(),
              "tensorflow": tf.__version__, "keras": keras.__version__,
              "kinds": {}}
    if os.path.exists(GOLDEN):
        golden["kinds"] = load()["kinds"]
    for name in names:
        golden["kinds"][name] = record(name)
        print(name, json.dumps(golden["kinds"][name]["results"])[:200],
              flush=True)
    if "--write" in argv:
        os.makedirs(os.path.dirname(GOLDEN), exist_ok=True)
        with open(GOLDEN, "w") as f:
            json.dump(golden, f, indent=1, sort_keys=True)
            f.write("\n")
    else:
        print(json.dumps(golden, indent=1, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv)
