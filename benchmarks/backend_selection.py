"""Time of the exact top-k selection (`tf_sparse.topk.select_top`) on the
TensorFlow, JAX and PyTorch backends of Keras, in one run.

Each backend runs in its own process (Keras fixes its backend at import):
`KERAS_BACKEND=<b> python benchmarks/backend_selection.py --worker`. There
it selects the --k highest of --size random float32 scores (all eligible)
with the radix and the sort method (and, on TensorFlow, with and without
the XLA compilation of the selection), median of --rounds timed calls after
two warm-up calls; every variant must give the same mask. Ratios are
against TensorFlow's radix with XLA.

Usage:
  python benchmarks/backend_selection.py
  python benchmarks/backend_selection.py --backends=tensorflow,jax
Writes benchmarks/results/backend_selection.{json,md}.
"""

import argparse
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


def worker(args):
    import keras  # pylint: disable=import-outside-toplevel
    import numpy as np  # pylint: disable=import-outside-toplevel
    from tf_sparse import backend  # pylint: disable=import-outside-toplevel
    from tf_sparse import topk  # pylint: disable=import-outside-toplevel

    rng = np.random.default_rng(0)
    scores = rng.standard_normal(args.size).astype(np.float32)
    eligible = np.ones(args.size, bool)
    variants = [("radix", True), ("sort", True)]
    if backend.name() in ("tensorflow", "jax"):   # the compiling ones
        variants += [("radix", False), ("sort", False)]
    seconds, masks = {}, {}
    for method, jit in variants:
        name = method + ("" if jit or backend.name() == "torch"
                         else "-no-xla")

        def select():
            return keras.ops.convert_to_numpy(topk.select_top(
                scores, eligible, args.k, method=method, jit=jit))

        for _ in range(2):
            masks[name] = select()
        times = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            select()
            times.append(time.perf_counter() - start)
        seconds[name] = times
    first = next(iter(masks.values()))
    assert int(first.sum()) == args.k
    assert all(np.array_equal(first, m) for m in masks.values())
    print(json.dumps({"backend": backend.name(), "seconds": seconds}))


def report(results, args):
    reference = None
    for result in results:
        if result["backend"] == "tensorflow":
            reference = statistics.median(result["seconds"]["radix"])
    rows = []
    for result in results:
        for name, times in result["seconds"].items():
            median = statistics.median(times)
            rows.append([result["backend"], name, f"{median * 1e3:.1f}",
                         f"{min(times) * 1e3:.1f}",
                         f"{median / reference:.2f}x" if reference else ""])
    machine = {**common.machine_info(), **common.backend_versions()}
    markdown = (
        "# Exact top-k selection by Keras backend\n\n"
        f"`topk.select_top`: the {args.k} highest of {args.size} random "
        f"float32 scores, median (and fastest) of {args.rounds} timed calls "
        "after two warm-ups, the mask read back to NumPy; every variant "
        "gave the same mask. On TensorFlow (`tf.function(jit_compile=True)`) "
        "and JAX (`jax.jit`) the selection is compiled with XLA unless "
        "'-no-xla'; on PyTorch it runs op by op. Written by "
        "benchmarks/backend_selection.py.\n\n"
        + common.markdown_table(
            ["backend", "method", "median ms", "fastest ms",
             "vs TensorFlow radix (XLA)"], rows)
        + common.machine_line(machine))
    paths = common.write_results(
        "backend_selection", {"config": vars(args), "machine": machine,
                              "results": results}, markdown)
    return paths, markdown


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--k", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--worker", action="store_true")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    backends = [b for b in args.backends.split(",") if b]
    for name in backends:
        if name not in BACKENDS:
            parser.error(f"--backends: {name!r} is not one of {BACKENDS}")
    del args.worker
    results = [common.run_backend_worker(
        __file__, b, [f"--size={args.size}", f"--k={args.k}",
                      f"--rounds={args.rounds}"]) for b in backends]
    (json_path, md_path), text = report(results, args)
    print(text)
    print(f"wrote {os.path.relpath(json_path, ROOT)} and "
          f"{os.path.relpath(md_path, ROOT)}")


if __name__ == "__main__":
    main()
