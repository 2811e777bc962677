"""Lottery tickets on LeNet-300-100 / Fashion-MNIST: IMP vs random, stability.

What it runs (configs/lottery/lenet300_fashion_mnist.py: SGD lr 0.1, batch
128, 20% of the remaining weights per level, global, output layer excluded),
with a short training per level because the machine is small and shared:

- for every seed and every rewind point (k = 0 and k > 0): IMP for
  --levels levels (15 levels of 20% leave 3.5% of the hidden weights, 3.9%
  of all weights), with the random-pruning and random-reinit baselines;
- for every seed, on the k = 0 run: stability to data order (L2 distance and
  angle between two copies trained with different data orders, and the
  linear-interpolation error barrier) for IMP and random subnetworks at
  --stability_levels, plus stability to pruning.

Writes benchmarks/results/lottery_lenet300.json and .md (machine, versions,
training length, tables, what the measurements say about the paper's
claims) and three PNG plots; benchmarks/results/<name>_notes.md (the
hand-written reading of the numbers) is appended to the markdown if present. Every run lives in --workdir and is resumable:
run the script again after an interruption and finished levels are skipped.

Usage:
  python benchmarks/lottery_lenet300.py                      # ~30-40 min here
  python benchmarks/lottery_lenet300.py --seeds=0 --levels=3 --epochs=1 \
      --stability_levels=3 --steps_per_epoch=50 --workdir=runs/lt_quick \
      --name=lottery_lenet300_quick                          # a smoke run
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import numpy as np  # noqa: E402

import common  # noqa: E402
from configs.lottery import lenet300_fashion_mnist  # noqa: E402
from tf_sparse.lottery import imp  # noqa: E402
from tf_sparse.lottery import reports  # noqa: E402
from tf_sparse.lottery import stability  # noqa: E402

MATCH_TOLERANCE = 0.002   # LMC paper section 4.4: an accuracy drop < 0.2 pp


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", default="runs/lottery_lenet300")
    p.add_argument("--name", default="lottery_lenet300",
                   help="results file name (without extension)")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--epochs", type=int, default=2,
                   help="training length T of every level, in epochs")
    p.add_argument("--steps_per_epoch", type=int, default=0,
                   help="0: the whole training set (468 steps)")
    p.add_argument("--levels", type=int, default=15)
    p.add_argument("--rewind", default="50it",
                   help="the k > 0 rewind point (steps, '1ep' or a fraction)")
    p.add_argument("--baselines", default="random_prune,random_reinit")
    p.add_argument("--k_baseline_levels", default="3,6,9,12,15",
                   help="levels with baselines in the k > 0 runs ('' = all)")
    p.add_argument("--stability_levels", default="0,5,10,15")
    p.add_argument("--rewind_points", default="",
                   help="extra rewind points for instability vs k, e.g. "
                        "'50,200' (trains 2 copies per level and point)")
    p.add_argument("--alphas", type=int, default=30)
    p.add_argument("--train_eval_examples", type=int, default=10000)
    p.add_argument("--verbose", type=int, default=1)
    return p.parse_args(argv)


def ints(text):
    return tuple(int(t) for t in text.split(",") if t.strip())


def lottery_config(args, seed, rewind, baseline_levels):
    c = lenet300_fashion_mnist.get_config()
    c.seed = seed
    c.epochs = args.epochs
    c.steps_per_epoch = args.steps_per_epoch
    c.levels = args.levels
    c.rewind = rewind
    c.baselines = tuple(b for b in args.baselines.split(",") if b)
    c.baseline_levels = baseline_levels
    c.eval_every_epochs = 0
    c.train_eval_examples = args.train_eval_examples
    return c


def summarize(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"mean": float(np.mean(values)), "min": float(np.min(values)),
            "max": float(np.max(values)), "n": len(values)}


def main(argv=None):
    args = parse_args(argv)
    seeds = ints(args.seeds)
    t_start = time.time()
    load_start = os.getloadavg()
    runs = {}          # (seed, label) -> imp.run results
    stab = {}          # seed -> stability results
    timings = {}
    for seed in seeds:
        for label, rewind, levels in (("k=0", "0", ()),
                                      (f"k={args.rewind}", args.rewind,
                                       ints(args.k_baseline_levels))):
            t0 = time.time()
            workdir = os.path.join(args.workdir, f"seed{seed}_{label.replace('=', '')}")
            runs[(seed, label)] = imp.run(
                lottery_config(args, seed, rewind, levels), workdir,
                verbose=args.verbose)
            timings[f"seed{seed} {label}"] = time.time() - t0
        if args.stability_levels:
            t0 = time.time()
            sc = stability.default_config()
            sc.levels = ints(args.stability_levels)
            sc.alphas = args.alphas
            sc.rewind_points = tuple(t for t in args.rewind_points.split(",")
                                     if t.strip())
            sc.train_eval_examples = args.train_eval_examples
            workdir = os.path.join(args.workdir, f"seed{seed}_k0")
            stab[seed] = stability.run(workdir, sc, verbose=args.verbose)
            timings[f"seed{seed} stability"] = time.time() - t0

    k_label = f"k={args.rewind}"
    level0 = runs[(seeds[0], k_label)]["levels"][0]
    steps_info = {"T": level0["end_step"], "epochs": args.epochs,
                  "steps_per_epoch": level0["end_step"] // args.epochs,
                  "k_positive": level0["start_step"]}

    # Accuracy vs weights remaining, mean/min/max over seeds.
    series = {}
    for label in ("k=0", k_label):
        for kind in ["imp"] + [b for b in args.baselines.split(",") if b]:
            rows = {}
            for seed in seeds:
                res = runs[(seed, label)]
                items = res["levels"] if kind == "imp" else \
                    res["baselines"].get(kind, [])
                for m in items:
                    rows.setdefault(m["level"], []).append(m)
            if not rows:
                continue
            series[f"{reports.KIND_LABELS[kind]} ({label})"] = [
                {"level": level, "density": ms[0]["density"],
                 "test_accuracy": summarize([m["test_accuracy"] for m in ms])}
                for level, ms in sorted(rows.items())]
    dense = series["IMP (k=0)"][0]["test_accuracy"]["mean"]
    matching = {}
    for name, points in series.items():
        ok = [p for p in points
              if p["test_accuracy"]["mean"] >= dense - MATCH_TOLERANCE]
        matching[name] = min((p["density"] for p in ok), default=None)

    # Stability, mean/min/max over seeds.
    stab_rows = {}
    for seed, out in stab.items():
        for r in out["results"]:
            stab_rows.setdefault((r["level"], r["kind"], r["rewind_step"]),
                                 []).append(r)
    stability_table = []
    for (level, kind, step), rs in sorted(stab_rows.items()):
        stability_table.append({
            "level": level, "kind": kind, "rewind_step": step,
            "density": rs[0]["density"],
            "data_order_l2": summarize([r["data_order_l2"] for r in rs]),
            "data_order_angle": summarize([r["data_order_angle"] for r in rs]),
            "pruning_l2": summarize([r.get("pruning_l2") for r in rs]),
            "test_barrier": summarize([r.get("test_barrier") for r in rs]),
            "train_barrier": summarize([r.get("train_barrier") for r in rs]),
            "copy_accuracy": summarize([c["test_accuracy"] for r in rs
                                        for c in r["copies"]])})

    # Training time of every folder these results come from (timing.json
    # is written when a training finishes, so this survives re-invocations).
    folders = set()
    for (seed, label), res in runs.items():
        workdir = os.path.join(args.workdir,
                               f"seed{seed}_{label.replace('=', '')}")
        for m in res["levels"]:
            folders.add(os.path.join(workdir, f"level_{m['level']:02d}"))
        for kind, ms in res["baselines"].items():
            for m in ms:
                folders.add(os.path.join(workdir, f"level_{m['level']:02d}",
                                         kind))
    for seed, out in stab.items():
        for r in out["results"]:
            for c in r["copies"]:
                folders.add(os.path.join(args.workdir, f"seed{seed}_k0",
                                         c["folder"]))
    training_seconds = 0.0
    for folder in folders:
        with open(os.path.join(folder, "timing.json")) as f:
            training_seconds += json.load(f)["seconds"]
    payload = {
        "machine": common.machine_info(),
        "training_seconds_total": training_seconds,
        "trainings": len(folders),
        "load_average_start": load_start, "load_average_end": os.getloadavg(),
        "wall_seconds": time.time() - t_start, "timings": timings,
        "args": vars(args),
        "training": steps_info,
        "config": "configs/lottery/lenet300_fashion_mnist.py",
        "match_tolerance": MATCH_TOLERANCE,
        "dense_accuracy_mean": dense,
        "lowest_matching_density": matching,
        "accuracy": series,
        "stability": stability_table,
        "runs": {f"seed{s} {label}": res for (s, label), res in runs.items()},
        "stability_raw": {str(s): out["results"] for s, out in stab.items()},
    }
    for key in ("runs", "stability_raw"):
        strip_curves(payload[key])
    md = markdown(payload, args, seeds, k_label)
    notes = os.path.join(common.RESULTS, f"{args.name}_notes.md")
    if os.path.exists(notes):      # the hand-written reading of the numbers
        with open(notes) as f:
            md += "\n" + f.read()
    plots(payload, args)
    json_path, md_path = common.write_results(args.name, payload, md)
    print(md)
    print(f"wrote {json_path} and {md_path}")


def strip_curves(obj):
    """Drops the per-layer dicts from the raw runs (kept in the workdirs)."""
    if isinstance(obj, dict):
        obj.pop("layers", None)
        for v in obj.values():
            strip_curves(v)
    elif isinstance(obj, list):
        for v in obj:
            strip_curves(v)


def _acc(s):
    if s is None:
        return ""
    if s["n"] == 1:
        return f"{s['mean']:.4f}"
    return f"{s['mean']:.4f} ({s['min']:.4f}-{s['max']:.4f})"


def _num(s, digits=3):
    if s is None:
        return ""
    if s["n"] == 1:
        return f"{s['mean']:.{digits}f}"
    return f"{s['mean']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def markdown(p, args, seeds, k_label):
    tr = p["training"]
    lines = [
        "# Lottery tickets: LeNet-300-100 on Fashion-MNIST", "",
        f"Machine: {p['machine'].get('cpu')}, {p['machine']['cpu_count']} "
        f"cores, shared (load average {p['load_average_start'][0]:.1f} at the "
        f"start, {p['load_average_end'][0]:.1f} at the end); TensorFlow "
        f"{p['machine']['tensorflow']}, Keras {p['machine']['keras']}, "
        f"Python {p['machine']['python']}, commit "
        f"{p['machine'].get('git_commit')}. Training time, summed over the "
        f"{p['trainings']} trainings behind these results: "
        f"{p['training_seconds_total'] / 60:.1f} min (this "
        f"invocation's wall time: {p['wall_seconds'] / 60:.1f} min; a "
        "re-invocation only re-reads finished runs).", "",
        f"Setup: `{p['config']}` (open_lth LeNet hyperparameters: SGD lr 0.1, "
        "no momentum, batch 128; 20% of the remaining weights per level, "
        "global, output layer fc3 excluded) but **trained "
        f"{tr['epochs']} epochs per level (T = {tr['T']} steps) instead of "
        "40**, to fit the machine. Rewind points: k = 0 and k = "
        f"{tr['k_positive']} steps ({args.rewind}). Seeds: "
        f"{', '.join(map(str, seeds))} (each seed fixes the initialisation "
        "and the data order). Values are means over seeds with (min-max).", "",
        "## Test accuracy vs weights remaining", ""]
    names = list(p["accuracy"])
    levels = sorted({pt["level"] for pts in p["accuracy"].values()
                     for pt in pts})
    density = {pt["level"]: pt["density"] for pts in p["accuracy"].values()
               for pt in pts}
    rows = []
    for level in levels:
        row = [str(level), f"{100 * density[level]:.2f}%"]
        for name in names:
            hit = [pt for pt in p["accuracy"][name] if pt["level"] == level]
            row.append(_acc(hit[0]["test_accuracy"]) if hit else "")
        rows.append(row)
    lines.append(common.markdown_table(["level", "weights remaining"] + names,
                                       rows))
    lines += ["", f"![accuracy]({args.name}_accuracy.png)", "",
              f"Matching = mean test accuracy at least the dense network's "
              f"({p['dense_accuracy_mean']:.4f}, IMP k=0 level 0) minus "
              f"{100 * p['match_tolerance']:.1f} pp. Lowest weights remaining "
              "that still match:", ""]
    for name, d in p["lowest_matching_density"].items():
        lines.append(f"- {name}: " + (f"{100 * d:.2f}%" if d is not None
                                      else "none"))
    if p["stability"]:
        lines += ["", "## Stability (on the k = 0 runs)", "",
                  "Data-order L2: distance between two copies of the same "
                  "subnetwork trained from m * W_k (k column; the lottery runs' "
                  "masks come from k = 0) with different data orders "
                  "(masked weights, not normalised). Pruning L2: dense network "
                  "vs subnetwork, same data order, over the mask. Barrier: "
                  f"error barrier on the linear path ({args.alphas} points).",
                  ""]
        rows = [[str(r["level"]), f"{100 * r['density']:.2f}%", r["kind"],
                 str(r["rewind_step"]), _num(r["data_order_l2"]), _num(r["data_order_angle"], 2),
                 _num(r["pruning_l2"]), _num(r["test_barrier"], 4),
                 _num(r["train_barrier"], 4), _num(r["copy_accuracy"], 4)]
                for r in p["stability"]]
        lines.append(common.markdown_table(
            ["level", "weights remaining", "subnetwork", "k", "data-order L2",
             "angle (deg)", "pruning L2", "test barrier", "train barrier",
             "copies' test accuracy"], rows))
        lines += ["", f"![stability]({args.name}_stability.png)", "",
                  f"![barrier]({args.name}_barrier.png)", ""]
        lines += ["Random / IMP data-order distance (the paper's \"Comp\"; "
                  "> 1 means IMP is more stable):", ""]
        by = {(r["level"], r["kind"]): r for r in p["stability"]
              if r["rewind_step"] == 0}
        for (level, kind), r in sorted(by.items()):
            if kind != "imp" or (level, "random") not in by:
                continue
            ri = r["data_order_l2"]["mean"]
            rr = by[(level, "random")]["data_order_l2"]["mean"]
            ai = r["data_order_angle"]["mean"]
            ar = by[(level, "random")]["data_order_angle"]["mean"]
            lines.append(
                f"- level {level} ({100 * r['density']:.2f}%): L2 {rr:.3f} / "
                f"{ri:.3f} = {rr / ri:.2f}x; angle {ar:.2f} / {ai:.2f} deg = "
                f"{ar / ai:.2f}x")
        lines.append("")
    return "\n".join(lines)


def plots(p, args):
    out = common.RESULTS
    series = {name: [(100 * pt["density"], pt["test_accuracy"]["mean"],
                      pt["test_accuracy"]["min"], pt["test_accuracy"]["max"])
                     for pt in pts] for name, pts in p["accuracy"].items()}
    reports.plot_lines(
        os.path.join(out, f"{args.name}_accuracy.png"), series,
        xlabel="weights remaining (%)", ylabel="test accuracy",
        title=f"LeNet-300-100 / Fashion-MNIST, {args.epochs} epochs per level",
        log_x=True, invert_x=True)
    if not p["stability"]:
        return
    for key, ylabel, suffix, hline in (
            ("data_order_l2", "data-order L2 distance", "stability", None),
            ("test_barrier", "test error barrier", "barrier",
             (0.02, "stable below 2%"))):
        series = {}
        for r in p["stability"]:
            if r["rewind_step"] != 0:
                continue
            s = r[key]
            if s is None:
                continue
            series.setdefault(r["kind"], []).append(
                (100 * r["density"], s["mean"], s["min"], s["max"]))
        reports.plot_lines(
            os.path.join(out, f"{args.name}_{suffix}.png"), series,
            xlabel="weights remaining (%)", ylabel=ylabel,
            title=f"{ylabel}, k = 0", log_x=True, invert_x=True, hline=hline)
    points = sorted({r["rewind_step"] for r in p["stability"]})
    if len(points) > 1:
        series = {}
        for r in p["stability"]:
            if r["test_barrier"] is not None:
                series.setdefault(
                    f"{r['kind']} level {r['level']} "
                    f"({100 * r['density']:.1f}%)", []).append(
                    (r["rewind_step"], r["test_barrier"]["mean"],
                     r["test_barrier"]["min"], r["test_barrier"]["max"]))
        reports.plot_lines(
            os.path.join(out, f"{args.name}_barrier_vs_k.png"), series,
            xlabel="rewind step k", ylabel="test error barrier",
            title="Instability vs rewind point", hline=(0.02, "stable below 2%"))


if __name__ == "__main__":
    main()
