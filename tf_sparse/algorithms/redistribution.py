"""Moving weights between layers in a prune-and-grow update (in graph).

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

import tensorflow as tf

from tf_sparse.algorithms import checks


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
    total = tf.reduce_sum(stats)
    n = int(stats.shape[0])
    return tf.where(total > 0, stats / tf.maximum(total, 1e-300),
                    tf.fill([n], tf.constant(1.0 / n, tf.float64)))


def mean_abs_active(ctx, signals):
    """Per layer, the mean |signal| over its active weights (float64 [L]).

    `signals`: one flat tensor per layer (weights, momentum, ...).
    """
    sums = [tf.reduce_sum(tf.where(active, tf.cast(tf.abs(signal),
                                                   tf.float64), 0.0))
            for active, signal in zip(ctx.active, signals)]
    return tf.stack(sums) / tf.maximum(ctx.n, 1.0)


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
    zero_fraction = ctx.zeros / ctx.sizes
    capped = tf.logical_and(zero_fraction < 1.0 - dense_layer_density,
                            share > 1.0 / int(share.shape[0]))
    rates = tf.where(capped, tf.minimum(ctx.rate, zero_fraction), ctx.rate)
    drop = drop_counts(ctx, rates)
    removed = tf.reduce_sum(drop)
    if disjoint:
        free = ctx.zeros
        removed = tf.minimum(removed, tf.reduce_sum(free))
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
    cand = tf.concat([[0.0], tf.maximum(caps - base, 0.0)], 0)
    sums = tf.reduce_sum(
        tf.minimum(caps[None, :], base[None, :] + cand[:, None]), axis=1)
    best = tf.reduce_max(tf.where(sums <= total, cand, 0.0))
    at_best = tf.minimum(caps, base + best)
    open_layers = tf.reduce_sum(tf.cast(base + best < caps, tf.float64))
    lam = best + tf.where(
        open_layers > 0,
        (total - tf.reduce_sum(at_best)) / tf.maximum(open_layers, 1.0), 0.0)
    return tf.minimum(caps, base + lam)


def round_to_total(real, caps, total):
    """Integers (as float64) near `real` summing to `total`, each <= caps.

    Floors, then +1 for the largest remainders (ties to the lower layer
    index) among layers still below their cap. The remainders are ranked
    in float64 (`tf_sparse.topk` ranks float32 images, which could tie
    remainders that differ).
    """
    floors = tf.minimum(tf.floor(real), caps)
    extra = tf.cast(total - tf.reduce_sum(floors), tf.int32)
    remainder = tf.where(floors < caps, real - floors, -1.0)
    order = tf.argsort(remainder, direction="DESCENDING", stable=True)
    n = tf.size(real)
    rank = tf.scatter_nd(order[:, None], tf.range(n), [n])
    bump = tf.logical_and(rank < extra, floors < caps)
    return floors + tf.cast(bump, tf.float64)


def scale_to_total(counts, total):
    """`counts` scaled down to sum to `total`, rounded by largest remainder."""
    scaled = counts * total / tf.maximum(tf.reduce_sum(counts), 1.0)
    return round_to_total(scaled, counts, total)


def regrowth(share, total, free, max_fill):
    """Per-layer counts summing to `total`, shared by `share`, each layer
    capped at `floor(max_fill * free)` (at `free` where those caps cannot
    hold the total)."""
    caps = tf.floor(max_fill * free)
    caps = tf.where(tf.reduce_sum(caps) >= total, caps, free)
    real = water_fill(share * total, caps, total)
    return round_to_total(real, caps, total)
