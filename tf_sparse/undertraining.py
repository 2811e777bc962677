"""Under-training diagnostics: per-epoch curves and a comparison report.

A sparse model trained with a dense recipe tends to stop early on its loss
curve: at the end of training its *training* loss is still above the dense
model's, and its predictions are less confident (higher entropy). This
module measures that.

`UndertrainingDiagnostics` (a Keras callback) records after every epoch:

* ``train_loss`` / ``train_accuracy``: hard loss on a fixed subset of the
  training set, in inference mode (the same weights for every example; the
  running average that `fit` logs mixes weights from the whole epoch and,
  with distillation, the soft loss); ``fit_loss`` keeps `fit`'s value;
* ``val_loss`` / ``val_accuracy`` on the validation data;
* ``entropy``: mean predictive entropy (nats) on a fixed evaluation batch;
* ``gap``: ``val_loss - train_loss``;
* ``density`` of the masked weights and the optimizer ``step``.

`compare_runs` takes such histories of several runs, each sparse run
naming its dense reference, and writes a markdown report, a JSON file and
PNG plots; for every sparse run it states whether it ended with a higher
training loss than its dense reference, i.e. looks under-trained.

Example:

    diag = tfs.undertraining.UndertrainingDiagnostics(
        eval_batch=(x_val[:1000], y_val[:1000]), validation_data=(x_val, y_val),
        train_eval_data=(x_train[:10000], y_train[:10000]),
        path="runs/gmp/diagnostics.json")
    model.fit(..., callbacks=[diag])
    tfs.undertraining.compare_runs(
        [{"name": "dense", "history": dense_hist},
         {"name": "gmp90", "history": diag.history, "reference": "dense"}],
        "runs/report")
"""

import json
import math
import os

import keras
import numpy as np
import tensorflow as tf

from tf_sparse import backend
from tf_sparse import files
from tf_sparse import masking


def predictive_entropy(outputs, from_logits=True):
    """Per-example entropy ``-sum p log p`` (nats) of class outputs.

    `outputs` has shape (batch, classes): logits, or probabilities with
    `from_logits=False` (zeros contribute 0).
    """
    outputs = np.asarray(outputs, dtype=np.float64)
    if from_logits:
        shifted = outputs - outputs.max(axis=-1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        p = np.exp(log_p)
        return -(p * log_p).sum(axis=-1)
    p = outputs
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -terms.sum(axis=-1)


def mean_predictive_entropy(outputs, from_logits=True):
    """Mean of `predictive_entropy` over the batch, as a float."""
    return float(np.mean(predictive_entropy(outputs, from_logits)))


def _cross_entropy(logits, labels):
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    return -log_p[np.arange(len(labels)), labels]


def _batches(data, batch_size):
    """(x, y) arrays or a dataset of (x, y) batches -> iterator of batches."""
    if isinstance(data, tf.data.Dataset):
        for x, y in data:
            yield x, y
        return
    x, y = data
    for start in range(0, len(y), batch_size):
        yield x[start:start + batch_size], y[start:start + batch_size]


class UndertrainingDiagnostics(keras.callbacks.Callback):
    """Per-epoch train/validation loss, entropy and gap (see module doc).

    Args:
      eval_batch: `(x, y)` arrays: the fixed batch for the mean predictive
        entropy (y is used for its loss and accuracy too).
      validation_data: `(x, y)` arrays or a dataset of `(x, y)` batches.
      train_eval_data: a fixed training subset, same forms; if None, the
        training loss is `fit`'s epoch average (`fit_loss`).
      path: optional JSON file, rewritten after every epoch. If it exists
        when training starts, its entries are kept (resumed runs).
      batch_size: batch size for evaluating arrays.
      from_logits: the model outputs logits (default) or probabilities.
    """

    def __init__(self, eval_batch, validation_data, train_eval_data=None,
                 path=None, batch_size=1000, from_logits=True):
        super().__init__()
        if eval_batch is None or len(eval_batch) != 2:
            raise ValueError("eval_batch must be an (x, y) pair of arrays.")
        self.eval_batch = eval_batch
        self.validation_data = validation_data
        self.train_eval_data = train_eval_data
        self.path = path
        self.batch_size = int(batch_size)
        self.from_logits = from_logits
        self.history = []
        self._forward = None
        if path and os.path.exists(path):
            self.history = load_history(path)

    def _predict(self, x):
        if self._forward is None:
            self._forward = backend.inference(self.model)
        return keras.ops.convert_to_numpy(self._forward(x))

    def _logits(self, outputs):
        if self.from_logits:
            return outputs
        return np.log(np.clip(outputs, 1e-12, 1.0))

    def _loss_accuracy(self, data):
        total, correct, count = 0.0, 0, 0
        for x, y in _batches(data, self.batch_size):
            logits = self._logits(self._predict(x))
            y = np.asarray(y).reshape(-1)
            total += float(_cross_entropy(logits, y).sum())
            correct += int((logits.argmax(-1) == y).sum())
            count += len(y)
        return total / max(count, 1), correct / max(count, 1)

    def measure(self):
        """The current values of every diagnostic (a dict)."""
        x, y = self.eval_batch
        outputs = self._predict(x)
        entropy = mean_predictive_entropy(outputs, self.from_logits)
        val_loss, val_acc = self._loss_accuracy(self.validation_data)
        row = {"entropy": entropy, "val_loss": val_loss,
               "val_accuracy": val_acc}
        if self.train_eval_data is not None:
            row["train_loss"], row["train_accuracy"] = self._loss_accuracy(
                self.train_eval_data)
        weights = masking.masked_weights(self.model)
        if weights:
            size = sum(mw.size for mw in weights)
            row["density"] = sum(mw.nonzeros() for mw in weights) / size
        else:
            row["density"] = 1.0
        return row

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        row = {"epoch": epoch + 1,
               "step": int(keras.ops.convert_to_numpy(
                   self.model.optimizer.iterations))}
        if "loss" in logs:
            row["fit_loss"] = float(logs["loss"])
        row.update(self.measure())
        if "train_loss" not in row:
            row["train_loss"] = row.get("fit_loss", float("nan"))
            if "accuracy" in logs:
                row["train_accuracy"] = float(logs["accuracy"])
        row["gap"] = row["val_loss"] - row["train_loss"]
        self.history = [h for h in self.history if h["epoch"] != row["epoch"]]
        self.history.append(row)
        self.history.sort(key=lambda h: h["epoch"])
        if self.path:
            save_history(self.history, self.path)


def save_history(history, path):
    """Writes the history to `path` atomically: a kill mid-write leaves the
    previous history, which `load_history` (and a resumed run) reads."""
    files.write_json_atomically(str(path), history, indent=1)


def load_history(path):
    with open(path) as f:
        return json.load(f)


# --------------------------------------------------------------------------
# Comparison report
# --------------------------------------------------------------------------

METRICS = (("train_loss", "training loss (fixed subset, eval mode)"),
           ("val_loss", "validation loss"),
           ("entropy", "mean predictive entropy (nats)"),
           ("gap", "validation - training loss"))


def _final(history, key):
    values = [h[key] for h in history if key in h]
    return values[-1] if values else float("nan")


def verdict(run, reference):
    """Compares a sparse run's final training loss with its reference's."""
    loss = _final(run["history"], "train_loss")
    ref = _final(reference["history"], "train_loss")
    higher = bool(loss > ref)
    return {
        "run": run["name"], "reference": reference["name"],
        "train_loss": loss, "reference_train_loss": ref,
        "train_loss_excess": loss - ref,
        "val_loss": _final(run["history"], "val_loss"),
        "reference_val_loss": _final(reference["history"], "val_loss"),
        "entropy": _final(run["history"], "entropy"),
        "reference_entropy": _final(reference["history"], "entropy"),
        "gap": _final(run["history"], "gap"),
        "reference_gap": _final(reference["history"], "gap"),
        "higher_train_loss": higher,
        "statement": (
            f"{run['name']} ended with a higher training loss than its dense "
            f"reference {reference['name']} ({loss:.4f} vs {ref:.4f}): it "
            "looks under-trained." if higher else
            f"{run['name']} ended with a training loss at or below its dense "
            f"reference {reference['name']} ({loss:.4f} vs {ref:.4f}): not "
            "under-trained by this test."),
    }


def _check_runs(runs):
    names = [r.get("name") for r in runs]
    if len(set(names)) != len(names) or None in names:
        raise ValueError(f"compare_runs: every run needs a unique name, got "
                         f"{names}.")
    by_name = {r["name"]: r for r in runs}
    for r in runs:
        if not r.get("history"):
            raise ValueError(f"compare_runs: run {r['name']!r} has no history.")
        ref = r.get("reference")
        if ref is not None and ref not in by_name:
            raise ValueError(
                f"compare_runs: run {r['name']!r} names reference {ref!r}, "
                f"which is not among the runs {names}.")
    return by_name


def _curves(runs, key):
    """Mean curve per label: x = fraction of training, y = mean over runs."""
    grouped = {}
    for r in runs:
        label = r.get("label", r["name"])
        grouped.setdefault(label, []).append(r)
    curves = {}
    for label, members in grouped.items():
        length = min(len(m["history"]) for m in members)
        if not length:
            continue
        ys = np.array([[h.get(key, np.nan) for h in m["history"][:length]]
                       for m in members], dtype=np.float64)
        epochs = [h["epoch"] for h in members[0]["history"][:length]]
        total = members[0].get("epochs") or members[0]["history"][-1]["epoch"]
        xs = np.array(epochs, dtype=np.float64) / float(total)
        curves[label] = (xs, np.nanmean(ys, axis=0), members[0])
    return curves


def plot_metric(runs, key, path, title=None, style=None):
    """One PNG: `key` against the fraction of training, a line per label."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(7.5, 4.8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for label, (xs, ys, first) in _curves(runs, key).items():
        kwargs = dict(style(first)) if style else {}
        ax.plot(xs, ys, label=label, **kwargs)
    ax.set_xlabel("fraction of training")
    ax.set_ylabel(dict(METRICS).get(key, key))
    if key in ("train_loss", "val_loss"):
        ax.set_yscale("log")
    ax.set_title(title or key)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _fmt(value):
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def compare_runs(runs, out_dir, title="Under-training report", plots=True,
                 style=None):
    """Writes report.md, report.json and PNG plots comparing runs.

    Args:
      runs: list of dicts with "name", "history" (from
        `UndertrainingDiagnostics`), optionally "reference" (the name of the
        dense run to compare a sparse run with), "label" (runs sharing a
        label are averaged in the plots, e.g. seeds), "epochs" (the run's
        length, for the x axis), and any extra scalar fields to show
        ("test_accuracy", "sparsity", ...).
      out_dir: directory for the files.
      plots: also write `<metric>.png` for each metric.
      style: optional function run -> matplotlib line keyword arguments.

    Returns:
      The list of verdicts (one per run with a reference).
    """
    by_name = _check_runs(runs)
    os.makedirs(out_dir, exist_ok=True)
    verdicts = [verdict(r, by_name[r["reference"]])
                for r in runs if r.get("reference") is not None]
    lines = [f"# {title}", "",
             "Training loss is the hard loss on a fixed training subset in "
             "inference mode; entropy is the mean predictive entropy on a "
             "fixed evaluation batch; gap = validation - training loss. A "
             "sparse run *looks under-trained* when it ends with a higher "
             "training loss than its dense reference.", "",
             "| run | reference | train loss | ref. train loss | excess | "
             "val loss | ref. val loss | entropy | ref. entropy | gap | "
             "under-trained |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for v in verdicts:
        lines.append(
            f"| {v['run']} | {v['reference']} | {_fmt(v['train_loss'])} | "
            f"{_fmt(v['reference_train_loss'])} | "
            f"{_fmt(v['train_loss_excess'])} | {_fmt(v['val_loss'])} | "
            f"{_fmt(v['reference_val_loss'])} | {_fmt(v['entropy'])} | "
            f"{_fmt(v['reference_entropy'])} | {_fmt(v['gap'])} | "
            f"{'yes' if v['higher_train_loss'] else 'no'} |")
    lines += ["", "## Statements", ""]
    lines += [f"- {v['statement']}" for v in verdicts]
    lines += ["", "## Final values of every run", "",
              "| run | epochs | train loss | val loss | val acc | entropy | "
              "gap | density |", "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        h = r["history"]
        lines.append(
            f"| {r['name']} | {h[-1]['epoch']} | {_fmt(_final(h, 'train_loss'))}"
            f" | {_fmt(_final(h, 'val_loss'))} | "
            f"{_fmt(_final(h, 'val_accuracy'))} | {_fmt(_final(h, 'entropy'))}"
            f" | {_fmt(_final(h, 'gap'))} | {_fmt(_final(h, 'density'))} |")
    if plots:
        lines += ["", "## Plots", ""]
        for key, label in METRICS:
            name = f"{key}.png"
            plot_metric(runs, key, os.path.join(out_dir, name),
                        title=label, style=style)
            lines.append(f"![{label}]({name})")
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump({"verdicts": verdicts,
                   "runs": [{k: v for k, v in r.items()} for r in runs]},
                  f, indent=1)
    return verdicts
