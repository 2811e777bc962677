"""Structured sparsity on real Fashion-MNIST with LeNet-5-Caffe: dense,
unstructured 50%, 2:4 (static and the gradual GMP ramp), 2:4 with SR-STE,
and whole channels at 50% and 75% (GMP, then `tfs.shrink`).

Every run is `tf_sparse.runs.run` (what tools/train.py runs) on the
Fashion-MNIST preset (configs/fashion_mnist/lenet5_static.py: batch 100,
Nesterov SGD 0.1, 10% of the training set held out, PyTorch's
initialisation), shortened to a few epochs; only the algorithm, `pattern`
and `sparsity` change. GMP ramps (cubic) from a dense start between 10% and
60% of training with an update every 2% (layer-wise: every layer reaches
the target). LeNet-5's first convolution has one input channel, so 2:4
leaves it dense (a sparsity of 50% on the other layers); channel runs
leave the output layer dense (its units are the model's outputs).

For the channel runs the trained masked network is rebuilt from the
workdir, shrunk (`tfs.shrink`) and both are evaluated on the whole test
set: parameter counts, accuracy, and how many test predictions differ.
Each run's record holds its resolved config, commit and versions.

Usage:
  python benchmarks/structured_lenet5.py                 # 3 epochs, seed 17
  python benchmarks/structured_lenet5.py --epochs=3 --seeds=2
Writes benchmarks/results/structured_lenet5.{json,md}; finished runs (same
epochs) are kept when it is started again.
"""

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import common  # noqa: E402

NAME = "structured_lenet5"
GMP = dict(begin=0.1, end=0.6, frequency=0.02, schedule="cubic",
           scope="layerwise", final_update=True)
# name -> (algorithm, pattern, sparsity, algorithm_kwargs, shrink)
METHODS = {
    "dense": ("dense", "unstructured", 0.0, {}, False),
    "unstructured_static": ("static", "unstructured", 0.5, {}, False),
    "unstructured_gmp": ("gmp", "unstructured", 0.5, GMP, False),
    "2:4_static": ("static", "2:4", 0.5, {}, False),
    "2:4_gmp": ("gmp", "2:4", 0.5, GMP, False),
    "2:4_sr_ste": ("sr_ste", "2:4", 0.5, {"lambda_w": 2e-4}, False),
    "channel50_gmp": ("gmp", "channel", 0.5, GMP, True),
    "channel75_gmp": ("gmp", "channel", 0.75, GMP, True),
}


def base_config():
    path = os.path.join(ROOT, "configs", "fashion_mnist", "lenet5_static.py")
    spec = importlib.util.spec_from_file_location("lenet5_static", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def shrink_report(workdir, config):
    """Masked vs shrunk network of a channel run, on the whole test set."""
    import numpy as np
    import tf_sparse as tfs
    from tf_sparse.runs import data as data_lib
    from tf_sparse.runs import restore
    model, _ = restore.load_model(workdir)
    data = data_lib.make_data(config, config.batch_size)
    x = np.concatenate([b[0].numpy() for b in data.test()])
    y = np.concatenate([b[1].numpy() for b in data.test()])
    start = time.perf_counter()
    small = tfs.shrink(model, x[:256])
    seconds = time.perf_counter() - start
    masked = model.predict(x, batch_size=500, verbose=0)
    shrunk = small.predict(x, batch_size=500, verbose=0)
    nonzeros = sum(int(np.count_nonzero(w)) for w in model.get_weights())
    return {
        "masked_params": int(model.count_params()),
        "masked_nonzero_params": nonzeros,
        "shrunk_params": int(small.count_params()),
        "params_ratio": small.count_params() / model.count_params(),
        "masked_accuracy": float(np.mean(masked.argmax(1) == y)),
        "shrunk_accuracy": float(np.mean(shrunk.argmax(1) == y)),
        "predictions_differing": int(np.sum(masked.argmax(1)
                                            != shrunk.argmax(1))),
        "max_logit_difference": float(np.max(np.abs(masked - shrunk))),
        "layer_widths": {layer.name: int(layer.kernel.shape[-1])
                         for layer in small.layers
                         if hasattr(layer, "kernel")},
        "shrink_seconds": seconds,
    }


def run_one(method, seed, args):
    algorithm, pattern, sparsity, kwargs, shrink = METHODS[method]
    config = base_config()
    config.algorithm = algorithm
    config.pattern = pattern
    config.sparsity = sparsity
    config.algorithm_kwargs = dict(kwargs)
    if pattern == "channel":
        config.keep_dense = ("fc4",)
    config.epochs = args.epochs
    config.seed = seed
    if args.steps_per_epoch:
        config.steps_per_epoch = args.steps_per_epoch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # layers a pattern leaves dense
        results, shrunk, seconds = common.run_in_tempdir(
            config, "structured_", inspect=(
                (lambda workdir: shrink_report(workdir, config)) if shrink
                else None))
    record = {"method": method, "seed": seed, "epochs": args.epochs,
              **common.run_fields(results)}
    if shrink:
        record["shrink"] = shrunk
    record["seconds"] = seconds
    return record


def aggregate(records):
    table = {}
    for method in METHODS:
        accs = [r["test_accuracy"] for r in records if r["method"] == method
                and not r.get("diverged") and not r.get("collapsed")]
        if not accs:
            continue
        entry = {"n": len(accs), "mean_accuracy": statistics.fmean(accs),
                 "accuracies": accs}
        shrinks = [r["shrink"] for r in records
                   if r["method"] == method and "shrink" in r]
        if shrinks:
            entry["shrunk_params"] = [s["shrunk_params"] for s in shrinks]
            entry["params_ratio"] = statistics.fmean(
                s["params_ratio"] for s in shrinks)
            entry["shrunk_accuracy"] = statistics.fmean(
                s["shrunk_accuracy"] for s in shrinks)
            entry["predictions_differing"] = sum(
                s["predictions_differing"] for s in shrinks)
        table[method] = entry
    dense = table.get("dense")
    if dense:
        for entry in table.values():
            entry["accuracy_vs_dense"] = (entry["mean_accuracy"]
                                          - dense["mean_accuracy"])
    return table


def markdown(payload):
    info = payload["machine"]
    table = payload["table"]
    args = payload["args"]
    lines = [
        "# Structured sparsity, LeNet-5-Caffe on Fashion-MNIST "
        "(benchmarks/structured_lenet5.py)",
        "",
        f"{args['epochs']} epochs per run, seeds "
        f"{', '.join(map(str, payload['seeds']))}; test accuracy (10,000 "
        "images), mean over seeds. Every run is `tf_sparse.runs.run` on "
        "configs/fashion_mnist/lenet5_static.py's recipe with the "
        "algorithm, pattern and sparsity of its row (GMP: cubic, 10%-60% "
        "of training, layer-wise). 2:4 leaves conv1 (1 input channel) "
        "dense; channel runs leave fc4 (the outputs) dense.",
        "",
        f"Machine: {info.get('cpu')}, {info.get('cpu_count')} vCPUs "
        "(shared with another benchmark process), Python "
        f"{info.get('python')}, TensorFlow {info.get('tensorflow')}, Keras "
        f"{info.get('keras')}; {info.get('date')}; commit "
        f"{info.get('git_commit')}. Wall time of all runs: "
        f"{payload['total_seconds'] / 60:.1f} min.",
        "",
    ]
    header = ["method", "runs", "test accuracy", "vs dense (points)",
              "nonzero weights"]
    rows = []
    for method, entry in table.items():
        nonzeros = [r["total_nonzeros"] for r in payload["runs"]
                    if r["method"] == method]
        rows.append([method, str(entry["n"]),
                     f"{100 * entry['mean_accuracy']:.2f}%",
                     f"{100 * entry.get('accuracy_vs_dense', 0):+.2f}",
                     str(nonzeros[0]) if nonzeros else "-"])
    lines.append(common.markdown_table(header, rows))
    shrunk = [(m, e) for m, e in table.items() if "shrunk_params" in e]
    if shrunk:
        lines += ["", "Channel runs after `tfs.shrink` (whole test set):", ""]
        header = ["method", "params masked -> shrunk", "ratio",
                  "accuracy masked", "accuracy shrunk",
                  "differing predictions", "widths (conv1, conv2, fc3)"]
        rows = []
        for r in payload["runs"]:
            s = r.get("shrink")
            if not s:
                continue
            widths = s["layer_widths"]
            rows.append([
                f"{r['method']} (seed {r['seed']})",
                f"{s['masked_params']} -> {s['shrunk_params']}",
                f"{s['params_ratio']:.3f}",
                f"{100 * s['masked_accuracy']:.2f}%",
                f"{100 * s['shrunk_accuracy']:.2f}%",
                str(s["predictions_differing"]),
                f"{widths.get('conv1')}, {widths.get('conv2')}, "
                f"{widths.get('fc3')}"])
        lines.append(common.markdown_table(header, rows))
    if payload.get("notes"):
        lines += ["", "Notes:", ""] + [f"- {n}" for n in payload["notes"]]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--first-seed", type=int, default=17)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--steps-per-epoch", type=int, default=0,
                        help="0: the whole training set (smoke tests: a few)")
    parser.add_argument("--name", default=NAME)
    parser.add_argument("--note", action="append", default=[])
    args = parser.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    for m in methods:
        if m not in METHODS:
            parser.error(f"unknown method {m!r}; accepted: "
                         f"{', '.join(METHODS)}")
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    path = os.path.join(common.RESULTS, f"{args.name}.json")
    records, notes = [], list(args.note)
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        if (old.get("args", {}).get("epochs") == args.epochs
                and old["args"].get("steps_per_epoch") == args.steps_per_epoch):
            records = old["runs"]
            notes = notes or old.get("notes", [])
    done = {(r["method"], r["seed"]) for r in records}
    total = sum(r["seconds"] for r in records)
    for seed in seeds:
        for method in methods:
            if (method, seed) in done:
                continue
            record = run_one(method, seed, args)
            records.append(record)
            total += record["seconds"]
            print(f"{method} seed {seed}: "
                  f"{100 * record['test_accuracy']:.2f}% "
                  f"({record['seconds']:.0f} s)", flush=True)
            payload = {"args": {"epochs": args.epochs,
                                "steps_per_epoch": args.steps_per_epoch,
                                "methods": list(METHODS)},
                       "seeds": sorted({r["seed"] for r in records}),
                       "machine": common.machine_info(), "notes": notes,
                       "runs": records, "table": aggregate(records),
                       "total_seconds": total}
            common.write_results(args.name, payload, markdown(payload))


if __name__ == "__main__":
    main()
