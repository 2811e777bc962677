"""Count math that stays float64 on every Keras backend.

Per-layer counts of an update (drop and grow counts, redistribution
shares) are float64, as in the references' Python floats: in float32,
`ceil(0.14 * 50)` (7.000000000000001 in float64, so 8) comes out 7, and
the largest-remainder rounding can be one weight off too. Keras's JAX and PyTorch backends compute `keras.ops.floor`, `ceil`,
`minimum` and `maximum` of float64 tensors in float32 (their dtype policy
maps 64-bit results to 32-bit outside TensorFlow), so the count math uses
these instead: the same results, exactly, from operations that keep
float64 there (`abs`, `%` of non-negative values, `where`, comparisons).
Arguments are finite.

Example:

    drop = float64.ceil(rate * n)          # float64 in, float64 out
"""

import keras


def _split(x):
    """(|x|'s integer part, whether |x| has a fractional part): `|x| mod 1`
    of a non-negative value is exact, and so is `|x| - (|x| mod 1)`."""
    magnitude = keras.ops.abs(x)
    fraction = magnitude % 1.0
    return magnitude - fraction, keras.ops.cast(fraction > 0, x.dtype)


def floor(x):
    """`floor(x)` of a finite float tensor, in its dtype."""
    whole, frac = _split(x)
    return keras.ops.where(x >= 0, whole, -(whole + frac))


def ceil(x):
    """`ceil(x)` of a finite float tensor, in its dtype."""
    whole, frac = _split(x)
    return keras.ops.where(x >= 0, whole + frac, -whole)


def minimum(a, b):
    """Elementwise `min(a, b)`, in the tensors' dtype."""
    return keras.ops.where(a < b, a, b)


def maximum(a, b):
    """Elementwise `max(a, b)`, in the tensors' dtype."""
    return keras.ops.where(a > b, a, b)
