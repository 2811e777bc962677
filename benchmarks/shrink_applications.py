"""Shrinking keras.applications models at 50% channels: size, FLOPs, CPU time.

For ResNet50, MobileNetV2, DenseNet121 and EfficientNetB0 (built with
`weights=None`, 224x224 inputs, 1000 classes):

1. the channel dependency groups (`tfs.channel_graph.dependency_groups`) are
   split into families (groups with the same creating layers: one layer's
   channels, or a residual stream's); in each family the half with the
   lower L1 norm of the creating kernels' slices is masked out. The weights
   are the random initialisation, so the choice is arbitrary; the figures
   depend on how many channels go, not on which;
2. `tfs.shrink` builds the smaller model and its predictions are checked
   against the masked model's on a batch;
3. parameters (the masked model stores every weight; its nonzeros; the
   shrunk model), forward FLOPs per image (2 x multiply-accumulates of the
   Conv/Dense/depthwise layers, `tf_sparse.model_report`: the masked model
   as run by dense kernels, its nonzero weights, the shrunk model), and the
   CPU inference time per batch of the masked and the shrunk model (each
   under `tf.function`, median of --repeats, the two interleaved).

Usage:
  python benchmarks/shrink_applications.py
  python benchmarks/shrink_applications.py --models=MobileNetV2 --repeats=3
Writes benchmarks/results/shrink_applications.{json,md}.
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402

MODELS = ("ResNet50", "MobileNetV2", "DenseNet121", "EfficientNetB0")


def choose_half(model, tfs, np):
    """Half of each family of groups, the lower creator L1 norms first."""
    groups = tfs.channel_graph.dependency_groups(model)
    chosen = []
    for family in tfs.channel_graph.families(groups).values():
        norms = tfs.channel_graph.group_norms(model, family)
        order = np.argsort(norms, kind="stable")
        chosen += [family[i] for i in order[:len(family) // 2]]
    return groups, chosen


def time_interleaved(functions, x, repeats):
    """Median seconds per call of each function, calls interleaved."""
    for f in functions.values():
        f(x)
        f(x)
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, f in functions.items():
            start = time.perf_counter()
            f(x).numpy()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}, times


def measure(name, args):
    import keras
    import numpy as np
    import tensorflow as tf

    import tf_sparse as tfs
    from tf_sparse import model_report

    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    model = getattr(keras.applications, name)(
        weights=None, input_shape=(args.size, args.size, 3),
        classifier_activation=None)
    build_s = time.perf_counter() - start
    groups, chosen = choose_half(model, tfs, np)
    tfs.sparsify(model, masks=tfs.channel_graph.group_masks(model, chosen))
    x = np.random.default_rng(0).uniform(
        0, 255, size=(max(args.batches), args.size, args.size, 3)).astype(
            "float32")
    start = time.perf_counter()
    small = tfs.shrink(model, x[:2])
    shrink_s = time.perf_counter() - start
    logits = keras.ops.convert_to_numpy(model(x[:2], training=False))
    masked_report = model_report.report(model)
    small_report = model_report.report(small)
    row = {
        "model": name,
        "groups": len(groups),
        "removable_groups": sum(1 for g in groups if not g.blocked),
        "groups_removed": len(chosen),
        "params_masked": int(model.count_params()),
        "nonzero_params_masked": int(
            model.count_params() - sum(
                w.size - w.nonzeros for w in masked_report.weights)),
        "params_shrunk": int(small.count_params()),
        "flops_masked_dense": masked_report.flops_dense,
        "flops_masked_nonzero": masked_report.flops_sparse,
        "flops_shrunk": small_report.flops_dense,
        "build_seconds": round(build_s, 2),
        "shrink_seconds": round(shrink_s, 2),
        "max_abs_diff": float(np.abs(logits - keras.ops.convert_to_numpy(
            small(x[:2], training=False))).max()),
        "max_abs_logit": float(np.abs(logits).max()),
        "latency": {},
    }
    functions = {
        "masked": tf.function(lambda t: model(t, training=False)),
        "shrunk": tf.function(lambda t: small(t, training=False)),
    }
    for batch in args.batches:
        medians, raw = time_interleaved(functions, x[:batch], args.repeats)
        row["latency"][str(batch)] = {
            "masked_s": medians["masked"], "shrunk_s": medians["shrunk"],
            "speedup": medians["masked"] / medians["shrunk"],
            "masked_all_s": raw["masked"], "shrunk_all_s": raw["shrunk"]}
        print(f"{name} batch {batch}: masked {medians['masked']*1e3:.1f} ms, "
              f"shrunk {medians['shrunk']*1e3:.1f} ms", flush=True)
    return row


def _m(value):
    return f"{value / 1e6:.2f}M"


def _g(value):
    return f"{value / 1e9:.2f}G"


def markdown(rows, info, args):
    lines = [
        "# Shrinking keras.applications models at 50% channels\n",
        f"{info.get('cpu', '?')}, {info['cpu_count']} cores, TensorFlow "
        f"{info['tensorflow']}, Keras {info['keras']}; load average "
        f"{info['load_average_start']} at the start, "
        f"{info['load_average_end']} at the end (other jobs were running; "
        "the masked and shrunk timings are interleaved so both saw the same "
        "load).\n",
        f"Models built with `weights=None` at {args.size}x{args.size}, "
        "1000 classes, logits out (`classifier_activation=None`); in "
        "every family of channel groups (one layer's channels, or the "
        "convolutions tied into one residual stream) the half with the lower "
        "L1 norm of the creating kernels is masked out, at the random "
        "initialisation (so which channels go is arbitrary; how many is "
        "what the figures depend on). Groups at the model's input and "
        "output are never removed. `tfs.shrink` checked the shrunk model's "
        "logits against the masked model's on 2 images (max |diff|, and "
        "the largest |logit| for scale: untrained MobileNetV2 and "
        "EfficientNet logits are tiny).\n",
        "FLOPs: forward, per image, 2 x multiply-accumulates of the "
        "Conv/Dense/depthwise layers (`tf_sparse.model_report`): the masked "
        "model as dense kernels run it, its nonzero weights (what a perfect "
        "sparse kernel would do), and the shrunk model. The shrunk count is "
        "about a quarter of the masked one, not a half: removing a channel "
        "removes the creating layer's output slice and every reader's input "
        "slice, so a layer between two halved layers keeps 0.5 x 0.5 of its "
        "multiply-accumulates (masks alone zero only the output slices).\n",
    ]
    header = ["model", "groups removed", "params masked", "nonzero",
              "params shrunk", "FLOPs masked", "FLOPs nonzero",
              "FLOPs shrunk", "max abs diff (max abs logit)", "shrink s"]
    table = [[r["model"], f"{r['groups_removed']} / {r['groups']}",
              _m(r["params_masked"]), _m(r["nonzero_params_masked"]),
              f"{_m(r['params_shrunk'])} "
              f"({r['params_shrunk'] / r['params_masked']:.1%})",
              _g(r["flops_masked_dense"]), _g(r["flops_masked_nonzero"]),
              f"{_g(r['flops_shrunk'])} "
              f"({r['flops_shrunk'] / r['flops_masked_dense']:.1%})",
              f"{r['max_abs_diff']:.2g} ({r['max_abs_logit']:.2g})",
              r["shrink_seconds"]]
             for r in rows]
    lines.append(common.markdown_table(header, table))
    lines.append(f"\nCPU inference time per batch, median of {args.repeats} "
                 "interleaved calls under `tf.function`:\n")
    header = ["model", "batch", "masked ms", "shrunk ms", "speed-up"]
    table = [[r["model"], batch, f"{v['masked_s'] * 1e3:.1f}",
              f"{v['shrunk_s'] * 1e3:.1f}", f"{v['speedup']:.2f}x"]
             for r in rows for batch, v in r["latency"].items()]
    lines.append(common.markdown_table(header, table))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS),
                        help="comma-separated keras.applications names")
    parser.add_argument("--size", type=int, default=224,
                        help="input height and width")
    parser.add_argument("--batches", default="1,8",
                        help="comma-separated batch sizes to time")
    parser.add_argument("--repeats", type=int, default=9,
                        help="timed calls per model and batch size")
    parser.add_argument("--name", default="shrink_applications",
                        help="results file name (without extension)")
    args = parser.parse_args(argv)
    args.batches = [int(b) for b in args.batches.split(",")]
    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown models {unknown}; accepted: "
                     f"{', '.join(MODELS)}")
    if args.repeats < 1 or min(args.batches) < 1:
        parser.error("--repeats and every batch size must be at least 1")
    info = common.machine_info()
    info["load_average_start"] = [round(v, 2) for v in os.getloadavg()]
    rows = [measure(name, args) for name in names]
    info["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    payload = {"machine": info, "size": args.size, "batches": args.batches,
               "repeats": args.repeats, "fraction_of_channels_removed": 0.5,
               "selection": "L1 norm of the creating kernels, per family, "
                            "at random initialisation",
               "models": rows}
    paths = common.write_results(args.name, payload,
                                 markdown(rows, info, args))
    print("\n".join(paths))


if __name__ == "__main__":
    main()
