"""The sparse-momentum paper's ablations on real Fashion-MNIST: which layers
get the regrowth (redistribution) and where weights regrow (growth).

LeNet-300-100 or LeNet-5-Caffe at one density (default 2%, where the
table of benchmarks/dst_accuracy.py separates the methods), test error mean
and standard error over seeds, each run through `tf_sparse.runs.run` with
configs/fashion_mnist/<model>_sparse_momentum.py (sparse momentum's
reference recipe) and `algorithm_params.redistribution` / `.growth`
changed:

  redistribution: momentum (paper), magnitude, nonzero, none (each layer
    regrows what it pruned: the paper's "no redistribution"), size (the
    reference code's `--redistribution none`: shares by layer size);
  growth: momentum (paper), random, gradient.

Usage:
  python benchmarks/dst_ablations.py                  # 2%, 5 epochs, 3 seeds
  python benchmarks/dst_ablations.py --density=0.05 --epochs=20 --seeds=5
  python benchmarks/dst_ablations.py --model=lenet5 --epochs=10
Writes benchmarks/results/<name>.{json,md} (default name
dst_ablations_<model>; resumable like dst_accuracy). Diverged runs are
listed apart and left out of the means.
"""

import argparse
import json
import math
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402
import dst_accuracy  # noqa: E402

VARIANTS = (
    ("momentum", "momentum"),
    ("magnitude", "momentum"),
    ("nonzero", "momentum"),
    ("none", "momentum"),
    ("size", "momentum"),
    ("momentum", "random"),
    ("none", "random"),
    ("momentum", "gradient"),
)


def markdown(payload):
    args = payload["args"]
    info = payload["machine"]
    lines = [
        "# Sparse momentum ablations, "
        f"{dst_accuracy.MODELS[args['model']]} on Fashion-MNIST at "
        f"{100 * args['density']:g}% weights (benchmarks/dst_ablations.py)",
        "",
        f"{args['epochs']} epochs per run, seeds "
        f"{', '.join(map(str, payload['seeds']))}; test error %, mean ± "
        "standard error over the runs that neither diverged nor collapsed. "
        "Everything else as configs/fashion_mnist/"
        f"{args['model']}_sparse_momentum.py (the reference recipe; prune "
        "rate 0.5 cosine to 0.005, update every epoch but the last).",
        "",
        f"Machine: {info.get('cpu')}, {info.get('cpu_count')} vCPUs (shared), "
        f"TensorFlow {info.get('tensorflow')}, Keras {info.get('keras')}; "
        f"{info.get('date')}; commit {info.get('git_commit')}. Wall time: "
        f"{payload['total_seconds'] / 60:.1f} min.",
        "",
    ]
    rows, names = [], []
    for red, growth in VARIANTS:
        entry = payload["table"].get(f"{red}/{growth}")
        if not entry:
            continue
        cell = (f"{entry['mean']:.2f} ± {entry['se']:.2f}"
                if entry["n"] > 1 else f"{entry['mean']:.2f}"
                if entry["n"] else "")
        if entry["failed_seeds"]:
            cell += f" ({len(entry['failed_seeds'])} failed)"
        final = entry["final_density"]
        names = sorted(final)
        rows.append([red, growth, cell,
                     " / ".join(f"{final[p]:.3f}" for p in names)])
    layers = " / ".join(n.split("/")[0] for n in names)
    lines.append(common.markdown_table(
        ["redistribution", "growth", "test error %",
         f"final density {layers} (first seed)"], rows))
    bad = [r for r in payload["runs"] if dst_accuracy.failure_of(r)]
    if bad:
        lines += ["", "Failed runs (left out of the means):", ""] + [
            f"- {r['key']}, {dst_accuracy.failure_of(r)}: "
            f"{r[dst_accuracy.failure_of(r)]}" for r in bad]
    return "\n".join(lines) + "\n"


def aggregate(runs):
    """Mean and standard error per variant over the runs that neither
    diverged nor collapsed."""
    groups = {}
    for run in runs:
        groups.setdefault("/".join(run["key"].split("/")[:2]), []).append(run)
    table = {}
    for k, group in groups.items():
        errors = [x["test_error"] for x in group
                  if not dst_accuracy.failure_of(x)]
        table[k] = {
            "n": len(errors),
            "mean": statistics.fmean(errors) if errors else float("nan"),
            "se": (statistics.stdev(errors) / math.sqrt(len(errors))
                   if len(errors) > 1 else float("nan")),
            "errors": errors,
            "failed_seeds": [x["seed"] for x in group
                             if dst_accuracy.failure_of(x)],
            "final_density": group[0]["layer_density"]}
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="lenet300",
                        choices=list(dst_accuracy.MODELS))
    parser.add_argument("--density", type=float, default=0.02)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=17)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps-per-epoch", type=int, default=0)
    parser.add_argument("--name", default=None)
    args = parser.parse_args()
    args.name = args.name or f"dst_ablations_{args.model}"
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    path = os.path.join(common.RESULTS, f"{args.name}.json")
    previous = {}
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        if old.get("args", {}).get("epochs") == args.epochs:
            previous = {r["key"]: r for r in old.get("runs", [])}
    payload = {"args": vars(args), "seeds": seeds,
               "machine": common.machine_info()}
    runs, total = [], 0.0
    plan = [(v, s) for v in VARIANTS for s in seeds]
    for i, ((red, growth), seed) in enumerate(plan):
        key = f"{red}/{growth}/{args.density}/{seed}"
        if key in previous:
            r = previous[key]
        else:
            r = dst_accuracy.run_one(
                args.model, "sparse_momentum", args.density, seed, args,
                params={"redistribution": red, "growth": growth})
            r["key"] = key
            print(f"[{i + 1}/{len(plan)}] {key}: error "
                  f"{r['test_error']:.2f}% ({r['seconds']:.0f}s)"
                  + (" FAILED" if dst_accuracy.failure_of(r) else ""),
                  flush=True)
        runs.append(r)
        total += r["seconds"]
        payload.update(runs=runs, table=aggregate(runs), total_seconds=total)
        common.write_results(args.name, payload, markdown(payload))
    paths = common.write_results(args.name, payload, markdown(payload))
    print(markdown(payload))
    print("wrote", *paths)


if __name__ == "__main__":
    main()
