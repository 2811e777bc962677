"""Schedules for sparse training, all expressed in fractions of training.

Everything that varies over a run lives here: prune-rate / drop-fraction
decay (sparse momentum, RigL), mask-update cadence, gradual-magnitude-pruning
(GMP) sparsity targets with tfmot and SparseML semantics, AC/DC
compressed/decompressed phases, and learning-rate schedules for the binaries.

Conventions (shared by every class in this module)
--------------------------------------------------
Step values.
    Any argument that names a point in training or a length of time
    (`begin`, `end`, `every`, `frequency`, `warmup`, `phase_length`,
    `boundaries`, ...) takes either

    * an ``int``: an absolute number of optimizer steps, or
    * a ``float`` in ``[0, 1]``: a fraction of ``total_steps``.

    ``0`` and ``1`` are ints (steps 0 and 1); write ``0.0`` / ``1.0`` for
    "start" / "end of training". A float outside ``[0, 1]`` is an error, so
    ``end=2.0`` never silently means "step 2". `resolve_step` turns either
    form into an int step.

Rounding.
    A fraction resolves to ``floor(fraction * total_steps + 0.5)``: round
    half UP, not Python's round-half-to-even (``0.5`` of 5 steps is step 3,
    ``0.5`` of 7 is 4). The float is read as the shortest decimal that prints
    the same (its ``repr``) and the product is computed exactly, so
    ``0.145`` of 100 steps is exactly 14.5 -> step 15 even though the binary
    double ``0.145`` is slightly below 0.145.

What ``step`` means.
    ``step`` is the number of optimizer steps already completed (the value of
    ``optimizer.iterations`` before the update about to run, or after the
    last one). The value of a schedule at ``step`` is the value that holds
    after ``step`` updates; a mask update scheduled at ``step`` happens
    between update ``step`` and update ``step + 1``. Training of
    ``total_steps`` steps therefore evaluates ``0 .. total_steps``.
    (tfmot differs by one: its wrapper sets its counter to
    ``optimizer.iterations`` and increments it before evaluating the
    schedule, so tfmot calls its schedule with ``iterations + 1``. To
    reproduce a tfmot run's timing exactly, call our tfmot-compatible
    schedules with ``iterations + 1`` too.)

Design: ``total_steps`` is known at construction.
    Every schedule is a small frozen dataclass built with
    ``total_steps=...`` (a keyword-only field, required as soon as any step
    value is a fraction) and then used as a plain callable of the step. There
    is no separate ``resolve`` stage and no ``.at(step, total)``: fractions are
    resolved once, in ``__post_init__``, and validated there (bad input raises
    ``ValueError`` naming the value and what is accepted).

Calling.
    ``schedule(step)`` accepts

    * a Python (or NumPy) int: everything is computed in Python (float64)
      and Python ``float`` / ``bool`` values are returned;
    * an integer tensor or variable (e.g. ``optimizer.iterations``) of any
      shape: the result is computed elementwise with ``keras.ops`` in
      float32, with no Python branching on tensor values, so it traces once
      inside ``tf.function`` (also ``jit_compile=True``/XLA) and does not
      retrace per step.

Stretching.
    Because positions are fractions of ``total_steps``, a longer run is the
    same schedule with a larger ``total_steps``. `stretch` does this and also
    multiplies every absolute (int) step value, so a 2x run's value at step
    ``2 s`` equals the 1x run's at step ``s`` (exactly, whenever the resolved
    steps are exact, e.g. all given as ints or as fractions that land on
    whole steps).

Example:

    from tf_sparse import schedules as S
    T = 100 * 390                                   # 100 epochs of 390 steps
    rate = S.CosineDecay(0.5, 0.005, total_steps=T)  # sparse momentum
    cadence = S.UpdateSchedule.every_epoch(390, T)
    gmp = S.PolynomialSparsity(0.0, 0.9, begin=0.1, end=0.6, frequency=100,
                               total_steps=T)
    lr = S.StepDecayLR(0.1, boundaries=(0.5, 0.75), total_steps=T)
    long_gmp = S.stretch(gmp, 2)                     # same shape, 2x steps
"""

from __future__ import annotations

import bisect
import dataclasses
import fractions
import math
import numbers
from typing import Any, Union

import keras
import numpy as np
from keras import ops

__all__ = [
    "Step",
    "resolve_step",
    "stretch",
    "ConstantDecay",
    "CosineDecay",
    "LinearDecay",
    "rigl_cosine_drop_fraction",
    "UpdateSchedule",
    "PolynomialSparsity",
    "ConstantSparsity",
    "InterpolatedSparsity",
    "INTER_FUNCS",
    "ACDCSchedule",
    "StepDecayLR",
    "WarmupCosineLR",
    "WarmupConstantLR",
]

#: A position or duration in training: an int step count or a float fraction.
Step = Union[int, float]

#: SparseML interpolation names accepted by `InterpolatedSparsity`.
INTER_FUNCS = ("linear", "cubic", "inverse_cubic")

_HALF = fractions.Fraction(1, 2)


# --------------------------------------------------------------------------
# Step values
# --------------------------------------------------------------------------


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _exact(value) -> fractions.Fraction:
    """The exact rational a user meant by a float (its shortest repr)."""
    if isinstance(value, fractions.Fraction):
        return value
    return fractions.Fraction(repr(float(value)))


def _check_total_steps(total_steps, what="total_steps"):
    if total_steps is None:
        return None
    if not _is_int(total_steps) or total_steps < 1:
        raise ValueError(
            f"{what}={total_steps!r} is not accepted: total_steps must be an "
            "int >= 1 (the number of optimizer steps in the whole run)."
        )
    return int(total_steps)


def _resolve(value, total_steps, what, period=False):
    """`resolve_step` with a name for error messages.

    ``period``: the value is a length between events (frequency), not a
    position, so an int larger than ``total_steps`` is allowed.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{what}={value!r} is not a step value: give an int (absolute "
            "step count) or a float in [0, 1] (fraction of total_steps)."
        )
    if _is_int(value):
        step = int(value)
        if step < 0:
            raise ValueError(
                f"{what}={value!r} is negative: an int step count must be "
                ">= 0 (or give a float fraction in [0, 1])."
            )
        if total_steps is not None and step > total_steps and not period:
            raise ValueError(
                f"{what}={value!r} is past the end of training "
                f"(total_steps={total_steps}); int step counts must be <= "
                "total_steps (or give a float fraction in [0, 1])."
            )
        return step
    if not math.isfinite(float(value)) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(
            f"{what}={value!r} is not accepted: a float is a fraction of "
            "training and must be in [0, 1]; use an int for an absolute "
            "step count."
        )
    if total_steps is None:
        raise ValueError(
            f"{what}={value!r} is a fraction of training, so total_steps "
            "must be given (got total_steps=None); pass total_steps=... or "
            "give an int step count."
        )
    return math.floor(_exact(value) * total_steps + _HALF)


def resolve_step(value: Step, total_steps: int | None = None) -> int:
    """Turns an int step count or a float fraction of training into a step.

    Ints pass through (they must be ``>= 0`` and, if ``total_steps`` is
    given, ``<= total_steps``). A float must lie in ``[0, 1]`` and resolves to
    ``floor(value * total_steps + 0.5)``, computed exactly on the decimal the
    float prints as: halves round UP (never to even).

    Example:

        >>> resolve_step(0.5, 5), resolve_step(0.5, 7), resolve_step(250, 1000)
        (3, 4, 250)
        >>> resolve_step(30 / 90, 9000)
        3000
    """
    total_steps = _check_total_steps(total_steps)
    return _resolve(value, total_steps, "step value")


# --------------------------------------------------------------------------
# Shared machinery
# --------------------------------------------------------------------------


def _step_field(default=dataclasses.MISSING, *, never=False, period=False):
    """A dataclass field holding one `Step`.

    ``never``: ``-1`` is allowed (tfmot's "no end"); ``period``: the value is
    a spacing between events, which may exceed ``total_steps``.
    """
    return dataclasses.field(
        default=default,
        metadata={"step": "one", "never": never, "period": period},
    )


def _steps_field(default):
    """A dataclass field holding a tuple of `Step` values."""
    return dataclasses.field(default=default, metadata={"step": "many"})


def _is_python_step(step) -> bool:
    return _is_int(step)


def _check_python_step(step):
    if step < 0:
        raise ValueError(
            f"step={step!r} is negative: step counts completed optimizer "
            "steps and must be >= 0."
        )
    return int(step)


def _step_tensor(step):
    """Any step (int tensor, variable, array) as an int64 tensor."""
    if isinstance(step, (bool, float)):
        raise TypeError(
            f"step={step!r} is not accepted: pass a Python int or an integer "
            "tensor/variable such as optimizer.iterations."
        )
    t = ops.convert_to_tensor(step)
    dtype = keras.backend.standardize_dtype(t.dtype)
    if dtype == "bool":
        raise TypeError("step must be an integer tensor, got a bool tensor.")
    if "float" in dtype:
        t = ops.floor(t)
    return ops.cast(t, "int64")


def _f32(x):
    return ops.cast(x, "float32")


def _progress_py(step, begin, end):
    return min(1.0, max(0.0, (step - begin) / (end - begin)))


def _progress_t(s, begin, end):
    # Same operation order as tfmot's PolynomialDecay (float32 throughout).
    ratio = ops.divide(_f32(ops.subtract(s, begin)), np.float32(end - begin))
    return ops.minimum(np.float32(1.0), ops.maximum(np.float32(0.0), ratio))


def _name(obj, field):
    return f"{type(obj).__name__}.{field}"


def _check_unit_open(obj, field, lo_open=True, hi_open=True, lo=0.0, hi=1.0,
                     accepted=None):
    value = getattr(obj, field)
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        v = float(value)
        ok = math.isfinite(v) and (v > lo if lo_open else v >= lo) and (
            v < hi if hi_open else v <= hi
        )
    if not ok:
        interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise ValueError(
            f"{_name(obj, field)}={value!r} is not accepted: "
            f"{accepted or 'it'} must be in {interval}."
        )


def _check_sparsity(obj, field):
    _check_unit_open(obj, field, lo_open=False, hi_open=True,
                     accepted="a sparsity")


def _check_rate(obj, field):
    _check_unit_open(obj, field, lo_open=True, hi_open=True,
                     accepted="a prune rate / drop fraction")


def _check_positive(obj, field, accepted="it"):
    value = getattr(obj, field)
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(float(value))
        or value <= 0
    ):
        raise ValueError(
            f"{_name(obj, field)}={value!r} is not accepted: {accepted} must "
            "be a finite number > 0."
        )


def _check_window(obj, begin_field, end_field, strict):
    b, e = obj._steps[begin_field], obj._steps[end_field]
    if e < b or (strict and e == b):
        raise ValueError(
            f"{type(obj).__name__}: the window ends before it begins: "
            f"{begin_field}={getattr(obj, begin_field)!r} (step {b}) and "
            f"{end_field}={getattr(obj, end_field)!r} (step {e}); need "
            f"{begin_field} {'<' if strict else '<='} {end_field}."
        )


def _check_period(obj, field):
    steps = obj._steps[field]
    if steps < 1:
        raise ValueError(
            f"{_name(obj, field)}={getattr(obj, field)!r} resolves to {steps} "
            "steps; it must be >= 1 step (a positive int, or a fraction of "
            f"total_steps={obj.total_steps} that rounds to at least 1)."
        )


@dataclasses.dataclass(frozen=True)
class _Schedule:
    """Base: a frozen dataclass whose step fields are resolved on creation.

    Subclasses declare step fields with `_step_field`/`_steps_field` and
    validate in `_validate`. Resolved int steps are in ``self._steps``
    (name -> int, or tuple of ints; ``-1`` kept where "never" is allowed).
    """

    total_steps: int | None = dataclasses.field(default=None, kw_only=True)

    def __post_init__(self):
        total = _check_total_steps(self.total_steps, _name(self, "total_steps"))
        steps = {}
        for f in dataclasses.fields(self):
            kind = f.metadata.get("step")
            value = getattr(self, f.name)
            if kind == "one":
                if f.metadata.get("never") and _is_int(value) and value == -1:
                    steps[f.name] = -1
                else:
                    steps[f.name] = _resolve(
                        value, total, _name(self, f.name), f.metadata["period"]
                    )
            elif kind == "many":
                if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                    raise TypeError(
                        f"{_name(self, f.name)}={value!r} must be a sequence "
                        "of step values."
                    )
                value = tuple(value)
                object.__setattr__(self, f.name, value)
                steps[f.name] = tuple(
                    _resolve(v, total, f"{_name(self, f.name)}[{i}]")
                    for i, v in enumerate(value)
                )
        object.__setattr__(self, "_steps", steps)
        self._validate()

    def _validate(self):  # pragma: no cover - overridden
        pass

    def resolved_steps(self) -> dict[str, Any]:
        """The step fields as int steps (tuples for multi-step fields)."""
        return dict(self._steps)

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments (``cls(**config)`` rebuilds it)."""
        config = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            config[f.name] = list(value) if isinstance(value, tuple) else value
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _scale(value, m):
    """Scales one step value by exact multiplier ``m`` (ints only)."""
    if _is_int(value):
        if value == -1:
            return -1
        return math.floor(value * m + _HALF)
    return value


def stretch(schedule, multiplier):
    """Returns `schedule` for a run ``multiplier`` times as long.

    ``total_steps`` and every int (absolute) step value are multiplied by
    ``multiplier`` (rounded half up); fractions are kept, so they follow the
    new ``total_steps``; values (rates, sparsities, learning rates) are
    unchanged. A ``-1`` "never stop" end stays ``-1``.

    For an integer multiplier ``k`` and any step ``s``,
    ``stretch(sched, k)(k * s) == sched(s)`` whenever the resolved steps of
    both are exact (ints, or fractions landing on whole steps); update and
    pruning events of the stretched schedule happen only at multiples of
    ``k``.

    Example:

        >>> g = PolynomialSparsity(0.0, 0.8, begin=100, end=0.5,
        ...                        frequency=10, total_steps=1000)
        >>> g2 = stretch(g, 2)
        >>> (g2.begin, g2.frequency, g2.total_steps, g2.end)
        (200, 20, 2000, 0.5)
        >>> g2(700) == g(350)
        True
    """
    if (
        isinstance(multiplier, bool)
        or not isinstance(multiplier, numbers.Real)
        or not math.isfinite(float(multiplier))
        or multiplier <= 0
    ):
        raise ValueError(
            f"multiplier={multiplier!r} is not accepted: it must be a finite "
            "number > 0."
        )
    if not isinstance(schedule, _Schedule):
        raise TypeError(
            f"stretch() takes a tf_sparse.schedules schedule, got "
            f"{type(schedule).__name__}."
        )
    m = fractions.Fraction(multiplier) if _is_int(multiplier) else _exact(multiplier)
    changes = {}
    for f in dataclasses.fields(schedule):
        value = getattr(schedule, f.name)
        if f.name == "total_steps":
            changes[f.name] = None if value is None else _scale(value, m)
        elif f.metadata.get("step") == "one":
            changes[f.name] = _scale(value, m)
        elif f.metadata.get("step") == "many":
            changes[f.name] = tuple(_scale(v, m) for v in value)
    return dataclasses.replace(schedule, **changes)


# --------------------------------------------------------------------------
# 1. Prune-rate / drop-fraction decay
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ConstantDecay(_Schedule):
    """A prune rate (drop fraction) that never changes.

    ``value`` must be in ``(0, 1)``. Calling returns ``value`` at every step
    (a float32 tensor of the step's shape for tensor steps).

    Example:

        >>> ConstantDecay(0.3)(12345)
        0.3
    """

    value: float

    def _validate(self):
        _check_rate(self, "value")

    def __call__(self, step):
        if _is_python_step(step):
            _check_python_step(step)
            return float(self.value)
        s = _step_tensor(step)
        return ops.full(ops.shape(s), self.value, dtype="float32")


@dataclasses.dataclass(frozen=True)
class _RampDecay(_Schedule):
    initial: float
    final: float = 0.0
    begin: Step = _step_field(0)
    end: Step = _step_field(1.0)

    def _validate(self):
        _check_rate(self, "initial")
        _check_unit_open(self, "final", lo_open=False, hi_open=True,
                         accepted="a final prune rate / drop fraction")
        if self.final > self.initial:
            raise ValueError(
                f"{type(self).__name__}: final={self.final!r} is above "
                f"initial={self.initial!r}; a decay needs final <= initial."
            )
        _check_window(self, "begin", "end", strict=True)

    @property
    def begin_step(self) -> int:
        return self._steps["begin"]

    @property
    def end_step(self) -> int:
        return self._steps["end"]

    def __call__(self, step):
        b, e = self.begin_step, self.end_step
        if _is_python_step(step):
            p = _progress_py(_check_python_step(step), b, e)
            return self.final + (self.initial - self.final) * self._shape_py(p)
        p = _progress_t(_step_tensor(step), b, e)
        return ops.add(
            ops.multiply(np.float32(self.initial - self.final), self._shape_t(p)),
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

    @staticmethod
    def _shape_py(p):
        return 0.5 * (1.0 + math.cos(math.pi * p))

    @staticmethod
    def _shape_t(p):
        return ops.multiply(
            np.float32(0.5), ops.add(np.float32(1.0), ops.cos(ops.multiply(np.float32(math.pi), p)))
        )


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

    @staticmethod
    def _shape_py(p):
        return 1.0 - p

    @staticmethod
    def _shape_t(p):
        return ops.subtract(np.float32(1.0), p)


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


# --------------------------------------------------------------------------
# 2. Update cadence
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class UpdateSchedule(_Schedule):
    """When to update masks: every ``every`` steps inside a window.

    ``should_update(step)`` is true iff ``(step - begin) % every == 0`` and
    ``begin <= step < end`` (``skip_last=True``, the default) or
    ``begin <= step <= end`` (``skip_last=False``, the tfmot/RigL inclusive
    convention). With the default ``end=1.0`` the skipped "last" update is
    the one after the final optimizer step, which no training step would use.
    ``every``, ``begin`` and ``end`` are ints (steps) or fractions.

    `every_epoch` builds sparse momentum's cadence: after every epoch except
    the last, i.e. at ``step = k * steps_per_epoch`` for ``k = 1 ..
    epochs - 1``.

    Example:

        >>> cadence = UpdateSchedule(every=100, begin=0.1, end=0.5,
        ...                          total_steps=1000)
        >>> cadence.update_steps()
        [100, 200, 300, 400]
        >>> UpdateSchedule.every_epoch(50, 200).update_steps()
        [50, 100, 150]
    """

    every: Step = _step_field(period=True)
    begin: Step = _step_field(0)
    end: Step = _step_field(1.0)
    skip_last: bool = True

    def _validate(self):
        _check_period(self, "every")
        _check_window(self, "begin", "end", strict=False)
        if not isinstance(self.skip_last, bool):
            raise ValueError(
                f"UpdateSchedule.skip_last={self.skip_last!r} must be a bool."
            )

    @classmethod
    def every_epoch(cls, steps_per_epoch: int, total_steps: int, *,
                    skip_last: bool = True) -> "UpdateSchedule":
        """Updates at the end of every epoch except the last.

        That is after ``k * steps_per_epoch`` completed steps, ``k = 1, 2,
        ...``, below ``total_steps`` (``skip_last=False`` adds the update at
        ``total_steps`` itself when it falls on an epoch end).
        """
        if not _is_int(steps_per_epoch) or steps_per_epoch < 1:
            raise ValueError(
                f"steps_per_epoch={steps_per_epoch!r} is not accepted: it "
                "must be an int >= 1."
            )
        return cls(
            every=int(steps_per_epoch),
            begin=int(steps_per_epoch),
            end=total_steps,
            skip_last=skip_last,
            total_steps=total_steps,
        )

    @property
    def every_steps(self) -> int:
        return self._steps["every"]

    @property
    def begin_step(self) -> int:
        return self._steps["begin"]

    @property
    def end_step(self) -> int:
        return self._steps["end"]

    def should_update(self, step):
        """True (bool, or bool tensor) if masks are updated at ``step``."""
        b, e, f = self.begin_step, self.end_step, self.every_steps
        if _is_python_step(step):
            s = _check_python_step(step)
            in_window = b <= s and (s < e if self.skip_last else s <= e)
            return bool(in_window and (s - b) % f == 0)
        s = _step_tensor(step)
        upper = ops.less(s, e) if self.skip_last else ops.less_equal(s, e)
        in_window = ops.logical_and(ops.greater_equal(s, b), upper)
        on_beat = ops.equal(ops.mod(ops.subtract(s, b), f), 0)
        return ops.logical_and(in_window, on_beat)

    __call__ = should_update

    def update_steps(self) -> list[int]:
        """All steps at which `should_update` is true, in order."""
        stop = self.end_step if self.skip_last else self.end_step + 1
        return list(range(self.begin_step, stop, self.every_steps))


# --------------------------------------------------------------------------
# 3. Gradual magnitude pruning targets
# --------------------------------------------------------------------------


def _prune_turn_py(s, b, e, f):
    # tfmot PruningSchedule._should_prune_in_step: inclusive window,
    # end < 0 means "forever", floormod of (step - begin).
    return bool(s >= b and (s <= e or e < 0) and (s - b) % f == 0)


def _prune_turn_t(s, b, e, f):
    in_range = ops.greater_equal(s, b)
    if e >= 0:
        in_range = ops.logical_and(in_range, ops.less_equal(s, e))
    return ops.logical_and(in_range, ops.equal(ops.mod(ops.subtract(s, b), f), 0))


def _check_gmp(obj):
    _check_sparsity(obj, "initial")
    _check_sparsity(obj, "final")
    if obj.final < obj.initial:
        raise ValueError(
            f"{type(obj).__name__}: final={obj.final!r} is below "
            f"initial={obj.initial!r}; gradual pruning needs final >= "
            "initial (sparsity only grows)."
        )
    _check_window(obj, "begin", "end", strict=True)
    _check_period(obj, "frequency")


@dataclasses.dataclass(frozen=True)
class PolynomialSparsity(_Schedule):
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
    begin: Step = _step_field()
    end: Step = _step_field()
    power: float = 3
    frequency: Step = _step_field(100, period=True)

    def _validate(self):
        _check_gmp(self)
        _check_positive(self, "power", "the exponent")

    @property
    def begin_step(self) -> int:
        return self._steps["begin"]

    @property
    def end_step(self) -> int:
        return self._steps["end"]

    @property
    def frequency_steps(self) -> int:
        return self._steps["frequency"]

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
        b, e, f = self.begin_step, self.end_step, self.frequency_steps
        if _is_python_step(step):
            s = _check_python_step(step)
            p = _progress_py(s, b, e)
            sparsity = (self.initial - self.final) * (1.0 - p) ** self.power + self.final
            return _prune_turn_py(s, b, e, f), sparsity
        s = _step_tensor(step)
        p = _progress_t(s, b, e)
        sparsity = ops.add(
            ops.multiply(
                np.float32(self.initial - self.final),
                ops.power(ops.subtract(np.float32(1.0), p), np.float32(self.power)),
            ),
            np.float32(self.final),
        )
        return _prune_turn_t(s, b, e, f), sparsity


@dataclasses.dataclass(frozen=True)
class ConstantSparsity(_Schedule):
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
    begin: Step = _step_field()
    end: Step = _step_field(-1, never=True)
    frequency: Step = _step_field(100, period=True)

    def _validate(self):
        _check_sparsity(self, "target")
        if self._steps["end"] != -1:
            _check_window(self, "begin", "end", strict=False)
        _check_period(self, "frequency")

    @property
    def begin_step(self) -> int:
        return self._steps["begin"]

    @property
    def end_step(self) -> int:
        return self._steps["end"]

    @property
    def frequency_steps(self) -> int:
        return self._steps["frequency"]

    def tfmot_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for an equivalent tfmot ``ConstantSparsity``."""
        return dict(
            target_sparsity=self.target,
            begin_step=self.begin_step,
            end_step=self.end_step,
            frequency=self.frequency_steps,
        )

    def __call__(self, step):
        b, e, f = self.begin_step, self.end_step, self.frequency_steps
        if _is_python_step(step):
            s = _check_python_step(step)
            return _prune_turn_py(s, b, e, f), float(self.target)
        s = _step_tensor(step)
        return _prune_turn_t(s, b, e, f), ops.full(ops.shape(s), self.target, "float32")


@dataclasses.dataclass(frozen=True)
class InterpolatedSparsity(_Schedule):
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
    begin: Step = _step_field()
    end: Step = _step_field()
    frequency: Step = _step_field(100, period=True)
    inter_func: str = "cubic"

    def _validate(self):
        if self.inter_func not in INTER_FUNCS:
            raise ValueError(
                f"InterpolatedSparsity.inter_func={self.inter_func!r} is not "
                f"accepted: use one of {INTER_FUNCS}."
            )
        _check_gmp(self)

    @property
    def begin_step(self) -> int:
        return self._steps["begin"]

    @property
    def end_step(self) -> int:
        return self._steps["end"]

    @property
    def frequency_steps(self) -> int:
        return self._steps["frequency"]

    def __call__(self, step):
        b, e, f = self.begin_step, self.end_step, self.frequency_steps
        if _is_python_step(step):
            s = _check_python_step(step)
            x = _progress_py(s, b, e)
            if self.inter_func == "linear":
                y = x
            elif self.inter_func == "cubic":
                y = 1.0 - (1.0 - x) ** 3
            else:
                y = 1.0 - (1.0 - x) ** (1.0 / 3.0)
            return _prune_turn_py(s, b, e, f), self.initial + y * (self.final - self.initial)
        s = _step_tensor(step)
        x = _progress_t(s, b, e)
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
        return _prune_turn_t(s, b, e, f), sparsity


# --------------------------------------------------------------------------
# 4. AC/DC phases
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ACDCSchedule(_Schedule):
    """AC/DC: dense warm-up, alternating sparse/dense phases, final sparse.

    Timeline (``W = warmup``, ``L = phase_length``, ``F = end_sparse``, ``T =
    total_steps``, all resolved to steps):

    * ``[0, W)``: dense warm-up (absent if ``W == 0``);
    * ``[W, T - F)``: ``n = (T - F - W) / L`` phases of ``L`` steps,
      alternating compressed (sparse) and decompressed (dense), starting
      with compressed; ``n`` must be a whole number ("phase lengths that
      don't fit" raise ``ValueError``);
    * ``[T - F, T)``: the final compressed phase, always sparse (SparseML's
      ``ACDCPruningModifier`` likewise always finishes on compression).

    If ``n`` is odd the last alternating phase is compressed and touches the
    final one. ``tail="dense"`` (default) decompresses it instead, so a dense
    phase of ``2 L`` precedes a fresh final compression; this is the
    IST-DASLab ResNet-50 config (100 epochs: dense 0-10, 5-epoch phases
    sparse 10-15 ... sparse 70-75, dense 75-85, sparse 85-100), i.e.
    ``ACDCSchedule(0.1, 0.05, 0.15)``. ``tail="merge"`` keeps it compressed,
    giving one final sparse phase of ``L + F`` (SparseML recipe ACDC 5-85 +
    constant sparsity 85-100).

    Adjacent phases with the same state are one phase. Phases are numbered
    from 0; steps at or past ``T`` stay in the final phase.
    ``phase(step) -> (index, is_sparse)``; ``is_boundary(step)`` is true at
    the first step of each phase whose state differs from the state before
    it (dense before step 0): prune there if the phase is sparse, restore
    all weights (and, per AC/DC, reset momentum) if it is dense.
    ``schedule(step) -> (is_boundary, target_sparsity)`` (``sparsity`` in
    sparse phases, 0.0 in dense ones), the same shape as the GMP schedules.

    Example:

        >>> acdc = ACDCSchedule(0.1, 0.05, 0.15, total_steps=100)
        >>> [(a, b, "S" if s else "D") for a, b, s in acdc.phases()][-3:]
        [(70, 75, 'S'), (75, 85, 'D'), (85, 100, 'S')]
        >>> acdc.phase(80), acdc.is_boundary(85), acdc(90)
        ((14, False), True, (False, 0.9))
    """

    warmup: Step = _step_field()
    phase_length: Step = _step_field()
    end_sparse: Step = _step_field()
    sparsity: float = 0.9
    tail: str = "dense"

    def _validate(self):
        if self.total_steps is None:
            raise ValueError(
                "ACDCSchedule needs total_steps (the final sparse phase is "
                "placed at the end of training); got total_steps=None."
            )
        _check_unit_open(self, "sparsity", lo_open=True, hi_open=True,
                         accepted="the compressed-phase sparsity")
        if self.tail not in ("dense", "merge"):
            raise ValueError(
                f"ACDCSchedule.tail={self.tail!r} is not accepted: use "
                "'dense' or 'merge'."
            )
        T = self.total_steps
        W, L, F = (self._steps[k] for k in ("warmup", "phase_length", "end_sparse"))
        _check_period(self, "phase_length")
        if F < 1:
            raise ValueError(
                f"ACDCSchedule.end_sparse={self.end_sparse!r} resolves to 0 "
                "steps; the final sparse phase must be >= 1 step."
            )
        middle = T - F - W
        if middle < 0 or middle % L:
            raise ValueError(
                "ACDCSchedule: phase lengths don't fit: need warmup + n * "
                "phase_length + end_sparse == total_steps for a whole n >= 0, "
                f"got warmup={self.warmup!r} ({W} steps) + n * "
                f"phase_length={self.phase_length!r} ({L} steps) + "
                f"end_sparse={self.end_sparse!r} ({F} steps) vs total_steps="
                f"{T} (remainder {middle} steps)."
            )
        n = middle // L
        segments = []
        if W:
            segments.append((0, False))
        for k in range(n):
            sparse = k % 2 == 0
            if sparse and k == n - 1 and self.tail == "dense":
                sparse = False
            segments.append((W + k * L, sparse))
        segments.append((T - F, True))
        starts, states = [], []
        for start, sparse in segments:
            if states and states[-1] == sparse:
                continue
            starts.append(start)
            states.append(sparse)
        boundaries = tuple(
            s for i, s in enumerate(starts)
            if states[i] != (states[i - 1] if i else False)
        )
        object.__setattr__(self, "_starts", tuple(starts))
        object.__setattr__(self, "_states", tuple(states))
        object.__setattr__(self, "_boundaries", boundaries)

    def phases(self) -> tuple[tuple[int, int, bool], ...]:
        """``(start, end, is_sparse)`` for each phase, end exclusive."""
        ends = self._starts[1:] + (self.total_steps,)
        return tuple(zip(self._starts, ends, self._states))

    @property
    def boundaries(self) -> tuple[int, ...]:
        """Steps at which `is_boundary` is true."""
        return self._boundaries

    def phase(self, step):
        """``(index, is_sparse)`` of the phase containing ``step``."""
        if _is_python_step(step):
            s = _check_python_step(step)
            i = bisect.bisect_right(self._starts, s) - 1
            return i, self._states[i]
        s = _step_tensor(step)
        if len(self._starts) > 1:
            later = np.asarray(self._starts[1:], dtype=np.int64)
            hits = ops.greater_equal(ops.expand_dims(s, -1), later)
            index = ops.sum(ops.cast(hits, "int32"), axis=-1)
        else:
            index = ops.zeros(ops.shape(s), dtype="int32")
        states = np.asarray(self._states, dtype=bool)
        return index, ops.take(states, index)

    def is_boundary(self, step):
        """True at the first step of a phase that changes the mask state."""
        if _is_python_step(step):
            return _check_python_step(step) in self._boundaries
        s = _step_tensor(step)
        if not self._boundaries:
            return ops.zeros(ops.shape(s), dtype="bool")
        marks = np.asarray(self._boundaries, dtype=np.int64)
        return ops.any(ops.equal(ops.expand_dims(s, -1), marks), axis=-1)

    def target_sparsity(self, step):
        """``sparsity`` in compressed phases, 0.0 in decompressed ones."""
        _, sparse = self.phase(step)
        if _is_python_step(step):
            return float(self.sparsity) if sparse else 0.0
        return ops.where(sparse, np.float32(self.sparsity), np.float32(0.0))

    def __call__(self, step):
        return self.is_boundary(step), self.target_sparsity(step)


# --------------------------------------------------------------------------
# 5. Learning-rate schedules
# --------------------------------------------------------------------------


class _LRMixin:
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
                f"{_name(self, field)}={value!r} is not accepted: a learning "
                f"rate must be a finite number {'>= 0' if allow_zero else '> 0'}."
            )

    def _check_warmup(self, peak_field):
        self._check_lr("warmup_start_lr", allow_zero=True)
        if self.warmup_start_lr > getattr(self, peak_field):
            raise ValueError(
                f"{_name(self, 'warmup_start_lr')}={self.warmup_start_lr!r} is "
                f"above {peak_field}={getattr(self, peak_field)!r}; warm-up "
                "ramps up to the peak."
            )

    @property
    def warmup_steps(self) -> int:
        return self._steps["warmup"]

    def _with_warmup_py(self, s, peak, after):
        W = self.warmup_steps
        if s < W:
            # s / W first: a stretched run gives the same ratio, hence the same value
            return self.warmup_start_lr + (peak - self.warmup_start_lr) * (s / W)
        return after

    def _with_warmup_t(self, s, peak, after):
        W = self.warmup_steps
        if W == 0:  # static: fixed at construction, not a tensor branch
            return after
        ramp = ops.add(
            np.float32(self.warmup_start_lr),
            ops.multiply(
                np.float32(peak - self.warmup_start_lr),
                ops.divide(_f32(s), np.float32(W)),
            ),
        )
        return ops.where(ops.less(s, W), ramp, after)


@keras.saving.register_keras_serializable(package="tf_sparse")
@dataclasses.dataclass(frozen=True)
class StepDecayLR(_LRMixin, _Schedule, keras.optimizers.schedules.LearningRateSchedule):
    """Piecewise-constant LR: multiply by ``factor`` at each boundary.

    ``lr(step) = initial_lr * factor ** #{b in boundaries : step >= b}``
    (the decay applies from the boundary step on, like PyTorch's
    ``MultiStepLR`` stepped per epoch), preceded by an optional linear
    warm-up from ``warmup_start_lr`` at step 0 to ``initial_lr`` at step
    ``warmup``. The default boundaries are 30/60/80 of 90 epochs.

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
    boundaries: tuple = _steps_field((30 / 90, 60 / 90, 80 / 90))
    factor: float = 0.1
    warmup: Step = _step_field(0)
    warmup_start_lr: float = 0.0

    def _validate(self):
        self._check_lr("initial_lr")
        self._check_warmup("initial_lr")
        _check_unit_open(self, "factor", lo_open=True, hi_open=False,
                         accepted="the decay factor")
        b = self._steps["boundaries"]
        if any(x >= y for x, y in zip(b, b[1:])):
            raise ValueError(
                f"StepDecayLR.boundaries={self.boundaries!r} resolve to steps "
                f"{b}; they must be strictly increasing."
            )

    def __call__(self, step):
        b = self._steps["boundaries"]
        if _is_python_step(step):
            s = _check_python_step(step)
            decayed = self.initial_lr * self.factor ** bisect.bisect_right(b, s)
            return self._with_warmup_py(s, self.initial_lr, decayed)
        s = _step_tensor(step)
        if b:
            passed = ops.greater_equal(ops.expand_dims(s, -1), np.asarray(b, np.int64))
            count = ops.sum(_f32(passed), axis=-1)
        else:
            count = ops.zeros(ops.shape(s), dtype="float32")
        decayed = ops.multiply(
            np.float32(self.initial_lr), ops.power(np.float32(self.factor), count)
        )
        return self._with_warmup_t(s, self.initial_lr, decayed)


@keras.saving.register_keras_serializable(package="tf_sparse")
@dataclasses.dataclass(frozen=True)
class WarmupCosineLR(_LRMixin, _Schedule, keras.optimizers.schedules.LearningRateSchedule):
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
    warmup: Step = _step_field(0)
    warmup_start_lr: float = 0.0

    def _validate(self):
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
        if _is_python_step(step):
            s = _check_python_step(step)
            p = _progress_py(s, W, T)
            after = final + (peak - final) * 0.5 * (1.0 + math.cos(math.pi * p))
            return self._with_warmup_py(s, peak, after)
        s = _step_tensor(step)
        p = _progress_t(s, W, T)
        after = ops.add(
            np.float32(final),
            ops.multiply(np.float32(peak - final), CosineDecay._shape_t(p)),
        )
        return self._with_warmup_t(s, peak, after)


@keras.saving.register_keras_serializable(package="tf_sparse")
@dataclasses.dataclass(frozen=True)
class WarmupConstantLR(_LRMixin, _Schedule, keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``lr``, then constant ``lr``.

    Example:

        >>> lr = WarmupConstantLR(0.1, warmup=100)
        >>> lr(0), lr(50), lr(100), lr(10**6)
        (0.0, 0.05, 0.1, 0.1)
    """

    lr: float
    warmup: Step = _step_field(0)
    warmup_start_lr: float = 0.0

    def _validate(self):
        self._check_lr("lr")
        self._check_warmup("lr")

    def __call__(self, step):
        if _is_python_step(step):
            s = _check_python_step(step)
            return self._with_warmup_py(s, self.lr, float(self.lr))
        s = _step_tensor(step)
        return self._with_warmup_t(s, self.lr, ops.full(ops.shape(s), self.lr, "float32"))
