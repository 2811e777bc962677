"""Prune-rate / drop-fraction decays (sparse momentum, SET, RigL).

A decay maps the step to the fraction of weights to drop (and regrow) at a
mask update: constant, or a cosine or linear ramp from ``initial`` at
``begin`` to ``final`` at ``end``.

Example:

    >>> rate = CosineDecay(0.5, 0.005, total_steps=1000)  # sparse momentum
    >>> rate(0), rate(1000)
    (0.5, 0.005)
"""

from __future__ import annotations

import dataclasses

import numpy as np
from keras import ops

from tf_sparse.schedules.base import Schedule
from tf_sparse.schedules.base import Windowed
from tf_sparse.schedules.base import begin_field
from tf_sparse.schedules.base import check_in_interval
from tf_sparse.schedules.base import end_field
from tf_sparse.schedules.evaluation import half_cosine
from tf_sparse.schedules.evaluation import is_python_step
from tf_sparse.schedules.evaluation import progress
from tf_sparse.schedules.evaluation import python_step
from tf_sparse.schedules.evaluation import step_tensor
from tf_sparse.schedules.steps import Step


def _check_rate(schedule, field):
    check_in_interval(schedule, field, lo_open=True, hi_open=True,
                      accepted="a prune rate / drop fraction")


@dataclasses.dataclass(frozen=True)
class ConstantDecay(Schedule):
    """A prune rate (drop fraction) that never changes.

    ``value`` must be in ``(0, 1)``. Calling returns ``value`` at every step
    (a float32 tensor of the step's shape for tensor steps).

    Example:

        >>> ConstantDecay(0.3)(12345)
        0.3
    """

    value: float

    def validate(self):
        _check_rate(self, "value")

    def __call__(self, step):
        if is_python_step(step):
            python_step(step)
            return float(self.value)
        s = step_tensor(step)
        return ops.full(ops.shape(s), self.value, dtype="float32")


@dataclasses.dataclass(frozen=True)
class _RampDecay(Windowed):
    """``final + (initial - final) * curve(p)``, ``p`` the window's progress."""

    initial: float
    final: float = 0.0
    begin: Step = begin_field(0)
    end: Step = end_field(1.0, strict=True)

    def validate(self):
        _check_rate(self, "initial")
        check_in_interval(self, "final", lo_open=False, hi_open=True,
                          accepted="a final prune rate / drop fraction")
        if self.final > self.initial:
            raise ValueError(
                f"{type(self).__name__}: final={self.final!r} is above "
                f"initial={self.initial!r}; a decay needs final <= initial."
            )
        self.check_window()

    def __call__(self, step):
        b, e = self.begin_step, self.end_step
        if is_python_step(step):
            p = progress(python_step(step), b, e)
            return self.final + (self.initial - self.final) * self._curve(p)
        p = progress(step_tensor(step), b, e)
        return ops.add(
            ops.multiply(np.float32(self.initial - self.final), self._curve(p)),
            np.float32(self.final),
        )


@dataclasses.dataclass(frozen=True)
class CosineDecay(_RampDecay):
    """Cosine decay of a prune rate from ``initial`` to ``final``.

    ``value(step) = final + (initial - final) * 0.5 * (1 + cos(pi * p))`` with
    ``p = clip((step - begin) / (end - begin), 0, 1)``: ``initial`` up to
    ``begin``, ``final`` from ``end`` on. With the defaults ``begin=0``,
    ``end=1.0`` this is PyTorch's ``CosineAnnealingLR(T_max=total_steps,
    eta_min=final)`` stepped once per optimizer step, which is how sparse
    momentum decays its prune rate (0.5 -> 0.005 over all iterations); unlike
    PyTorch it stays at ``final`` after ``end`` instead of rising again.

    Example:

        >>> rate = CosineDecay(0.5, 0.005, total_steps=1000)
        >>> rate(0), round(rate(500), 6), rate(1000)
        (0.5, 0.2525, 0.005)
    """

    _curve = staticmethod(half_cosine)


def _one_minus(p):
    if isinstance(p, float):
        return 1.0 - p
    return ops.subtract(np.float32(1.0), p)


@dataclasses.dataclass(frozen=True)
class LinearDecay(_RampDecay):
    """Linear decay of a prune rate from ``initial`` to ``final``.

    ``value(step) = final + (initial - final) * (1 - p)``, ``p`` as in
    `CosineDecay`. (sparse_learning's ``LinearDecay`` is different: it
    multiplies the rate by a factor every k steps; this is a plain ramp.)

    Example:

        >>> rate = LinearDecay(0.5, 0.1, begin=0.2, end=0.6, total_steps=1000)
        >>> rate(100), round(rate(400), 6), rate(900)
        (0.5, 0.3, 0.1)
    """

    _curve = staticmethod(_one_minus)


def rigl_cosine_drop_fraction(initial: float = 0.3, end: Step = 1.0, *,
                              total_steps: int | None = None) -> CosineDecay:
    """RigL's ``cosine`` drop-fraction anneal, as a `CosineDecay`.

    ``initial * 0.5 * (1 + cos(pi * min(step, end) / end))``: from
    ``initial`` at step 0 to zero at ``end`` (RigL's last mask update) and
    zero afterwards. RigL computes it with ``cosine_decay(initial,
    global_step, end_step - begin_step)``; this equals ours for
    ``begin_step = 0``, which is what every RigL configuration uses.

    Example:

        >>> drop = rigl_cosine_drop_fraction(0.3, end=0.75, total_steps=1000)
        >>> drop(0), round(drop(375), 6), drop(750)
        (0.3, 0.15, 0.0)
    """
    return CosineDecay(initial, 0.0, 0, end, total_steps=total_steps)
