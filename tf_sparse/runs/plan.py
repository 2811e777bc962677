"""How long a run is, in optimizer steps: the one place lengths are resolved.

A config says how long in epochs, steps or fractions of training
(`tf_sparse.runs.config`); everything downstream (learning-rate schedules,
mask-update cadences, checkpoints, the lottery's rewind point) works in
steps. `resolve` turns a config into a `Plan` once, when the run starts;
`point` resolves one point of training with the run's numbers.

Example:

    plan = resolve(config, steps_per_epoch=600)     # 20 epochs
    plan.steps_per_epoch, plan.total_steps      # (600, 12000)
    plan.point("2ep"), plan.point(0.5)          # (1200, 6000)
"""

import dataclasses

from tf_sparse import schedules
from tf_sparse.runs import config as config_lib


@dataclasses.dataclass(frozen=True)
class Plan:
    """A run's length: `epochs` epochs of `steps_per_epoch` global batches."""
    steps_per_epoch: int
    epochs: int
    total_steps: int
    max_steps: int = 0

    def point(self, value, what="step"):
        """`value` (int steps, "500it", "2ep", or a fraction) as a step."""
        return schedules.resolve_point(value, self.total_steps,
                                       self.steps_per_epoch, what)

    @property
    def stop_step(self):
        """Where training stops this time (`max_steps` or the end)."""
        if self.max_steps:
            return min(self.max_steps, self.total_steps)
        return self.total_steps


def total_epochs(config):
    """`epochs * train_multiplier`, which must be a whole number >= 1."""
    epochs = config.epochs * config.train_multiplier
    if abs(epochs - round(epochs)) > 1e-9 or round(epochs) < 1:
        raise ValueError(
            f"epochs * train_multiplier = {config.epochs} * "
            f"{config.train_multiplier} = {epochs} must be a whole number "
            ">= 1.")
    return int(round(epochs))


def resolve(config, steps_per_epoch, *, epochs=None):
    """The `Plan` of `config` with `steps_per_epoch` global batches per
    epoch (the data object's, already capped by `config.steps_per_epoch`).

    `epochs` overrides `epochs * train_multiplier` (a recipe's dense
    pretraining has its own length).
    """
    max_steps = config_lib.option(config, "max_steps", 0)
    if max_steps < 0:
        raise ValueError(f"max_steps={max_steps!r} must be >= 0.")
    if config.steps_per_epoch < 0:
        raise ValueError(f"steps_per_epoch={config.steps_per_epoch!r} must "
                         "be >= 0 (0: the whole training set).")
    epochs = total_epochs(config) if epochs is None else int(epochs)
    if epochs < 1:
        raise ValueError(f"epochs={epochs!r} must be >= 1.")
    return Plan(steps_per_epoch=int(steps_per_epoch), epochs=epochs,
                total_steps=int(steps_per_epoch) * epochs,
                max_steps=int(max_steps))


def warmup_steps(config, plan):
    """The warm-up length in steps.

    A warm-up as long as training (a shortened smoke run of a long recipe)
    is cut to end one step before the end, so a decay can still follow.
    """
    warmup = plan.point(config.warmup, "warmup")
    if warmup >= plan.total_steps:
        warmup = 0 if warmup == 0 else plan.total_steps - 1
    return warmup


def decay_boundaries(config, plan):
    """Steps where a step schedule decays: every `lr_decay_every`, or the
    `lr_boundaries`; boundaries past the end (a shortened run) are left
    out."""
    every = plan.point(config.lr_decay_every, "lr_decay_every")
    if every:
        steps = [k * every for k in range(1, plan.total_steps // every + 1)]
    else:
        steps = [plan.point(b, "lr_boundaries") for b in config.lr_boundaries]
    return tuple(b for b in steps if 0 < b < plan.total_steps)


def describe(plan, steps_per_execution=1):
    return (f"{plan.steps_per_epoch} steps per epoch x {plan.epochs} epochs = "
            f"{plan.total_steps} steps; steps_per_execution "
            f"{steps_per_execution}"
            + (f"; stopping at step {plan.max_steps}" if plan.max_steps
               else ""))
