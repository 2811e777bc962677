"""`sparsify`: one call that turns a built Keras 3 model into a sparse one.

Works on Sequential, functional, subclassed and nested models, and on layers
inside composite layers (the projections of `MultiHeadAttention`), because it
attaches masks to the layers in place instead of rebuilding the model. The
model keeps its class, its layer names, its weights list and its `fit`.

Example:

    model = keras.Sequential([keras.Input((784,)),
                              keras.layers.Dense(300, activation="relu"),
                              keras.layers.Dense(10)])
    model = tfs.sparsify(model, sparsity=0.95, distribution="erk",
                         keep_dense=["dense_1"], seed=1)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
"""

import dataclasses
import fnmatch
import numbers

import keras
import numpy as np

from tf_sparse import distributions
from tf_sparse import masking
from tf_sparse import registry
from tf_sparse import topk

MASK_INITS = ("random", "magnitude")


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
    def size(self):
        return int(np.prod(self.variable.shape))

    def matches(self, key):
        """True if `key` names this weight: layer name, layer path or weight
        path, exactly or as an fnmatch pattern (`*`, `?`, `[...]`)."""
        names = (self.layer.name, self.layer_path, self.path)
        return key in names or any(fnmatch.fnmatchcase(n, key) for n in names)


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
    """Resolves a {name or pattern: sparsity} mapping; the first key wins."""
    result = {}
    for key, value in mapping.items():
        value = _check_sparsity(value, f"sparsity[{key!r}]")
        hits = [t for t in targets if t.matches(key)]
        if not hits:
            raise _unmatched_error("sparsity", key, targets)
        for t in hits:
            result.setdefault(t.path, value)
    return result


def plan_counts(targets, sparsity, distribution="uniform", keep_dense=()):
    """Exact nonzero count for each target; `None` means "leave dense".

    A float `sparsity` is shared among the non-dense targets by
    `distribution`; a dict gives each matched layer its own sparsity (each
    layer rounded half up) and leaves unmatched layers dense.
    """
    dense = _select_dense(targets, keep_dense)
    counts = {t.path: None for t in targets}
    if isinstance(sparsity, dict):
        if not sparsity:
            raise ValueError("sparsity mapping is empty.")
        per_layer = _per_layer_sparsity(targets, sparsity)
        for t in targets:
            if t.path in per_layer and t.path not in dense:
                counts[t.path] = distributions.round_half_up(
                    (1.0 - per_layer[t.path]) * t.size)
        return counts
    sparsity = _check_sparsity(sparsity, "sparsity")
    chosen = [t for t in targets if t.path not in dense]
    if not chosen:
        raise ValueError("keep_dense leaves no layer to sparsify.")
    per_layer = distributions.layer_counts(
        [tuple(t.variable.shape) for t in chosen], 1.0 - sparsity,
        distribution)
    for t, n in zip(chosen, per_layer):
        counts[t.path] = n
    return counts


def exact_count_mask(scores, count):
    """A 0/1 float32 array of `scores`' shape with 1 at the `count` largest.

    Ties go to the lower flat index (`tf_sparse.topk.numpy_select_top`), so
    the result is deterministic.

    >>> exact_count_mask(np.array([0.5, 0.9, 0.5, 0.1]), 2)
    array([1., 1., 0., 0.], dtype=float32)
    """
    keep = topk.numpy_select_top(scores, count)
    return keep.reshape(np.shape(scores)).astype(np.float32)


def initial_mask(target, count, mask_init, seed, index):
    """The starting mask of one weight with exactly `count` ones."""
    shape = tuple(target.variable.shape)
    if mask_init == "random":
        rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
        return exact_count_mask(rng.random(shape), count)
    if mask_init == "magnitude":
        weights = keras.ops.convert_to_numpy(target.variable)
        return exact_count_mask(np.abs(weights), count)
    raise ValueError(
        f"Unknown mask_init {mask_init!r}; accepted: {', '.join(MASK_INITS)}.")


def sparsify(model, sparsity=None, *, distribution="uniform", keep_dense=(),
             mask_init="random", masks=None, seed=0, rescale_weights=False):
    """Attaches exact-count masks to the prunable weights of a built model.

    The model is modified in place (like `keras.Model.quantize`) and returned.
    Pruned weights are set to 0 at once and kept at 0 by the optimizer after
    every step (see `tf_sparse.masking`). Call it inside
    `strategy.scope()` when training with tf.distribute.

    Args:
      model: a built Keras 3 model (or layer).
      sparsity: fraction of weights to remove, in [0, 1); or a dict from layer
        name, path or fnmatch pattern to that layer's sparsity (layers not
        named stay dense).
      distribution: how a global sparsity is shared: "uniform", "er", "erk"
        (see `tf_sparse.distributions`).
      keep_dense: layer names, paths or patterns to leave dense (unmasked).
      mask_init: "random" (exact count, uniformly placed, seeded) or
        "magnitude" (keep the largest |w|, for pruning a trained model).
      masks: optional dict from weight path (`"dense/kernel"`) to a 0/1 array;
        given masks are used as they are (e.g. a lottery ticket), and
        `sparsity` may then be omitted.
      seed: seed of the random masks. Same seed, same masks, bit for bit.
      rescale_weights: multiply each layer's kept weights by
        `1/sqrt(layer density)`, so that a layer's output variance at
        initialisation matches the dense initialiser's (the sparsity-aware
        init of Evci et al. 2022, "Gradient Flow in Sparse Neural Networks").
        Off by default, as in the reference implementations; without it a
        very sparse network starts with vanishing signal and learns slowly.

    Returns:
      The same model, now sparse.
    """
    targets = find_targets(model)
    if not targets:
        raise ValueError(
            f"Model {model.name!r} has no prunable weights. Prunable layer "
            "types: Dense, EinsumDense, Conv1D/2D/3D, ConvTranspose, "
            "DepthwiseConv, SeparableConv, Embedding, and layers declared with "
            "tfs.register_prunable.")
    if masking.is_sparse(model):
        raise ValueError(
            f"Model {model.name!r} is already sparse. Use "
            "tfs.unsparsify(model) first to change its masks.")
    if distribution not in distributions.DISTRIBUTIONS:
        raise ValueError(
            f"Unknown distribution {distribution!r}; accepted: "
            f"{', '.join(distributions.DISTRIBUTIONS)}.")
    if mask_init not in MASK_INITS:
        raise ValueError(
            f"Unknown mask_init {mask_init!r}; accepted: "
            f"{', '.join(MASK_INITS)}.")
    given = dict(masks or {})
    by_path = {t.path: t for t in targets}
    unknown = sorted(set(given) - set(by_path))
    if unknown:
        raise ValueError(
            f"masks given for unknown weights {unknown}; prunable weights: "
            f"{', '.join(list(by_path)[:20])}.")
    if sparsity is None:
        if not given:
            raise ValueError("Pass a sparsity, or masks for the weights.")
        counts = {t.path: None for t in targets}
    else:
        counts = plan_counts(targets, sparsity, distribution, keep_dense)
    plan = {}
    for index, t in enumerate(targets):
        if t.path in given:
            plan.setdefault(t.layer, {})[t.name] = np.asarray(given[t.path])
        elif counts[t.path] is not None:
            plan.setdefault(t.layer, {})[t.name] = initial_mask(
                t, counts[t.path], mask_init, seed, index)
    for layer, layer_masks in plan.items():
        masking.attach_masks(layer, layer_masks)
        if rescale_weights:
            for name, mask in layer_masks.items():
                density = float(np.mean(mask))
                if density > 0:
                    variable = getattr(layer, name)
                    variable.assign(variable / np.sqrt(density))
    return model


def unsparsify(model):
    """Removes all masks from a model in place (the weights keep their zeros).

    Returns the model.
    """
    for _, layer in masking.iter_layers(model):
        masking.detach_masks(layer)
    return model
