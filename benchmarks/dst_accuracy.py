"""Accuracy vs density on real Fashion-MNIST: dense, static, SNIP, SET, RigL
and sparse momentum, test error mean and standard error over seeds.

Every run goes through `tf_sparse.runs.run` (what tools/train.py runs)
with the Fashion-MNIST config of its method (configs/fashion_mnist/
<model>_<method>.py: sparse momentum's MNIST reference recipe,
docs/paper_configs.md); only the density, the seed and the length change.
The reference decays the learning rate every 25,000 steps, so a run of
fewer than 47 epochs never decays it; the prune-rate decay and RigL's window
are fractions of training.

Each run's record keeps its full resolved config, the commit and versions
that ran it, and its wall time. A run that diverged (the engine's guard:
non-finite loss or weights) or collapsed (the same output for every test
image) is listed apart and left out of the means.

Results are saved after every run to benchmarks/results/<name>.json; a
killed benchmark started again with the same flags skips finished runs.

Usage:
  python benchmarks/dst_accuracy.py                                # defaults
  python benchmarks/dst_accuracy.py --model=lenet5 --epochs=20 --seeds=5
  python benchmarks/dst_accuracy.py --methods=sparse_momentum,rigl \\
      --densities=0.05 --seeds=1 --epochs=1 --name=dst_accuracy_smoke
  # two shards in parallel, then one table from both:
  python benchmarks/dst_accuracy.py --model=lenet5 --methods=static,snip,set \\
      --name=lenet5_a &
  python benchmarks/dst_accuracy.py --model=lenet5 --no-dense \\
      --methods=rigl,sparse_momentum --name=lenet5_b
  python benchmarks/dst_accuracy.py --model=lenet5 --merge=lenet5_a \\
      --merge=lenet5_b
Writes benchmarks/results/<name>.{json,md}.
"""

import argparse
import importlib.util
import json
import math
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import common  # noqa: E402

METHODS = ("static", "snip", "set", "rigl", "sparse_momentum")
# The engine's failure reports (results.json): non-finite or exploding loss,
# and a network that gives every input the same output.
FAILURES = common.FAILURES
MODELS = {"lenet300": "LeNet-300-100", "lenet5": "LeNet-5-Caffe"}


def load_config(model, method):
    path = os.path.join(ROOT, "configs", "fashion_mnist",
                        f"{model}_{method}.py")
    spec = importlib.util.spec_from_file_location(f"{model}_{method}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def run_one(model, method, density, seed, args, params=None):
    """One training run; `params` override `config.algorithm_params`."""
    config = load_config(model, method)
    for k, v in (params or {}).items():
        setattr(config.algorithm_params, k, v)
    config.epochs = args.epochs
    config.seed = seed
    config.sparsity = 0.0 if method == "dense" else round(1.0 - density, 6)
    if args.steps_per_epoch:
        config.steps_per_epoch = args.steps_per_epoch
    results, _, seconds = common.run_in_tempdir(config, "dst_acc_")
    fields = common.run_fields(results)
    return {"model": model, "method": method, "density": density,
            "seed": seed, "epochs": args.epochs, "params": params or {},
            "test_accuracy": fields["test_accuracy"],
            "test_error": 100.0 * (1.0 - results["test_accuracy"]),
            **fields, "seconds": seconds}


def failure_of(record):
    """How `record`'s run failed ("diverged", "collapsed") or None; failed
    runs are listed apart and left out of the means."""
    return next((f for f in FAILURES if record.get(f)), None)


def key(r):
    return f"{r['model']}/{r['method']}/{r['density']}/{r['seed']}"


def aggregate(runs):
    """Mean and standard error of the test error per (method, density);
    diverged or collapsed runs are counted apart, never averaged in."""
    groups, failed = {}, {}
    for r in runs:
        cell = (r["method"], r["density"])
        groups.setdefault(cell, [])
        if failure_of(r):
            failed.setdefault(cell, []).append(r["seed"])
        else:
            groups[cell].append(r["test_error"])
    table = {}
    for (method, density), errors in groups.items():
        mean = statistics.fmean(errors) if errors else float("nan")
        se = (statistics.stdev(errors) / math.sqrt(len(errors))
              if len(errors) > 1 else float("nan"))
        table[f"{method}/{density}"] = {
            "method": method, "density": density, "n": len(errors),
            "mean": mean, "se": se, "errors": errors,
            "failed_seeds": failed.get((method, density), [])}
    return table


def markdown(payload):
    args = payload["args"]
    info = payload["machine"]
    table = payload["table"]
    methods = [m for m in METHODS if m in args["methods"]]
    densities = sorted(args["densities"])

    def cell(e):
        if not e:
            return "-"
        text = (f"{e['mean']:.2f} ± {e['se']:.2f}" if e["n"] > 1
                else f"{e['mean']:.2f}" if e["n"] else "")
        bad = e.get("failed_seeds") or []
        return text + (f" ({len(bad)} failed)" if bad else "")
    lines = [
        f"# Test error (%) vs density, {MODELS[args['model']]} on "
        "Fashion-MNIST (benchmarks/dst_accuracy.py)",
        "",
        f"{args['epochs']} epochs per run (the paper trains 100; shortened "
        "to fit this shared 2-core machine, see the wall time below), "
        f"{args['seeds']} seeds ({', '.join(map(str, payload['seeds']))}), "
        "mean ± standard error of the test error over seeds that neither "
        "diverged nor collapsed. Every run is `tf_sparse.runs.run` with "
        f"configs/fashion_mnist/{args['model']}_<method>.py at the given "
        "density: sparse momentum's MNIST reference recipe "
        "(docs/paper_configs.md; uniform per-layer density, PyTorch's SGD "
        "and initialisation, batch 100, 10% of the training set held out, "
        "lr x0.1 every 25,000 steps).",
        "",
        f"Machine: {info.get('cpu')}, {info.get('cpu_count')} vCPUs (shared "
        f"with other jobs), Python {info.get('python')}, TensorFlow "
        f"{info.get('tensorflow')}, Keras {info.get('keras')}, NumPy "
        f"{info.get('numpy')}; {info.get('date')}; commit "
        f"{info.get('git_commit')}. Wall time of all runs: "
        f"{payload['total_seconds'] / 60:.1f} min.",
        "",
    ]
    header = ["weights"] + methods
    rows = []
    for d in densities:
        rows.append([f"{100 * d:g}%"] + [cell(table.get(f"{m}/{d}"))
                                         for m in methods])
    dense = table.get("dense/1.0")
    if dense:
        rows.append(["100% (dense)", cell(dense)] + [""] * (len(methods) - 1))
    lines.append(common.markdown_table(header, rows))
    # The paper's claim: sparse momentum comes closest to dense everywhere.
    lines.append("")
    lines.append("Best sparse method per density (lowest mean error):")
    lines.append("")
    for d in densities:
        entries = [(table[f"{m}/{d}"]["mean"], m) for m in methods
                   if table.get(f"{m}/{d}", {}).get("n")]
        if entries:
            best = min(entries)
            sm = table.get(f"sparse_momentum/{d}")
            note = ""
            if sm and sm["n"] and best[1] != "sparse_momentum":
                gap = sm["mean"] - best[0]
                note = (f" (sparse momentum {sm['mean']:.2f}, "
                        f"{gap:+.2f} points)")
            lines.append(f"- {100 * d:g}%: {best[1]} {best[0]:.2f}{note}")
    bad = [r for r in payload.get("runs", []) if failure_of(r)]
    if bad:
        lines += ["", "Failed runs (left out of the means):", ""] + [
            f"- {r['method']} {100 * r['density']:g}% seed {r['seed']}, "
            f"{failure_of(r)}: {r[failure_of(r)]}" for r in bad]
    if payload.get("notes"):
        lines += ["", "Notes:", ""] + [f"- {n}" for n in payload["notes"]]
    return "\n".join(lines) + "\n"


def rewrite_markdown(name):
    """Rewrites results/<name>.md from its JSON (after changing the text)."""
    with open(os.path.join(common.RESULTS, f"{name}.json")) as f:
        payload = json.load(f)
    common.write_results(name, payload, markdown(payload))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="lenet300", choices=list(MODELS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--densities", default="0.01,0.02,0.05,0.1")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=17)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps-per-epoch", type=int, default=0,
                        help="0: the whole training set every epoch")
    parser.add_argument("--no-dense", action="store_true")
    parser.add_argument("--name", default=None)
    parser.add_argument("--merge", action="append", default=[],
                        help="take finished runs (same model and epochs) "
                        "from results/<MERGE>.json, e.g. shards run in "
                        "parallel under other --name (repeatable)")
    parser.add_argument("--rerun", action="append", default=[],
                        help="run this method again even if cached "
                        "(repeatable)")
    parser.add_argument("--note", action="append", default=[],
                        help="a sentence for the results file (repeatable; "
                        "without it the file's previous notes are kept)")
    args = parser.parse_args()
    args.methods = [m for m in args.methods.split(",") if m]
    for m in args.methods:
        if m not in METHODS:
            parser.error(f"unknown method {m!r}; accepted: "
                         f"{', '.join(METHODS)}")
    args.densities = [float(d) for d in args.densities.split(",")]
    name = args.name or f"dst_accuracy_{args.model}"
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    previous = {}
    notes = list(args.note)
    for source in [name] + args.merge:
        path = os.path.join(common.RESULTS, f"{source}.json")
        if not os.path.exists(path):
            if source != name:
                parser.error(f"--merge={source}: no file {path}")
            continue
        with open(path) as f:
            old = json.load(f)
        if old.get("args", {}).get("epochs") == args.epochs:
            previous.update({key(r): r for r in old.get("runs", [])
                             if r["method"] not in args.rerun})
            if source == name and not args.note:
                notes = old.get("notes", [])   # kept unless new ones given
    plan = [(m, d, s) for d in args.densities for m in args.methods
            for s in seeds]
    if not args.no_dense:
        plan = [("dense", 1.0, s) for s in seeds] + plan
    runs = []
    payload = {"args": vars(args), "seeds": seeds,
               "machine": common.machine_info(), "notes": notes}
    total = 0.0
    for i, (method, density, seed) in enumerate(plan):
        k = f"{args.model}/{method}/{density}/{seed}"
        if k in previous:
            runs.append(previous[k])
            total += previous[k]["seconds"]
            continue
        r = run_one(args.model, method, density, seed, args)
        runs.append(r)
        total += r["seconds"]
        print(f"[{i + 1}/{len(plan)}] {k}: error {r['test_error']:.2f}% "
              f"({r['seconds']:.0f}s)"
              + (f" {failure_of(r).upper()}" if failure_of(r) else ""),
              flush=True)
        payload.update(runs=runs, table=aggregate(runs), total_seconds=total)
        common.write_results(name, payload, markdown(payload))
    payload.update(runs=runs, table=aggregate(runs), total_seconds=total)
    paths = common.write_results(name, payload, markdown(payload))
    print(markdown(payload))
    print("wrote", *paths)


if __name__ == "__main__":
    main()
