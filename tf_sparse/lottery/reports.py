"""Reports of lottery runs: markdown tables and PNG plots.

- `write_run_report(workdir)`: `report.md` (one row per level: weights
  remaining, IMP and baseline test accuracies) and `accuracy.png` (test
  accuracy vs weights remaining, one line per kind).
- `write_stability_report(workdir)`: `stability/report.md` and plots:
  `stability/distance.png` (data-order L2 distance vs weights remaining, IMP
  vs random), `stability/instability.png` (test error barrier vs rewind step
  when several rewind points were run, else vs weights remaining).
- `plot_lines(...)`: the plotting helper, also used by benchmarks/ to draw
  means over seeds with min-max bands.

Plots need matplotlib (`pip install tf-sparse[report]`); without it the
markdown is still written and the plot is skipped with a note. Figures are
drawn with matplotlib's object API (no pyplot global state).
"""

import os

from tf_sparse.lottery import state as state_lib
from tf_sparse.runs import workdir as workdir_lib

KIND_ORDER = ("imp", "random_prune", "random_reinit", "reset")
KIND_LABELS = {"imp": "IMP", "random_prune": "random pruning",
               "random_reinit": "random reinit", "reset": "reset to 0"}


def _level_dirs(workdir):
    names = sorted(n for n in os.listdir(workdir) if n.startswith("level_")
                   and os.path.isdir(os.path.join(workdir, n)))
    return [os.path.join(workdir, n) for n in names]


def collect_run(workdir):
    """{kind: [metrics of finished trainings, by level]} of one workdir."""
    found = {}
    for d in _level_dirs(workdir):
        path = os.path.join(d, "metrics.json")
        if os.path.exists(path):
            found.setdefault("imp", []).append(workdir_lib.read_json(path))
        for kind in KIND_ORDER[1:]:
            path = os.path.join(d, kind, "metrics.json")
            if os.path.exists(path):
                found.setdefault(kind, []).append(workdir_lib.read_json(path))
    return found


def plot_lines(path, series, *, xlabel, ylabel, title, log_x=False,
               invert_x=False, hline=None):
    """Draws {label: [(x, y) or (x, y, lo, hi)]} to a PNG; returns the path,
    or None when matplotlib is not installed."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        print(f"matplotlib is not installed; {path} was not drawn "
              "(pip install tf-sparse[report]).")
        return None
    fig = Figure(figsize=(7, 4.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for label, points in series.items():
        points = sorted(points, key=lambda p: p[0])
        if not points:
            continue
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        line, = ax.plot(xs, ys, marker="o", markersize=3, label=label)
        if len(points[0]) == 4:
            ax.fill_between(xs, [p[2] for p in points], [p[3] for p in points],
                            alpha=0.2, color=line.get_color())
    if hline is not None:
        ax.axhline(hline[0], color="gray", linestyle="--", linewidth=0.8,
                   label=hline[1])
    if log_x:
        from matplotlib import ticker
        ax.set_xscale("log")
        xs = [p[0] for pts in series.values() for p in pts]
        if xs:
            ticks = [t for t in (100, 50, 30, 20, 10, 5, 3, 2, 1, 0.5, 0.2,
                                 0.1) if min(xs) * 0.9 <= t <= max(xs) * 1.1]
            ax.set_xticks(ticks)
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(
            lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    if invert_x:
        ax.invert_xaxis()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    return path


def _fmt(value, digits=4):
    return "" if value is None else f"{value:.{digits}f}"


def write_run_report(workdir):
    """Writes report.md and accuracy.png for one lottery workdir."""
    record = workdir_lib.Workdir(workdir).record()
    if record is None:
        raise state_lib.StateError(
            f"{workdir} holds no lottery run ({workdir_lib.RUN_FILE} is "
            "missing).")
    config, steps = record["config"], record["steps"]
    found = collect_run(workdir)
    kinds = [k for k in KIND_ORDER if k in found]
    by_level = {}
    for kind in kinds:
        for m in found[kind]:
            by_level.setdefault(m["level"], {})[kind] = m
    lines = [
        f"# Lottery run: {config['model']} on {config['dataset']}", "",
        f"- training: {config['epochs']} epochs = {steps['total']} steps "
        f"({steps['steps_per_epoch']} per epoch), batch {config['batch_size']}"
        f", {config['optimizer']} lr {config['learning_rate']}",
        f"- rewind point k = {steps['rewind']} steps (config "
        f"`rewind={config['rewind']!r}`), optimizer state rewound: "
        f"{config['rewind_optimizer']}",
        f"- pruning: {config['prune_fraction']:.0%} of the remaining weights "
        f"per level, {config['prune_scope']}, excluded: "
        f"{list(config['keep_dense']) or 'none'}, own rates: "
        f"{config['layer_rates'] or 'none'}",
        f"- seed {config['seed']}, data seed "
        f"{config['seed'] if config['data_seed'] < 0 else config['data_seed']}",
        "",
        "Weights remaining counts every prunable weight (excluded layers "
        "included). Test accuracy after the level's training.", "",
        "| level | weights remaining | " + " | ".join(
            KIND_LABELS[k] for k in kinds) + " |",
        "|---:|---:|" + "---:|" * len(kinds)]
    for level in sorted(by_level):
        row = by_level[level]
        density = next(iter(row.values()))["density"]
        lines.append(f"| {level} | {density:.2%} | " + " | ".join(
            _fmt(row[k]["test_accuracy"]) if k in row else "" for k in kinds)
            + " |")
    series = {KIND_LABELS[k]: [(100 * m["density"], m["test_accuracy"])
                               for m in found[k]] for k in kinds}
    png = plot_lines(os.path.join(workdir, "accuracy.png"), series,
                     xlabel="weights remaining (%)", ylabel="test accuracy",
                     title=f"{config['model']}, k = {steps['rewind']}",
                     log_x=True, invert_x=True)
    if png:
        lines += ["", "![test accuracy vs weights remaining](accuracy.png)"]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(workdir, "report.md"), "w") as f:
        f.write(text)
    return text


def write_stability_report(workdir):
    """Writes stability/report.md and its plots from stability/results.json."""
    folder = os.path.join(workdir, "stability")
    data = workdir_lib.read_json(os.path.join(folder, "results.json"))
    results = data["results"]
    lines = [
        "# Stability and instability", "",
        f"Training T = {data['total_steps']} steps; the lottery run rewinds "
        f"to k = {data['rewind_step']}. Data-order distances are between "
        "copies trained with different data orders from the same m * W_k "
        "(mean over pairs); pruning distance is between the dense network "
        "and the subnetwork (same data order), over the subnetwork's mask. "
        "Barriers: max error on the linear path minus the mean of the end "
        f"points, {data['config'].get('alphas', 30)} points.", "",
        "| level | weights remaining | kind | k | data-order L2 | angle (deg)"
        " | pruning L2 | test barrier | train barrier | copy test accuracies"
        " |", "|---:|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        accs = ", ".join(f"{c['test_accuracy']:.4f}" for c in r["copies"])
        lines.append(
            f"| {r['level']} | {r['density']:.2%} | {r['kind']} | "
            f"{r['rewind_step']} | {r['data_order_l2']:.3f} | "
            f"{r['data_order_angle']:.2f} | {_fmt(r.get('pruning_l2'), 3)} | "
            f"{_fmt(r.get('test_barrier'))} | {_fmt(r.get('train_barrier'))} "
            f"| {accs} |")
    k = data["rewind_step"]
    at_k = [r for r in results if r["rewind_step"] == k]
    series = {}
    for r in at_k:
        series.setdefault(r["kind"], []).append(
            (100 * r["density"], r["data_order_l2"]))
    if plot_lines(os.path.join(folder, "distance.png"), series,
                  xlabel="weights remaining (%)",
                  ylabel="data-order L2 distance",
                  title=f"Stability to data order (k = {k})", log_x=True,
                  invert_x=True):
        lines += ["", "![data-order distance](distance.png)"]
    if any("test_barrier" in r for r in results):
        points = sorted({r["rewind_step"] for r in results})
        series = {}
        if len(points) > 1:
            for r in results:
                series.setdefault(
                    f"{r['kind']} level {r['level']} "
                    f"({100 * r['density']:.1f}%)", []).append(
                    (r["rewind_step"], r["test_barrier"]))
            xlabel, log_x, invert = "rewind step k", False, False
        else:
            for r in results:
                series.setdefault(r["kind"], []).append(
                    (100 * r["density"], r["test_barrier"]))
            xlabel, log_x, invert = "weights remaining (%)", True, True
        if plot_lines(os.path.join(folder, "instability.png"), series,
                      xlabel=xlabel, ylabel="test error barrier",
                      title="Linear-interpolation instability", log_x=log_x,
                      invert_x=invert, hline=(0.02, "stable below 2%")):
            lines += ["", "![instability](instability.png)"]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(folder, "report.md"), "w") as f:
        f.write(text)
    return text
