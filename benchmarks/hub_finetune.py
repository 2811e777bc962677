"""Sparse fine-tuning of a keras-hub ViT on real Fashion-MNIST (issue 18).

The setup of Kuznedelev et al. 2023's transformer experiments, on a model
built with keras-hub (`ViTBackbone` + `ViTImageClassifier` from their
config classes; no preset weights exist offline, so the dense model is
trained here first), through the recipe kind (`tf_sparse.recipes`, the
config of configs/recipes/hub_vit_gmp_kd.py):

1. the dense teacher: the recipe's dense stage (`--teacher_epochs`), one
   file shared by every run;
2. from the teacher's weights, `--epochs` more epochs of
   - dense fine-tuning (the reference accuracy and epoch time),
   - GMP (cubic, global, to 50/75/90% over the first 70%) of every
     attention and MLP projection, without and with distillation from the
     teacher (T = 4, alpha = 0.5, logits cached once in the workdir),
   for `--seeds` seeds (masks and data order).

Epoch time is read from each run's TensorBoard log (`epoch/images_per_
second`, the training part of the epoch: evaluation only at the end) and
taken from the last epoch (the first one includes tracing). Writes

    benchmarks/results/hub_finetune.json   every run, machine and versions
    benchmarks/results/hub_finetune.md     accuracy and epoch-time tables

Runs are kept in --workroot, so an interrupted benchmark resumes where it
stopped (finished runs are read back, a stopped one continues from its
last checkpoint).

Usage:
  python benchmarks/hub_finetune.py                    # the full grid
  python benchmarks/hub_finetune.py --seeds=0 --sparsities=0.9   # a slice
"""

import argparse
import glob
import importlib.util
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import common  # noqa: E402

NAME = "hub_finetune"
CONFIG = os.path.join(ROOT, "configs", "recipes", "hub_vit_gmp_kd.py")


def base_config():
    spec = importlib.util.spec_from_file_location("hub_vit_gmp_kd", CONFIG)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def epoch_seconds(workdir, examples_per_epoch):
    """Seconds of each training epoch, from the TensorBoard log."""
    import tensorflow as tf
    values = []
    for path in sorted(glob.glob(os.path.join(workdir, "tensorboard",
                                              "events*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == "epoch/images_per_second":
                    number = (value.simple_value if value.HasField(
                        "simple_value") else float(
                            tf.make_ndarray(value.tensor)))
                    values.append((event.step, examples_per_epoch / number))
    return [s for _, s in sorted(values)]


def projection_density(results):
    """Density over the pruned projections (the masked weights)."""
    layers = [l for l in results.get("layers", {}).values()
              if l.get("masked")]
    size = sum(l["size"] for l in layers)
    nonzero = sum(l["nonzeros"] for l in layers)
    return nonzero / size if size else 1.0


def relative_paths(report, args):
    """`report` (a divergence report or None) with the workroot's absolute
    path written relative to the repository."""
    if not report:
        return report
    root = os.path.abspath(args.workroot)
    relative = os.path.relpath(root, ROOT)
    return {key: value.replace(root, relative) if isinstance(value, str)
            else value for key, value in report.items()}


def run_one(args, name, changes):
    from tf_sparse import recipes
    import keras
    workdir = os.path.join(args.workroot, name)
    config = base_config()
    with config.unlocked():
        for key, value in changes.items():
            config[key] = value
        config.pretrain_epochs = args.teacher_epochs
        config.epochs = args.epochs
        config.pretrained_path = os.path.join(args.workroot, "teacher.keras")
        if args.steps_per_epoch:
            config.steps_per_epoch = args.steps_per_epoch
    started = time.time()
    results = recipes.run(config, workdir, verbose=0)
    keras.backend.clear_session()
    plan = results["setup"]
    seconds = epoch_seconds(workdir, plan["steps_per_epoch"]
                            * plan["batch"]["global_batch_size"])
    row = {"name": name, **changes,
           "test_accuracy": results["test_accuracy"],
           "test_loss": results["test_loss"],
           "density_all": results.get("density", 1.0),
           "density_pruned": projection_density(results),
           "epoch_seconds": seconds,
           "last_epoch_seconds": seconds[-1] if seconds else None,
           "wall_seconds_this_call": time.time() - started,
           "diverged": relative_paths(results.get("diverged"), args)}
    print(json.dumps({k: row[k] for k in (
        "name", "test_accuracy", "density_pruned", "last_epoch_seconds")}),
        flush=True)
    return row


def grid(args):
    runs = []
    for seed in args.seeds:
        runs.append((f"dense_s{seed}", dict(
            algorithm="dense", sparsity=0.0, teacher="", seed=seed,
            teacher_cache=False)))
        for sparsity in args.sparsities:
            for kd in (False, True):
                runs.append((f"gmp{int(round(sparsity * 100))}_"
                             f"{'kd' if kd else 'nokd'}_s{seed}", dict(
                                 algorithm="gmp", sparsity=sparsity,
                                 teacher="pretrained" if kd else "",
                                 teacher_cache=kd, seed=seed)))
        for pattern in args.patterns:
            for kd in (False, True):
                runs.append((f"gmp{pattern.replace(':', 'of')}_"
                             f"{'kd' if kd else 'nokd'}_s{seed}", dict(
                                 algorithm="gmp", sparsity=0.5,
                                 pattern=pattern,
                                 teacher="pretrained" if kd else "",
                                 teacher_cache=kd, seed=seed)))
    return runs


def summarise(rows):
    """Mean and spread per group over the runs that finished; a diverged
    run is listed apart (`diverged_runs`), never averaged."""
    groups = {}
    for row in rows:
        if row.get("diverged"):
            continue
        kd = "KD" if row["teacher"] else "no KD"
        if row["algorithm"] == "dense":
            key = "dense"
        elif row.get("pattern", "unstructured") != "unstructured":
            key = f"gmp {row['pattern']} {kd}"
        else:
            key = f"gmp {row['sparsity']:.0%} {kd}"
        groups.setdefault(key, []).append(row)
    dense_time = [r["last_epoch_seconds"] for r in groups.get("dense", [])
                  if r["last_epoch_seconds"]]
    dense_median = float(np.median(dense_time)) if dense_time else None
    table = []
    for key, members in groups.items():
        acc = np.array([r["test_accuracy"] for r in members])
        times = [r["last_epoch_seconds"] for r in members
                 if r["last_epoch_seconds"]]
        median = float(np.median(times)) if times else None
        table.append({
            "run": key, "seeds": len(members),
            "accuracy_mean": float(acc.mean()),
            "accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
            "accuracies": acc.tolist(),
            "density_pruned": float(np.mean([r["density_pruned"]
                                             for r in members])),
            "epoch_seconds_median": median,
            "epoch_time_vs_dense": (median / dense_median
                                    if median and dense_median else None)})
    return table


def markdown(payload):
    table = payload["summary"]
    rows = [[t["run"], str(t["seeds"]),
             f"{100 * t['accuracy_mean']:.2f} +- {100 * t['accuracy_std']:.2f}",
             f"{t['density_pruned']:.3f}",
             f"{t['epoch_seconds_median']:.1f}" if t["epoch_seconds_median"]
             else "-",
             f"{t['epoch_time_vs_dense']:.2f}x" if t["epoch_time_vs_dense"]
             else "-"] for t in table]
    args = payload["args"]
    teacher = payload.get("teacher_accuracy")
    lines = [
        "# Sparse fine-tuning of a keras-hub ViT on Fashion-MNIST",
        "",
        f"`python benchmarks/hub_finetune.py` ({payload['machine']['date']}, "
        f"{payload['machine'].get('cpu', '?')}, "
        f"{payload['machine']['cpu_count']} cores, shared with other jobs; "
        f"TF {payload['machine']['tensorflow']}, Keras "
        f"{payload['machine']['keras']}, keras-hub "
        f"{payload['machine'].get('keras_hub')}; commit "
        f"{payload['machine'].get('git_commit')}).",
        "",
        "Model: `ViTBackbone` (patch 7, 4 layers, 4 heads, hidden 64, MLP "
        "128) + `ViTImageClassifier`, built from their config classes. "
        f"Dense teacher: {args['teacher_epochs']} epochs (AdamW, cosine); "
        + (f"test accuracy {100 * teacher:.2f}%." if teacher is not None
           else "not finished."),
        f"Then {args['epochs']} epochs from the teacher's weights: dense "
        "fine-tuning, or GMP of the 24 attention/MLP projections (cubic, "
        "global magnitude, over the first 70%), without or with "
        "distillation from the teacher (T = 4, alpha = 0.5, logits cached "
        "once). Mean +- sample std over seeds (test set, 10,000 images).",
        "",
        common.markdown_table(
            ["run", "seeds", "test accuracy %", "density of pruned layers",
             "epoch s (median, last epoch)", "epoch time vs dense"], rows),
        "",
        "Epoch time is the training part of the last epoch (no evaluation; "
        "the first epoch includes tracing), from the runs' TensorBoard "
        "`epoch/images_per_second`. The machine was shared with other "
        "benchmark processes, so times are noisy; the ratio compares runs "
        "made under the same load at different moments.",
        "The 2:4 rows prune the same projections with `pattern=\"2:4\"` "
        "(two of every four consecutive input weights kept; GMP ramps the "
        "kept count per group of four from 4 to 2 on the same schedule).",
    ]
    for note in payload.get("notes", []):
        lines += ["", note]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--sparsities", default="0.5,0.75,0.9")
    parser.add_argument("--patterns", default="2:4",
                        help="N:M patterns run at 50% ('' for none)")
    parser.add_argument("--teacher_epochs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps_per_epoch", type=int, default=0)
    parser.add_argument("--workroot", default=os.path.join(
        ROOT, "runs", "hub_finetune"))
    parser.add_argument("--note", action="append", default=[])
    args = parser.parse_args()
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.sparsities = [float(s) for s in args.sparsities.split(",")]
    args.patterns = [p for p in args.patterns.split(",") if p]
    os.makedirs(args.workroot, exist_ok=True)
    runs = grid(args)
    rows = []
    for name, changes in runs:
        rows.append(run_one(args, name, changes))
        # Written after every run: a stopped benchmark leaves its tables.
        paths = write(args, rows, total=len(runs))
    print("\n".join(paths))


def write(args, rows, total):
    teacher = os.path.join(args.workroot, rows[0]["name"], "pretrain",
                           "results.json")
    teacher_accuracy = None
    if os.path.exists(teacher):
        with open(teacher) as f:
            teacher_accuracy = json.load(f)["test_accuracy"]
    machine = common.machine_info()
    import keras_hub
    machine["keras_hub"] = keras_hub.__version__
    notes = list(args.note)
    for row in rows:
        if row.get("diverged"):
            notes.append(f"DIVERGED, not in the table: {row['name']}: "
                         f"{row['diverged']['message']}")
    if len(rows) < total:
        notes.insert(0, f"PARTIAL: {len(rows)} of {total} runs done; rerun "
                     "`python benchmarks/hub_finetune.py` to finish (finished "
                     "runs are read back).")
    recorded = dict(vars(args), workroot=os.path.relpath(args.workroot, ROOT))
    payload = {"machine": machine, "args": recorded,
               "teacher_accuracy": teacher_accuracy, "runs": rows,
               "runs_planned": total, "summary": summarise(rows),
               "notes": notes}
    return common.write_results(NAME, payload, markdown(payload))


if __name__ == "__main__":
    main()
