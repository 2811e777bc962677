"""The optimizer of a run: learning-rate schedule, weight decay, loss.

- `learning_rate(config, plan, peak)`: "step" (x`lr_decay_factor` at each
  boundary or every `lr_decay_every`), "cosine" (to `final_lr`) or
  "constant", each after an optional linear `warmup`; all positions already
  resolved to steps by `tf_sparse.runs.plan`.
- `make_optimizer(config, model, learning_rate)`: SGD (momentum, Nesterov),
  Adam or AdamW. Weight decay is "decoupled" (the Keras optimizer's own
  `weight_decay`: w -= lr * wd * w, as AdamW), "coupled" (PyTorch's
  optimizers, `tf_sparse.optimizers`: `wd * w` added to the gradient inside
  the optimizer, and SGD with PyTorch's momentum buffer: what the papers'
  PyTorch code runs) or "l2" (`wd/2 * ||w||^2` of every trainable variable
  added to the loss: the same gradient, with Keras's SGD).
- `make_loss(config, num_classes)`: cross-entropy on logits, with label
  smoothing if asked.

Example:

    lr = learning_rate(config, plan, peak=0.1)
    optimizer = make_optimizer(config, model, lr)
"""

import fnmatch

import keras

from tf_sparse import optimizers
from tf_sparse import schedules
from tf_sparse.runs import config as config_lib
from tf_sparse.runs import plan as plan_lib

LR_SCHEDULES = config_lib.CHOICES["lr_schedule"]
OPTIMIZERS = config_lib.CHOICES["optimizer"]
WEIGHT_DECAY_MODES = config_lib.CHOICES["weight_decay_mode"]


def learning_rate(config, plan, peak=None):
    """The configured schedule for a run of `plan.total_steps` steps.

    `peak`: the learning rate after batch scaling (default:
    `config.learning_rate`).
    """
    if config.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule={config.lr_schedule!r}; accepted: "
                         f"{', '.join(LR_SCHEDULES)}")
    peak = config.learning_rate if peak is None else peak
    total = plan.total_steps
    common = dict(warmup=plan_lib.warmup_steps(config, plan),
                  warmup_start_lr=config.warmup_start_lr, total_steps=total)
    if config.lr_schedule == "cosine":
        return schedules.WarmupCosineLR(peak, final_lr=config.final_lr,
                                        **common)
    if config.lr_schedule == "constant":
        return schedules.WarmupConstantLR(peak, **common)
    return schedules.StepDecayLR(
        peak, boundaries=plan_lib.decay_boundaries(config, plan),
        factor=config.lr_decay_factor, **common)


def _matches(path, patterns):
    return any(fnmatch.fnmatchcase(path, p) for p in patterns)


def make_optimizer(config, model, learning_rate):
    """SGD, Adam or AdamW with the configured weight decay (see module doc).

    With `weight_decay_mode="l2"` this sets an L2 regularizer on the model's
    trainable variables (except `weight_decay_exclude`).
    """
    name = config.optimizer
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer={name!r}; accepted: "
                         f"{', '.join(OPTIMIZERS)}")
    mode = config.weight_decay_mode
    if mode not in WEIGHT_DECAY_MODES:
        raise ValueError(f"weight_decay_mode={mode!r}; accepted: "
                         f"{', '.join(WEIGHT_DECAY_MODES)}")
    if config.weight_decay < 0:
        raise ValueError(f"weight_decay={config.weight_decay!r} must be >= 0")
    decoupled = (config.weight_decay or None) if mode == "decoupled" else None
    if config.weight_decay and mode != "decoupled" and name == "adamw":
        raise ValueError("optimizer='adamw' decays weights itself: use "
                         "weight_decay_mode='decoupled'")
    if config.weight_decay and mode == "l2":
        regularizer = keras.regularizers.L2(config.weight_decay / 2.0)
        for variable in model.trainable_variables:
            if not _matches(variable.path, config.weight_decay_exclude):
                variable.regularizer = regularizer
    if mode == "coupled" and name == "sgd":
        return optimizers.TorchSGD(
            learning_rate, momentum=config.momentum, nesterov=config.nesterov,
            weight_decay=config.weight_decay,
            weight_decay_exclude=config.weight_decay_exclude)
    if mode == "coupled" and name == "adam":
        return optimizers.CoupledAdam(
            learning_rate, weight_decay=config.weight_decay,
            weight_decay_exclude=config.weight_decay_exclude)
    if name == "sgd":
        optimizer = keras.optimizers.SGD(
            learning_rate, momentum=config.momentum, nesterov=config.nesterov,
            weight_decay=decoupled)
    elif name == "adam":
        optimizer = keras.optimizers.Adam(learning_rate,
                                          weight_decay=decoupled)
    else:
        optimizer = keras.optimizers.AdamW(learning_rate,
                                           weight_decay=config.weight_decay)
    if decoupled and config.weight_decay_exclude:
        optimizer.exclude_from_weight_decay(var_list=[
            v for v in model.trainable_variables
            if _matches(v.path, config.weight_decay_exclude)])
    return optimizer


class SparseCategoricalCrossentropyWithSmoothing(keras.losses.Loss):
    """Cross-entropy on integer labels and logits, with label smoothing.

    Keras's SparseCategoricalCrossentropy has no label smoothing; this is
    `CategoricalCrossentropy(label_smoothing=s)` on one-hot labels: targets
    `(1 - s) * onehot + s / num_classes`, as in the papers' ImageNet recipes.
    """

    def __init__(self, num_classes, label_smoothing=0.1,
                 name="sparse_categorical_crossentropy_smoothed", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        labels = keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,))
        onehot = keras.ops.one_hot(labels, self.num_classes,
                                   dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            onehot, y_pred, from_logits=True,
            label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "label_smoothing": self.label_smoothing}


def make_loss(config, num_classes):
    """Cross-entropy on logits (with `config.label_smoothing`)."""
    if not 0.0 <= config.label_smoothing < 1.0:
        raise ValueError(f"label_smoothing={config.label_smoothing!r} must "
                         "be in [0, 1)")
    if config.label_smoothing:
        return SparseCategoricalCrossentropyWithSmoothing(
            num_classes, config.label_smoothing)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def metrics(num_classes):
    """Accuracy, and top-5 accuracy for more than 10 classes."""
    found = ["accuracy"]
    if num_classes > 10:
        found.append(keras.metrics.SparseTopKCategoricalAccuracy(
            5, name="top5_accuracy"))
    return found
