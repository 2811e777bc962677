"""Magnitude masks at exact counts, shared by GMP and AC/DC (in graph).

`magnitude_masks` keeps the largest |w| of each weight (layer-wise) or of
all masked weights together (global), selected by `tf_sparse.topk` (ties to
the lower flat index, in model order for a global ranking). A weight of `n`
entries at sparsity `s` keeps `kept_count(s, n) = max(1, floor((1 - s) * n
+ 0.5))` entries, with `1 - s` in float32 like tfmot and the product in
float64. Targets are a float or a {layer pattern: sparsity} dict
(`resolve_sparsity`).

Structured patterns (recorded on the masks by `sparsify(pattern=...)`, see
`tf_sparse.patterns`) are followed: whole groups are ranked by their summed
|w| and `kept_count(s, groups)` groups are kept (at least one); an N:M
weight keeps `kept_count(s, M, minimum=N)` of every group (M at sparsity 0,
N at 1 - N/M, so a gradual ramp passes through 3:4 on its way to 2:4). A
global ranking needs every weight's groups to be of one size (blocks, not
channels of different widths); `check_patterns` says so before training.

The mask math is `keras.ops` (masks come back as tensors of the Keras
backend), so the same code runs in TensorFlow's train step and in the
eager updates of JAX and PyTorch. The group layouts (`tf_sparse.patterns`)
and channel ties (`channel_graph`) they call are their modules' own.

Example:

    sparsities = resolve_sparsity(weights, {"*attention*": 0.9, "*": 0.5})
    masks = magnitude_masks(weights, [np.float32(s) for s in sparsities],
                            "layerwise", only_active=True)
"""

import fnmatch

import keras
import numpy as np

from tf_sparse import backend
from tf_sparse import patterns
from tf_sparse import topk
from tf_sparse.algorithms import checks

SCOPES = ("layerwise", "global")


def _has_float64():
    """Whether the backend computes in float64 (JAX only with x64 on)."""
    if backend.name() != "jax":
        return True
    import jax  # the JAX backend only

    return bool(jax.config.read("jax_enable_x64"))


def kept_count(sparsity, size, minimum=1):
    """``max(minimum, floor((1 - sparsity) * size + 0.5))`` as an int32 tensor.

    ``1 - sparsity`` in float32 (as tfmot), the product in float64, so large
    layers round exactly. JAX without 64-bit types (its default) computes
    it on the host from the concrete `sparsity` (`kept_count_py`, the same
    number), as its eager updates have it.

    >>> kept_count(0.9, 1001)                       # int32 tensor 100
    """
    if not _has_float64():
        return keras.ops.convert_to_tensor(
            kept_count_py(keras.ops.convert_to_numpy(sparsity), size,
                          minimum), "int32")
    ops = keras.ops
    density = ops.subtract(np.float32(1.0), ops.cast(sparsity, "float32"))
    # Non-negative, so the cast's truncation is the floor (keras.ops.floor
    # returns float32 on PyTorch, which would round large counts).
    count = ops.cast(density, "float64") * float(size) + 0.5
    return ops.maximum(ops.cast(count, "int32"), minimum)


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
    A weight whose pattern cannot reach its target (N:M reaches only
    1 - N/M) is an error. Returns a list of floats aligned with `weights`.
    """
    result = _resolve(weights, sparsity, what)
    for mw, value in zip(weights, result):
        patterns.parse(mw.pattern).check_sparsity(value,
                                                  f"{what} for {mw.path}")
    return result


def _resolve(weights, sparsity, what):
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


def weight_layout(mw):
    """The `patterns.Layout` of a `MaskedWeight`'s recorded pattern."""
    return patterns.layout_of(mw.pattern, mw.layer, mw.name, mw.shape)


def check_patterns(weights, sparsities, scope, what):
    """Raises, before training, when the weights' patterns cannot follow
    the targets: an N:M weight reaches only 1 - N/M (and 0), and a global
    ranking needs groups of one size. (`resolve_sparsity` checks the first
    already; `magnitude_masks` the second again when it is traced.)

    Args:
      weights: `MaskedWeight`s.
      sparsities: per weight, its final target (Python floats).
      scope: "layerwise" or "global".
      what: the argument's name, for messages ("GMP final_sparsity").
    """
    for mw, sparsity in zip(weights, sparsities):
        patterns.parse(mw.pattern).check_sparsity(
            sparsity, f"{what} for {mw.path}")
    if scope == "global":
        _global_group_size(weights, [weight_layout(mw) for mw in weights],
                           what)


def _global_group_size(weights, layouts, what):
    sizes = {mw.path: layout.group_size
             for mw, layout in zip(weights, layouts) if layout.whole_groups}
    if len(set(sizes.values())) > 1:
        shown = ", ".join(f"{p}: {n}" for p, n in list(sizes.items())[:6])
        raise ValueError(
            f"{what}: a global magnitude ranking compares groups, which must "
            f"be of one size; the groups here differ ({shown}). Use "
            "scope='layerwise'.")


def _nm_units(sparsity, layout):
    return kept_count(sparsity, layout.group_size, minimum=layout.keep)


def magnitude_masks(weights, sparsities, scope, only_active, ties=None):
    """New 0/1 masks (tensors) keeping the largest |w| at exact counts.

    Args:
      weights: `MaskedWeight`s.
      sparsities: per weight, a float32 scalar tensor (layer-wise), or one
        tensor for all (global).
      scope: "layerwise" or "global" (one ranking across all weights).
      only_active: rank only currently active entries (the count is capped
        at the active count: GMP never regrows).
      ties: a `channel_graph.ChannelTies` (channel pattern): channels are
        ranked by their whole dependency group's |w| sum.
    """
    layouts = [weight_layout(mw) for mw in weights]
    if not all(layout.unstructured for layout in layouts):
        return _structured_masks(weights, layouts, sparsities, scope,
                                 only_active, ties)
    ops = keras.ops
    scores, eligible, sizes = [], [], []
    for mw in weights:
        scores.append(ops.cast(ops.reshape(_magnitude(mw), [-1]),
                               "float32"))
        if only_active:
            mask = ops.reshape(ops.convert_to_tensor(mw.mask), [-1])
            eligible.append(mask > 0)
        else:
            eligible.append(ops.ones([mw.size], "bool"))
        sizes.append(mw.size)
    if scope == "global":
        keep = topk.select_top(ops.concatenate(scores, axis=0),
                               ops.concatenate(eligible, axis=0),
                               kept_count(sparsities, sum(sizes)))
        pieces = _split(keep, sizes)
    else:
        pieces = [topk.select_top(s, e, kept_count(sp, n))
                  for s, e, sp, n in zip(scores, eligible, sparsities, sizes)]
    return [ops.reshape(ops.cast(p, mw.mask.dtype), mw.shape)
            for p, mw in zip(pieces, weights)]


def _magnitude(mw):
    """|w| of a masked weight, outside any gradient (PyTorch's variables
    require one)."""
    return keras.ops.abs(keras.ops.stop_gradient(
        keras.ops.convert_to_tensor(mw.variable)))


def _split(flat, sizes):
    """Consecutive pieces of `flat` of the given (Python int) sizes."""
    ends = np.cumsum(sizes).tolist()
    return [flat[end - size:end] for size, end in zip(sizes, ends)]


def _structured_masks(weights, layouts, sparsities, scope, only_active,
                      ties=None):
    """`magnitude_masks` when some weight follows a structured pattern."""
    ops = keras.ops
    scores, eligible = [], []
    for mw in weights:
        scores.append(ops.cast(_magnitude(mw), "float32"))
        if only_active:
            eligible.append(ops.convert_to_tensor(mw.mask) > 0)
        else:
            eligible.append(ops.ones(mw.shape, "bool"))
    if ties is not None:
        scores = ties.tied_scores(scores, layouts)
    if scope != "global":
        kept = []
        for score, ok, sparsity, layout in zip(scores, eligible, sparsities,
                                               layouts):
            if layout.keep is not None:
                units = _nm_units(sparsity, layout)
            else:
                units = kept_count(sparsity, layout.units)
            kept.append(layout.select(score, ok, units))
    else:
        _global_group_size(weights, layouts, "magnitude_masks")
        kept = [None] * len(weights)
        ranked = [i for i, layout in enumerate(layouts) if layout.whole_groups]
        for i, layout in enumerate(layouts):
            if not layout.whole_groups:
                kept[i] = layout.select(scores[i], eligible[i],
                                        _nm_units(sparsities, layout))
        if ranked:
            groups = [layouts[i].num_groups for i in ranked]
            chosen = topk.select_top(
                ops.concatenate([layouts[i].group_sums(scores[i])
                                 for i in ranked], axis=0),
                ops.concatenate([layouts[i].group_eligible(eligible[i])
                                 for i in ranked], axis=0),
                kept_count(sparsities, sum(groups)))
            for i, piece in zip(ranked, _split(chosen, groups)):
                kept[i] = layouts[i].expand(piece)
    return [ops.cast(k, mw.mask.dtype) for k, mw in zip(kept, weights)]
