"""Epoch time of sparse vs dense training on the TensorFlow, JAX and PyTorch
backends of Keras, LeNet-300-100 and LeNet-5 (Caffe), in one run.

Each backend runs in its own process (Keras fixes its backend at import):
`KERAS_BACKEND=<b> python benchmarks/backend_epoch_time.py --worker`. There
each model trains dense, static sparse (90%, masks enforced by the
optimizer's constraint) and SET (90%, a mask update every 20 steps, which on
JAX and PyTorch runs between steps; JAX's compiled step takes the masks as
inputs, PyTorch rebuilds its train function) with SGD + momentum on Fashion-MNIST (the first --examples
training images; random images of the same shape if the data is not
installed), batch 100, for --epochs epochs; the figure is the wall time of
the last epoch (the first includes compilation), median over --rounds
rounds, variants interleaved within a round. Ratios: sparse / dense on the
same backend, and dense / TensorFlow dense across backends.

Usage:
  python benchmarks/backend_epoch_time.py                  # all backends
  python benchmarks/backend_epoch_time.py --backends=tensorflow,jax
Writes benchmarks/results/backend_epoch_time.{json,md}.
"""

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import common  # noqa: E402

BACKENDS = common.BACKENDS
MODELS = common.LENET_MODELS
VARIANTS = ("dense", "static", "set")
BATCH = 100
SPARSITY = 0.9
SET_EVERY = 20


def load_data(examples):
    import numpy as np  # pylint: disable=import-outside-toplevel
    from tf_sparse.data import fashion_mnist  # pylint: disable=import-outside-toplevel
    try:
        (x, y), _ = fashion_mnist.load_fashion_mnist()
        source = "fashion_mnist"
    except FileNotFoundError:
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (examples, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, examples).astype(np.uint8)
        source = "random images (Fashion-MNIST not installed)"
    x = (x[:examples].astype("float32") / 255.0)[..., None]
    return x, y[:examples].astype("int32"), source


def one_variant(model_name, variant, x, y, epochs):
    """Wall seconds of the last of `epochs` epochs of one training."""
    # pylint: disable=import-outside-toplevel
    import keras
    import tf_sparse as tfs
    from tf_sparse import models
    keras.utils.set_random_seed(0)
    model = getattr(models.lenet, model_name)()
    callbacks = []
    steps = len(x) // BATCH
    if variant != "dense":
        model = tfs.sparsify(model, sparsity=SPARSITY, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True))
    if variant == "static":
        callbacks.append(tfs.callbacks.MaskUpdate(tfs.algorithms.Static()))
    elif variant == "set":
        callbacks.append(tfs.callbacks.MaskUpdate(tfs.algorithms.SET(
            total_steps=epochs * steps + 1, every=SET_EVERY)))
    times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False,
              verbose=0, callbacks=callbacks + [Timer()])
    return times[-1]


def worker(args):
    import keras  # pylint: disable=import-outside-toplevel
    x, y, source = load_data(args.examples)
    figures = {m: {v: [] for v in VARIANTS} for m in args.models}
    for _ in range(args.rounds):
        for model_name in args.models:
            for variant in VARIANTS:
                figures[model_name][variant].append(
                    one_variant(model_name, variant, x, y, args.epochs))
    json.dump({"backend": keras.backend.backend(), "data": source,
               "steps_per_epoch": len(x) // BATCH, "seconds": figures,
               "versions": common.backend_versions()}, sys.stdout)


def run_backend(backend, args):
    return common.run_backend_worker(
        __file__, backend, [f"--models={','.join(args.models)}",
                            f"--examples={args.examples}",
                            f"--epochs={args.epochs}",
                            f"--rounds={args.rounds}"])


def report(results, args):
    steps = results[0]["steps_per_epoch"]
    # SET updates falling in the timed (last) epoch.
    updates = sum(1 for s in range((args.epochs - 1) * steps + 1,
                                   args.epochs * steps + 1)
                  if s % SET_EVERY == 0)
    rows = []
    dense_tf = {}
    for result in results:
        if result["backend"] == "tensorflow":
            for model_name, by_variant in result["seconds"].items():
                dense_tf[model_name] = statistics.median(by_variant["dense"])
    for result in results:
        for model_name, by_variant in result["seconds"].items():
            med = {v: statistics.median(t) for v, t in by_variant.items()}
            rows.append([
                result["backend"], model_name,
                f"{med['dense']:.2f}", f"{med['static']:.2f}",
                f"{med['set']:.2f}",
                f"{med['static'] / med['dense']:.2f}x",
                f"{med['set'] / med['dense']:.2f}x",
                f"{(med['set'] - med['static']) / updates:.3f}",
                (f"{med['dense'] / dense_tf[model_name]:.2f}x"
                 if model_name in dense_tf else "-")])
    fastest = []
    for result in results:
        for model_name, by_variant in result["seconds"].items():
            low = {v: min(t) for v, t in by_variant.items()}
            fastest.append([
                result["backend"], model_name, f"{low['dense']:.2f}",
                f"{low['static']:.2f}", f"{low['set']:.2f}",
                f"{low['static'] / low['dense']:.2f}x",
                f"{low['set'] / low['dense']:.2f}x"])
    header = ["backend", "model", "dense s/epoch", "static s/epoch",
              "SET s/epoch", "static/dense", "SET/dense",
              "s per SET update", "dense/TF dense"]
    steps = results[0]["steps_per_epoch"]
    text = (
        "# Epoch time by Keras backend: sparse vs dense\n\n"
        f"{args.examples} Fashion-MNIST images ({results[0]['data']}), batch "
        f"{BATCH} ({steps} steps per epoch), SGD momentum 0.9; the last of "
        f"{args.epochs} epochs (the first compiles), median of "
        f"{args.rounds} rounds, variants interleaved. Sparse: {SPARSITY:.0%} "
        "(uniform), masks enforced by the optimizer's constraint; SET "
        f"updates every {SET_EVERY} steps (between steps on JAX and "
        "PyTorch: JAX's compiled step takes the masks as inputs, PyTorch "
        "rebuilds its train function after each; "
        f"{updates} in the timed epoch; 's per SET update' is (SET - "
        "static) / updates). "
        "Default `jit_compile` of each backend (XLA on JAX, none on "
        "TensorFlow CPU and PyTorch). Written by "
        "benchmarks/backend_epoch_time.py.\n\n"
        + common.markdown_table(header, rows)
        + "\nFastest round of each (the rounds of a variant differ by up to "
        "20x on PyTorch on this loaded 2-core machine, where its thread pool "
        "competes with other processes; TensorFlow and JAX vary little):\n\n"
        + common.markdown_table(header[:7], fastest))
    machine = common.machine_info()
    for result in results:
        machine.update(result["versions"])
    text += common.machine_line(machine)
    payload = {"config": vars(args), "machine": machine, "results": results}
    return common.write_results("backend_epoch_time", payload, text), text


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--examples", type=int, default=6000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--report_only", action="store_true",
                        help="rewrite the .md from the .json's figures")
    args = parser.parse_args()
    args.models = [m for m in args.models.split(",") if m]
    for name in args.models:
        if name not in MODELS:
            parser.error(f"--models: {name!r} is not one of {MODELS}")
    if args.worker:
        worker(args)
        return
    if args.report_only:
        with open(os.path.join(common.RESULTS,
                               "backend_epoch_time.json")) as f:
            saved = json.load(f)
        args = argparse.Namespace(**saved["config"])
        (_, md_path), text = report(saved["results"], args)
        print(text)
        return
    backends = [b for b in args.backends.split(",") if b]
    for name in backends:
        if name not in BACKENDS:
            parser.error(f"--backends: {name!r} is not one of {BACKENDS}")
    missing = [b for b in backends if b != "tensorflow"
               and importlib.util.find_spec(b) is None]
    if missing:
        parser.error(f"not installed: {', '.join(missing)} (pip install "
                     f"'tf-sparse[{missing[0]}]')")
    del args.worker, args.report_only
    results = [run_backend(b, args) for b in backends]
    (json_path, md_path), text = report(results, args)
    print(text)
    print(f"wrote {os.path.relpath(json_path, ROOT)} and "
          f"{os.path.relpath(md_path, ROOT)}")


if __name__ == "__main__":
    main()
