"""Does longer training close the gap between sparse and dense? (issue 5)

On real Fashion-MNIST, LeNet-5 trained from scratch and the small ViT
fine-tuned from a dense pretrained model (with distillation from it), at
several sparsities: dense, GMP and AC/DC at 1x, 2x, 4x the base training
length, several seeds. Every run records the under-training diagnostics per
epoch (`tf_sparse.undertraining`); the script writes

    benchmarks/results/recipes_undertraining.json   every run, with curves
    benchmarks/results/recipes_undertraining.md     tables and conclusions
    benchmarks/results/recipes_undertraining/       report.md + PNG plots

The defaults are the subset that fits in about 40 minutes of this shared
2-core machine; `--full` runs the whole grid (90/95/98%, both models, 1x/2x/4x,
2 seeds, about 4x longer). Runs are cached in --workroot, so an interrupted
benchmark continues where it stopped.

Usage:
  python benchmarks/recipes_undertraining.py              # the subset
  python benchmarks/recipes_undertraining.py --full
  python benchmarks/recipes_undertraining.py --models=lenet5 \
      --sparsities=0.9,0.95,0.98 --multipliers=1,2,4 --seeds=0,1
"""

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import common  # noqa: E402
from tf_sparse import recipes  # noqa: E402
from tf_sparse import undertraining  # noqa: E402
from tf_sparse.models import transformer  # noqa: E402

NAME = "recipes_undertraining"
# AC/DC's phases in these recipes (fractions of training): dense warm-up
# 10%, 10% phases, final compressed 20%, momentum reset, global ranking.
ACDC_KWARGS = dict(warmup=0.1, phase_length=0.1, end_sparse=0.2, tail="dense",
                   reset_momentum=True, scope="global")


def set_algorithm(c, algorithm, sparsity):
    """Dense (no masks), or GMP / AC/DC / static at `sparsity` (global)."""
    c.algorithm = algorithm
    c.sparsity = 0.0 if algorithm == "dense" else sparsity
    if algorithm == "acdc":
        c.algorithm_kwargs = dict(ACDC_KWARGS)


def lenet5_config(args, algorithm, sparsity, multiplier, seed):
    c = recipes.default_config()
    c.model = "lenet5_caffe"
    set_algorithm(c, algorithm, sparsity)
    c.epochs = args.lenet_epochs
    c.steps_per_epoch = args.lenet_steps
    c.train_multiplier = float(multiplier)
    c.learning_rate = 0.05
    c.seed = seed
    c.train_eval_examples = args.eval_examples
    return c


def vit_config(args, algorithm, sparsity, multiplier, seed):
    c = recipes.default_config()
    c.model = "vit_tiny"
    c.optimizer = "adamw"
    c.learning_rate = 5e-4
    c.weight_decay = 1e-4
    c.warmup = 0.05
    c.pretrain_epochs = args.vit_pretrain_epochs
    c.pretrain_learning_rate = 2e-3
    c.pretrained_path = os.path.join(args.workroot,
                                     f"vit_pretrained_seed{seed}.keras")
    c.epochs = args.vit_epochs
    c.steps_per_epoch = args.vit_steps
    c.train_multiplier = float(multiplier)
    set_algorithm(c, algorithm, sparsity)
    c.prune = tuple(transformer.layer_type_sparsity(attention=0, ffn=0))
    c.teacher = "pretrained" if algorithm != "dense" else ""
    c.seed = seed
    c.train_eval_examples = args.eval_examples
    return c


CONFIGS = {"lenet5": lenet5_config, "vit": vit_config}


def grid(args):
    """(model, algorithm, sparsity, multiplier, seed), seeds outermost."""
    runs = []
    for seed in args.seeds:
        for model in args.models:
            for m in args.multipliers:
                runs.append((model, "dense", None, m, seed))
            sparsities = args.sparsities
            if model == "vit" and args.vit_sparsities is not None:
                sparsities = args.vit_sparsities
            for m in args.multipliers:
                for s in sparsities:
                    for algorithm in args.algorithms:
                        runs.append((model, algorithm, s, m, seed))
    return runs


def run_name(model, algorithm, sparsity, multiplier, seed):
    s = "" if sparsity is None else f"{int(round(sparsity * 100))}"
    return f"{model}_{algorithm}{s}_x{multiplier:g}_seed{seed}"


def scrub(value, workroot):
    """Replaces the machine's work directory in results by `$WORKROOT`."""
    if isinstance(value, str):
        return value.replace(workroot, "$WORKROOT")
    if isinstance(value, dict):
        return {k: scrub(v, workroot) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v, workroot) for v in value]
    return value


def summarise(records):
    """Mean/std test accuracy, gap to dense, train-loss excess per cell."""
    dense = {(r["model"], r["multiplier"], r["seed"]): r for r in records
             if r["algorithm"] == "dense"}
    cells = {}
    for r in records:
        key = (r["model"], r["algorithm"], r["sparsity"], r["multiplier"])
        ref = dense.get((r["model"], r["multiplier"], r["seed"]))
        entry = cells.setdefault(key, {"acc": [], "gap": [], "excess": [],
                                       "under": [], "train_loss": [],
                                       "val_loss": [], "entropy": [],
                                       "dense_cotrained": [], "drift": [],
                                       "entropy_higher": [],
                                       "seconds": []})
        last = r["history"][-1]
        entry["acc"].append(r["test_accuracy"])
        entry["train_loss"].append(last["train_loss"])
        entry["val_loss"].append(last["val_loss"])
        entry["entropy"].append(last["entropy"])
        entry["seconds"].append(r["seconds"])
        if "dense_cotrained_test_accuracy" in r:
            entry["dense_cotrained"].append(r["dense_cotrained_test_accuracy"])
        if r.get("mask_drift"):
            entry["drift"].append(
                float(np.mean([d["changed_fraction"] for d in r["mask_drift"]])))
        if ref is not None and r["algorithm"] != "dense":
            entry["gap"].append(ref["test_accuracy"] - r["test_accuracy"])
            excess = last["train_loss"] - ref["history"][-1]["train_loss"]
            entry["excess"].append(excess)
            entry["under"].append(excess > 0)
            entry["entropy_higher"].append(
                last["entropy"] > ref["history"][-1]["entropy"])
    return cells


def _ms(values, scale=100.0, digits=2):
    if not values:
        return "-"
    v = np.asarray(values, dtype=float) * scale
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def markdown(args, records, cells, info, wall, verdict_lines):
    out = [f"# Under-training of sparse models and longer schedules "
           f"(`benchmarks/{NAME}.py`)", ""]
    out += ["Real Fashion-MNIST (60k train: 10% held out for validation, "
            "10k test). Each figure is the mean ± sample std over seeds "
            f"{', '.join(map(str, args.seeds))} (n = {len(args.seeds)}).", ""]
    out += ["Settings:", "",
            f"- LeNet-5 (`lenet5_caffe`) from scratch: SGD 0.05, Nesterov "
            f"momentum 0.9, weight decay 5e-4, cosine LR, batch 100; 1x = "
            f"{args.lenet_epochs} epoch(s) of {args.lenet_steps} steps "
            f"({args.lenet_epochs * args.lenet_steps} steps); global magnitude "
            "for GMP and AC/DC, all layers pruned.",
            f"- ViT (`vit_tiny`, 139k params): pretrained dense for "
            f"{args.vit_pretrain_epochs} epoch(s) of {args.vit_steps} steps "
            "(AdamW 2e-3, cosine), then fine-tuned with AdamW 5e-4 (5% "
            f"warm-up, cosine); 1x = {args.vit_epochs} epoch(s) of "
            f"{args.vit_steps} steps. Attention and FFN kernels pruned "
            "(global), embeddings and head dense; sparse runs distil from "
            "the pretrained dense model (T=4, alpha=0.5), the dense "
            "reference fine-tunes without distillation.",
            "- GMP: cubic, 0 -> target over the first 70% of training, an "
            "update every 5% of training. AC/DC: dense warm-up 10%, 10% "
            "phases, last alternating phase dense, final sparse phase 20%, "
            "momentum of masked weights reset at phase changes.",
            "- 2x / 4x multiply the number of steps; every schedule position "
            "is a fraction of training, so all stretch together.",
            f"- Diagnostics each epoch: training loss on a fixed {args.eval_examples} training "
            "subset in inference mode, validation loss, mean predictive "
            "entropy on 1000 fixed validation images.", ""]
    header = ["model", "method", "sparsity", "mult.", "test acc %",
              "gap to dense (pts)", "final train loss", "train-loss excess "
              "vs dense", "higher train loss than dense", "val loss",
              "entropy", "AC/DC dense model acc %",
              "AC/DC mask drift % (mean over compressions)", "seconds/run"]
    rows = []
    for key in sorted(cells, key=lambda k: (k[0], k[1] != "dense", k[1],
                                            k[2] or 0, k[3])):
        model, algorithm, sparsity, mult = key
        e = cells[key]
        under = (f"{sum(e['under'])}/{len(e['under'])}" if e["under"]
                 else "-")
        rows.append([model, algorithm,
                     "-" if sparsity is None else f"{sparsity:.2f}",
                     f"{mult:g}x", _ms(e["acc"]), _ms(e["gap"]),
                     _ms(e["train_loss"], 1, 4), _ms(e["excess"], 1, 4),
                     under, _ms(e["val_loss"], 1, 4), _ms(e["entropy"], 1, 3),
                     _ms(e["dense_cotrained"]), _ms(e["drift"]),
                     _ms(e["seconds"], 1, 0)])
    out += ["## Results", "", common.markdown_table(header, rows)]
    out += ["AC/DC dense model = the co-trained dense model (weights at the "
            "end of the last dense phase); mask drift = share of masked "
            "positions whose state changed between consecutive compressions.",
            ""]
    out += ["## Does the gap to dense shrink with longer training?", ""]
    by = {}
    for (model, algorithm, sparsity, mult), e in cells.items():
        if algorithm == "dense" or not e["gap"]:
            continue
        by.setdefault((model, algorithm, sparsity), {})[mult] = (
            float(np.mean(e["gap"])) * 100, float(np.mean(e["excess"])))
    header = ["model", "method", "sparsity"] + [
        f"gap {m:g}x" for m in args.multipliers] + [
        f"excess {m:g}x" for m in args.multipliers] + ["gap shrinks 1x -> "
                                                        f"{max(args.multipliers):g}x"]
    rows = []
    for (model, algorithm, sparsity), d in sorted(by.items()):
        gaps = [d.get(m, (float("nan"),))[0] for m in args.multipliers]
        exc = [d.get(m, (0, float("nan")))[1] for m in args.multipliers]
        first, last = gaps[0], gaps[-1]
        shrinks = ("yes" if last < first else "no") if not (
            np.isnan(first) or np.isnan(last)) else "-"
        rows.append([model, algorithm, f"{sparsity:.2f}"] +
                    [f"{g:.2f}" for g in gaps] + [f"{x:+.4f}" for x in exc] +
                    [shrinks])
    out += [common.markdown_table(header, rows)]
    out += ["Gap = dense test accuracy minus sparse test accuracy (points, "
            "same seed and length); excess = final training loss minus the "
            "dense reference's (positive: the sparse run looks "
            "under-trained).", ""]
    # Longer sparse training against the 1x dense budget.
    header = ["model", "method", "sparsity"] + [
        f"sparse {m:g}x - dense 1x" for m in args.multipliers]
    rows = []
    for (model, algorithm, sparsity), d in sorted(by.items()):
        dense1 = cells.get((model, "dense", None, args.multipliers[0]))
        if not dense1:
            continue
        base = float(np.mean(dense1["acc"])) * 100
        row = [model, algorithm, f"{sparsity:.2f}"]
        for m in args.multipliers:
            e = cells.get((model, algorithm, sparsity, m))
            row.append(f"{float(np.mean(e['acc'])) * 100 - base:+.2f}"
                       if e else "-")
        rows.append(row)
    out += ["Sparse runs trained k times longer, against the dense run at "
            "the 1x budget (test accuracy points):", "",
            common.markdown_table(header, rows)]
    out += ["## What the numbers say", ""] + conclusions(args, cells, by)
    out += [""]
    if args.note:
        out += ["## Notes", ""] + [f"- {n}" for n in args.note] + [""]
    out += ["## Under-training verdicts per run", ""] + verdict_lines + [""]
    out += ["Plots (means over seeds; x = fraction of training):", "",
            f"![gap to dense]({NAME}/gap_to_dense.png)", ""]
    for model in sorted({r["model"] for r in records}):
        out += [f"![{model} diagnostics]({NAME}/diagnostics_{model}.png)",
                ""]
    out += ["Per-run tables, statements and all curves: "
            f"`{NAME}/<model>/report.md` and its PNGs.", ""]
    out += ["## Machine", "",
            f"- {info.get('cpu')}, {info.get('cpu_count')} cores, shared with "
            "other jobs (load average at start "
            f"{info.get('load_start')}, at end {info.get('load_end')}); "
            f"TensorFlow {info.get('tensorflow')}, Keras {info.get('keras')}, "
            f"NumPy {info.get('numpy')}, Python {info.get('python')}.",
            f"- Sum of the runs' wall times: "
            f"{sum(r['seconds'] for r in records) / 60:.1f} min for "
            f"{len(records)} runs, at most two at a time (the first ViT run "
            "of each seed includes the dense pretraining, cached after)"
            + ("; this report was rebuilt from the cached runs."
               if args.report_only else
               f"; this invocation took {wall / 60:.1f} min."), ""]
    return "\n".join(out)


def conclusions(args, cells, by):
    """Plain statements computed from the tables (whichever way they fall)."""
    lines = []
    first, last = args.multipliers[0], args.multipliers[-1]
    for (model, algorithm, sparsity), d in sorted(by.items()):
        gaps = [d[m][0] for m in args.multipliers if m in d]
        if len(gaps) < 2:
            lines.append(f"- {model} {algorithm} {sparsity:.0%}: only "
                         f"{len(gaps)} training length(s) measured.")
            continue
        monotone = all(a > b for a, b in zip(gaps, gaps[1:]))
        seeds = [len(cells[(model, algorithm, sparsity, m)]["gap"])
                 for m in args.multipliers if m in d]
        lines.append(
            f"- {model} {algorithm} {sparsity:.0%}: gap to dense "
            + " -> ".join(f"{g:.2f}" for g in gaps)
            + f" points from {first:g}x to "
            f"{max(m for m in args.multipliers if m in d):g}x ("
            + ("shrinks at every step" if monotone else
               ("shrinks overall" if gaps[-1] < gaps[0] else "does NOT shrink"))
            + f"; seeds per point: {', '.join(map(str, seeds))}).")
    for m in args.multipliers:
        under = [u for (model, algorithm, sparsity, mult), e in cells.items()
                 if mult == m and algorithm != "dense" for u in e["under"]]
        entropy = [u for (model, algorithm, sparsity, mult), e in cells.items()
                   if mult == m and algorithm != "dense"
                   for u in e["entropy_higher"]]
        if under:
            lines.append(f"- At {m:g}x, {sum(under)} of {len(under)} sparse "
                         "runs ended with a higher training loss, and "
                         f"{sum(entropy)} of {len(entropy)} with a higher "
                         "mean predictive entropy, than the dense run of the "
                         "same length and seed.")
    # GMP against AC/DC at the same model, sparsity and length.
    for model in sorted({k[0] for k in cells}):
        pairs = []
        for (mdl, algorithm, sparsity, m), e in cells.items():
            other = cells.get((mdl, "acdc", sparsity, m))
            if mdl == model and algorithm == "gmp" and other:
                pairs.append(float(np.mean(other["acc"]) - np.mean(e["acc"])))
        if pairs:
            wins = sum(d > 0 for d in pairs)
            lines.append(
                f"- {model}: AC/DC beats GMP in {wins} of {len(pairs)} "
                "(sparsity, length) cells; mean difference "
                f"{100 * float(np.mean(pairs)):+.2f} points (AC/DC - GMP).")
        drift = [d for (mdl, algorithm, _, _), e in cells.items()
                 if mdl == model and algorithm == "acdc" for d in e["drift"]]
        if drift:
            lines.append(
                f"- {model}: AC/DC mask drift between consecutive "
                f"compressions, mean over runs {100 * float(np.mean(drift)):.2f}% "
                f"(max {100 * float(np.max(drift)):.2f}%) of masked positions.")
        dense1 = cells.get((model, "dense", None, first))
        if dense1:
            base = float(np.mean(dense1["acc"]))
            caught = sorted(
                (m, algorithm, sparsity)
                for (mdl, algorithm, sparsity, m), e in cells.items()
                if mdl == model and algorithm != "dense" and m > first
                and float(np.mean(e["acc"])) >= base)
            lines.append(
                f"- {model}: {len(caught)} sparse cells trained longer than "
                f"{first:g}x reach the {first:g}x dense accuracy "
                f"({100 * base:.2f}%)"
                + (": " + ", ".join(f"{a} {s:.0%} {m:g}x"
                                   for m, a, s in caught) if caught else "")
                + ".")
    for model in sorted({k[0] for k in cells}):
        dense = [float(np.mean(cells[(model, "dense", None, m)]["train_loss"]))
                 for m in args.multipliers
                 if (model, "dense", None, m) in cells]
        if len(dense) > 1:
            lines.append(
                f"- Caveat ({model}): the dense reference is itself short of "
                "convergence at these budgets: its final training loss goes "
                + " -> ".join(f"{v:.3f}" for v in dense)
                + f" from {first:g}x to {last:g}x. 'Under-trained' here means "
                "relative to dense at the same budget.")
    return lines


def plot_gap(cells, args, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    models = sorted({k[0] for k in cells})
    fig = Figure(figsize=(5.5 * len(models), 4.2))
    FigureCanvasAgg(fig)
    for i, model in enumerate(models):
        ax = fig.add_subplot(1, len(models), i + 1)
        for (mdl, algorithm, sparsity), marker in (
                (k, None) for k in sorted({(k[0], k[1], k[2]) for k in cells
                                           if k[1] != "dense"})):
            if mdl != model:
                continue
            xs, ys, es = [], [], []
            for m in args.multipliers:
                e = cells.get((mdl, algorithm, sparsity, m))
                if e and e["gap"]:
                    xs.append(m)
                    ys.append(np.mean(e["gap"]) * 100)
                    es.append(np.std(e["gap"], ddof=1) * 100
                              if len(e["gap"]) > 1 else 0.0)
            if xs:
                ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3,
                            linestyle="-" if algorithm == "gmp" else "--",
                            label=f"{algorithm} {sparsity:.0%}")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xscale("log", base=2)
        ax.set_xticks(args.multipliers)
        ax.set_xticklabels([f"{m:g}x" for m in args.multipliers])
        ax.set_xlabel("training length")
        ax.set_ylabel("dense - sparse test accuracy (points)")
        ax.set_title(model)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_diagnostics(cells, args, model, path):
    """Final training loss, validation loss and entropy against the training
    length: dense (black) and each sparse method and sparsity."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    keys = sorted({(k[1], k[2]) for k in cells if k[0] == model},
                  key=lambda k: (k[0] != "dense", k[0], k[1] or 0))
    if not keys:
        return False
    fig = Figure(figsize=(13, 4.0))
    FigureCanvasAgg(fig)
    titles = {"train_loss": "final training loss",
              "val_loss": "final validation loss",
              "entropy": "final mean predictive entropy"}
    for i, key in enumerate(("train_loss", "val_loss", "entropy")):
        ax = fig.add_subplot(1, 3, i + 1)
        for algorithm, sparsity in keys:
            xs, ys = [], []
            for m in args.multipliers:
                e = cells.get((model, algorithm, sparsity, m))
                if e and e[key]:
                    xs.append(m)
                    ys.append(float(np.mean(e[key])))
            if not xs:
                continue
            label = algorithm if sparsity is None else (
                f"{algorithm} {sparsity:.0%}")
            style = dict(color="k", lw=2) if algorithm == "dense" else dict(
                linestyle="-" if algorithm == "gmp" else "--")
            ax.plot(xs, ys, marker="o", label=label, **style)
        ax.set_xscale("log", base=2)
        ax.set_xticks(args.multipliers)
        ax.set_xticklabels([f"{m:g}x" for m in args.multipliers])
        ax.set_xlabel("training length")
        ax.set_title(f"{model}: {titles[key]}", fontsize=10)
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="lenet5,vit")
    parser.add_argument("--algorithms", default="gmp,acdc")
    parser.add_argument("--sparsities", default=None)
    parser.add_argument("--multipliers", default="1,2,4")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--lenet_epochs", type=int, default=1)
    parser.add_argument("--lenet_steps", type=int, default=300)
    parser.add_argument("--vit_epochs", type=int, default=1)
    parser.add_argument("--vit_steps", type=int, default=160)
    parser.add_argument("--vit_pretrain_epochs", type=int, default=4)
    parser.add_argument("--vit_sparsities", default="0.95",
                        help="sparsities for the ViT ('' = --sparsities)")
    parser.add_argument("--eval_examples", type=int, default=4000)
    parser.add_argument("--full", action="store_true",
                        help="90/95/98%%, both models, 2 epochs of 540 "
                        "steps at 1x (hours on this machine)")
    parser.add_argument("--workroot", default=os.path.join(
        tempfile.gettempdir(), "tf_sparse_recipes_bench"))
    parser.add_argument("--skip_dense", action="store_true",
                        help="run only the sparse runs (dense ones cached)")
    parser.add_argument("--report_only", action="store_true",
                        help="only rebuild the report from cached runs")
    parser.add_argument("--note", action="append", default=[],
                        help="a sentence for the report's Notes (repeatable; "
                        "without it the previous report's notes are kept)")
    args = parser.parse_args()
    if args.full:
        args.sparsities = args.sparsities or "0.9,0.95,0.98"
        args.lenet_steps, args.lenet_epochs = 540, 2
        args.vit_steps = 540
        args.vit_sparsities = None
    args.sparsities = [float(s) for s in (args.sparsities or "0.9,0.98").split(",")]
    args.vit_sparsities = ([float(s) for s in args.vit_sparsities.split(",")]
                           if args.vit_sparsities else None)  # None: all
    args.multipliers = [float(m) for m in args.multipliers.split(",")]
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.models = args.models.split(",")
    args.algorithms = args.algorithms.split(",")
    os.makedirs(args.workroot, exist_ok=True)
    previous = os.path.join(common.RESULTS, f"{NAME}.json")
    if not args.note and os.path.exists(previous):
        with open(previous) as f:
            args.note = json.load(f).get("args", {}).get("note", [])

    info = common.machine_info()
    info["load_start"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    started = time.time()
    records = []
    plan = grid(args)
    if args.skip_dense:
        plan = [p for p in plan if p[1] != "dense"]
    for index, (model, algorithm, sparsity, mult, seed) in enumerate(plan):
        name = run_name(model, algorithm, sparsity, mult, seed)
        workdir = os.path.join(args.workroot, name)
        config = CONFIGS[model](args, algorithm, sparsity or 0.9, mult, seed)
        if not os.path.exists(os.path.join(workdir, "results.json")):
            if args.report_only:
                continue
            t0 = time.time()
            print(f"[{index + 1}/{len(plan)}] {name} ...", flush=True)
            result = recipes.run(config, workdir)
            print(f"    test acc {result['test_accuracy']:.4f}, "
                  f"{time.time() - t0:.0f} s", flush=True)
        with open(os.path.join(workdir, "results.json")) as f:
            result = json.load(f)
        records.append({"name": name, "model": model, "algorithm": algorithm,
                        "sparsity": sparsity, "multiplier": mult,
                        "seed": seed, **{k: v for k, v in result.items()
                                         if k != "config"},
                        "config": result["config"]})
    wall = time.time() - started
    info["load_end"] = " ".join(f"{x:.1f}" for x in os.getloadavg())

    cells = summarise(records)
    out_dir = os.path.join(common.RESULTS, NAME)
    os.makedirs(out_dir, exist_ok=True)
    runs = []
    for r in records:
        ref = None
        if r["algorithm"] != "dense":
            ref = run_name(r["model"], "dense", None, r["multiplier"],
                           r["seed"])
            if ref not in {x["name"] for x in records}:
                ref = None
        label = (f"{r['model']} {r['algorithm']}"
                 + ("" if r["sparsity"] is None else f" {r['sparsity']:.0%}")
                 + f" {r['multiplier']:g}x")
        runs.append({"name": r["name"], "history": r["history"],
                     "reference": ref, "label": label, "epochs": r["epochs"]})
    verdicts = []
    for model in sorted({r["model"] for r in records}):
        subset = [x for x in runs if x["name"].startswith(model + "_")]
        if subset:
            verdicts += undertraining.compare_runs(
                subset, os.path.join(out_dir, model),
                title=f"Under-training report: {model}")
    plot_gap(cells, args, os.path.join(out_dir, "gap_to_dense.png"))
    for model in sorted({r["model"] for r in records}):
        plot_diagnostics(cells, args, model,
                         os.path.join(out_dir, f"diagnostics_{model}.png"))
    lines = []
    for mult in args.multipliers:
        chosen = [v for v in verdicts if f"_x{mult:g}_" in v["run"]]
        if chosen:
            n_up = sum(v["higher_train_loss"] for v in chosen)
            lines.append(f"- {mult:g}x: {n_up} of {len(chosen)} sparse runs "
                         "ended with a higher training loss than their dense "
                         "reference.")
    payload = scrub({"machine": info, "wall_seconds": wall,
                     "args": {k: v for k, v in vars(args).items()},
                     "runs": records, "verdicts": verdicts}, args.workroot)
    common.write_results(NAME, payload,
                         markdown(args, records, cells, info, wall, lines))
    print(f"wrote {os.path.join(common.RESULTS, NAME)}.md/.json and "
          f"{out_dir}/", flush=True)


if __name__ == "__main__":
    main()
