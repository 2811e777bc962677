"""Step values: the one way to say where in training, or for how long.

Every schedule and cadence works in optimizer steps. A position or length
is given as

* an ``int``: an absolute number of optimizer steps, or
* a ``float`` in ``[0, 1]``: a fraction of ``total_steps``.

``0`` and ``1`` are ints (steps 0 and 1); write ``0.0`` / ``1.0`` for
"start" / "end of training". A float outside ``[0, 1]`` is an error, so
``end=2.0`` never silently means "step 2". `resolve_step` turns either form
into an int step.

A fraction resolves to ``floor(fraction * total_steps + 0.5)``: round half
UP, not Python's round-half-to-even (``0.5`` of 5 steps is step 3, ``0.5``
of 7 is 4). The float is read as the shortest decimal that prints the same
(its ``repr``) and the product is computed exactly, so ``0.145`` of 100
steps is exactly 14.5 -> step 15 even though the binary double ``0.145`` is
slightly below 0.145.

Configs may also count in epochs: `resolve_point` reads ``500``, ``"500it"``
(steps), ``"2ep"`` (epochs) and ``0.05`` / ``"0.05"`` (fractions) and is
the single place where epochs become steps.

Example:

    >>> resolve_step(0.5, 7), resolve_point("2ep", 10_000, 390)
    (4, 780)
"""

from __future__ import annotations

import fractions
import math
import numbers
import re
from typing import Union

#: A position or duration in training: an int step count or a float fraction.
Step = Union[int, float]

_HALF = fractions.Fraction(1, 2)

# A number with an optional unit: "500", "500it", "0.5ep", "0.05", "1e-2".
_POINT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)(it|ep)?\s*$")


def is_integer(value) -> bool:
    """True for a Python or NumPy int (a bool is not an int here)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def exact_fraction(value) -> fractions.Fraction:
    """The exact rational a user meant by a float (its shortest repr)."""
    if isinstance(value, fractions.Fraction):
        return value
    return fractions.Fraction(repr(float(value)))


def check_total_steps(total_steps, what="total_steps"):
    """``total_steps`` as an int >= 1, or None; ``what`` names it in errors."""
    if total_steps is None:
        return None
    if not is_integer(total_steps) or total_steps < 1:
        raise ValueError(
            f"{what}={total_steps!r} is not accepted: total_steps must be an "
            "int >= 1 (the number of optimizer steps in the whole run)."
        )
    return int(total_steps)


def resolve_step(value: Step, total_steps: int | None = None, *,
                 what: str = "step value", period: bool = False) -> int:
    """Turns an int step count or a float fraction of training into a step.

    Ints pass through (they must be ``>= 0`` and, if ``total_steps`` is
    given, ``<= total_steps``). A float must lie in ``[0, 1]`` and resolves to
    ``floor(value * total_steps + 0.5)``, computed exactly on the decimal the
    float prints as: halves round UP (never to even).

    ``what`` names the value in error messages; ``period=True`` marks a
    spacing between events (a frequency), which may exceed ``total_steps``.

    Example:

        >>> resolve_step(0.5, 5), resolve_step(0.5, 7), resolve_step(250, 1000)
        (3, 4, 250)
        >>> resolve_step(30 / 90, 9000)
        3000
    """
    total_steps = check_total_steps(total_steps)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{what}={value!r} is not a step value: give an int (absolute "
            "step count) or a float in [0, 1] (fraction of total_steps)."
        )
    if is_integer(value):
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
    return math.floor(exact_fraction(value) * total_steps + _HALF)


def resolve_point(value, total_steps: int | None, steps_per_epoch: int | None,
                  what: str = "step") -> int:
    """Turns a config's point in training into an int step.

    * an int or an int-like string (``500``, ``"500"``, ``"500it"``):
      optimizer steps;
    * ``"<n>ep"`` (``"2ep"``, ``"0.5ep"``): ``n * steps_per_epoch``, rounded
      half up (exactly);
    * a float or a string with a dot (``0.05``, ``"0.05"``): a fraction of
      ``total_steps``, resolved by `resolve_step`.

    Anything else (``"2 epochs"``, ``-1``, ``1.5``, ``True``) raises
    ``ValueError`` naming ``what`` and the value.

    Example:

        >>> resolve_point("500it", 10_000, 75), resolve_point("0.5ep", 10_000, 75)
        (500, 38)
        >>> resolve_point(0.05, 10_000, 75), resolve_point("0.05", 10_000, 75)
        (500, 500)
    """
    if isinstance(value, bool):
        raise ValueError(f"{what}={value!r} is not a point in training.")
    if isinstance(value, numbers.Integral):
        step = int(value)
    elif isinstance(value, numbers.Real):
        step = _resolve_fraction(value, value, total_steps, what)
    elif isinstance(value, str):
        match = _POINT.match(value)
        if not match:
            raise ValueError(
                f"{what}={value!r} is not understood; write steps ('500' or "
                "'500it'), epochs ('2ep') or a fraction of training ('0.05').")
        number, unit = match.groups()
        whole = "." not in number and "e" not in number.lower()
        if unit == "ep":
            if steps_per_epoch is None:
                raise ValueError(
                    f"{what}={value!r} counts epochs, so steps_per_epoch must "
                    "be given (got steps_per_epoch=None).")
            step = math.floor(fractions.Fraction(number) * steps_per_epoch
                              + _HALF)
        elif unit == "it" or whole:
            if not whole:
                raise ValueError(f"{what}={value!r}: a step count must be "
                                 "a whole number.")
            step = int(number)
        else:
            step = _resolve_fraction(value, float(number), total_steps, what)
    else:
        raise ValueError(f"{what}={value!r} is not a point in training.")
    if step < 0:
        raise ValueError(f"{what}={value!r} is negative.")
    return step


def _resolve_fraction(value, fraction, total_steps, what):
    try:
        return resolve_step(float(fraction), total_steps)
    except ValueError as e:
        raise ValueError(f"{what}={value!r}: {e}") from None


def stretch_step(value: Step, multiplier: fractions.Fraction) -> Step:
    """One step value for a run ``multiplier`` times as long.

    An int step count is multiplied and rounded half up; a fraction is kept
    (it follows the new ``total_steps``); ``-1`` ("never") stays ``-1``:
    3 steps stretched by 3/2 are 5 (4.5 rounded up), 0.5 stays 0.5.
    """
    if is_integer(value):
        if value == -1:
            return -1
        return math.floor(value * multiplier + _HALF)
    return value
