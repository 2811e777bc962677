"""How a global sparsity is shared among layers, as exact nonzero counts.

Distributions:
  * `"uniform"`: every sparse layer gets the same density.
  * `"er"` (Erdos-Renyi, Mocanu et al. 2018): density proportional to
    `(n_in + n_out) / (n_in * n_out)` of the last two kernel dimensions.
  * `"erk"` (Erdos-Renyi-Kernel, Evci et al. 2020): density proportional to
    `sum(shape) / prod(shape)`, so kernel dimensions count too.

Capacity check (as in RigL's `sparse_utils`): a layer whose ER/ERK density
would exceed 1 is made dense, and the scale factor is re-solved for the other
layers until every density is at most 1.

Rounding rule (documented invariant): the total budget is
`B = floor(density * total + 0.5)` weights over all sparsified layers. Each
layer's real-valued target `t_l` (the targets sum to `density * total`) is
rounded by the largest-remainder method: every layer first gets
`floor(t_l)`, then the `B - sum(floor(t_l))` weights left over go one each to
the layers with the largest fractional parts (ties: earlier layer first). So
every layer holds `floor(t_l)` or `ceil(t_l)` weights and the total is `B`
exactly.

Example:

    counts = layer_counts([(784, 300), (300, 100), (100, 10)],
                          density=0.05, distribution="erk")
    assert sum(counts) == round(0.05 * 266200)
"""

import math

import numpy as np

DISTRIBUTIONS = ("uniform", "er", "erk")


def round_half_up(x):
    return int(math.floor(x + 0.5))


def largest_remainder(targets, capacities, total):
    """Integer counts near `targets` that sum to `total`, each <= capacity."""
    targets = np.minimum(np.asarray(targets, dtype=np.float64),
                         np.asarray(capacities, dtype=np.float64))
    counts = np.floor(targets).astype(np.int64)
    left = int(total) - int(counts.sum())
    if left < 0:
        raise ValueError(f"Targets sum above the total {total}.")
    fractions = targets - counts
    # Stable sort: ties go to the earlier layer.
    order = np.argsort(-fractions, kind="stable")
    for i in order:
        if left == 0:
            break
        if counts[i] < capacities[i]:
            counts[i] += 1
            left -= 1
    if left:
        raise ValueError(
            f"Cannot place {total} nonzeros in layers of total capacity "
            f"{int(np.sum(capacities))}.")
    return [int(c) for c in counts]


def raw_density_scale(shape, distribution):
    """The un-normalised per-layer density factor of a distribution."""
    shape = tuple(int(d) for d in shape)
    if distribution == "uniform":
        return 1.0
    if distribution == "er":
        if len(shape) < 2:
            return float(sum(shape)) / float(np.prod(shape))
        n_in, n_out = shape[-2], shape[-1]
        return (n_in + n_out) / (n_in * n_out)
    if distribution == "erk":
        return float(sum(shape)) / float(np.prod(shape))
    raise ValueError(
        f"Unknown distribution {distribution!r}; accepted: "
        f"{', '.join(DISTRIBUTIONS)}.")


def layer_densities(shapes, density, distribution="uniform"):
    """Real-valued per-layer densities whose weighted sum is `density`.

    Layers whose density would exceed 1 are set to exactly 1 (dense) and the
    scale is re-solved for the rest.
    """
    if distribution not in DISTRIBUTIONS:
        raise ValueError(
            f"Unknown distribution {distribution!r}; accepted: "
            f"{', '.join(DISTRIBUTIONS)}.")
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}.")
    sizes = np.array([float(np.prod(s)) for s in shapes])
    raw = np.array([raw_density_scale(s, distribution) for s in shapes])
    dense = np.zeros(len(shapes), dtype=bool)
    budget = density * sizes.sum()
    while True:
        free = ~dense
        if not free.any():
            break
        remaining = budget - sizes[dense].sum()
        eps = remaining / float((raw[free] * sizes[free]).sum())
        over = free & (eps * raw > 1.0)
        if not over.any():
            break
        dense |= over
    result = np.where(dense, 1.0, eps * raw if (~dense).any() else 1.0)
    return [float(d) for d in result]


def layer_counts(shapes, density, distribution="uniform", units=None):
    """Exact nonzero counts per layer for a global density (see rounding rule).

    Args:
      shapes: the prunable weights' shapes, in model order.
      density: fraction of weights kept over all these layers, in (0, 1].
      distribution: "uniform", "er" or "erk".
      units: optional, per layer, the number of units it is counted in
        (groups of a structured pattern, `tf_sparse.patterns`); counts are
        then whole units: layer l's target is `d_l * units_l`, rounded by
        largest remainder to a budget of `floor(density * sum(units) + 0.5)`
        units when every layer's units are of one size (blocks, N:M groups),
        else `floor(sum of targets + 0.5)` (channels of different sizes).

    Returns:
      A list of ints, one per shape, summing to `floor(density*total + 0.5)`
      (in units when `units` is given).

    Example:

        layer_counts([(8, 32), (32, 16)], 0.1)                  # [26, 51]
        layer_counts([(8, 32), (32, 16)], 0.1, units=[16, 32])  # [2, 3]
    """
    sizes = [int(np.prod(s)) for s in shapes]
    densities = layer_densities(shapes, density, distribution)
    if units is None:
        targets = [d * n for d, n in zip(densities, sizes)]
        budget = round_half_up(density * sum(sizes))
        return largest_remainder(targets, sizes, budget)
    units = [int(u) for u in units]
    if len(units) != len(sizes) or any(
            u < 1 or n % u for u, n in zip(units, sizes)):
        raise ValueError(
            f"units {units} must give each layer of sizes {sizes} a whole "
            "number of units (at least 1).")
    targets = [d * u for d, u in zip(densities, units)]
    if len({n // u for n, u in zip(sizes, units)}) == 1:
        budget = round_half_up(density * sum(units))
    else:
        budget = round_half_up(math.fsum(targets))
    return largest_remainder(targets, units, budget)


def max_sparsity_keeping_every_layer(shapes, distribution="uniform",
                                     units=None, decimals=4):
    """The largest sparsity, on a grid of `decimals` decimals, at which
    `layer_counts` gives every layer at least one weight (one unit).

    Found by bisection on the density, then rounded down to the grid and
    checked, so the value returned does keep every layer (0.0 when only a
    dense model does).

    Example:

        max_sparsity_keeping_every_layer([(10, 10), (10, 10)])   # 0.9924
    """
    def keeps_all(density):
        return min(layer_counts(shapes, density, distribution, units)) >= 1

    low, high = 0.0, 1.0          # keeps_all(high) holds: 1.0 is dense
    for _ in range(60):
        middle = (low + high) / 2
        if middle > 0 and keeps_all(middle):
            high = middle
        else:
            low = middle
    scale = 10 ** decimals
    steps = math.floor((1.0 - high) * scale + 1e-9)
    while steps > 0 and not keeps_all(1.0 - steps / scale):
        steps -= 1
    return steps / scale
