"""Structured sparsity patterns: which weights are kept or removed together.

A pattern is given as a string and parsed into a frozen `Pattern`:

  * `"unstructured"` (default): every weight on its own.
  * `"N:M"` (e.g. `"2:4"`, NVIDIA's sparse tensor core format): in every
    group of M consecutive weights along the kernel's input axis (input
    features of a Dense kernel, input channels of a convolution), exactly N
    are kept. The density is fixed at N/M.
  * `"block:RxC"` (e.g. `"block:4x4"`): whole blocks of R rows x C columns
    of the kernel's (inputs x outputs) matrix are kept or removed.
  * `"channel"`: whole output channels (units) are kept or removed.

The (inputs x outputs) matrix of a kernel puts the axes the layer reduces
over (`tf_sparse.registry.kernel_axes`) first, flattened in order with the
input axis innermost, and the output axes second; a Conv2D kernel (kh, kw,
in, out) is the (kh*kw*in) x out matrix of its im2col product. Every
pattern is then "blocks of that matrix": 1x1 (unstructured), Mx1 with N
kept in each (N:M), RxC (block), or a whole column (channel). A `Layout`
is that block structure for one kernel shape; it turns scores into an exact
mask (per-group sums, `tf_sparse.topk` selection, ties to the lower group
index) on the host and in graph.

Example:

    layout = layout_of("2:4", dense_layer, "kernel", (8, 16))
    mask = layout.exact_mask(np.abs(w), layout.full_count(2))  # 2 of each 4
    layout.misfit(mask)        # None: the mask follows the pattern
    parse("block:4x4").kernel_misfit((3, 3, 3, 8), axes)  # "... not whole"
"""

import dataclasses
import functools
import re

import keras
import numpy as np

from tf_sparse import registry
from tf_sparse import topk

UNSTRUCTURED = "unstructured"
ACCEPTED = ('"unstructured", "N:M" with 1 <= N < M (e.g. "2:4"), '
            '"block:RxC" (e.g. "block:4x4") or "channel"')

ops = keras.ops

_NM = re.compile(r"^(\d+):(\d+)$")
_BLOCK = re.compile(r"^block:(\d+)x(\d+)$")


@dataclasses.dataclass(frozen=True)
class Pattern:
    """A parsed sparsity pattern (see the module docstring).

    Attributes:
      kind: "unstructured", "n:m", "block" or "channel".
      n, m: for "n:m", N kept of every M.
      rows, cols: for "block", the block shape in the (inputs x outputs)
        matrix.
    """
    kind: str
    n: int = 0
    m: int = 0
    rows: int = 0
    cols: int = 0

    @property
    def spec(self):
        """The string this pattern is written as ("2:4", "block:4x4", ...)."""
        if self.kind == "n:m":
            return f"{self.n}:{self.m}"
        if self.kind == "block":
            return f"block:{self.rows}x{self.cols}"
        return self.kind

    def __str__(self):
        return self.spec

    @property
    def structured(self):
        return self.kind != UNSTRUCTURED

    @property
    def fixed_sparsity(self):
        """1 - N/M for N:M (its only sparsity); None for other patterns."""
        return 1.0 - self.n / self.m if self.kind == "n:m" else None

    def check_sparsity(self, sparsity, where="sparsity"):
        """Raises unless this pattern can reach `sparsity` in a layer.

        N:M reaches exactly 1 - N/M, and 0 (all-ones masks, the dense start
        of GMP or AC/DC, which then prune to N:M); other patterns reach any
        sparsity in whole groups.
        """
        fixed = self.fixed_sparsity
        # 1e-6: the 6 digits of the value the message suggests are enough.
        if fixed is None or abs(sparsity - fixed) < 1e-6 or sparsity == 0.0:
            return
        raise ValueError(
            f"{where}={sparsity} cannot be reached with pattern "
            f"{self.spec!r}: it keeps {self.n} of every {self.m} weights, so "
            f"its sparsity is 1 - {self.n}/{self.m} = {fixed:g}. Pass "
            f"sparsity={fixed:g} (or omit "
            "it), or 0.0 for all-ones masks that GMP / AC/DC prune to "
            f"{self.spec}.")

    def kernel_misfit(self, shape, axes):
        """Why this pattern does not fit a kernel of `shape` with
        `registry.KernelAxes` `axes`, or None when it fits."""
        shape = tuple(int(d) for d in shape)
        if self.kind == "n:m":
            if axes.input is None:
                return "it has no input-channel axis (depthwise kernel)"
            size = shape[axes.input]
            if size % self.m:
                return (f"its input size {size} is not a multiple of "
                        f"{self.m}")
        if self.kind == "block":
            rows = _prod(shape[a] for a in axes.reduction)
            cols = _prod(shape[a] for a in axes.output)
            if rows % self.rows or cols % self.cols:
                return (f"its {rows}x{cols} (inputs x outputs) matrix is "
                        f"not made of whole {self.rows}x{self.cols} blocks")
        return None

    def layout(self, shape, axes):
        """The `Layout` of this pattern on a kernel of `shape`.

        Raises a ValueError saying why when the pattern does not fit.
        """
        reason = self.kernel_misfit(shape, axes)
        if reason is not None:
            raise ValueError(
                f"Pattern {self.spec!r} does not fit a kernel of shape "
                f"{tuple(shape)}: {reason}.")
        shape = tuple(int(d) for d in shape)
        rows = _prod(shape[a] for a in axes.reduction)
        cols = _prod(shape[a] for a in axes.output)
        block = {"unstructured": (1, 1), "n:m": (self.m, 1),
                 "block": (self.rows, self.cols), "channel": (rows, 1)}
        return Layout(shape=shape, perm=tuple(axes.reduction + axes.output),
                      rows=rows, cols=cols, block=block[self.kind],
                      keep=self.n if self.kind == "n:m" else None)


def _prod(values):
    result = 1
    for v in values:
        result *= int(v)
    return result


def _positive(text, what, spec):
    value = int(text)
    if value < 1:
        raise ValueError(
            f"Pattern {spec!r}: {what} must be at least 1. Accepted: "
            f"{ACCEPTED}.")
    return value


@functools.lru_cache(maxsize=None)
def _parse_string(spec):
    text = spec.strip().lower()
    if text == UNSTRUCTURED:
        return Pattern(UNSTRUCTURED)
    if text == "channel":
        return Pattern("channel")
    match = _NM.match(text)
    if match:
        n = _positive(match.group(1), "N", spec)
        m = _positive(match.group(2), "M", spec)
        if n >= m:
            raise ValueError(
                f"Pattern {spec!r} keeps N={n} of every M={m}: N must be "
                f"smaller than M (N > M is impossible, N = M is dense). "
                f"Accepted: {ACCEPTED}.")
        return Pattern("n:m", n=n, m=m)
    match = _BLOCK.match(text)
    if match:
        rows = _positive(match.group(1), "the block's rows R", spec)
        cols = _positive(match.group(2), "the block's columns C", spec)
        if rows == cols == 1:
            raise ValueError(
                f"Pattern {spec!r} is 1x1 blocks, i.e. unstructured: write "
                "'unstructured'.")
        return Pattern("block", rows=rows, cols=cols)
    raise ValueError(f"Unknown sparsity pattern {spec!r}; accepted: {ACCEPTED}.")


def parse(spec):
    """A `Pattern` from a spec string, a `Pattern`, or None (unstructured).

    >>> parse("2:4").fixed_sparsity
    0.5
    >>> parse("block:4x2").spec
    'block:4x2'
    """
    if spec is None:
        return Pattern(UNSTRUCTURED)
    if isinstance(spec, Pattern):
        return spec
    if not isinstance(spec, str):
        raise TypeError(
            f"pattern must be a string, got {spec!r} "
            f"({type(spec).__name__}); accepted: {ACCEPTED}.")
    return _parse_string(spec)


def layout_of(pattern, layer, name, shape):
    """The `Layout` of `pattern` on weight `name` of `layer` (raises when it
    does not fit)."""
    return parse(pattern).layout(shape, registry.kernel_axes(layer, name,
                                                             shape))


def misfit_of(pattern, layer, name, shape):
    """Why `pattern` does not fit weight `name` of `layer`, or None."""
    return parse(pattern).kernel_misfit(
        shape, registry.kernel_axes(layer, name, shape))


@dataclasses.dataclass(frozen=True)
class Layout:
    """The group structure of a pattern on one kernel shape.

    The kernel is transposed by `perm` and viewed as a `rows` x `cols`
    (inputs x outputs) matrix cut into `block` = (r, c) blocks; each block
    is a group. `keep` is N for N:M (N of each group's entries are kept),
    None when groups are kept or removed whole.

    Groups are numbered row block by row block; selections break ties to
    the lower group index (and, for N:M, to the lower entry in a group).
    """
    shape: tuple
    perm: tuple
    rows: int
    cols: int
    block: tuple
    keep: int | None

    @property
    def num_groups(self):
        return (self.rows // self.block[0]) * (self.cols // self.block[1])

    @property
    def group_size(self):
        return self.block[0] * self.block[1]

    @property
    def size(self):
        return self.rows * self.cols

    @property
    def unstructured(self):
        return self.group_size == 1

    @property
    def whole_groups(self):
        """True when groups are kept or removed whole (not N:M)."""
        return self.keep is None

    @property
    def units(self):
        """How many units a count is made of: entries per group for N:M,
        groups otherwise."""
        return self.group_size if self.keep is not None else self.num_groups

    def full_count(self, units):
        """Weights kept when `units` units are kept (see `units`)."""
        if self.keep is not None:
            return units * self.num_groups
        return units * self.group_size

    def units_of(self, count, where="mask"):
        """The number of units a weight count is made of; raises when the
        count is not a whole number of them."""
        step = self.num_groups if self.keep is not None else self.group_size
        if count % step:
            what = ("the same number of weights in each of its "
                    f"{self.num_groups} groups" if self.keep is not None
                    else f"whole groups of {self.group_size}")
            raise ValueError(
                f"{where}: {count} weights are not {what}.")
        return count // step

    # -- grouping (keras.ops: NumPy arrays and tensors, in graph too) -------

    def groups(self, x):
        """`x` of the kernel's shape as a (num_groups, group_size) tensor."""
        r, c = self.block
        x = keras.ops.reshape(keras.ops.transpose(x, self.perm),
                              (self.rows // r, r, self.cols // c, c))
        x = keras.ops.transpose(x, (0, 2, 1, 3))
        return keras.ops.reshape(x, (self.num_groups, self.group_size))

    def ungroup(self, g):
        """The inverse of `groups`: a (num_groups, group_size) tensor back
        in the kernel's shape."""
        r, c = self.block
        x = keras.ops.reshape(g, (self.rows // r, self.cols // c, r, c))
        x = keras.ops.transpose(x, (0, 2, 1, 3))
        x = keras.ops.reshape(x, tuple(self.shape[a] for a in self.perm))
        return keras.ops.transpose(x, tuple(np.argsort(self.perm)))

    # -- host ---------------------------------------------------------------

    def exact_mask(self, scores, count):
        """A 0/1 float32 mask of the kernel's shape keeping exactly `count`
        weights in the pattern: the groups with the largest summed score, or
        for N:M the `count / num_groups` highest scores of each group.

        >>> layout = parse("2:4").layout((4, 2), registry.KernelAxes(
        ...     (0,), (1,), 0))
        >>> layout.exact_mask(np.array([[4, 1], [3, 2], [2, 3], [1, 4.]]), 4)
        array([[1., 0.],
               [1., 0.],
               [0., 1.],
               [0., 1.]], dtype=float32)
        """
        scores = np.asarray(scores)
        units = self.units_of(count)
        if self.unstructured:
            keep = topk.numpy_select_top(scores, count)
            return keep.reshape(self.shape).astype(np.float32)
        if self.keep is None:
            return self.groups_mask(topk.numpy_select_top(
                self.numpy_group_sums(scores), units))
        grouped = keras.ops.convert_to_numpy(self.groups(scores))
        keys = topk.numpy_order_keys(grouped).reshape(grouped.shape)
        order = np.argsort(~keys, axis=1, kind="stable")
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(self.group_size)[None],
                          axis=1)
        mask = self.ungroup((rank < units).astype(np.float32))
        return keras.ops.convert_to_numpy(mask).astype(np.float32)

    def numpy_group_sums(self, scores):
        """Per-group sums of `scores` (kernel shape), float64 NumPy."""
        grouped = keras.ops.convert_to_numpy(self.groups(np.asarray(scores)))
        return grouped.astype(np.float64).sum(axis=1)

    def groups_mask(self, kept_groups):
        """A 0/1 float32 NumPy mask of the kernel's shape with the groups
        where `kept_groups` ([num_groups] bools) is true."""
        kept = np.repeat(np.asarray(kept_groups, bool).reshape(-1, 1),
                         self.group_size, axis=1)
        mask = self.ungroup(kept.astype(np.float32))
        return keras.ops.convert_to_numpy(mask).astype(np.float32)

    def misfit(self, mask):
        """Why a 0/1 `mask` of the kernel's shape breaks the pattern, or
        None. N:M masks must hold the same number k of ones in every group,
        N <= k <= M (k > N: a dense start or a gradual-pruning step); other
        masks whole groups."""
        if self.unstructured:
            return None
        grouped = keras.ops.convert_to_numpy(self.groups(np.asarray(mask)))
        ones = np.count_nonzero(grouped, axis=1)
        if self.keep is not None:
            found = sorted(set(ones.tolist()))
            if len(found) != 1 or found[0] < self.keep:
                shown = ", ".join(str(v) for v in found[:6])
                return (f"its groups of {self.group_size} hold {shown} ones; "
                        f"the pattern needs the same number, at least "
                        f"{self.keep}, in every group")
            return None
        partial = np.count_nonzero((ones > 0) & (ones < self.group_size))
        if partial:
            return (f"{partial} of its {self.num_groups} groups of "
                    f"{self.group_size} are partly kept")
        return None

    # -- in graph (keras.ops: any backend, inside tf.function and XLA) -----

    def group_sums(self, scores):
        """Per-group sums of `scores` (kernel shape), a float32 [num_groups]
        tensor of the backend, in graph."""
        scores = ops.cast(ops.convert_to_tensor(scores), "float32")
        return ops.sum(self.groups(scores), axis=1)

    def group_eligible(self, eligible):
        """Per group, whether all its entries are `eligible` (kernel-shaped
        bools), a bool [num_groups] tensor."""
        return ops.all(self.groups(ops.convert_to_tensor(eligible, "bool")),
                       axis=1)

    def expand(self, kept_groups):
        """A bool tensor of the kernel's shape, true on every entry of the
        groups where `kept_groups` ([num_groups] bools) is true."""
        kept = ops.broadcast_to(ops.reshape(kept_groups, (-1, 1)),
                                (self.num_groups, self.group_size))
        return self.ungroup(kept)

    def select(self, scores, eligible, units, lowest=False):
        """Bool tensor of the kernel's shape: `units` units (see `units`) of
        the highest `scores` among `eligible` entries, in graph.

        Whole groups: a group is eligible when all its entries are, and
        scores are summed per group (float32). N:M: the `units` highest
        eligible entries of every group (fewer where fewer are eligible);
        `units` may then be a [num_groups, 1] tensor, a count per group.
        `lowest=True` selects the lowest scores instead (N:M only; ties
        still to the lower entry). `units` may be an int tensor; works
        under XLA. keras.ops: a tensor of the backend, the same mask bit
        for bit on TensorFlow, JAX and PyTorch.

        >>> layout = parse("1:4").layout((4, 1), registry.KernelAxes(
        ...     (0,), (1,), 0))
        >>> layout.select(np.array([[1.], [3.], [3.], [2.]], np.float32),
        ...               np.ones((4, 1), bool), 1)
        ... # bool [[F], [T], [F], [F]]: the first of the two 3s
        """
        if lowest and self.keep is None:
            raise ValueError("Layout.select(lowest=True) is for N:M "
                             "layouts; use topk.select_bottom on group sums.")
        scores = ops.cast(ops.convert_to_tensor(scores), "float32")
        eligible = ops.convert_to_tensor(eligible, "bool")
        if self.unstructured:
            keep = topk.select_top(scores, eligible, units)
            return ops.reshape(keep, self.shape)
        if self.keep is None:
            return self.expand(topk.select_top(
                self.group_sums(scores), self.group_eligible(eligible), units))
        return self.ungroup(_first_per_row(
            topk.order_keys(self.groups(scores)), self.groups(eligible),
            units, lowest))


def _first_per_row(keys, ok, units, lowest):
    """Per row of int32 `keys` ([groups, size]), the `units` highest (or
    lowest) keys among the `ok` entries, ties to the lower column (bools).

    The sort method of `topk`, row by row: a stable ascending argsort of
    the inverted keys (the keys themselves for `lowest`) orders each row
    best first, equal keys in column order; a cumulative sum of the
    eligible entries in that order takes the first `units`, and the
    inverse permutation (the argsort of the order) puts them back.
    """
    order = ops.argsort(keys if lowest else ops.bitwise_invert(keys), axis=1)
    in_order = ops.take_along_axis(ops.cast(ok, "int32"), order, axis=1)
    taken = ops.logical_and(
        in_order > 0,
        ops.cumsum(in_order, axis=1, dtype="int32")
        <= ops.cast(units, "int32"))
    return ops.take_along_axis(taken, ops.argsort(order, axis=1), axis=1)
