"""The schedule protocol: a frozen dataclass you call with the step.

A schedule

* is a frozen dataclass built with ``total_steps=...`` (a keyword-only
  field, required as soon as any step value is a fraction of training);
* declares its step fields (positions and lengths, see
  `tf_sparse.schedules.steps`) with `step_field` / `steps_field`, and a
  window with `begin_field`, `end_field` and `every_field` (a `Windowed`
  schedule); they are resolved to int steps once, in ``__post_init__``;
* checks its other arguments in `Schedule.validate`, and its window and
  cadence with the one shared `Windowed.check_window` (bad input raises
  ``ValueError`` naming the value and what is accepted);
* is called with the step, a Python int or an integer tensor (see
  `tf_sparse.schedules.evaluation`), and returns its value there.

What ``step`` means.
    ``step`` is the number of optimizer steps already completed (the value
    of ``optimizer.iterations`` before the update about to run, or after the
    last one). The value of a schedule at ``step`` is the value that holds
    after ``step`` updates; a mask update scheduled at ``step`` happens
    between update ``step`` and update ``step + 1``. Training of
    ``total_steps`` steps therefore evaluates ``0 .. total_steps``. (tfmot
    differs by one: it calls its schedule with ``iterations + 1``; to
    reproduce a tfmot run's timing exactly, call our tfmot-compatible
    schedules with ``iterations + 1`` too.)

Stretching.
    Because positions are fractions of ``total_steps``, a longer run is the
    same schedule with a larger ``total_steps``; `stretch` also multiplies
    every absolute (int) step value.

Example:

    >>> from tf_sparse.schedules import PolynomialSparsity
    >>> gmp = PolynomialSparsity(0.0, 0.8, begin=0.1, end=0.5, frequency=10,
    ...                          total_steps=1000)
    >>> gmp.resolved_steps()
    {'begin': 100, 'end': 500, 'frequency': 10}
    >>> stretch(gmp, 2)(600) == gmp(300)
    True
"""

from __future__ import annotations

import dataclasses
import fractions
import math
import numbers
from typing import Any

from tf_sparse.schedules.steps import check_total_steps
from tf_sparse.schedules.steps import exact_fraction
from tf_sparse.schedules.steps import is_integer
from tf_sparse.schedules.steps import resolve_step
from tf_sparse.schedules.steps import stretch_step

# --------------------------------------------------------------------------
# Step fields
# --------------------------------------------------------------------------


def step_field(default=dataclasses.MISSING):
    """A dataclass field holding one `Step` (a position or a length)."""
    return dataclasses.field(default=default, metadata={"step": "one"})


def steps_field(default):
    """A dataclass field holding a tuple of `Step` values."""
    return dataclasses.field(default=default, metadata={"step": "many"})


def begin_field(default=dataclasses.MISSING):
    """The first step of a `Windowed` schedule's window."""
    return step_field(default)


def end_field(default=dataclasses.MISSING, *, strict=False, never=False):
    """The last step of a `Windowed` schedule's window.

    ``strict``: the end must come after ``begin`` (schedules that ramp over
    the window divide by ``end - begin``); otherwise ``end == begin`` is
    allowed. ``never``: ``-1`` means "no end" (tfmot's convention).
    """
    return dataclasses.field(default=default, metadata={
        "step": "one", "window": "end", "strict": strict, "never": never})


def every_field(default=dataclasses.MISSING):
    """The spacing of a `Windowed` schedule's events: >= 1 step.

    A spacing may exceed ``total_steps`` (then only ``begin`` is an event).
    """
    return dataclasses.field(default=default, metadata={
        "step": "one", "window": "every", "period": True})


# --------------------------------------------------------------------------
# Validation helpers (error messages name the schedule and the field)
# --------------------------------------------------------------------------


def field_label(schedule, field: str) -> str:
    """``"ClassName.field"``, how error messages name a field."""
    return f"{type(schedule).__name__}.{field}"


def check_in_interval(schedule, field, *, lo_open=True, hi_open=True, lo=0.0,
                      hi=1.0, accepted=None):
    """Raises ``ValueError`` unless the field is a finite number in the interval."""
    value = getattr(schedule, field)
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        v = float(value)
        ok = math.isfinite(v) and (v > lo if lo_open else v >= lo) and (
            v < hi if hi_open else v <= hi
        )
    if not ok:
        interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise ValueError(
            f"{field_label(schedule, field)}={value!r} is not accepted: "
            f"{accepted or 'it'} must be in {interval}."
        )


def is_positive_number(value) -> bool:
    """A finite real number > 0 (not a bool)."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(float(value)) and value > 0)


def check_at_least_one_step(schedule, field):
    """Raises ``ValueError`` unless the step field resolved to >= 1 step."""
    steps = schedule.resolved_step(field)
    if steps < 1:
        raise ValueError(
            f"{field_label(schedule, field)}={getattr(schedule, field)!r} "
            f"resolves to {steps} steps; it must be >= 1 step (a positive "
            f"int, or a fraction of total_steps={schedule.total_steps} that "
            "rounds to at least 1)."
        )


# --------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Base: a frozen dataclass whose step fields are resolved on creation.

    Subclasses declare their step fields with `step_field` (and friends),
    check their arguments in `validate`, and compute their value in
    ``__call__``. ``resolved_step(name)`` is a step field as an int step.
    """

    total_steps: int | None = dataclasses.field(default=None, kw_only=True)

    def __post_init__(self):
        total = check_total_steps(self.total_steps,
                                  field_label(self, "total_steps"))
        steps = {}
        for f in dataclasses.fields(self):
            kind = f.metadata.get("step")
            value = getattr(self, f.name)
            what = field_label(self, f.name)
            if kind == "one":
                if f.metadata.get("never") and is_integer(value) and value == -1:
                    steps[f.name] = -1
                else:
                    steps[f.name] = resolve_step(
                        value, total, what=what,
                        period=f.metadata.get("period", False))
            elif kind == "many":
                if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                    raise TypeError(
                        f"{what}={value!r} must be a sequence of step values."
                    )
                value = tuple(value)
                object.__setattr__(self, f.name, value)
                steps[f.name] = tuple(
                    resolve_step(v, total, what=f"{what}[{i}]")
                    for i, v in enumerate(value)
                )
        object.__setattr__(self, "_steps", steps)
        self.validate()

    def validate(self):
        """Checks the arguments once their step fields are resolved."""

    def resolved_step(self, name: str):
        """The step field ``name`` as an int step (a tuple for many)."""
        return self._steps[name]

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


class Windowed(Schedule):
    """A schedule that acts in a window ``[begin, end]`` of training.

    Subclasses declare fields named ``begin`` and ``end`` with
    `begin_field` / `end_field` and, if events recur, a cadence with
    `every_field`, in whatever positional order the family needs, and call
    `check_window` from `validate`.
    """

    @property
    def begin_step(self) -> int:
        return self.resolved_step("begin")

    @property
    def end_step(self) -> int:
        return self.resolved_step("end")

    def check_window(self):
        """Checks the window and cadence fields, in declaration order.

        A cadence must be >= 1 step; the window must not end before it
        begins (nor at its start, for an `end_field` declared ``strict``);
        an end of ``-1`` declared ``never`` has no window to check.
        """
        for f in dataclasses.fields(self):
            role = f.metadata.get("window")
            if role == "every":
                check_at_least_one_step(self, f.name)
            elif role == "end":
                b, e = self.begin_step, self.end_step
                if f.metadata["never"] and e == -1:
                    continue
                strict = f.metadata["strict"]
                if e < b or (strict and e == b):
                    raise ValueError(
                        f"{type(self).__name__}: the window ends before it "
                        f"begins: begin={self.begin!r} (step {b}) and "
                        f"end={self.end!r} (step {e}); need begin "
                        f"{'<' if strict else '<='} end."
                    )


def stretch(schedule: Schedule, multiplier) -> Schedule:
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

        >>> from tf_sparse.schedules import PolynomialSparsity
        >>> g = PolynomialSparsity(0.0, 0.8, begin=100, end=0.5,
        ...                        frequency=10, total_steps=1000)
        >>> g2 = stretch(g, 2)
        >>> (g2.begin, g2.frequency, g2.total_steps, g2.end)
        (200, 20, 2000, 0.5)
        >>> g2(700) == g(350)
        True
    """
    if not is_positive_number(multiplier):
        raise ValueError(
            f"multiplier={multiplier!r} is not accepted: it must be a finite "
            "number > 0."
        )
    if not isinstance(schedule, Schedule):
        raise TypeError(
            f"stretch() takes a tf_sparse.schedules schedule, got "
            f"{type(schedule).__name__}."
        )
    if is_integer(multiplier):
        m = fractions.Fraction(multiplier)
    else:
        m = exact_fraction(multiplier)
    changes = {}
    for f in dataclasses.fields(schedule):
        value = getattr(schedule, f.name)
        if f.name == "total_steps":
            changes[f.name] = None if value is None else stretch_step(value, m)
        elif f.metadata.get("step") == "one":
            changes[f.name] = stretch_step(value, m)
        elif f.metadata.get("step") == "many":
            changes[f.name] = tuple(stretch_step(v, m) for v in value)
    return dataclasses.replace(schedule, **changes)
