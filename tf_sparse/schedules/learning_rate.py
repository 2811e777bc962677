"""Learning-rate schedules, usable as Keras optimizer learning rates.

Each is a `keras.optimizers.schedules.LearningRateSchedule` registered as
``"tf_sparse>ClassName"``, so optimizers and models that use one save and
load with Keras. All have an optional linear warm-up from
``warmup_start_lr`` at step 0 to the peak at step ``warmup``.

Example:

    >>> lr = WarmupCosineLR(0.4, warmup=0.05, total_steps=1000)
    >>> lr(0), lr(50), lr(1000)
    (0.0, 0.4, 0.0)
    >>> opt = keras.optimizers.SGD(learning_rate=lr, momentum=0.9)
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import numbers

import keras
import numpy as np
from keras import ops

from tf_sparse.schedules.base import Schedule
from tf_sparse.schedules.base import check_in_interval
from tf_sparse.schedules.base import field_label
from tf_sparse.schedules.base import step_field
from tf_sparse.schedules.base import steps_field
from tf_sparse.schedules.evaluation import as_float32
from tf_sparse.schedules.evaluation import half_cosine
from tf_sparse.schedules.evaluation import is_python_step
from tf_sparse.schedules.evaluation import progress
from tf_sparse.schedules.evaluation import python_step
from tf_sparse.schedules.evaluation import step_tensor
from tf_sparse.schedules.steps import Step


class _Warmup:
    """Shared validation and warm-up for the learning-rate schedules."""

    def _check_lr(self, field, allow_zero=False):
        value = getattr(self, field)
        ok = (
            isinstance(value, numbers.Real)
            and not isinstance(value, bool)
            and math.isfinite(float(value))
            and (value >= 0 if allow_zero else value > 0)
        )
        if not ok:
            raise ValueError(
                f"{field_label(self, field)}={value!r} is not accepted: a "
                "learning rate must be a finite number "
                f"{'>= 0' if allow_zero else '> 0'}."
            )

    def _check_warmup(self, peak_field):
        self._check_lr("warmup_start_lr", allow_zero=True)
        if self.warmup_start_lr > getattr(self, peak_field):
            raise ValueError(
                f"{field_label(self, 'warmup_start_lr')}="
                f"{self.warmup_start_lr!r} is above {peak_field}="
                f"{getattr(self, peak_field)!r}; warm-up ramps up to the peak."
            )

    @property
    def warmup_steps(self) -> int:
        return self.resolved_step("warmup")

    def _with_warmup(self, s, peak, after):
        """The warm-up ramp before ``warmup``, ``after`` from then on."""
        W = self.warmup_steps
        if isinstance(s, int):
            if s < W:
                # s / W first: a stretched run gives the same ratio, hence the same value
                return self.warmup_start_lr + (peak - self.warmup_start_lr) * (s / W)
            return after
        if W == 0:  # static: fixed at construction, not a tensor branch
            return after
        ramp = ops.add(
            np.float32(self.warmup_start_lr),
            ops.multiply(
                np.float32(peak - self.warmup_start_lr),
                ops.divide(as_float32(s), np.float32(W)),
            ),
        )
        return ops.where(ops.less(s, W), ramp, after)


@keras.saving.register_keras_serializable(package="tf_sparse")
@dataclasses.dataclass(frozen=True)
class StepDecayLR(_Warmup, Schedule, keras.optimizers.schedules.LearningRateSchedule):
    """Piecewise-constant LR: multiply by ``factor`` at each boundary.

    ``lr(step) = initial_lr * factor ** #{b in boundaries : step >= b}``
    (the decay applies from the boundary step on, like PyTorch's
    ``MultiStepLR`` stepped per epoch), preceded by an optional linear
    warm-up from ``warmup_start_lr`` at step 0 to ``initial_lr`` at step
    ``warmup``. The default boundaries are 30/60/80 of 90 epochs. Boundaries
    that resolve to the same step (fractions of a very short run) each
    apply the factor there.

    Example:

        >>> lr = StepDecayLR(0.1, boundaries=(30 / 90, 60 / 90, 80 / 90),
        ...                  total_steps=90 * 100)
        >>> lr.resolved_steps()["boundaries"]
        (3000, 6000, 8000)
        >>> lr(2999), round(lr(3000), 9), round(lr(8000), 9)
        (0.1, 0.01, 0.0001)
        >>> opt = keras.optimizers.SGD(learning_rate=lr, momentum=0.9)
    """

    initial_lr: float
    boundaries: tuple = steps_field((30 / 90, 60 / 90, 80 / 90))
    factor: float = 0.1
    warmup: Step = step_field(0)
    warmup_start_lr: float = 0.0

    def validate(self):
        self._check_lr("initial_lr")
        self._check_warmup("initial_lr")
        check_in_interval(self, "factor", lo_open=True, hi_open=False,
                          accepted="the decay factor")
        b = self.resolved_step("boundaries")
        if any(x > y for x, y in zip(b, b[1:])):
            raise ValueError(
                f"StepDecayLR.boundaries={self.boundaries!r} resolve to steps "
                f"{b}; they must not decrease."
            )

    def __call__(self, step):
        b = self.resolved_step("boundaries")
        if is_python_step(step):
            s = python_step(step)
            decayed = self.initial_lr * self.factor ** bisect.bisect_right(b, s)
            return self._with_warmup(s, self.initial_lr, decayed)
        s = step_tensor(step)
        if b:
            passed = ops.greater_equal(ops.expand_dims(s, -1), np.asarray(b, np.int64))
            count = ops.sum(as_float32(passed), axis=-1)
        else:
            count = ops.zeros(ops.shape(s), dtype="float32")
        decayed = ops.multiply(
            np.float32(self.initial_lr), ops.power(np.float32(self.factor), count)
        )
        return self._with_warmup(s, self.initial_lr, decayed)


@keras.saving.register_keras_serializable(package="tf_sparse")
@dataclasses.dataclass(frozen=True)
class WarmupCosineLR(_Warmup, Schedule, keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak_lr``, then cosine decay to ``final_lr``.

    For ``step < warmup``: ``warmup_start_lr + (peak_lr - warmup_start_lr) *
    step / warmup``. Then ``final_lr + (peak_lr - final_lr) * 0.5 * (1 +
    cos(pi * p))`` with ``p = clip((step - warmup) / (total_steps -
    warmup), 0, 1)``; ``final_lr`` from ``total_steps`` on. ``total_steps``
    is required.

    Example:

        >>> lr = WarmupCosineLR(0.4, warmup=0.05, total_steps=1000)
        >>> lr(25), lr(50), round(lr(525), 9), lr(1000)
        (0.2, 0.4, 0.2, 0.0)
    """

    peak_lr: float
    final_lr: float = 0.0
    warmup: Step = step_field(0)
    warmup_start_lr: float = 0.0

    def validate(self):
        if self.total_steps is None:
            raise ValueError(
                "WarmupCosineLR needs total_steps (the cosine ends at the end "
                "of training); got total_steps=None."
            )
        self._check_lr("peak_lr")
        self._check_lr("final_lr", allow_zero=True)
        if self.final_lr > self.peak_lr:
            raise ValueError(
                f"WarmupCosineLR.final_lr={self.final_lr!r} is above "
                f"peak_lr={self.peak_lr!r}; the cosine decays."
            )
        self._check_warmup("peak_lr")
        if self.warmup_steps >= self.total_steps:
            raise ValueError(
                f"WarmupCosineLR.warmup={self.warmup!r} ({self.warmup_steps} "
                f"steps) leaves no room for the decay: it must end before "
                f"total_steps={self.total_steps}."
            )

    def __call__(self, step):
        W, T = self.warmup_steps, self.total_steps
        peak, final = self.peak_lr, self.final_lr
        if is_python_step(step):
            s = python_step(step)
            after = final + (peak - final) * half_cosine(progress(s, W, T))
            return self._with_warmup(s, peak, after)
        s = step_tensor(step)
        after = ops.add(
            np.float32(final),
            ops.multiply(np.float32(peak - final), half_cosine(progress(s, W, T))),
        )
        return self._with_warmup(s, peak, after)


@keras.saving.register_keras_serializable(package="tf_sparse")
@dataclasses.dataclass(frozen=True)
class WarmupConstantLR(_Warmup, Schedule, keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``lr``, then constant ``lr``.

    Example:

        >>> lr = WarmupConstantLR(0.1, warmup=100)
        >>> lr(0), lr(50), lr(100), lr(10**6)
        (0.0, 0.05, 0.1, 0.1)
    """

    lr: float
    warmup: Step = step_field(0)
    warmup_start_lr: float = 0.0

    def validate(self):
        self._check_lr("lr")
        self._check_warmup("lr")

    def __call__(self, step):
        if is_python_step(step):
            s = python_step(step)
            return self._with_warmup(s, self.lr, float(self.lr))
        s = step_tensor(step)
        return self._with_warmup(s, self.lr, ops.full(ops.shape(s), self.lr, "float32"))
