"""Time of one mask update run between train steps, by Keras backend, and
against an earlier checkout of tf-sparse in the same run.

On JAX and PyTorch every update runs eagerly between two train steps
(`MaskAlgorithm.eager_update`, driven by `tfs.callbacks.MaskUpdate`); on
TensorFlow the same call runs the update eagerly (only an update due at
step 0 runs so), and the "(in graph)" rows time the update as TensorFlow's
train step runs it (`after_train_step` in a `tf.function`). For each backend,
model (LeNet-300-100, LeNet-5 Caffe; 90% sparse, uniform) and algorithm
(SET, sparse momentum, RigL) the worker compiles the model with SGD +
momentum, trains one batch, attaches the algorithm with an update due at
every step, and times `eager_update` (masks read back to NumPy, so JAX's
asynchronous dispatch is inside the time): median of --repeats calls after
two warm-ups.

With --baseline=DIR (a checkout of another commit, e.g. made with
`git worktree add`), every backend's worker also runs with DIR first on
PYTHONPATH, interleaved with the current code, and the table gives
baseline / current.

Usage:
  python benchmarks/eager_update_time.py
  python benchmarks/eager_update_time.py --baseline=../tf-sparse-old
Writes benchmarks/results/eager_update_time.{json,md}.
"""

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402

BACKENDS = common.BACKENDS
MODELS = common.LENET_MODELS
ALGORITHMS = ("set", "sparse_momentum", "rigl")
SPARSITY = 0.9
BATCH = 100


def _algorithm(name):
    import tf_sparse as tfs  # pylint: disable=import-outside-toplevel
    common_args = dict(total_steps=10_000, every=1)
    if name == "set":
        return tfs.algorithms.SET(**common_args)
    if name == "sparse_momentum":
        return tfs.algorithms.SparseMomentum(**common_args)
    return tfs.algorithms.RigL(**common_args)


def time_updates(model_name, algorithm_name, repeats, in_graph=False):
    """Seconds of `repeats` eager updates (after two warm-ups); with
    `in_graph` (TensorFlow), of the update as TensorFlow's train step runs
    it: `after_train_step` in a `tf.function`."""
    # pylint: disable=import-outside-toplevel
    import keras
    import numpy as np
    import tf_sparse as tfs
    from tf_sparse import models
    from tf_sparse import training
    keras.utils.set_random_seed(0)
    model = tfs.sparsify(getattr(models.lenet, model_name)(),
                         sparsity=SPARSITY, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, BATCH).astype("int32")
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    algorithm = _algorithm(algorithm_name)
    training.attach(model, algorithm)
    masks = [mw.mask for mw in tfs.masked_weights(model)]
    update = algorithm.eager_update
    if in_graph:
        import tensorflow as tf
        traced = tf.function(algorithm.after_train_step)

        def update(step, data):
            traced(tf.constant(step, tf.int64), data)
    times = []
    for i in range(repeats + 2):
        start = time.perf_counter()
        update(2 + i, (x, y))
        for mask in masks:
            keras.ops.convert_to_numpy(mask)
        times.append(time.perf_counter() - start)
    return times[2:]


def worker(args):
    import keras  # pylint: disable=import-outside-toplevel
    import tf_sparse  # pylint: disable=import-outside-toplevel
    seconds = {m: {a: time_updates(m, a, args.repeats)
                   for a in args.algorithms} for m in args.models}
    in_graph = None
    if keras.backend.backend() == "tensorflow":
        in_graph = {m: {a: time_updates(m, a, args.repeats, in_graph=True)
                        for a in args.algorithms} for m in args.models}
    json.dump({"backend": keras.backend.backend(), "seconds": seconds,
               "in_graph_seconds": in_graph,
               # The commit of the tf_sparse this worker imported.
               "commit": common.git_commit(os.path.dirname(tf_sparse.__file__)),
               "versions": common.backend_versions()}, sys.stdout)


def run_worker(backend, args, baseline=None):
    argv = [f"--models={','.join(args.models)}",
            f"--algorithms={','.join(args.algorithms)}",
            f"--repeats={args.repeats}"]
    return common.run_backend_worker(__file__, backend, argv,
                                     pythonpath=baseline)


def report(current, baseline, args):
    header = ["backend", "model", "algorithm", "ms per update"]
    if baseline:
        header += ["baseline ms", "baseline / current"]
    rows = []
    for backend in args.backends:
        for key, label in (("seconds", backend),
                           ("in_graph_seconds", f"{backend} (in graph)")):
            if not current[backend].get(key):
                continue
            for model_name in args.models:
                for name in args.algorithms:
                    now = statistics.median(
                        current[backend][key][model_name][name]) * 1e3
                    row = [label, model_name, name, f"{now:.1f}"]
                    if baseline:
                        old = statistics.median(
                            baseline[backend][key][model_name][name]) * 1e3
                        row += [f"{old:.1f}", f"{old / now:.2f}x"]
                    rows.append(row)
    some = next(iter(current.values()))
    text = (
        "# One mask update between train steps, by Keras backend\n\n"
        f"`MaskAlgorithm.eager_update` on {SPARSITY:.0%} sparse (uniform) "
        "models after one SGD-momentum batch, an update due at every step; "
        f"median of {args.repeats} calls after two warm-ups, masks read back "
        "to NumPy inside the time. This is how JAX and PyTorch run every "
        "update. TensorFlow runs its updates inside the compiled train step: "
        "its '(in graph)' rows time `after_train_step` in a `tf.function`; "
        "its plain rows the eager call (used only for an update due at "
        "step 0). "
        + (f"Baseline: commit {next(iter(baseline.values()))['commit']}, "
           f"current: commit {some['commit']}, run interleaved by backend "
           "in one run. " if baseline else "")
        + "Written by benchmarks/eager_update_time.py.\n\n"
        + common.markdown_table(header, rows))
    machine = {**common.machine_info(), **some["versions"]}
    text += common.machine_line(machine)
    # The baseline's directory is this machine's; its commit is recorded.
    config = {**vars(args), "baseline": bool(args.baseline)}
    payload = {"config": config, "machine": machine, "current": current,
               "baseline": baseline}
    return common.write_results("eager_update_time", payload, text), text


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS))
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--baseline", default=None)
    parser.add_argument("--worker", action="store_true")
    args = parser.parse_args()
    for key in ("backends", "models", "algorithms"):
        setattr(args, key, [v for v in getattr(args, key).split(",") if v])
    if args.worker:
        worker(args)
        return
    if args.baseline and not os.path.isdir(
            os.path.join(args.baseline, "tf_sparse")):
        parser.error(f"--baseline={args.baseline!r} holds no tf_sparse "
                     "package; give a checkout of tf-sparse.")
    current, baseline = {}, {}
    for backend in args.backends:
        if args.baseline:
            baseline[backend] = run_worker(backend, args, args.baseline)
        current[backend] = run_worker(backend, args)
    paths, text = report(current, baseline, args)
    print(text)
    print("wrote", " and ".join(paths))


if __name__ == "__main__":
    main()
