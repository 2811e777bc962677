"""FLOPs of a sparse model for inference and for training, per layer and total.

Counting follows the RigL paper (Evci et al. 2020, appendix "FLOPs") and
`rigl.sparse_utils.get_stats`:

* forward FLOPs of a layer = 2 x multiply-accumulates per example of its
  prunable weights (`tf_sparse.model_report.dense_flops`); the sparse count
  scales the dense one by the weight density (f_S = density x f_D). Only
  layers with prunable weights count (biases, norms and activations are
  small and left out, as in the papers' tables).
* backward = 2 x forward: one product for the gradient with respect to the
  layer's input, one for the gradient with respect to its weights.
* per training step and example, by the rule of the algorithm:

  | rule                 | algorithms                  | FLOPs per step          |
  |----------------------|-----------------------------|-------------------------|
  | `dense`              | dense training              | 3 f_D                   |
  | `sparse`             | static, SET, SNIP           | 3 f_S                   |
  | `dense_gradient`     | sparse momentum (SNFS)      | 2 f_S + f_D             |
  | `dense_gradient_on_updates` | RigL                 | (3 f_S dT + 2 f_S + f_D) / (dT + 1) |

  Sparse momentum reads the momentum of every weight, active or not, so the
  weight gradient is dense on every step (2 f_S + f_D, as the RigL paper
  counts SNFS). RigL needs the dense gradient only on update steps, every
  dT steps. The cost of the mask updates themselves (top-k over the weights)
  is not counted, as in the papers.

Gradual pruning and AC/DC change the density over training: call
`training_flops` with the masks of each phase and weight the results by the
phases' lengths (or pass `dense_fraction` for AC/DC's dense phases).

Example:

    t = tfs.flops.training_flops(model, algorithm="rigl", update_every=100)
    print(t.format())
    print(t.train_sparse / t.train_dense)     # fraction of dense training cost
"""

import dataclasses

import keras
import tensorflow as tf

from tf_sparse import model_report

RULES = ("dense", "sparse", "dense_gradient", "dense_gradient_on_updates")

# Algorithm name -> counting rule. Algorithms may instead set a
# `training_flops_rule` attribute; unknown names are an error, not a guess.
ALGORITHM_RULES = {
    "dense": "dense",
    "static": "sparse",
    "random": "sparse",
    "set": "sparse",
    "snip": "sparse",
    "lottery": "sparse",
    "imp": "sparse",
    "sparse_momentum": "dense_gradient",
    "momentum": "dense_gradient",
    "snfs": "dense_gradient",
    "rigl": "dense_gradient_on_updates",
    # Gradual pruning and AC/DC change the masks over training; counted at
    # the current masks (all ones while a model is still dense), so the
    # per-epoch totals of FlopsSummaries follow the schedule.
    "gmp": "sparse",
    "acdc": "sparse",
}


@dataclasses.dataclass(frozen=True)
class LayerFlops:
    """Per-example FLOPs of one prunable weight, inference and training."""
    path: str
    density: float
    forward_dense: int
    forward_sparse: int
    train_dense: int
    train_sparse: float

    def as_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class TrainingFlops:
    """Per-example FLOPs of a model: inference and one training step."""
    layers: list
    rule: str
    update_every: int | None
    dense_gradient_fraction: float
    dense_fraction: float
    unknown_layers: list

    @property
    def forward_dense(self):
        return sum(w.forward_dense for w in self.layers)

    @property
    def forward_sparse(self):
        return sum(w.forward_sparse for w in self.layers)

    @property
    def train_dense(self):
        return sum(w.train_dense for w in self.layers)

    @property
    def train_sparse(self):
        return sum(w.train_sparse for w in self.layers)

    def as_dict(self):
        return {
            "rule": self.rule,
            "update_every": self.update_every,
            "dense_gradient_fraction": self.dense_gradient_fraction,
            "dense_fraction": self.dense_fraction,
            "inference_flops_dense": self.forward_dense,
            "inference_flops_sparse": self.forward_sparse,
            "train_step_flops_dense": self.train_dense,
            "train_step_flops_sparse": self.train_sparse,
            "inference_fraction_of_dense": _ratio(self.forward_sparse,
                                                  self.forward_dense),
            "train_fraction_of_dense": _ratio(self.train_sparse,
                                              self.train_dense),
            "unknown_layers": list(self.unknown_layers),
            "layers": {w.path: w.as_dict() for w in self.layers},
            "units": "FLOPs per example (2 x multiply-accumulates)",
        }

    def total(self, examples):
        """Training FLOPs of `examples` examples (steps x batch size)."""
        return {"dense": self.train_dense * examples,
                "sparse": self.train_sparse * examples}

    def format(self, per_layer=True):
        """The accounting as text: per layer (optional) and totals."""
        lines = []
        if per_layer:
            header = ("weight", "density", "fwd dense", "fwd sparse",
                      "train dense", "train sparse")
            rows = [(w.path, f"{w.density:.4f}", _fmt(w.forward_dense),
                     _fmt(w.forward_sparse), _fmt(w.train_dense),
                     _fmt(w.train_sparse)) for w in self.layers]
            widths = [max(len(r[i]) for r in rows + [header])
                      for i in range(len(header))]
            lines.append("  ".join(c.ljust(n) for c, n in zip(header, widths)))
            lines.extend("  ".join(c.ljust(n) for c, n in zip(r, widths))
                         for r in rows)
        lines.extend(self.total_lines())
        return "\n".join(lines)

    def total_lines(self):
        how = self.rule
        if self.rule == "dense_gradient_on_updates":
            how += (f", dense gradient on {self.dense_gradient_fraction:.4g} "
                    "of steps")
        if self.dense_fraction:
            how += f", dense phases {self.dense_fraction:.3g} of training"
        lines = [
            f"inference FLOPs/example: dense {_fmt(self.forward_dense)}, "
            f"sparse {_fmt(self.forward_sparse)} "
            f"({_times(self.forward_dense, self.forward_sparse)} fewer)",
            f"training FLOPs/example/step ({how}; backward = 2 x forward): "
            f"dense {_fmt(self.train_dense)}, sparse "
            f"{_fmt(self.train_sparse)} "
            f"({_times(self.train_dense, self.train_sparse)} fewer)",
        ]
        if self.unknown_layers:
            lines.append("FLOPs unknown (input shape unknown) for: "
                         + ", ".join(self.unknown_layers))
        return lines


def _ratio(a, b):
    return float(a) / b if b else None


def _times(dense, sparse):
    return f"{dense / sparse:.2f}x" if sparse else "inf x"


def _fmt(value):
    return model_report.format_flops(int(round(value)))


def rule_for(algorithm):
    """The counting rule of an algorithm (instance, name or None=static)."""
    if algorithm is None:
        return "sparse"
    rule = getattr(algorithm, "training_flops_rule", None)
    if rule is not None:
        name = rule
    else:
        name = algorithm if isinstance(algorithm, str) else getattr(
            algorithm, "name", None)
        if name in RULES:
            return name
        if name not in ALGORITHM_RULES:
            raise ValueError(
                f"No FLOPs counting rule for algorithm {name!r}. Pass rule= "
                f"one of {', '.join(RULES)}, or set the algorithm's "
                "`training_flops_rule` attribute. Known algorithms: "
                f"{', '.join(sorted(ALGORITHM_RULES))}.")
        name = ALGORITHM_RULES[name]
    if name not in RULES:
        raise ValueError(
            f"Unknown FLOPs rule {name!r}; accepted: {', '.join(RULES)}.")
    return name


def _update_every(algorithm, update_every):
    if update_every is not None:
        return int(update_every)
    for attr in ("update_every", "delta_t", "update_frequency"):
        value = getattr(algorithm, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    # tf_sparse's prune-and-grow algorithms keep an UpdateSchedule.
    every = getattr(getattr(algorithm, "cadence", None), "every", None)
    if isinstance(every, int) and not isinstance(every, bool) and every > 0:
        return every
    return None


def training_flops(model, algorithm=None, *, rule=None, update_every=None,
                   dense_gradient_fraction=None, dense_fraction=0.0):
    """Per-example inference and training-step FLOPs, per layer and total.

    Args:
      model: a (sparse or dense) built Keras model.
      algorithm: a `MaskAlgorithm`, an algorithm name, or None (a fixed mask:
        static sparse training).
      rule: overrides the algorithm's rule (see the module docstring).
      update_every: RigL's dT, steps between mask updates; read from the
        algorithm (`update_every`, or `cadence.every` in steps) when not
        given. Required for RigL unless
        `dense_gradient_fraction` is given.
      dense_gradient_fraction: fraction of steps that compute the dense
        weight gradient; defaults to 1 for `dense_gradient`, 1/(dT + 1) for
        `dense_gradient_on_updates` (the RigL paper's formula), 0 otherwise.
      dense_fraction: fraction of training run fully dense (AC/DC's dense
        phases, a dense warm-up); those steps cost 3 f_D.
    """
    rule = rule_for(rule if rule is not None else algorithm)
    update_every = _update_every(algorithm, update_every)
    if dense_gradient_fraction is None:
        if rule == "dense_gradient":
            dense_gradient_fraction = 1.0
        elif rule == "dense_gradient_on_updates":
            if not update_every:
                raise ValueError(
                    "RigL's training FLOPs need update_every (dT, steps "
                    "between mask updates) or dense_gradient_fraction.")
            dense_gradient_fraction = 1.0 / (update_every + 1)
        else:
            dense_gradient_fraction = 0.0
    if not 0.0 <= dense_gradient_fraction <= 1.0:
        raise ValueError("dense_gradient_fraction must be in [0, 1], got "
                         f"{dense_gradient_fraction}.")
    if not 0.0 <= dense_fraction <= 1.0:
        raise ValueError(
            f"dense_fraction must be in [0, 1], got {dense_fraction}.")
    rep = model_report.report(model)
    layers, unknown = [], []
    for w in rep.weights:
        if w.flops_dense is None:
            unknown.append(w.path)
            continue
        f_d = w.flops_dense
        f_s = f_d * w.nonzeros / w.size if w.size else f_d
        if rule == "dense":
            sparse_step = 3.0 * f_d
        else:
            weight_grad = f_s + dense_gradient_fraction * (f_d - f_s)
            sparse_step = 2.0 * f_s + weight_grad
        step = (1.0 - dense_fraction) * sparse_step + dense_fraction * 3 * f_d
        layers.append(LayerFlops(
            path=w.path, density=w.density, forward_dense=int(f_d),
            forward_sparse=int(w.flops_sparse), train_dense=3 * int(f_d),
            train_sparse=float(step)))
    return TrainingFlops(layers=layers, rule=rule, update_every=update_every,
                         dense_gradient_fraction=float(dense_gradient_fraction),
                         dense_fraction=float(dense_fraction),
                         unknown_layers=unknown)


def final_report_line(flops_dict):
    """The CLI's closing FLOPs line from `results["flops"]` (or "")."""
    if not flops_dict or flops_dict.get("train_total_dense") is None:
        return ""
    dense = flops_dict["train_total_dense"]
    sparse = flops_dict["train_total_sparse"]
    return (f"\ntraining FLOPs ({flops_dict['rule']} rule, at the final "
            f"masks): {sparse:.3g} sparse vs {dense:.3g} dense "
            f"({dense / sparse if sparse else float('inf'):.2f}x fewer); "
            "inference FLOPs/example: "
            f"{flops_dict['inference_flops_sparse']:.4g} vs "
            f"{flops_dict['inference_flops_dense']:.4g}")


class FlopsSummaries(keras.callbacks.Callback):
    """Writes inference and training FLOPs to TensorBoard every epoch.

    Scalars (per example unless said): `flops/inference_dense`,
    `flops/inference_sparse`, `flops/train_step_dense`,
    `flops/train_step_sparse`, `flops/train_fraction_of_dense`; with
    `batch_size`, also the running totals `flops/train_total_sparse` and
    `flops/train_total_dense` (each epoch's steps x batch x the cost of the
    masks at that epoch's end; steps done before a resume are counted at the
    cost of the masks found at the start).
    """

    def __init__(self, log_dir, algorithm=None, batch_size=None, **kwargs):
        super().__init__()
        self.log_dir = str(log_dir)
        self.algorithm = algorithm
        self.batch_size = batch_size
        self.kwargs = kwargs
        self._writer = None
        self._last_step = 0
        self.total_sparse = 0.0
        self.total_dense = 0.0

    def _flops(self):
        return training_flops(self.model, self.algorithm, **self.kwargs)

    def on_train_begin(self, logs=None):
        self._last_step = int(self.model.optimizer.iterations.numpy())
        try:
            self._flops()
        except ValueError as error:  # No counting rule: log nothing.
            print(f"FlopsSummaries: not counting FLOPs ({error})")
            self._disabled = True
            return
        self._disabled = False
        if self.batch_size and self._last_step and not self.total_dense:
            t = self._flops()
            n = self._last_step * self.batch_size
            self.total_sparse = t.train_sparse * n
            self.total_dense = t.train_dense * n

    def on_epoch_end(self, epoch, logs=None):
        if getattr(self, "_disabled", False):
            return
        step = int(self.model.optimizer.iterations.numpy())
        t = self._flops()
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default(step=step):
            tf.summary.scalar("flops/inference_dense", t.forward_dense)
            tf.summary.scalar("flops/inference_sparse", t.forward_sparse)
            tf.summary.scalar("flops/train_step_dense", t.train_dense)
            tf.summary.scalar("flops/train_step_sparse", t.train_sparse)
            if t.train_dense:
                tf.summary.scalar("flops/train_fraction_of_dense",
                                  t.train_sparse / t.train_dense)
            if self.batch_size:
                n = (step - self._last_step) * self.batch_size
                self.total_sparse += t.train_sparse * n
                self.total_dense += t.train_dense * n
                tf.summary.scalar("flops/train_total_sparse",
                                  self.total_sparse)
                tf.summary.scalar("flops/train_total_dense", self.total_dense)
        self._last_step = step
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
