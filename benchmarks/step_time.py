"""Training step time: static sparse (tf-sparse) vs dense Keras `fit`, and
tensorflow-model-optimization's prune_low_magnitude (Keras 2) as a third
column when its environment can be made.

All variants train the same architecture (benchmarks/archs.py) on synthetic
input with SGD+momentum. Variants are interleaved round by round (dense,
sparse, dense, sparse, ...) and each figure is the median over rounds of one
`fit` epoch of --steps steps, wall time and process CPU time. The tfmot column
runs in its own process and virtual environment (tfmot sets
TF_USE_LEGACY_KERAS and needs tf-keras), against its own dense tf_keras
baseline in that process; its ratio is tfmot-pruned / tf_keras-dense.

Usage:
  python benchmarks/step_time.py                 # all models, tfmot if possible
  python benchmarks/step_time.py --models=lenet300_100 --rounds=5 --no-tfmot
Writes benchmarks/results/step_time.{json,md}.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import archs  # noqa: E402
import common  # noqa: E402


def synthetic(name, steps, np):
    batch = archs.BATCH[name]
    shape = (28, 28, 1) if name.startswith("lenet") else (32, 32, 3)
    rng = np.random.default_rng(0)
    x = rng.random((batch * steps,) + shape, dtype=np.float32)
    y = rng.integers(0, 10, batch * steps).astype("int32")
    return x, y, batch


class EpochClock:
    """Keras callback recording wall and CPU seconds of each epoch."""

    def __init__(self, keras):
        outer = self

        class _Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                outer._start = (time.perf_counter(), time.process_time())

            def on_epoch_end(self, epoch, logs=None):
                wall0, cpu0 = outer._start
                outer.wall.append(time.perf_counter() - wall0)
                outer.cpu.append(time.process_time() - cpu0)

        self.wall, self.cpu = [], []
        self.callback = _Callback()


def time_variants(make_variants, name, steps, rounds, keras, np):
    """Interleaves `fit` epochs of each variant; returns median seconds."""
    x, y, batch = synthetic(name, steps, np)
    variants = make_variants()
    clocks = {}
    for label, (model, callbacks) in variants.items():
        model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                      keras.losses.SparseCategoricalCrossentropy(
                          from_logits=True))
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0,
                  callbacks=callbacks)  # warm-up: tracing and compiling
        clocks[label] = EpochClock(keras)
    labels = list(variants)
    for r in range(rounds):
        order = labels if r % 2 == 0 else labels[::-1]
        for label in order:
            model, callbacks = variants[label]
            model.fit(x, y, batch_size=batch, epochs=1, verbose=0,
                      shuffle=False,
                      callbacks=callbacks + [clocks[label].callback])
    return {label: {"wall_median": statistics.median(c.wall),
                    "cpu_median": statistics.median(c.cpu),
                    "wall": c.wall, "cpu": c.cpu, "steps": steps,
                    "batch": batch}
            for label, c in clocks.items()}


def run_keras3(names, sparsity, steps, rounds):
    import keras
    import numpy as np
    import tf_sparse as tfs

    out = {}
    for name in names:
        def make():
            keras.utils.set_random_seed(0)
            dense = archs.build(name, keras)
            keras.utils.set_random_seed(0)
            sparse = tfs.sparsify(archs.build(name, keras), sparsity=sparsity)
            return {"dense": (dense, []),
                    "tf_sparse_static": (sparse, [tfs.callbacks.MaskUpdate(
                        tfs.algorithms.Static())])}
        out[name] = time_variants(make, name, steps, rounds, keras, np)
    return out


def run_tfmot(names, sparsity, steps, rounds):
    """Runs inside the tfmot environment (--tfmot-worker)."""
    import numpy as np
    import tensorflow_model_optimization as tfmot  # sets TF_USE_LEGACY_KERAS
    import tf_keras as keras

    out = {}
    for name in names:
        def make():
            keras.utils.set_random_seed(0)
            dense = archs.build(name, keras)
            keras.utils.set_random_seed(0)
            pruned = tfmot.sparsity.keras.prune_low_magnitude(
                archs.build(name, keras),
                pruning_schedule=tfmot.sparsity.keras.ConstantSparsity(
                    sparsity, 0, frequency=10 ** 9))
            return {"tf_keras_dense": (dense, []),
                    "tfmot_prune_low_magnitude": (
                        pruned, [tfmot.sparsity.keras.UpdatePruningStep()])}
        out[name] = time_variants(make, name, steps, rounds, keras, np)
    return out


def tfmot_python(venv):
    """Creates (once) a venv with tf-keras + tfmot; returns its python."""
    python = os.path.join(venv, "bin", "python")
    stamp = os.path.join(venv, ".ready")
    if os.path.exists(stamp):
        return python
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q",
                    "tensorflow==2.21.0", "tf-keras==2.21.0",
                    "tensorflow-model-optimization==0.8.1", "numpy"],
                   check=True)
    open(stamp, "w").close()
    return python


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="lenet300_100,lenet5_caffe,resnet20")
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--steps", type=int, default=30,
                        help="steps per timed epoch")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-tfmot", action="store_true")
    parser.add_argument("--tfmot-venv",
                        default=os.path.join(os.path.dirname(HERE),
                                             ".venv-tfmot"))
    parser.add_argument("--tfmot-worker", action="store_true",
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = args.models.split(",")

    if args.tfmot_worker:
        print(json.dumps(run_tfmot(names, args.sparsity, args.steps,
                                   args.rounds)))
        return 0

    results = {"machine": common.machine_info(), "sparsity": args.sparsity,
               "steps": args.steps, "rounds": args.rounds,
               "keras3": run_keras3(names, args.sparsity, args.steps,
                                    args.rounds)}
    if not args.no_tfmot:
        try:
            python = tfmot_python(args.tfmot_venv)
            proc = subprocess.run(
                [python, os.path.abspath(__file__), "--tfmot-worker",
                 f"--models={args.models}", f"--sparsity={args.sparsity}",
                 f"--steps={args.steps}", f"--rounds={args.rounds}"],
                capture_output=True, text=True, check=True)
            results["tfmot"] = json.loads(proc.stdout.strip().splitlines()[-1])
        except (subprocess.CalledProcessError, OSError, ValueError) as error:
            results["tfmot_error"] = str(error)[-2000:]

    rows = []
    for name in names:
        k3 = results["keras3"][name]
        d, s = k3["dense"], k3["tf_sparse_static"]
        row = [name, f"{1000 * d['wall_median'] / args.steps:.2f}",
               f"{s['wall_median'] / d['wall_median']:.3f}",
               f"{s['cpu_median'] / d['cpu_median']:.3f}"]
        tm = results.get("tfmot", {}).get(name)
        if tm:
            td, tp = tm["tf_keras_dense"], tm["tfmot_prune_low_magnitude"]
            row += [f"{tp['wall_median'] / td['wall_median']:.3f}",
                    f"{tp['cpu_median'] / td['cpu_median']:.3f}"]
        else:
            row += ["n/a", "n/a"]
        rows.append(row)
    md = (f"# Training step time at {args.sparsity:.0%} sparsity\n\n"
          f"Median of {args.rounds} interleaved rounds of {args.steps} steps "
          "(synthetic input, SGD momentum). Ratios < 1 are faster than "
          "dense.\n\n"
          + common.markdown_table(
              ["model", "dense ms/step (Keras 3)",
               "tf-sparse static / dense (wall)",
               "tf-sparse static / dense (CPU)",
               "tfmot / tf_keras dense (wall)",
               "tfmot / tf_keras dense (CPU)"], rows)
          + "\nMachine: " + json.dumps(results["machine"]) + "\n")
    if "tfmot_error" in results:
        md += f"\ntfmot column unavailable: {results['tfmot_error'][-300:]}\n"
    paths = common.write_results("step_time", results, md)
    print(md)
    print("wrote", *paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
