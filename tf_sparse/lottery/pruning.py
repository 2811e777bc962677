"""Magnitude pruning of the remaining weights, with exact counts.

Pure NumPy on dicts keyed by weight path (`"fc1/kernel"`), so the rules can be
checked on hand-made tensors. A pruning round removes a fraction of the
weights that are still *remaining* (mask == 1), in "pools":

- `strategy="global"`: every prunable weight that has no rate of its own is in
  one pool with one magnitude threshold (open_lth's `sparse_global`);
- `strategy="layerwise"`: every such weight is a pool of its own (the
  original lottery-ticket paper's LeNet and Conv-x networks);
- a weight named in `layer_rates` is always a pool of its own, pruned at its
  own rate (for example the output layer at half rate, `{"fc3": 0.1}`, as in
  the original paper); rate 0 or a name in `exclude` leaves it unpruned.

Counting rule: a pool with `R` remaining weights loses `ceil(rate * R)` of
them (computed exactly on the decimal the rate prints as), so it keeps
`R - ceil(rate * R)`; for rate 0.2 that is `floor(0.8 * R)`, the rule of
open_lth's `sparse_global`. Every round removes at least one weight from every
pool with a nonzero rate, so a run that goes on long enough empties a pool:
`plan_levels` finds that before any training and `prune` refuses it.

Ties: within a pool, the weights with the smallest |w| go first; equal
magnitudes are broken by pool order (the model's weight order), then by flat
index, so a round is deterministic.

Example:

    pools = make_pools(["fc1/kernel", "fc2/kernel", "fc3/kernel"], 0.2,
                       strategy="global", layer_rates={"fc3/kernel": 0.1})
    masks = prune(weights, masks, pools)
"""

import dataclasses
import fnmatch
import fractions
import math
import numbers

import numpy as np

from tf_sparse import topk

STRATEGIES = ("global", "layerwise")


class PruningError(ValueError):
    """A pruning request that cannot be carried out (bad rate, empty pool)."""


def check_fraction(value, what="prune_fraction"):
    """Returns `value` as a float if it lies in the open interval (0, 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise PruningError(
            f"{what}={value!r} is not a number; give the fraction of the "
            "remaining weights to prune each level, in (0, 1) (0.2 = 20%).")
    value = float(value)
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise PruningError(
            f"{what}={value!r} is outside (0, 1): it is the fraction of the "
            "remaining weights pruned each level (0.2 prunes 20%, keeps 80%).")
    return value


def prune_count(remaining, rate):
    """How many of `remaining` weights a round at `rate` removes.

    `ceil(rate * remaining)`, exact: the rate is read as the decimal it
    prints as, so `prune_count(5, 0.2)` is 1 (not 2 from 1.0000000000000002).

    >>> prune_count(100, 0.2), prune_count(101, 0.2), prune_count(1, 0.2)
    (20, 21, 1)
    """
    if rate == 0:
        return 0
    exact = fractions.Fraction(repr(float(rate))) * int(remaining)
    return int(math.ceil(exact))


def kept_after(remaining, rate, levels=1):
    """Remaining weights of one pool after `levels` rounds at `rate`.

    >>> kept_after(266200, 0.2, 1), kept_after(1000, 0.2, 2)
    (212960, 640)
    """
    for _ in range(levels):
        remaining -= prune_count(remaining, rate)
    return remaining


@dataclasses.dataclass(frozen=True)
class Pool:
    """Weights pruned together with one threshold, at one rate."""
    paths: tuple
    rate: float


def _matches(path, key):
    layer = path.rsplit("/", 1)[0]
    short = layer.rsplit("/", 1)[-1]
    names = (path, layer, short)
    return key in names or any(fnmatch.fnmatchcase(n, key) for n in names)


def resolve_names(paths, keys, what):
    """Maps layer names, paths or fnmatch patterns to weight paths.

    Raises PruningError for a key that matches nothing.
    """
    result = []
    for key in keys:
        hits = [p for p in paths if _matches(p, key)]
        if not hits:
            raise PruningError(
                f"{what} entry {key!r} matches no prunable weight; prunable "
                f"weights: {', '.join(list(paths)[:20])}.")
        result.extend(h for h in hits if h not in result)
    return result


def parse_layer_rates(spec):
    """`"fc3:0.1, conv1:0"` (or a dict) -> {"fc3": 0.1, "conv1": 0.0}."""
    if not spec:
        return {}
    if isinstance(spec, dict):
        items = list(spec.items())
    else:
        items = []
        for part in str(spec).split(","):
            part = part.strip()
            if not part:
                continue
            name, sep, rate = part.rpartition(":")
            if not sep or not name:
                raise PruningError(
                    f"layer_rates entry {part!r} is not 'name:rate' (e.g. "
                    "'fc3:0.1' prunes fc3 at 10% per level).")
            try:
                items.append((name.strip(), float(rate)))
            except ValueError:
                raise PruningError(
                    f"layer_rates entry {part!r}: rate {rate!r} is not a "
                    "number.") from None
    rates = {}
    for name, rate in items:
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or \
                not 0.0 <= float(rate) < 1.0:
            raise PruningError(
                f"layer_rates[{name!r}]={rate!r} is outside [0, 1) (0 leaves "
                "the layer unpruned).")
        rates[name] = float(rate)
    return rates


def make_pools(paths, fraction, *, strategy="global", exclude=(),
               layer_rates=None):
    """Groups the prunable weights `paths` (model order) into pools.

    Args:
      paths: weight paths in the model's order.
      fraction: rate of every weight without a rate of its own, in (0, 1).
      strategy: "global" (one pool) or "layerwise" (one pool per weight).
      exclude: names or patterns of weights never pruned.
      layer_rates: {name or pattern: rate in [0, 1)} (or the string form of
        `parse_layer_rates`); the first matching key wins.

    Returns:
      A list of `Pool`s; excluded weights are in none.
    """
    fraction = check_fraction(fraction)
    if strategy not in STRATEGIES:
        raise PruningError(
            f"strategy={strategy!r} is not one of {', '.join(STRATEGIES)}.")
    paths = list(paths)
    excluded = set(resolve_names(paths, list(exclude), "exclude"))
    own = {}
    for key, rate in parse_layer_rates(layer_rates).items():
        for path in resolve_names(paths, [key], "layer_rates"):
            own.setdefault(path, rate)
    shared = [p for p in paths if p not in excluded and p not in own]
    pools = []
    if strategy == "global" and shared:
        pools.append(Pool(tuple(shared), fraction))
    elif strategy == "layerwise":
        pools.extend(Pool((p,), fraction) for p in shared)
    for path in paths:
        if path in own and path not in excluded and own[path] > 0:
            pools.append(Pool((path,), own[path]))
    if not pools:
        raise PruningError(
            "exclude and layer_rates leave no weight to prune.")
    return pools


def plan_levels(sizes, pools, levels, start=None):
    """Remaining count of every pool after each of `levels` rounds.

    Args:
      sizes: {path: number of weights}.
      pools: from `make_pools`.
      levels: number of pruning rounds.
      start: optional {path: remaining now} (defaults to `sizes`).

    Returns:
      A list of length `levels + 1`; entry L maps each pool index to the
      pool's remaining weights after L rounds. For a pool of one weight that
      is exactly that layer's count.

    Raises:
      PruningError: if some pool would be emptied, naming the level and pool.
    """
    start = start or sizes
    remaining = [sum(start[p] for p in pool.paths) for pool in pools]
    plan = [dict(enumerate(remaining))]
    for level in range(1, levels + 1):
        remaining = [r - prune_count(r, pool.rate)
                     for r, pool in zip(remaining, pools)]
        for r, pool in zip(remaining, pools):
            if r <= 0:
                raise PruningError(
                    f"levels={levels} would prune everything: at level "
                    f"{level} no weight of {', '.join(pool.paths[:5])} would "
                    f"remain (rate {pool.rate}); use fewer levels or a lower "
                    "prune fraction.")
        plan.append(dict(enumerate(remaining)))
    return plan


def levels_for_density(sizes, pools, target_density, max_levels=1000):
    """Fewest rounds after which the density over all `sizes` is <= target."""
    total = sum(sizes.values())
    unpruned = total - sum(sizes[p] for pool in pools for p in pool.paths)
    remaining = [sum(sizes[p] for p in pool.paths) for pool in pools]
    for level in range(max_levels + 1):
        if (unpruned + sum(remaining)) / total <= target_density:
            return level
        remaining = [r - prune_count(r, pool.rate)
                     for r, pool in zip(remaining, pools)]
        if any(r <= 0 for r in remaining):
            break
    raise PruningError(
        f"target_density={target_density} cannot be reached with these pools "
        f"before a pool is emptied (unpruned weights alone are "
        f"{unpruned / total:.4%}).")


def prune(weights, masks, pools):
    """One round of magnitude pruning; returns new masks (float32 0/1).

    Args:
      weights: {path: array} trained weights (only pool paths are read).
      masks: {path: 0/1 array} current masks, every prunable path.
      pools: from `make_pools`.

    Raises:
      PruningError: if a weight would lose all its remaining entries.
    """
    new = {p: np.asarray(m, dtype=np.float32).copy() for p, m in masks.items()}
    for pool in pools:
        mags, where = [], []
        for i, path in enumerate(pool.paths):
            w = np.asarray(weights[path])
            m = np.asarray(masks[path])
            if w.shape != m.shape:
                raise PruningError(
                    f"weight {path} has shape {w.shape}, its mask {m.shape}.")
            active = np.flatnonzero(m.reshape(-1) > 0)
            mags.append(np.abs(w.reshape(-1)[active]).astype(np.float64))
            where.append(np.stack([np.full(active.shape, i), active], 1))
        mags = np.concatenate(mags)
        where = np.concatenate(where)
        n = prune_count(len(mags), pool.rate)
        # The n smallest; equal magnitudes go in (pool order, flat index)
        # order.
        drop = where[topk.numpy_select_bottom(mags, n)]
        for i, path in enumerate(pool.paths):
            flat = new[path].reshape(-1)
            flat[drop[drop[:, 0] == i, 1]] = 0.0
            if not flat.any():
                raise PruningError(
                    f"pruning would remove every remaining weight of {path} "
                    f"(pool rate {pool.rate}); the network would be cut. Use "
                    "fewer levels, a lower fraction, or exclude the layer.")
    return new


def counts(masks):
    """{path: nonzeros} of a dict of masks."""
    return {p: int(np.count_nonzero(m)) for p, m in masks.items()}


def density(masks):
    """Fraction of mask entries that are 1, over all given masks."""
    total = sum(int(np.size(m)) for m in masks.values())
    return sum(counts(masks).values()) / total


def random_masks_like(masks, seed, salt=0):
    """Random masks with exactly the same count in every weight.

    Open_lth's `randomly_prune` "layerwise" strategy: each layer's ones are
    placed uniformly at random, so every layer keeps its proportion exactly.
    Seeded by (seed, salt, position of the weight in `masks`).
    """
    result = {}
    for index, (path, mask) in enumerate(masks.items()):
        mask = np.asarray(mask)
        n = int(np.count_nonzero(mask))
        rng = np.random.default_rng(np.random.SeedSequence([seed, salt, index]))
        flat = np.zeros(mask.size, dtype=np.float32)
        flat[rng.permutation(mask.size)[:n]] = 1.0
        result[path] = flat.reshape(mask.shape)
    return result
