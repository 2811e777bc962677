"""Argument checks shared by the algorithms.

Each raises a ValueError that names the owner, the argument, the value given
and what is accepted.

Example:

    growth = check_choice("SparseMomentum", "growth", "random",
                          ("momentum", "random", "gradient"))
    zeta = check_rate("SET", "drop_fraction", 0.3)        # 0.3
    check_sparsity(0.9, "GMP final_sparsity")
"""

import math
import numbers


def check_choice(owner, what, value, accepted):
    """`value` if it is one of `accepted`."""
    if value not in accepted:
        raise ValueError(
            f"{owner}: unknown {what} {value!r}; accepted: "
            f"{', '.join(map(str, accepted))}.")
    return value


def check_rate(owner, what, value):
    """A rate in (0, 1), as a float."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(float(value))
            or not 0.0 < float(value) < 1.0):
        raise ValueError(
            f"{owner}: {what}={value!r} is not accepted: it must be a number "
            "in (0, 1) (the fraction of each layer's active weights replaced "
            "per update).")
    return float(value)


def check_sparsity(value, what):
    """Raises unless `value` is a sparsity, a number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            0.0 <= float(value) < 1.0):
        raise ValueError(
            f"{what}={value!r} is not accepted: a sparsity must be a number in "
            "[0, 1).")
