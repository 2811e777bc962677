"""Gradual magnitude pruning (GMP) targets, with tfmot and SparseML semantics.

Each schedule maps the step to ``(should_prune, target_sparsity)``:
`PolynomialSparsity` (Zhu & Gupta, tfmot ``PolynomialDecay``),
`ConstantSparsity` (tfmot ``ConstantSparsity``) and `InterpolatedSparsity`
(SparseML's interpolation names). Pruning happens every ``frequency`` steps
from ``begin`` to ``end``, both inclusive.

Example:

    >>> gmp = PolynomialSparsity(0.0, 0.9, begin=0.1, end=0.6, frequency=100,
    ...                          total_steps=10_000)
    >>> gmp(1000), gmp(6000)
    ((True, 0.0), (True, 0.9))
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from keras import ops

from tf_sparse.schedules.base import Windowed
from tf_sparse.schedules.base import begin_field
from tf_sparse.schedules.base import check_in_interval
from tf_sparse.schedules.base import end_field
from tf_sparse.schedules.base import every_field
from tf_sparse.schedules.base import field_label
from tf_sparse.schedules.base import is_positive_number
from tf_sparse.schedules.evaluation import is_python_step
from tf_sparse.schedules.evaluation import progress
from tf_sparse.schedules.evaluation import python_step
from tf_sparse.schedules.evaluation import step_tensor
from tf_sparse.schedules.steps import Step

#: SparseML interpolation names accepted by `InterpolatedSparsity`.
INTER_FUNCS = ("linear", "cubic", "inverse_cubic")


def _check_sparsity(schedule, field):
    check_in_interval(schedule, field, lo_open=False, hi_open=True,
                      accepted="a sparsity")


class _GradualPruning(Windowed):
    """Shared by the GMP targets: tfmot's rule for when to prune."""

    @property
    def frequency_steps(self) -> int:
        return self.resolved_step("frequency")

    def _should_prune(self, s):
        # tfmot PruningSchedule._should_prune_in_step: inclusive window,
        # end < 0 means "forever", floormod of (step - begin).
        b, e, f = self.begin_step, self.end_step, self.frequency_steps
        if isinstance(s, int):
            return bool(s >= b and (s <= e or e < 0) and (s - b) % f == 0)
        in_range = ops.greater_equal(s, b)
        if e >= 0:
            in_range = ops.logical_and(in_range, ops.less_equal(s, e))
        return ops.logical_and(in_range,
                               ops.equal(ops.mod(ops.subtract(s, b), f), 0))

    def _check_ramp(self):
        _check_sparsity(self, "initial")
        _check_sparsity(self, "final")
        if self.final < self.initial:
            raise ValueError(
                f"{type(self).__name__}: final={self.final!r} is below "
                f"initial={self.initial!r}; gradual pruning needs final >= "
                "initial (sparsity only grows)."
            )
        self.check_window()


@dataclasses.dataclass(frozen=True)
class PolynomialSparsity(_GradualPruning):
    """Zhu & Gupta polynomial sparsity ramp with tfmot ``PolynomialDecay`` rules.

    ``schedule(step)`` returns ``(should_prune, sparsity)``, step for step the
    same as ``tfmot.sparsity.keras.PolynomialDecay(initial, final,
    begin_step, end_step, power, frequency)`` with this schedule's resolved
    steps (see `tfmot_kwargs`):

    * ``should_prune = begin <= step <= end and (step - begin) % frequency
      == 0`` (both ends inclusive; floor modulo);
    * ``sparsity = final + (initial - final) * (1 - p) ** power`` with
      ``p = min(1, max(0, (step - begin) / (end - begin)))``, returned at
      every step, also outside the window (``initial`` before ``begin``,
      ``final`` after ``end``) and whether or not ``should_prune``;
    * tfmot computes in float32 (``float32(step - begin) / (end - begin)``,
      then ``tf.pow``); the tensor path here uses the same operation order in
      float32, the Python-int path the same formula in float64.

    Validation is stricter than tfmot's: sparsities in ``[0, 1)``,
    ``final >= initial``, ``end > begin`` (tfmot accepts ``end == begin`` and
    then divides by zero), ``frequency >= 1`` step, ``power > 0``.

    Example:

        >>> gmp = PolynomialSparsity(0.0, 0.8, begin=0, end=100, frequency=10)
        >>> [(prune, round(value, 4)) for prune, value in (gmp(50), gmp(55))]
        [(True, 0.7), (False, 0.7271)]
        >>> gmp = PolynomialSparsity(0.0, 0.9, begin=0.1, end=0.6,
        ...                          total_steps=10_000)
        >>> gmp.tfmot_kwargs()["begin_step"], gmp.tfmot_kwargs()["end_step"]
        (1000, 6000)
    """

    initial: float
    final: float
    begin: Step = begin_field()
    end: Step = end_field(strict=True)
    power: float = 3
    frequency: Step = every_field(100)

    def validate(self):
        self._check_ramp()
        power = self.power
        if not is_positive_number(power):
            raise ValueError(
                f"{field_label(self, 'power')}={power!r} is not accepted: the "
                "exponent must be a finite number > 0."
            )

    def tfmot_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for an equivalent tfmot ``PolynomialDecay``."""
        return dict(
            initial_sparsity=self.initial,
            final_sparsity=self.final,
            begin_step=self.begin_step,
            end_step=self.end_step,
            power=self.power,
            frequency=self.frequency_steps,
        )

    def __call__(self, step):
        b, e = self.begin_step, self.end_step
        if is_python_step(step):
            s = python_step(step)
            p = progress(s, b, e)
            sparsity = (self.initial - self.final) * (1.0 - p) ** self.power + self.final
            return self._should_prune(s), sparsity
        s = step_tensor(step)
        p = progress(s, b, e)
        sparsity = ops.add(
            ops.multiply(
                np.float32(self.initial - self.final),
                ops.power(ops.subtract(np.float32(1.0), p), np.float32(self.power)),
            ),
            np.float32(self.final),
        )
        return self._should_prune(s), sparsity


@dataclasses.dataclass(frozen=True)
class ConstantSparsity(_GradualPruning):
    """Constant target sparsity with tfmot ``ConstantSparsity`` rules.

    ``schedule(step) = (should_prune, target)`` where ``should_prune = step
    >= begin and (step <= end or end == -1) and (step - begin) % frequency
    == 0``. ``end=-1`` (the default) means "keep pruning until training
    stops"; otherwise ``end >= begin`` (equal allowed, as in tfmot).

    Example:

        >>> cs = ConstantSparsity(0.9, begin=0.25, frequency=50, total_steps=400)
        >>> cs(100), cs(125), cs(400)
        ((True, 0.9), (False, 0.9), (True, 0.9))
    """

    target: float
    begin: Step = begin_field()
    end: Step = end_field(-1, never=True)
    frequency: Step = every_field(100)

    def validate(self):
        _check_sparsity(self, "target")
        self.check_window()

    def tfmot_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for an equivalent tfmot ``ConstantSparsity``."""
        return dict(
            target_sparsity=self.target,
            begin_step=self.begin_step,
            end_step=self.end_step,
            frequency=self.frequency_steps,
        )

    def __call__(self, step):
        if is_python_step(step):
            return self._should_prune(python_step(step)), float(self.target)
        s = step_tensor(step)
        return self._should_prune(s), ops.full(ops.shape(s), self.target, "float32")


@dataclasses.dataclass(frozen=True)
class InterpolatedSparsity(_GradualPruning):
    """GMP target with SparseML's interpolation names and tfmot's cadence.

    ``sparsity = initial + y(x) * (final - initial)``, ``x = clip((step -
    begin) / (end - begin), 0, 1)`` and, as in SparseML's ``interpolate``:

    * ``"linear"``: ``y = x``
    * ``"cubic"`` (SparseML's GMP default): ``y = 1 - (1 - x) ** 3``, the
      same curve as `PolynomialSparsity` with ``power=3``
    * ``"inverse_cubic"``: ``y = 1 - (1 - x) ** (1 / 3)`` (fast at the
      end, not the start)

    ``should_prune`` follows the tfmot rule of `PolynomialSparsity` (SparseML
    schedules in epochs; give ``frequency`` as a fraction of training, e.g.
    ``0.4 / 90`` for "every 0.4 epoch of 90", to get the same spacing).
    SparseML also snaps ``y`` within machine epsilon of 0 or 1 to the end
    values; this clamps ``x`` instead, which gives the same end values.

    Example:

        >>> s = InterpolatedSparsity(0.1, 0.9, begin=0, end=100, frequency=25,
        ...                          inter_func="linear")
        >>> s(50)
        (True, 0.5)
    """

    initial: float
    final: float
    begin: Step = begin_field()
    end: Step = end_field(strict=True)
    frequency: Step = every_field(100)
    inter_func: str = "cubic"

    def validate(self):
        if self.inter_func not in INTER_FUNCS:
            raise ValueError(
                f"InterpolatedSparsity.inter_func={self.inter_func!r} is not "
                f"accepted: use one of {INTER_FUNCS}."
            )
        self._check_ramp()

    def __call__(self, step):
        b, e = self.begin_step, self.end_step
        if is_python_step(step):
            s = python_step(step)
            x = progress(s, b, e)
            if self.inter_func == "linear":
                y = x
            elif self.inter_func == "cubic":
                y = 1.0 - (1.0 - x) ** 3
            else:
                y = 1.0 - (1.0 - x) ** (1.0 / 3.0)
            return self._should_prune(s), self.initial + y * (self.final - self.initial)
        s = step_tensor(step)
        x = progress(s, b, e)
        one = np.float32(1.0)
        if self.inter_func == "linear":
            y = x
        elif self.inter_func == "cubic":
            y = ops.subtract(one, ops.power(ops.subtract(one, x), np.float32(3.0)))
        else:
            y = ops.subtract(one, ops.power(ops.subtract(one, x), np.float32(1.0 / 3.0)))
        sparsity = ops.add(
            np.float32(self.initial),
            ops.multiply(y, np.float32(self.final - self.initial)),
        )
        return self._should_prune(s), sparsity
