"""The one exact selection: "the k best of these n", ties to the lower index.

Every exact-count choice in tf_sparse goes through here: the drop and grow
sets of prune-and-grow updates, GMP and AC/DC magnitude masks, SNIP, the
masks `sparsify` draws, and lottery-ticket pruning. One order is used
everywhere: higher score first, and among equal scores the lower flat index
first (the order of a stable descending sort), so a selection holds exactly
`min(k, eligible count)` entries and the same inputs give the same set.

In graph, `select_top` / `select_bottom` take any int tensor k (computed in
the graph from a decaying rate and the current counts; `tf.math.top_k` with
a tensor k is refused by XLA and recompiles per value), work under
`jit_compile`, and return a flat boolean mask. Two implementations give the
same result bit for bit:

* `method="radix"` (default): radix select on the 32-bit order-preserving
  integer image of the float scores (`order_keys`): two 16-bit histogram
  passes find the k-th largest key, then (only when several entries equal
  it) a cumulative sum breaks ties by index. O(n) and no sort, which matters
  for the 25M-weight models.
* `method="sort"`: the textbook version, a stable argsort followed by a
  rank scatter (`rank < k`). O(n log n).

On the host, `numpy_select_top` / `numpy_select_bottom` are the NumPy twins
with the same order and tie rule (float32 scores get the keys of
`order_keys`; other dtypes are ranked as float64, so float64 scores keep
their full precision). Both orders put -0.0 just below +0.0 and a NaN with
a clear sign bit above +inf: deterministic, never an error.

Example:

    keep = select_top(scores, eligible=active, k=n_keep)      # bool tensor
    drop = select_bottom(tf.abs(w), eligible=active, k=n_drop)
    keep = numpy_select_top(np.abs(w), n_keep)                 # bool array
"""

import numpy as np
import tensorflow as tf

METHODS = ("radix", "sort")

_SIGN = -2147483648  # int32 with only the sign bit set


def order_keys(scores):
    """Maps float32 scores to int32 keys with the same order (in graph).

    Negative floats have their magnitude bits flipped so that a larger
    magnitude gives a smaller key; -0.0 sorts just below +0.0 and NaN above
    +inf (deterministic, never an error).
    """
    scores = tf.convert_to_tensor(scores)
    if scores.dtype != tf.float32:
        scores = tf.cast(scores, tf.float32)
    bits = tf.bitcast(scores, tf.int32)
    return tf.where(bits < 0, tf.bitwise.bitwise_xor(bits, 2147483647), bits)


def _check_method(method):
    if method not in METHODS:
        raise ValueError(
            f"Unknown selection method {method!r}; accepted: "
            f"{', '.join(METHODS)}.")


def _select_top_keys_sort(keys, eligible, k):
    n = tf.size(keys)
    # Ineligible entries sort after every eligible one.
    wide = tf.where(eligible, tf.cast(keys, tf.int64),
                    tf.constant(-(2 ** 40), tf.int64))
    order = tf.argsort(wide, direction="DESCENDING", stable=True)
    rank = tf.scatter_nd(order[:, None], tf.range(n), [n])
    return tf.logical_and(eligible, rank < k)


def _histogram(digits, size):
    """Counts of each value in [0, size) of `digits`; values == size are
    ignored. A constant size keeps it compilable by XLA (tf.math.bincount
    computes its size at run time); ~25x faster than unsorted_segment_sum
    on CPU."""
    counts = tf.raw_ops.DenseBincount(
        input=digits, size=size + 1, weights=tf.constant([], tf.int32),
        binary_output=False)
    return counts[:size]


def _digit_threshold(digits, need, size):
    """For digits of live candidates (dead ones == size): the largest digit
    d with count(digit >= d) >= need, and count(digit > d)."""
    counts = _histogram(digits, size)
    at_least = tf.cumsum(counts, reverse=True)
    d = tf.reduce_max(tf.where(at_least >= need, tf.range(size), 0))
    above = tf.reduce_sum(tf.where(tf.range(size) > d, counts, 0))
    return d, above


def _select_top_keys_radix(keys, eligible, k):
    # Unsigned order (sign bit flipped), read as two 16-bit digits.
    ukeys = tf.bitwise.bitwise_xor(keys, tf.constant(_SIGN, tf.int32))
    high = tf.bitwise.bitwise_and(tf.bitwise.right_shift(ukeys, 16), 65535)
    low = tf.bitwise.bitwise_and(ukeys, 65535)
    need = tf.maximum(k, 1)
    d_high, above_high = _digit_threshold(
        tf.where(eligible, high, 65536), need, 65536)
    in_bucket = tf.logical_and(eligible, tf.equal(high, d_high))
    need = need - above_high
    d_low, above_low = _digit_threshold(
        tf.where(in_bucket, low, 65536), need, 65536)
    need = need - above_low
    # The k-th largest key; everything above it is taken, and `need` of the
    # entries equal to it, lowest index first.
    threshold = tf.bitwise.bitwise_xor(
        tf.bitwise.bitwise_or(tf.bitwise.left_shift(d_high, 16), d_low),
        tf.constant(_SIGN, tf.int32))
    above_mask = tf.logical_and(eligible, keys > threshold)
    equal = tf.logical_and(in_bucket, tf.equal(low, d_low))
    n_equal = tf.reduce_sum(tf.cast(equal, tf.int32))
    take_equal = tf.cond(
        tf.equal(n_equal, need), lambda: equal,
        lambda: tf.logical_and(
            equal, tf.cumsum(tf.cast(equal, tf.int32)) <= need))
    chosen = tf.logical_or(above_mask, take_equal)
    return tf.logical_and(chosen, k > 0)


def _select_top_keys(keys, eligible, k, method):
    available = tf.reduce_sum(tf.cast(eligible, tf.int32))
    k = tf.clip_by_value(tf.cast(k, tf.int32), 0, available)
    if method == "sort":
        return _select_top_keys_sort(keys, eligible, k)
    return _select_top_keys_radix(keys, eligible, k)


# A pure function of its inputs (no variables), so it can always be compiled
# on its own, inside an uncompiled train step too: XLA fuses the dozen
# elementwise passes into a few loops (2-5x faster on CPU here). k is an
# input tensor, so one compilation per (shape, method) serves every update.
_select_top_keys_xla = tf.function(_select_top_keys, jit_compile=True,
                                   reduce_retracing=True)


def select_top_keys(keys, eligible, k, method="radix", jit=True):
    """Bool mask of the `k` largest int32 `keys` among `eligible` entries.

    Args:
      keys: 1-D int32 tensor (see `order_keys`).
      eligible: 1-D bool tensor of the same length.
      k: int32 scalar tensor or int; clipped to [0, eligible count].
      method: "radix" or "sort" (same result).
      jit: compile the selection with XLA (same result, faster on CPU).
    """
    _check_method(method)
    keys = tf.convert_to_tensor(keys, tf.int32)
    eligible = tf.convert_to_tensor(eligible, tf.bool)
    k = tf.convert_to_tensor(k)
    if jit:
        return _select_top_keys_xla(keys, eligible, tf.cast(k, tf.int32),
                                    method)
    return _select_top_keys(keys, eligible, k, method)


def select_top(scores, eligible, k, method="radix", jit=True):
    """The `k` highest `scores` among `eligible` (flat), ties to lower index."""
    return select_top_keys(order_keys(tf.reshape(scores, [-1])),
                           tf.reshape(eligible, [-1]), k, method, jit)


def select_bottom(scores, eligible, k, method="radix", jit=True):
    """The `k` lowest `scores` among `eligible` (flat), ties to lower index."""
    keys = tf.bitwise.invert(order_keys(tf.reshape(scores, [-1])))
    return select_top_keys(keys, tf.reshape(eligible, [-1]), k, method, jit)


def numpy_order_keys(scores):
    """int64 keys with the order of `scores` (NumPy, flat).

    float32 scores get the keys of `order_keys`; any other dtype is ranked
    as float64 (exactly, for float16 and float64 and for integers up to
    2**53).
    """
    scores = np.asarray(scores).reshape(-1)
    if scores.dtype == np.float32:
        bits = scores.view(np.int32).astype(np.int64)
        return np.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    bits = scores.astype(np.float64).view(np.int64)
    return np.where(bits < 0, bits ^ 0x7FFFFFFFFFFFFFFF, bits)


def _numpy_select_top_keys(keys, k, eligible):
    if eligible is None:
        index, candidates = None, keys
    else:
        index = np.flatnonzero(np.asarray(eligible).reshape(-1))
        candidates = keys[index]
    k = min(max(int(k), 0), candidates.size)
    take = np.zeros(candidates.size, dtype=bool)
    if k > 0:
        at = candidates.size - k
        kth = np.partition(candidates, at)[at]      # the k-th largest key
        take = candidates > kth
        ties = np.flatnonzero(candidates == kth)
        take[ties[:k - np.count_nonzero(take)]] = True
    if index is None:
        return take
    chosen = np.zeros(keys.size, dtype=bool)
    chosen[index] = take
    return chosen


def numpy_select_top(scores, k, eligible=None):
    """The `k` highest `scores` (flat bool array), ties to lower index.

    The NumPy twin of `select_top`: `eligible` (flat bool, default all)
    limits the candidates and `k` is clipped to their count. Linear time
    (a partition around the k-th largest key).

    >>> numpy_select_top(np.array([0.5, 0.9, 0.5, 0.1]), 2)
    array([ True,  True, False, False])
    """
    return _numpy_select_top_keys(numpy_order_keys(scores), k, eligible)


def numpy_select_bottom(scores, k, eligible=None):
    """The `k` lowest `scores` (flat bool array), ties to lower index."""
    return _numpy_select_top_keys(~numpy_order_keys(scores), k, eligible)
