"""Which channels of a masked model hold a constant, and what it is.

A channel whose kernel slice is masked out does not output zero: it
outputs its bias, and a BatchNormalization or an activation after it turns
that into another number. Such a channel is the same at every position and
for every input, so the layers that read it see a constant. Removing the
channel is exact when that constant is 0, or when the reader can add it to
its own bias: a Dense layer always can, a convolution only if every output
position sees the whole kernel (padding "valid", or a 1x1 kernel); with
"same" padding the border positions see part of the kernel, so the
constant's effect differs there and cannot be a bias.

`constants(graph, weights)` propagates these values through a
`ChannelGraph` with the masked weights: for every tensor, one float64 per
channel, NaN where the channel varies with the input (or with the
position). `EdgeEffect` then says, for one layer reading a tensor, which
input channels can be removed exactly and how its bias changes.

Example:

    graph = channel_graph.ChannelGraph(model)
    weights = {(name, "kernel"): array, ...}     # masked values
    values = constants(graph, weights)
    values[("conv1", 0, 0)]       # [0.0, nan, 0.31, ...]
"""

import keras
import numpy as np

MIXING_ACTIVATIONS = ("softmax", "log_softmax")


def weight(weights, call, name):
    """The masked value of `call`'s weight `name` as float64, or None."""
    value = weights.get((call.name, name))
    return None if value is None else np.asarray(value, dtype=np.float64)


def absorbs_constants(op):
    """True if a constant input channel adds the same amount at every output
    position of `op` (so its effect can move into the bias)."""
    if isinstance(op, keras.layers.Dense):
        return True
    if isinstance(op, (keras.layers.Conv1DTranspose,
                       keras.layers.Conv2DTranspose,
                       keras.layers.Conv3DTranspose)):
        return False
    padding = getattr(op, "padding", "valid")
    size = getattr(op, "kernel_size", (1,))
    return padding == "valid" or all(int(k) == 1 for k in size)


def _activate(op, values):
    activation = getattr(op, "activation", None)
    if activation is None:
        return values
    live = np.isnan(values)
    name = getattr(activation, "__name__", "")
    if name in MIXING_ACTIVATIONS and live.any():
        return np.full_like(values, np.nan)
    out = np.asarray(keras.ops.convert_to_numpy(activation(
        keras.ops.convert_to_tensor(np.where(live, 0.0, values)[None],
                                    dtype="float32"))), np.float64)[0]
    return np.where(live, np.nan, out)


def _spatial_axes(kernel):
    return tuple(range(kernel.ndim - 2))


def kernel_matrices(call, weights):
    """`(sums, nonzero)` of a conv/dense/transpose kernel, input x output:
    the kernel summed over its spatial axes, and where any entry is not 0."""
    kernel = weight(weights, call, "kernel")
    axes = _spatial_axes(kernel)
    sums, nonzero = kernel.sum(axis=axes), (kernel != 0).any(axis=axes)
    if call.kind == "transpose":
        sums, nonzero = sums.T, nonzero.T
    return sums, nonzero


def depthwise_values(x, kernel, absorbs):
    """Each depthwise output (c * m + j) before bias, from input values `x`:
    0 where the kernel slice is 0 or the input is 0, the input times the
    kernel's sum where `absorbs`, NaN otherwise."""
    axes = _spatial_axes(kernel)
    sums = kernel.sum(axis=axes).reshape(-1)
    nonzero = (kernel != 0).any(axis=axes).reshape(-1)
    xs = np.repeat(x, kernel.shape[-1])
    with np.errstate(invalid="ignore"):
        folded = xs * sums if absorbs else np.where(xs == 0, 0.0, np.nan)
    values = np.where(xs == 0, 0.0, folded)
    return np.where(nonzero, values, 0.0)


def _bias(call, weights, count):
    bias = weight(weights, call, "bias")
    return np.zeros(count) if bias is None else bias


def _creator(call, x, weights):
    op = call.op
    if call.kind == "embedding":
        table = weight(weights, call, "embeddings")
        return np.where((table != 0).any(axis=0), np.nan, 0.0)
    if call.kind == "separable":
        depthwise = weight(weights, call, "depthwise_kernel")
        inner = depthwise_values(x, depthwise, absorbs_constants(op))
        pointwise = weight(weights, call, "pointwise_kernel")
        sums = pointwise.reshape(-1, pointwise.shape[-1])
        live_rows = np.isnan(inner)
        x_in, nonzero = inner, sums != 0
        absorbs = True
    else:
        sums, nonzero = kernel_matrices(call, weights)
        x_in, live_rows = x, np.isnan(x)
        absorbs = absorbs_constants(op)
    out = _bias(call, weights, sums.shape[1]) + np.where(
        live_rows, 0.0, x_in) @ sums
    live = (live_rows[:, None] & nonzero).any(axis=0)
    if not absorbs:
        stuck = ~live_rows & (x_in != 0)
        live |= (stuck[:, None] & nonzero).any(axis=0)
    return _activate(op, np.where(live, np.nan, out))


def _depthwise(call, x, weights):
    kernel = weight(weights, call, "kernel")
    inner = depthwise_values(x, kernel, absorbs_constants(call.op))
    return _activate(call.op, inner + _bias(call, weights, len(inner)))


def _batchnorm(call, x, weights):
    op = call.op
    gamma, beta = weight(weights, call, "gamma"), weight(weights, call, "beta")
    mean = weight(weights, call, "moving_mean")
    variance = weight(weights, call, "moving_variance")
    y = (x - mean) / np.sqrt(variance + op.epsilon)
    if gamma is not None:
        y = y * gamma
    if beta is not None:
        y = y + beta
    return y


def _elementwise(call, x, rank):
    live = np.isnan(x)
    value = np.where(live, 0.0, x).reshape((1,) * (rank - 1) + (-1,))
    out = keras.ops.convert_to_numpy(call.op(
        keras.ops.convert_to_tensor(value, dtype="float32")))
    return np.where(live, np.nan, np.asarray(out, np.float64).reshape(-1))


def _merge(xs, function):
    width = max(len(x) for x in xs)
    xs = [np.broadcast_to(x, (width,)) for x in xs]
    if function == "add":
        return np.sum(xs, axis=0)
    if function == "subtract":
        return xs[0] - xs[1]
    if function == "average":
        return np.mean(xs, axis=0)
    if function == "maximum":
        return np.max(xs, axis=0)
    if function == "minimum":
        return np.min(xs, axis=0)
    # Multiply: a 0 factor makes 0 whatever the others are.
    stacked = np.stack(xs)
    zero = (stacked == 0).any(axis=0)
    return np.where(zero, 0.0, np.prod(stacked, axis=0))


def _value(graph, call, xs, weights):
    kind = call.kind
    if kind in ("conv", "transpose", "dense", "separable", "embedding"):
        return _creator(call, xs[0] if xs else None, weights)
    if kind == "depthwise":
        return _depthwise(call, xs[0], weights)
    if kind == "batchnorm":
        return _batchnorm(call, xs[0], weights)
    if kind in ("elementwise", "prelu"):
        return _elementwise(call, xs[0], len(graph.shapes[call.inputs[0]]))
    if kind in ("identity", "pooling"):
        return xs[0]
    if kind == "padding":
        return np.where(xs[0] == 0, 0.0, np.nan)
    if kind == "flatten":
        out = graph.ids[call.outputs[0]]
        return np.tile(xs[0], len(out) // len(xs[0]))
    if kind == "merge":
        return _merge(xs, call.function)
    if kind == "concatenate":
        if len(graph.ids[call.outputs[0]]) == sum(len(x) for x in xs):
            return np.concatenate(xs)
        same = np.all([x == xs[0] for x in xs], axis=0)
        return np.where(same, xs[0], np.nan)
    raise ValueError(f"No constant rule for kind {kind!r}.")


def constants(graph, weights):
    """Tensor key -> float64 per channel: the constant, or NaN if it varies.

    Args:
      graph: a `tf_sparse.channel_graph.ChannelGraph`.
      weights: (layer name, weight name) -> masked value (numpy).
    """
    values = {}
    for call in graph.calls:
        for key in call.outputs:
            if key not in graph.ids:
                continue
            if call.kind in ("input", "unknown") or len(call.outputs) != 1:
                values[key] = np.full(len(graph.ids[key]), np.nan)
                continue
            xs = [values[k] for k in call.inputs]
            values[key] = np.asarray(
                _value(graph, call, xs, weights), np.float64)
    return values


class EdgeEffect:
    """What removing input channels of one consumer call does to it.

    `exact[r]` is True when input position r can be removed with the
    consumer's outputs unchanged (after `shift`): its weights are all 0, or
    it holds a constant the consumer absorbs (0 always; any constant where
    `absorbs_constants`, except for a layer called more than once).
    `shift(rows)` is the amount to add to the consumer's bias when `rows`
    are removed.
    """

    def __init__(self, edge, x, weights, shared):
        call = edge.call
        self.call = call
        self.x = x
        absorbs = absorbs_constants(call.op) and not shared
        if call.kind == "separable":
            depthwise = weight(weights, call, "depthwise_kernel")
            multiplier = depthwise.shape[-1]
            inner = depthwise_values(x, depthwise, absorbs)
            pointwise = weight(weights, call, "pointwise_kernel")
            self._rows = pointwise.reshape(-1, pointwise.shape[-1])
            self._inner = inner
            self._multiplier = multiplier
            harmful = np.isnan(inner) & (self._rows != 0).any(axis=1)
            self.exact = ~harmful.reshape(-1, multiplier).any(axis=1)
        else:
            sums, nonzero = kernel_matrices(call, weights)
            self._rows, self._inner, self._multiplier = sums, x, 1
            used = nonzero.any(axis=1)
            live = np.isnan(x)
            stuck = live | ((x != 0) & ~absorbs)
            self.exact = ~(used & stuck)
        self.absorbs = absorbs

    def shift(self, rows):
        """Bias change (one per output channel) when `rows` are removed."""
        rows = np.asarray(rows, dtype=np.int64)
        if self._multiplier > 1:
            rows = (rows[:, None] * self._multiplier
                    + np.arange(self._multiplier)).reshape(-1)
        values = np.where(np.isnan(self._inner[rows]), 0.0,
                          self._inner[rows])
        return values @ self._rows[rows]
