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


def layer_counts(shapes, density, distribution="uniform"):
    """Exact nonzero counts per layer for a global density (see rounding rule).

    Args:
      shapes: the prunable weights' shapes, in model order.
      density: fraction of weights kept over all these layers, in (0, 1].
      distribution: "uniform", "er" or "erk".

    Returns:
      A list of ints, one per shape, summing to `floor(density*total + 0.5)`.
    """
    sizes = [int(np.prod(s)) for s in shapes]
    densities = layer_densities(shapes, density, distribution)
    targets = [d * n for d, n in zip(densities, sizes)]
    budget = round_half_up(density * sum(sizes))
    return largest_remainder(targets, sizes, budget)
