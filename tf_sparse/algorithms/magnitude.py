"""Magnitude masks at exact counts, shared by GMP and AC/DC (in graph).

`magnitude_masks` keeps the largest |w| of each weight (layer-wise) or of
all masked weights together (global), selected by `tf_sparse.topk` (ties to
the lower flat index, in model order for a global ranking). A weight of `n`
entries at sparsity `s` keeps `kept_count(s, n) = max(1, floor((1 - s) * n
+ 0.5))` entries, with `1 - s` in float32 like tfmot and the product in
float64. Targets are a float or a {layer pattern: sparsity} dict
(`resolve_sparsity`).

Example:

    sparsities = resolve_sparsity(weights, {"*attention*": 0.9, "*": 0.5})
    masks = magnitude_masks(weights, [tf.constant(s) for s in sparsities],
                            "layerwise", only_active=True)
"""

import fnmatch

import numpy as np
import tensorflow as tf

from tf_sparse import topk
from tf_sparse.algorithms import checks

SCOPES = ("layerwise", "global")


def kept_count(sparsity, size, minimum=1):
    """``max(minimum, floor((1 - sparsity) * size + 0.5))`` as an int32 tensor.

    ``1 - sparsity`` in float32 (as tfmot), the product in float64, so large
    layers round exactly.
    """
    density = tf.subtract(np.float32(1.0), tf.cast(sparsity, tf.float32))
    count = tf.floor(tf.cast(density, tf.float64) * float(size) + 0.5)
    return tf.maximum(tf.cast(count, tf.int32), minimum)


def kept_count_py(sparsity, size, minimum=1):
    """The Python twin of `kept_count` (for tests and reports)."""
    density = float(np.float32(1.0) - np.float32(sparsity))
    return max(minimum, int(np.floor(density * size + 0.5)))


def _matches(mw, key):
    names = (mw.layer.name, mw.layer_path, mw.path)
    return key in names or any(fnmatch.fnmatchcase(n, key) for n in names)


def resolve_sparsity(weights, sparsity, what="sparsity"):
    """Per-weight target sparsity from a float or a {pattern: float} dict.

    Keys match a masked weight's layer name, layer path or weight path,
    exactly or as fnmatch patterns; the first matching key wins. Every masked
    weight must be matched (leave layers dense with `sparsify(keep_dense=..)`).
    Returns a list of floats aligned with `weights`.
    """
    if not isinstance(sparsity, dict):
        checks.check_sparsity(sparsity, what)
        return [float(sparsity)] * len(weights)
    if not sparsity:
        raise ValueError(f"{what} mapping is empty.")
    for key, value in sparsity.items():
        checks.check_sparsity(value, f"{what}[{key!r}]")
    result = []
    for mw in weights:
        hit = next((float(value) for key, value in sparsity.items()
                    if _matches(mw, key)), None)
        if hit is None:
            raise ValueError(
                f"{what} mapping {sorted(sparsity)} matches no key for masked "
                f"weight {mw.path!r}; add a pattern for it (\"*\" matches "
                "everything) or leave the layer unmasked with "
                "sparsify(keep_dense=...).")
        result.append(hit)
    unused = [k for k in sparsity
              if not any(_matches(mw, k) for mw in weights)]
    if unused:
        raise ValueError(
            f"{what} keys {unused} match no masked weight; masked weights: "
            f"{', '.join(mw.path for mw in weights[:20])}.")
    return result


def magnitude_masks(weights, sparsities, scope, only_active):
    """New 0/1 masks (tensors) keeping the largest |w| at exact counts.

    Args:
      weights: `MaskedWeight`s.
      sparsities: per weight, a float32 scalar tensor (layer-wise), or one
        tensor for all (global).
      scope: "layerwise" or "global" (one ranking across all weights).
      only_active: rank only currently active entries (the count is capped
        at the active count: GMP never regrows).
    """
    scores, eligible, sizes = [], [], []
    for mw in weights:
        value = tf.abs(tf.reshape(tf.convert_to_tensor(mw.variable), [-1]))
        scores.append(tf.cast(value, tf.float32))
        if only_active:
            mask = tf.reshape(tf.convert_to_tensor(mw.mask), [-1])
            eligible.append(mask > 0)
        else:
            eligible.append(tf.ones([mw.size], tf.bool))
        sizes.append(mw.size)
    if scope == "global":
        keep = topk.select_top(tf.concat(scores, axis=0),
                               tf.concat(eligible, axis=0),
                               kept_count(sparsities, sum(sizes)))
        pieces = tf.split(keep, sizes)
    else:
        pieces = [topk.select_top(s, e, kept_count(sp, n))
                  for s, e, sp, n in zip(scores, eligible, sparsities, sizes)]
    return [tf.reshape(tf.cast(p, mw.mask.dtype), mw.shape)
            for p, mw in zip(pieces, weights)]
