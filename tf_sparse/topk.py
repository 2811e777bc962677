"""The one exact selection: "the k best of these n", ties to the lower index.

Every exact-count choice in tf_sparse goes through here: the drop and grow
sets of prune-and-grow updates, GMP and AC/DC magnitude masks, SNIP, the
masks `sparsify` draws, and lottery-ticket pruning. One order is used
everywhere: higher score first, and among equal scores the lower flat index
first (the order of a stable descending sort), so a selection holds exactly
`min(k, eligible count)` entries and the same inputs give the same set.

`select_top` / `select_bottom` are written with `keras.ops` only, so they
run on the TensorFlow, JAX and PyTorch backends and give the same boolean
mask bit for bit on each (a tensor of the backend: a `tf.Tensor`, a JAX
array, a torch tensor). They take any int tensor k (computed in the graph
from a decaying rate and the current counts; `tf.math.top_k` with a tensor
k is refused by XLA and recompiles per value); under TensorFlow they work
inside `tf.function`, `tf.cond` and `jit_compile`. Two implementations give
the same result bit for bit:

* `method="radix"` (default): radix select on the 32-bit order-preserving
  integer image of the float scores (`order_keys`): two 16-bit histogram
  passes find the k-th largest key, then (only when several entries equal
  it) a cumulative sum breaks ties by index. O(n) and no sort, which matters
  for the 25M-weight models.
* `method="sort"`: the textbook version, a stable argsort (descending
  keys, ties in index order: `keras.ops.argsort` is stable on the three
  backends), the first k eligible entries of that order taken with a
  cumulative sum and scattered back. O(n log n).

The histogram is the one piece chosen per backend: TensorFlow's
constant-size `DenseBincount` kernel (which XLA compiles;
`keras.ops.bincount` sizes its output at run time there), a
`keras.ops.segment_sum` with a constant number of bins on JAX (its
`bincount` needs concrete values, so `jax.jit` could not compile it), and
`keras.ops.bincount` on PyTorch. `jit=True` compiles the whole selection
with XLA on TensorFlow (`tf.function(jit_compile=True)`) and JAX
(`jax.jit`; faster than op by op, `benchmarks/results/backend_selection.md`);
PyTorch runs it op by op.

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

import keras
import numpy as np

from tf_sparse import backend

ops = keras.ops

METHODS = ("radix", "sort")

_SIGN = -2147483648  # int32 with only the sign bit set
_MAGNITUDE = 2147483647  # int32 with every bit but the sign bit set


def _int32(value):
    return ops.convert_to_tensor(value, "int32")


def _bitcast_int32(scores):
    """The bits of float32 `scores` as int32, any shape. On TensorFlow
    `tf.bitcast` itself: `keras.ops.view` checks the last dimension in
    Python, which fails in graph when it is unknown (a `boolean_mask`
    output, as in sparse-compute RigL's grow candidates)."""
    if backend.is_tensorflow():
        import tensorflow as tf  # the TensorFlow backend only

        return tf.bitcast(scores, tf.int32)
    return ops.view(scores, "int32")


def order_keys(scores):
    """Maps float32 scores to int32 keys with the same order (in graph).

    Negative floats have their magnitude bits flipped so that a larger
    magnitude gives a smaller key; -0.0 sorts just below +0.0 and NaN above
    +inf (deterministic, never an error). Other float dtypes are cast to
    float32 first.

    >>> order_keys(np.array([-1.0, -0.0, 0.0, 1.0], np.float32))
    ... # int32 [-1065353217, -1, 0, 1065353216]: the order of the floats
    """
    scores = ops.convert_to_tensor(scores)
    if keras.backend.standardize_dtype(scores.dtype) != "float32":
        scores = ops.cast(scores, "float32")
    bits = _bitcast_int32(scores)
    return ops.where(bits < 0, ops.bitwise_xor(bits, _int32(_MAGNITUDE)),
                     bits)


def _check_method(method):
    if method not in METHODS:
        raise ValueError(
            f"Unknown selection method {method!r}; accepted: "
            f"{', '.join(METHODS)}.")


def _select_top_keys_sort(keys, eligible, k):
    # Descending keys, equal keys in index order: an ascending stable sort
    # of the inverted keys (~ is an order-reversing bijection of int32).
    order = ops.argsort(ops.bitwise_invert(keys))
    in_order = ops.take(ops.cast(eligible, "int32"), order)
    taken = ops.logical_and(in_order > 0,
                            ops.cumsum(in_order, dtype="int32") <= k)
    chosen = ops.scatter(ops.expand_dims(order, -1),
                         ops.cast(taken, "int32"), ops.shape(keys))
    return chosen > 0


def _tf_histogram(digits, size):
    """TensorFlow's constant-size `DenseBincount` (compilable by XLA, ~25x
    faster than unsorted_segment_sum on CPU)."""
    import tensorflow as tf  # the TensorFlow backend only

    return tf.raw_ops.DenseBincount(
        input=digits, size=size + 1, weights=tf.constant([], tf.int32),
        binary_output=False)


def _histogram(digits, size):
    """Counts of each value in [0, size) of `digits` (int32, >= 0); values
    == size are ignored."""
    if backend.is_tensorflow():
        counts = _tf_histogram(digits, size)
    elif backend.name() == "jax":
        # A constant number of bins, so jax.jit can compile it (its
        # bincount needs concrete values).
        counts = ops.segment_sum(ops.ones_like(digits), digits,
                                 num_segments=size + 1)
    else:
        counts = ops.cast(ops.bincount(digits, minlength=size + 1), "int32")
    return counts[:size]


def _digit_threshold(digits, need, size):
    """For digits of live candidates (dead ones == size): the largest digit
    d with count(digit >= d) >= need, and count(digit > d)."""
    counts = _histogram(digits, size)
    at_least = ops.flip(ops.cumsum(ops.flip(counts, 0), dtype="int32"), 0)
    digit = ops.arange(size, dtype="int32")
    zero = _int32(0)
    d = ops.max(ops.where(at_least >= need, digit, zero))
    above = ops.sum(ops.where(digit > d, counts, zero))
    return d, ops.cast(above, "int32")


def _first_of(candidates, need):
    """The first `need` of the `candidates` (bool), in index order."""
    as_int = ops.cast(candidates, "int32")

    def ranked():
        return ops.logical_and(candidates,
                               ops.cumsum(as_int, dtype="int32") <= need)

    if backend.is_tensorflow():
        # In graph the cumulative sum runs only when some of the entries
        # tie at the threshold (a `tf.cond`; same result either way). JAX's
        # eager `lax.cond` compiles its branches on every call instead.
        n = ops.cast(ops.sum(as_int), "int32")
        return ops.cond(ops.equal(n, need), lambda: candidates, ranked)
    return ranked()


def _select_top_keys_radix(keys, eligible, k):
    # Unsigned order (sign bit flipped), read as two 16-bit digits.
    sign, low_bits = _int32(_SIGN), _int32(65535)
    ukeys = ops.bitwise_xor(keys, sign)
    high = ops.bitwise_and(ops.right_shift(ukeys, _int32(16)), low_bits)
    low = ops.bitwise_and(ukeys, low_bits)
    dead = _int32(65536)
    need = ops.maximum(k, _int32(1))
    d_high, above_high = _digit_threshold(
        ops.where(eligible, high, dead), need, 65536)
    in_bucket = ops.logical_and(eligible, ops.equal(high, d_high))
    need = need - above_high
    d_low, above_low = _digit_threshold(
        ops.where(in_bucket, low, dead), need, 65536)
    need = need - above_low
    # The k-th largest key; everything above it is taken, and `need` of the
    # entries equal to it, lowest index first.
    threshold = ops.bitwise_xor(
        ops.bitwise_or(ops.left_shift(d_high, _int32(16)), d_low), sign)
    above_mask = ops.logical_and(eligible, keys > threshold)
    equal = ops.logical_and(in_bucket, ops.equal(low, d_low))
    chosen = ops.logical_or(above_mask, _first_of(equal, need))
    return ops.logical_and(chosen, k > 0)


def _select_top_keys(keys, eligible, k, method):
    available = ops.cast(ops.sum(ops.cast(eligible, "int32")), "int32")
    k = ops.minimum(ops.maximum(ops.cast(k, "int32"), _int32(0)), available)
    if method == "sort":
        return _select_top_keys_sort(keys, eligible, k)
    return _select_top_keys_radix(keys, eligible, k)


_compiled = {}


def _compiled_selection():
    """`_select_top_keys` compiled with XLA for this backend, or None where
    Keras's backend has no compiler here (PyTorch).

    A pure function of its inputs (no variables), so it can always be
    compiled on its own, inside an uncompiled train step too: XLA fuses the
    dozen elementwise passes into a few loops (2-5x faster on CPU here on
    TensorFlow). k is an input tensor and `method` a static argument, so
    one compilation per (shape, method) serves every update. Built once
    per backend: `tf.function(jit_compile=True)` on TensorFlow, `jax.jit`
    on JAX.
    """
    name = backend.name()
    if name not in _compiled:
        if name == "tensorflow":
            import tensorflow as tf  # the TensorFlow backend only

            _compiled[name] = tf.function(_select_top_keys, jit_compile=True,
                                          reduce_retracing=True)
        elif name == "jax":
            import jax  # the JAX backend only

            _compiled[name] = jax.jit(_select_top_keys,
                                      static_argnames=("method",))
        else:
            _compiled[name] = None
    return _compiled[name]


def select_top_keys(keys, eligible, k, method="radix", jit=True):
    """Bool mask of the `k` largest int32 `keys` among `eligible` entries.

    Args:
      keys: 1-D int32 tensor (see `order_keys`).
      eligible: 1-D bool tensor of the same length.
      k: int scalar tensor or int; clipped to [0, eligible count].
      method: "radix" or "sort" (same result).
      jit: on the TensorFlow and JAX backends, compile the selection with
        XLA (same result, faster on CPU); ignored on PyTorch.

    >>> select_top_keys(np.array([5, 7, 5], np.int32), [True] * 3, 2)
    ... # bool [True, True, False]: the 7 and the first 5
    """
    _check_method(method)
    keys = ops.convert_to_tensor(keys, "int32")
    eligible = ops.convert_to_tensor(eligible, "bool")
    k = ops.cast(k, "int32")
    compiled = _compiled_selection() if jit else None
    if compiled is not None:
        return compiled(keys, eligible, k, method)
    return _select_top_keys(keys, eligible, k, method)


def select_top(scores, eligible, k, method="radix", jit=True):
    """The `k` highest `scores` among `eligible` (flat), ties to lower index.

    >>> select_top(np.array([0.5, 0.9, 0.5, 0.1], np.float32),
    ...            [True, True, True, True], 2)      # [T, T, F, F]
    """
    return select_top_keys(order_keys(ops.reshape(scores, [-1])),
                           ops.reshape(eligible, [-1]), k, method, jit)


def select_bottom(scores, eligible, k, method="radix", jit=True):
    """The `k` lowest `scores` among `eligible` (flat), ties to lower index."""
    keys = ops.bitwise_invert(order_keys(ops.reshape(scores, [-1])))
    return select_top_keys(keys, ops.reshape(eligible, [-1]), k, method, jit)


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
