"""`sparsify`: one call that turns a built Keras 3 model into a sparse one.

Works on Sequential, functional, subclassed and nested models, and on layers
inside composite layers (the projections of `MultiHeadAttention`), because it
attaches masks to the layers in place instead of rebuilding the model. The
model keeps its class, its layer names, its weights list and its `fit`.

A call either succeeds or leaves the model exactly as it was: every input
is checked before the first mask is attached, and an error while attaching
detaches what was attached and restores those weights.

A plan that leaves a layer with no weight at all (a very high sparsity,
ERK on small layers, whole channels of a narrow layer) is reported: an
`EmptyLayerWarning` names the emptied layers and the largest sparsity that
keeps at least one weight in every layer; when it would empty every layer,
`sparsify` raises a ValueError with the same facts instead (such a model
computes nothing from its input).

Structured patterns (`pattern="2:4"`, `"block:4x4"`, `"channel"`; see
`tf_sparse.patterns`) keep whole groups, or N of every M, with exact counts.
A layer the pattern does not fit (input size not a multiple of M, a
matrix that is not whole blocks) is left dense, with a `PatternFitWarning`,
and listed by `tfs.summary`; the sparsity applies to the other layers.

Example:

    model = keras.Sequential([keras.Input((784,)),
                              keras.layers.Dense(300, activation="relu"),
                              keras.layers.Dense(10)])
    model = tfs.sparsify(model, sparsity=0.95, distribution="erk",
                         keep_dense=["dense_1"], seed=1)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    other = tfs.sparsify(other_model, pattern="2:4")   # 50%, 2 of every 4
"""

import dataclasses
import fnmatch
import numbers
import warnings

import keras
import numpy as np

from tf_sparse import backend
from tf_sparse import channel_graph
from tf_sparse import distributions
from tf_sparse import masking
from tf_sparse import patterns
from tf_sparse import registry
from tf_sparse import topk
from tf_sparse.sparse_compute import convert as sparse_convert

MASK_INITS = ("random", "magnitude")
COMPUTE = ("masked", "sparse")


class EmptyLayerWarning(UserWarning):
    """A sparsity plan leaves some masked layers with no weight at all."""


class PatternFitWarning(UserWarning):
    """A structured pattern does not fit some layers; they stay dense."""


@dataclasses.dataclass(frozen=True)
class Target:
    """A prunable weight found in a model, before it is masked."""
    layer_path: str
    layer: keras.layers.Layer
    name: str
    variable: keras.Variable

    @property
    def path(self):
        return f"{self.layer_path}/{self.name}"

    @property
    def shape(self):
        return tuple(int(d) for d in self.variable.shape)

    @property
    def size(self):
        return int(np.prod(self.variable.shape))

    def matches(self, key):
        """True if `key` names this weight: layer name, layer path or weight
        path, exactly or as an fnmatch pattern (`*`, `?`, `[...]`)."""
        names = (self.layer.name, self.layer_path, self.path)
        return key in names or any(fnmatch.fnmatchcase(n, key) for n in names)

    def misfit(self, pattern):
        """Why `pattern` does not fit this weight, or None."""
        return patterns.misfit_of(pattern, self.layer, self.name, self.shape)

    def layout(self, pattern):
        """The `patterns.Layout` of `pattern` on this weight."""
        return patterns.layout_of(pattern, self.layer, self.name, self.shape)


def find_targets(model):
    """Lists the prunable weights of a model in a stable (model) order."""
    if not getattr(model, "built", False):
        raise ValueError(
            f"Model {model.name!r} is not built. Build it first (call it on "
            "data, give it an Input, or call model.build(input_shape)).")
    targets = []
    for layer_path, layer in masking.iter_layers(model):
        for name, variable in registry.prunable_variables(layer):
            targets.append(Target(layer_path, layer, name, variable))
    return targets


def _check_sparsity(value, where):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{where} must be a number in [0, 1), got {value!r}.")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(
            f"{where} must be in [0, 1) (0 keeps every weight, 0.9 keeps 10%), "
            f"got {value}.")
    return float(value)


def _unmatched_error(kind, key, targets):
    names = [t.layer_path for t in targets]
    shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
    return ValueError(
        f"{kind} entry {key!r} matches no prunable layer. Prunable layers: "
        f"{shown}.")


def _select_dense(targets, keep_dense):
    if isinstance(keep_dense, str):
        keep_dense = [keep_dense]
    dense = set()
    for key in keep_dense:
        hits = [t.path for t in targets if t.matches(key)]
        if not hits:
            raise _unmatched_error("keep_dense", key, targets)
        dense.update(hits)
    return dense


def _per_layer_sparsity(targets, mapping):
    """Resolves a {name or pattern: sparsity} mapping; the first key wins.

    Returns {weight path: (sparsity, key)}."""
    result = {}
    for key, value in mapping.items():
        value = _check_sparsity(value, f"sparsity[{key!r}]")
        hits = [t for t in targets if t.matches(key)]
        if not hits:
            raise _unmatched_error("sparsity", key, targets)
        for t in hits:
            result.setdefault(t.path, (value, key))
    return result


def pattern_misfits(targets, pattern):
    """{weight path: why `pattern` does not fit it} for the targets it does
    not fit (left dense by `sparsify`)."""
    pattern = patterns.parse(pattern)
    if not pattern.structured:
        return {}
    found = {}
    for t in targets:
        reason = t.misfit(pattern)
        if reason is not None:
            found[t.path] = reason
    return found


def _no_fit_error(pattern, misfits):
    shown = "; ".join(f"{p}: {r}" for p, r in list(misfits.items())[:8])
    return ValueError(
        f"Pattern {pattern.spec!r} fits none of the layers to sparsify "
        f"({shown}). Choose a pattern these layers accept (for N:M, an M "
        "that divides their input sizes), or 'unstructured'.")


def _layer_count(target, pattern, sparsity):
    """One layer's count at its own sparsity, rounded half up in units."""
    if not pattern.structured:
        return distributions.round_half_up((1.0 - sparsity) * target.size)
    layout = target.layout(pattern)
    if layout.keep is not None:
        units = layout.group_size if sparsity == 0.0 else layout.keep
    else:
        units = distributions.round_half_up((1.0 - sparsity) * layout.units)
    return layout.full_count(units)


def plan_counts(targets, sparsity, distribution="uniform", keep_dense=(),
                pattern="unstructured"):
    """Exact nonzero count for each target; `None` means "leave dense".

    A float `sparsity` is shared among the non-dense targets by
    `distribution`; a dict gives each matched layer its own sparsity (each
    layer rounded half up) and leaves unmatched layers dense. With a
    structured `pattern`, counts are whole groups (N of every M for N:M,
    whose only sparsities are 1 - N/M and 0), and layers the pattern does
    not fit are left dense (`pattern_misfits`).

    Example:

        counts = plan_counts(find_targets(model), 0.9, "erk")
        counts = plan_counts(find_targets(model), 0.5, pattern="2:4")
    """
    pattern = patterns.parse(pattern)
    dense = _select_dense(targets, keep_dense)
    misfits = pattern_misfits(targets, pattern)
    counts = {t.path: None for t in targets}
    if isinstance(sparsity, dict):
        if not sparsity:
            raise ValueError("sparsity mapping is empty.")
        per_layer = _per_layer_sparsity(targets, sparsity)
        named = [t for t in targets
                 if t.path in per_layer and t.path not in dense]
        for t in named:
            value, key = per_layer[t.path]
            pattern.check_sparsity(value, f"sparsity[{key!r}]")
            if t.path not in misfits:
                counts[t.path] = _layer_count(t, pattern, value)
        if named and all(t.path in misfits for t in named):
            raise _no_fit_error(pattern, misfits)
        return counts
    sparsity = _check_sparsity(sparsity, "sparsity")
    pattern.check_sparsity(sparsity)
    if distribution not in distributions.DISTRIBUTIONS:
        raise ValueError(
            f"Unknown distribution {distribution!r}; accepted: "
            f"{', '.join(distributions.DISTRIBUTIONS)}.")
    if (pattern.fixed_sparsity is not None and sparsity > 0
            and distribution != "uniform"):
        raise ValueError(
            f"Pattern {pattern.spec!r} fixes every layer's sparsity at "
            f"{pattern.fixed_sparsity:g}, so distribution={distribution!r} "
            "(different sparsities per layer) cannot be followed; use "
            "distribution='uniform'.")
    chosen = [t for t in targets if t.path not in dense]
    if not chosen:
        raise ValueError("keep_dense leaves no layer to sparsify.")
    fitting = [t for t in chosen if t.path not in misfits]
    if not fitting:
        raise _no_fit_error(pattern, misfits)
    shapes = [t.shape for t in fitting]
    if not pattern.structured:
        per_layer = distributions.layer_counts(shapes, 1.0 - sparsity,
                                               distribution)
    elif pattern.fixed_sparsity is not None:
        per_layer = [_layer_count(t, pattern, sparsity) for t in fitting]
    else:
        layouts = [t.layout(pattern) for t in fitting]
        units = distributions.layer_counts(
            shapes, 1.0 - sparsity, distribution,
            units=[layout.units for layout in layouts])
        per_layer = [layout.full_count(u) for layout, u in zip(layouts, units)]
    for t, n in zip(fitting, per_layer):
        counts[t.path] = n
    return counts


def _largest_layer_sparsity(units, decimals=4):
    """The largest sparsity on the grid at which `units` units rounded half
    up keep at least one."""
    scale = 10 ** decimals
    steps = int(np.floor((1.0 - 0.5 / units) * scale + 1e-9))
    while steps > 0 and distributions.round_half_up(
            (1.0 - steps / scale) * units) < 1:
        steps -= 1
    return steps / scale


def _check_emptied(targets, counts, sparsity, distribution, pattern, given):
    """Warns (some layers) or raises (every layer) when the plan leaves
    masked layers with no weight; names them and the sparsity that keeps
    at least one weight in each."""
    planned = [t for t in targets if counts[t.path] is not None]
    emptied = [t for t in planned
               if counts[t.path] == 0 and t.path not in given]
    if not emptied:
        return
    unit = "weight" if not pattern.structured else "group"
    names = ", ".join(t.path for t in emptied)
    if isinstance(sparsity, dict):
        per_layer = _per_layer_sparsity(targets, sparsity)
        fixes = []
        for t in emptied:
            units = (t.layout(pattern).units if pattern.structured
                     else t.size)
            key = per_layer[t.path][1]
            fixes.append(f"sparsity[{key!r}] <= "
                         f"{_largest_layer_sparsity(units)}")
        what = f"the per-layer sparsity {sparsity}"
        fix = "; ".join(fixes) + f" keeps at least one {unit} in each"
    else:
        units = None
        if pattern.structured:
            units = [t.layout(pattern).units for t in planned]
        best = distributions.max_sparsity_keeping_every_layer(
            [t.shape for t in planned], distribution, units)
        what = f"sparsity={sparsity} with distribution={distribution!r}"
        fix = (f"sparsity <= {best} keeps at least one {unit} in every "
               "layer")
    if pattern.structured:
        what += f" and pattern={pattern.spec!r}"
    message = (f"{what} leaves {len(emptied)} of {len(planned)} masked "
               f"layers with no {unit}: {names}. {fix}.")
    kept = any(counts[t.path] > 0 for t in planned if t.path not in given)
    if not kept and not any(np.count_nonzero(v) for v in given.values()):
        raise ValueError(message + " Every masked layer would be empty, "
                         "so the model would compute nothing from its input.")
    warnings.warn(message, EmptyLayerWarning, stacklevel=3)


def exact_count_mask(scores, count):
    """A 0/1 float32 array of `scores`' shape with 1 at the `count` largest.

    Ties go to the lower flat index (`tf_sparse.topk.numpy_select_top`), so
    the result is deterministic.

    >>> exact_count_mask(np.array([0.5, 0.9, 0.5, 0.1]), 2)
    array([1., 1., 0., 0.], dtype=float32)
    """
    keep = topk.numpy_select_top(scores, count)
    return keep.reshape(np.shape(scores)).astype(np.float32)


def initial_scores(target, mask_init, seed, index):
    """The scores a starting mask keeps the highest of: seeded uniform
    numbers ("random") or |w| ("magnitude")."""
    shape = tuple(target.variable.shape)
    if mask_init == "random":
        rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
        return rng.random(shape)
    if mask_init == "magnitude":
        return np.abs(keras.ops.convert_to_numpy(target.variable))
    raise ValueError(
        f"Unknown mask_init {mask_init!r}; accepted: "
        f"{', '.join(MASK_INITS)}.")


def initial_mask(target, count, mask_init, seed, index,
                 pattern="unstructured"):
    """The starting mask of one weight with exactly `count` ones, following
    `pattern` (random: uniformly random groups, or N random of every M;
    magnitude: the groups with the largest summed |w|)."""
    scores = initial_scores(target, mask_init, seed, index)
    pattern = patterns.parse(pattern)
    if not pattern.structured:
        return exact_count_mask(scores, count)
    return target.layout(pattern).exact_mask(scores, count)


def _check_given(given, by_path, pattern):
    """Checks every given mask (shape, 0/1, pattern) before anything is
    attached; returns them as NumPy arrays."""
    unknown = sorted(set(given) - set(by_path))
    if unknown:
        raise ValueError(
            f"masks given for unknown weights {unknown}; prunable weights: "
            f"{', '.join(list(by_path)[:20])}.")
    checked = {}
    for path, value in given.items():
        t = by_path[path]
        value = masking.check_mask(path, value, t.shape)
        if pattern.structured:
            reason = t.misfit(pattern)
            if reason is None:
                reason = t.layout(pattern).misfit(value)
            if reason is not None:
                raise ValueError(
                    f"masks[{path!r}] does not follow pattern "
                    f"{pattern.spec!r}: {reason}.")
        checked[path] = value
    return checked


def _attach_all(plan, pattern, rescale_weights):
    """Attaches every layer's masks; on any error, detaches the layers
    done and restores their weights and constraints, then re-raises."""
    done = []
    try:
        for layer, layer_masks in plan.items():
            saved = {}
            for name in layer_masks:
                variable = getattr(layer, name)
                saved[name] = (np.array(variable.numpy()),
                               variable.constraint)
            done.append((layer, saved))
            masking.attach_masks(layer, layer_masks,
                                 {name: pattern.spec for name in layer_masks})
            if rescale_weights:
                for name, mask in layer_masks.items():
                    density = float(np.mean(mask))
                    if density > 0:
                        variable = getattr(layer, name)
                        variable.assign(variable / np.sqrt(density))
    except BaseException:
        for layer, saved in reversed(done):
            if hasattr(layer, masking.ATTR):
                masking.detach_masks(layer)
            for name, (value, constraint) in saved.items():
                variable = getattr(layer, name)
                variable.constraint = constraint
                variable.assign(value)
        raise


def sparsify(model, sparsity=None, *, distribution="uniform", keep_dense=(),
             mask_init="random", masks=None, seed=0, rescale_weights=False,
             pattern="unstructured", compute="masked"):
    """Attaches exact-count masks to the prunable weights of a built model.

    The model is modified in place (like `keras.Model.quantize`) and returned.
    Pruned weights are set to 0 at once and kept at 0 by the optimizer after
    every step (see `tf_sparse.masking`). Call it inside
    `strategy.scope()` when training with tf.distribute. A call that raises
    leaves the model as it was.

    Args:
      model: a built Keras 3 model (or layer).
      sparsity: fraction of weights to remove, in [0, 1); or a dict from layer
        name, path or fnmatch pattern to that layer's sparsity (layers not
        named stay dense). With `pattern="N:M"` it may be omitted (it is
        1 - N/M, the only sparsity N:M has) or 0.0 (all-ones masks that
        record the pattern, the dense start of GMP / AC/DC).
      distribution: how a global sparsity is shared: "uniform", "er", "erk"
        (see `tf_sparse.distributions`). N:M takes only "uniform".
      keep_dense: layer names, paths or patterns to leave dense (unmasked).
      mask_init: "random" (exact count, uniformly placed, seeded) or
        "magnitude" (keep the largest |w|, for pruning a trained model).
      masks: optional dict from weight path (`"dense/kernel"`) to a 0/1 array;
        given masks are used as they are (e.g. a lottery ticket), and
        `sparsity` may then be omitted. They must follow `pattern`.
      seed: seed of the random masks. Same seed, same masks, bit for bit.
      rescale_weights: multiply each layer's kept weights by
        `1/sqrt(layer density)`, so that a layer's output variance at
        initialisation matches the dense initialiser's (the sparsity-aware
        init of Evci et al. 2022, "Gradient Flow in Sparse Neural Networks").
        Off by default, as in the reference implementations; without it a
        very sparse network starts with vanishing signal and learns slowly.
      pattern: "unstructured" (default), "N:M" (N kept of every M along the
        input axis), "block:RxC" or "channel" (see `tf_sparse.patterns`).
        Recorded on the masks (`MaskedWeight.pattern`), so GMP, AC/DC and
        `tfs.save_model` keep it. Layers it does not fit stay dense.
      compute: "masked" (default: dense weights and masks, dense kernels)
        or "sparse": Dense, 1x1 Conv2D and Embedding layers then hold only
        their nonzeros and compute with sparse kernels, forward and
        backward (`tf_sparse.sparse_compute`; TensorFlow backend, before
        the optimizer is built, unstructured masks). Other masked layers
        stay masked, with a warning.

    Returns:
      The same model, now sparse.
    """
    # Before the targets: a model computing sparse has no dense weights left.
    if masking.is_sparse(model) or sparse_convert.is_sparse_compute(model):
        raise ValueError(
            f"Model {model.name!r} is already sparse. Use "
            "tfs.unsparsify(model) first to change its masks.")
    targets = find_targets(model)
    if not targets:
        raise ValueError(
            f"Model {model.name!r} has no prunable weights. Prunable layer "
            "types: Dense, EinsumDense, Conv1D/2D/3D, ConvTranspose, "
            "DepthwiseConv, SeparableConv, Embedding, and layers declared with "
            "tfs.register_prunable.")
    if distribution not in distributions.DISTRIBUTIONS:
        raise ValueError(
            f"Unknown distribution {distribution!r}; accepted: "
            f"{', '.join(distributions.DISTRIBUTIONS)}.")
    if mask_init not in MASK_INITS:
        raise ValueError(
            f"Unknown mask_init {mask_init!r}; accepted: "
            f"{', '.join(MASK_INITS)}.")
    if compute not in COMPUTE:
        raise ValueError(
            f"Unknown compute {compute!r}; accepted: {', '.join(COMPUTE)}.")
    if compute == "sparse":
        backend.require_tensorflow(
            'sparsify(compute="sparse") (sparse kernels)',
            'Use compute="masked" (the default), which trains with masks on '
            "every backend.")
        sparse_convert.check_model_ready(model)
    pattern = patterns.parse(pattern)
    by_path = {t.path: t for t in targets}
    given = _check_given(dict(masks or {}), by_path, pattern)
    if sparsity is None and not given:
        if pattern.fixed_sparsity is None:
            raise ValueError("Pass a sparsity, or masks for the weights.")
        sparsity = pattern.fixed_sparsity
    if sparsity is None:
        counts = {t.path: None for t in targets}
    else:
        counts = plan_counts(targets, sparsity, distribution, keep_dense,
                             pattern)
        _warn_misfits(targets, given, keep_dense, sparsity, pattern)
        _check_emptied(targets, counts, sparsity, distribution, pattern,
                       given)
    plan = {}
    for index, t in enumerate(targets):
        if t.path in given:
            plan.setdefault(t.layer, {})[t.name] = given[t.path]
        elif counts[t.path] is not None:
            plan.setdefault(t.layer, {})[t.name] = initial_mask(
                t, counts[t.path], mask_init, seed, index, pattern)
    if pattern.kind == "channel":
        _tie_channels(model, targets, plan, given, counts, mask_init, seed)
    if compute == "sparse":
        sparse_convert.check_plan(
            {(layer, name) for layer, named in plan.items() for name in named},
            pattern.spec, model.name)
    _attach_all(plan, pattern, rescale_weights)
    if compute == "sparse":
        sparse_convert.to_sparse_compute(model)
    return model


def _tie_channels(model, targets, plan, given, counts, mask_init, seed):
    """pattern="channel": the starting channels are whole dependency
    groups (`channel_graph.tied_channel_masks`: scores summed over each
    group, tied layers of one width keep the same count); unchanged when
    no channels are tied."""
    chosen = [(i, t) for i, t in enumerate(targets)
              if t.path not in given and counts[t.path] is not None]
    if not chosen:
        return
    tied = channel_graph.tied_channel_masks(
        model, [(t, t.layout("channel")) for _, t in chosen],
        [initial_scores(t, mask_init, seed, i) for i, t in chosen], counts)
    if tied is None:
        return
    for _, t in chosen:
        plan[t.layer][t.name] = tied[t.path]


def _warn_misfits(targets, given, keep_dense, sparsity, pattern):
    if not pattern.structured:
        return
    dense = _select_dense(targets, keep_dense)
    asked = targets
    if isinstance(sparsity, dict):
        per_layer = _per_layer_sparsity(targets, sparsity)
        asked = [t for t in targets if t.path in per_layer]
    misfits = pattern_misfits(
        [t for t in asked if t.path not in dense and t.path not in given],
        pattern)
    if misfits:
        shown = "; ".join(f"{p} ({r})" for p, r in misfits.items())
        warnings.warn(
            f"Pattern {pattern.spec!r} does not fit {len(misfits)} layer(s), "
            f"left dense: {shown}. tfs.summary lists them.",
            PatternFitWarning, stacklevel=3)


def unsparsify(model):
    """Removes all masks from a model in place (the weights keep their zeros);
    layers computing sparse get their dense weight back.

    Returns the model.
    """
    sparse_convert.to_dense_compute(model)
    for _, layer in masking.iter_layers(model):
        masking.detach_masks(layer)
    return model
