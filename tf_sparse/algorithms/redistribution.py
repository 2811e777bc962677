"""Moving weights between layers in a prune-and-grow update (keras.ops).

`redistribute` gives sparse momentum's per-layer counts (papers.md A.1;
sparse_learning's `core.py`), with `L` layers, `n_l` active and `z_l`
inactive weights in a layer of `size_l`, rate `p` and shares `s_l` (e.g.
`shares` of the mean |momentum| of active weights, `mean_abs_active`):

1. prune-rate cap: a layer more than `dense_layer_density` dense whose
   share exceeds `1/L` prunes at `p_l = min(p, z_l / size_l)`, every other
   layer at `p`; it drops `r_l = drop_counts(p_l)` (`ceil(p_l * n_l)`);
2. regrowth: `R = sum r_l` is shared by `s_l`, each layer capped at
   `floor(max_fill * (z_l + r_l))` (its free positions after pruning); what
   a capped layer cannot take is spread equally over the other layers.
   `water_fill` solves the reference's spill-over loop exactly (its fixed
   point `g_l = min(cap_l, s_l R + lambda)`, one `lambda` for all layers),
   and `round_to_total` rounds by largest remainder so that `sum g_l = R`;
3. with disjoint drop and grow sets only the `z_l` positions free before
   the update can grow: caps `floor(max_fill * z_l)`, and when `R` exceeds
   `sum z_l` (a model denser than about `1 / (1 + p)`) the drop counts are
   cut to `sum z_l` in proportion to `r_l` (`scale_to_total`).

All counts are float64 vectors holding integers, in the layers' counting
units (`PruneGrow.count_units`: weights, or whole groups for block and
channel patterns). Regrowth moves between layers only when every layer
counts in the same unit and none follows N:M (`can_move`): all
unstructured, or all whole groups of one size (block patterns; channel
patterns when every layer has the same fan-in). Otherwise (N:M layers,
whose density is fixed at N/M, or channels of different fan-ins, where a
moved group would change the total) every layer regrows in place what it
dropped.

Example:

    share = shares(mean_abs_active(ctx, ctx.values))      # by mean |w|
    drop, grow, share, rates = redistribute(ctx, share, alg.drop_counts)
"""

import keras

from tf_sparse.algorithms import checks
from tf_sparse.algorithms import float64


def check_caps(owner, max_fill, dense_layer_density):
    """`(max_fill, dense_layer_density)` as floats, in (0, 1] and (0, 1)."""
    if not 0.0 < float(max_fill) <= 1.0:
        raise ValueError(f"{owner}: max_fill={max_fill!r} must be in "
                         "(0, 1].")
    return float(max_fill), checks.check_rate(owner, "dense_layer_density",
                                              dense_layer_density)


def can_move(layouts):
    """Whether regrowth can move between the layers of `layouts` (their
    `patterns.Layout`s, or None for unstructured masks) with exact counts.

    >>> can_move(None)
    True
    """
    if layouts is None:
        return True
    if any(not layout.whole_groups for layout in layouts):
        return False  # N:M: the density of every layer is N/M
    return len({layout.group_size for layout in layouts}) <= 1


def shares(stats):
    """`stats / sum(stats)`, or equal shares when the sum is 0."""
    ops = keras.ops
    total = ops.sum(stats)
    n = int(stats.shape[0])
    return ops.where(total > 0, stats / float64.maximum(total, 1e-300),
                     ops.full([n], 1.0 / n, "float64"))


def mean_abs_active(ctx, signals):
    """Per layer, the mean |signal| over its active weights (float64 [L]).

    `signals`: one flat tensor per layer (weights, momentum, ...).
    """
    ops = keras.ops
    sums = [ops.sum(ops.where(active, ops.cast(ops.abs(signal), "float64"),
                              0.0))
            for active, signal in zip(ctx.active, signals)]
    return ops.stack(sums) / float64.maximum(ctx.n, 1.0)


def redistribute(ctx, share, drop_counts, *, dense_layer_density=0.8,
                 max_fill=0.99, disjoint=False):
    """(drop counts, grow counts, shares, per-layer rates), float64 [L].

    Args:
      ctx: the update's `prune_grow.UpdateContext` (`rate`, `n`, `zeros`,
        `sizes`).
      share: float64 [L], the layers' shares of the regrowth.
      drop_counts: `drop_counts(ctx, rates)`, the drop counts at per-layer
        rates (`PruneGrow.drop_counts`).
      dense_layer_density, max_fill, disjoint: see the module docstring.
    """
    ops = keras.ops
    zero_fraction = ctx.zeros / ctx.sizes
    capped = ops.logical_and(zero_fraction < 1.0 - dense_layer_density,
                             share > 1.0 / int(share.shape[0]))
    rates = ops.where(capped, float64.minimum(ctx.rate, zero_fraction), ctx.rate)
    drop = drop_counts(ctx, rates)
    removed = ops.sum(drop)
    if disjoint:
        free = ctx.zeros
        removed = float64.minimum(removed, ops.sum(free))
        drop = scale_to_total(drop, removed)
    else:
        free = ctx.zeros + drop
    return drop, regrowth(share, removed, free, max_fill), share, rates


def water_fill(base, caps, total):
    """`min(caps, base + lam)` with one `lam >= 0` so that the sum is `total`.

    float64 vectors; needs `sum(min(caps, base)) <= total <= sum(caps)`.
    This is where the reference's spill-over loop converges: the excess of
    capped layers is added in equal parts to the layers still below their
    cap.
    """
    ops = keras.ops
    cand = ops.concatenate([ops.zeros([1], "float64"),
                            float64.maximum(caps - base, 0.0)], 0)
    sums = ops.sum(
        float64.minimum(caps[None, :], base[None, :] + cand[:, None]), axis=1)
    best = ops.max(ops.where(sums <= total, cand, 0.0))
    at_best = float64.minimum(caps, base + best)
    open_layers = ops.sum(ops.cast(base + best < caps, "float64"))
    lam = best + ops.where(
        open_layers > 0,
        (total - ops.sum(at_best)) / float64.maximum(open_layers, 1.0), 0.0)
    return float64.minimum(caps, base + lam)


def round_to_total(real, caps, total):
    """Integers (as float64) near `real` summing to `total`, each <= caps.

    Floors, then +1 for the largest remainders (ties to the lower layer
    index) among layers still below their cap. The remainders are ranked
    in float64 by comparing every pair (a handful of layers; no sort, so
    every backend ranks alike; `tf_sparse.topk` ranks float32 images,
    which could tie remainders that differ).

    >>> round_to_total(keras.ops.convert_to_tensor([0.5, 1.5], "float64"),
    ...                keras.ops.convert_to_tensor([5.0, 5.0], "float64"),
    ...                3.0)                               # doctest: +SKIP
    [1., 2.]
    """
    ops = keras.ops
    floors = float64.minimum(float64.floor(real), caps)
    extra = ops.cast(total - ops.sum(floors), "int32")
    remainder = ops.where(floors < caps, real - floors, -1.0)
    n = int(real.shape[0])
    index = ops.arange(n)
    # rank[i]: layers ahead of i (a larger remainder, or an equal one at a
    # lower index), i.e. i's place in a stable descending sort.
    ahead = ops.logical_or(
        remainder[None, :] > remainder[:, None],
        ops.logical_and(remainder[None, :] == remainder[:, None],
                        index[None, :] < index[:, None]))
    rank = ops.sum(ops.cast(ahead, "int32"), axis=1)
    bump = ops.logical_and(rank < extra, floors < caps)
    return floors + ops.cast(bump, "float64")


def scale_to_total(counts, total):
    """`counts` scaled down to sum to `total`, rounded by largest remainder."""
    ops = keras.ops
    scaled = counts * total / float64.maximum(ops.sum(counts), 1.0)
    return round_to_total(scaled, counts, total)


def regrowth(share, total, free, max_fill):
    """Per-layer counts summing to `total`, shared by `share`, each layer
    capped at `floor(max_fill * free)` (at `free` where those caps cannot
    hold the total)."""
    ops = keras.ops
    caps = float64.floor(max_fill * free)
    caps = ops.where(ops.sum(caps) >= total, caps, free)
    real = water_fill(share * total, caps, total)
    return round_to_total(real, caps, total)
