"""SNIP (Lee et al. 2019, "SNIP: Single-shot Network Pruning based on
Connection Sensitivity"): prune once, at initialisation, then train static.

The connection sensitivity of weight j is `|g_j * w_j|` (the paper's
`|dL/dc_j|` at `c = 1`), computed on one batch with the dense initial
weights. The `B` weights with the highest sensitivity over all prunable
layers together are kept (global ranking; `B = floor(density * total +
0.5)`, the same budget `sparsify` uses), exactly, ties to the lower index in
model order. Normalising by the sum of sensitivities (as the paper writes
it) does not change the ranking and is left out.

With a structured pattern (`tf_sparse.patterns`) a group's sensitivity is
the sum of its weights': blocks are ranked globally (one budget of
`floor(density * blocks + 0.5)` blocks), N:M keeps the N most sensitive of
every group, and groups whose sizes differ between layers (channels of
layers with different fan-in) are ranked within each layer at the layer's
planned count (uniform), since a global ranking of groups of different
sizes has no exact weight count.

Use `snip_masks` on a dense model, then `sparsify(model, masks=...)`;
`tools/train.py` does this when `config.algorithm = "snip"` (one batch of
`algorithm_params.snip_batch_size`, default the training batch size, from
the first training batch of the run). After pruning, SNIP trains like
static sparse: the `SNIP` algorithm never updates masks.

Example:

    masks = snip_masks(model, (x[:100], y[:100]), loss, sparsity=0.95)
    tfs.sparsify(model, masks=masks)
    # or in one call:
    sparsify_with_snip(model, (x[:100], y[:100]), loss, sparsity=0.95)
"""

import keras
import numpy as np

from tf_sparse import backend
from tf_sparse import channel_graph
from tf_sparse import patterns
from tf_sparse import sparsification
from tf_sparse import topk
from tf_sparse.algorithms import static


def sensitivities(model, data, loss):
    """`|g * w|` for every prunable weight of `model` on one batch.

    Args:
      model: a built, dense (not yet sparsified) Keras model.
      data: `(x, y)` or `(x, y, sample_weight)`.
      loss: a Keras loss (or callable `loss(y_true, y_pred)`).

    Returns:
      (targets, list of NumPy arrays of the weights' shapes).

    The forward pass runs in training mode; non-trainable state that it
    changes (batch-norm statistics) is restored afterwards.
    """
    targets = sparsification.find_targets(model)
    variables = [t.variable for t in targets]
    # The backend's own autodiff (TensorFlow, JAX or PyTorch); batch-norm
    # statistics the forward pass changes are restored.
    grads = backend.gradients(model, variables, data, loss, training=True)
    scores = []
    for g, v in zip(grads, variables):
        w = keras.ops.convert_to_numpy(v)
        scores.append(np.abs(g * w))
    return targets, scores


def snip_masks(model, data, loss, sparsity, *, keep_dense=(),
               pattern="unstructured"):
    """Masks keeping the globally most sensitive weights, exact count.

    Args:
      model: a built dense Keras model (its current weights are the init).
      data: one batch `(x, y)`.
      loss: the training loss.
      sparsity: float in [0, 1): fraction of the prunable weights (outside
        `keep_dense`) to remove (for "N:M", 1 - N/M).
      keep_dense: layer names/paths/patterns left dense (no mask returned).
      pattern: a `tf_sparse.patterns` spec; layers it does not fit get no
        mask (they stay dense). Pass the same pattern to `sparsify`.

    Returns:
      dict weight path -> 0/1 float32 array, for `sparsify(masks=...)`.
    """
    targets, scores = sensitivities(model, data, loss)
    pattern = patterns.parse(pattern)
    counts = sparsification.plan_counts(targets, sparsity, "uniform",
                                        keep_dense, pattern)
    chosen = [i for i, t in enumerate(targets) if counts[t.path] is not None]
    if pattern.kind == "channel":
        # Whole dependency groups by their summed sensitivity.
        tied = channel_graph.tied_channel_masks(
            model, [(targets[i], targets[i].layout(pattern)) for i in chosen],
            [scores[i] for i in chosen], counts)
        if tied is not None:
            return tied
    if pattern.structured:
        return _structured_snip_masks(targets, scores, counts, chosen,
                                      pattern)
    budget = sum(counts[targets[i].path] for i in chosen)
    flat = np.concatenate([scores[i].reshape(-1) for i in chosen])
    keep = topk.numpy_select_top(flat, budget).astype(np.float32)
    masks = {}
    offset = 0
    for i in chosen:
        size = scores[i].size
        masks[targets[i].path] = keep[offset:offset + size].reshape(
            scores[i].shape)
        offset += size
    return masks


def _structured_snip_masks(targets, scores, counts, chosen, pattern):
    layouts = {i: targets[i].layout(pattern) for i in chosen}
    sizes = {layouts[i].group_size for i in chosen}
    if pattern.fixed_sparsity is not None or len(sizes) > 1:
        # N:M groups, or channels of different sizes: within each layer.
        return {targets[i].path: layouts[i].exact_mask(
                    scores[i], counts[targets[i].path]) for i in chosen}
    groups = [layouts[i].num_groups for i in chosen]
    budget = sum(counts[targets[i].path] for i in chosen) // sizes.pop()
    sums = np.concatenate([layouts[i].numpy_group_sums(scores[i])
                           for i in chosen])
    keep = topk.numpy_select_top(sums, budget)
    pieces = np.split(keep, np.cumsum(groups)[:-1])
    return {targets[i].path: layouts[i].groups_mask(piece)
            for i, piece in zip(chosen, pieces)}


def sparsify_with_snip(model, data, loss, sparsity, *, keep_dense=(),
                       rescale_weights=False, pattern="unstructured"):
    """Sparsifies a dense `model` in place with SNIP masks; returns it."""
    masks = snip_masks(model, data, loss, sparsity, keep_dense=keep_dense,
                       pattern=pattern)
    return sparsification.sparsify(model, masks=masks,
                                   rescale_weights=rescale_weights,
                                   pattern=pattern)


class SNIP(static.Static):
    """Static training after a one-shot SNIP mask (see `snip_masks`).

    Args:
      batch_size: examples in the batch the sensitivities are computed on
        (None: the training batch size).
    """

    name = "snip"
    prunes_at_init = True

    def __init__(self, batch_size=None):
        super().__init__()
        if batch_size is not None and (
                isinstance(batch_size, bool) or not isinstance(batch_size, int)
                or batch_size < 1):
            raise ValueError(
                f"SNIP: batch_size={batch_size!r} must be an int >= 1 (or "
                "None for the training batch size).")
        self.batch_size = batch_size

    @classmethod
    def from_params(cls, params, *, steps_per_epoch, total_steps, seed=0):
        """From config parameters: only `snip_batch_size` is used."""
        del steps_per_epoch, total_steps, seed
        params = {k: v for k, v in dict(params or {}).items()
                  if v is not None}
        unused = sorted(set(params) - {"snip_batch_size"})
        if unused:
            raise ValueError(
                f"algorithm_params {', '.join(unused)} not used by 'snip'; "
                "it takes: snip_batch_size.")
        return cls(batch_size=params.get("snip_batch_size"))

    def initial_masks(self, model, data, loss, sparsity, keep_dense=(),
                      pattern="unstructured"):
        """`snip_masks` for `model` (dense) on the batch `data`."""
        return snip_masks(model, data, loss, sparsity, keep_dense=keep_dense,
                          pattern=pattern)

    def get_config(self):
        return {"name": self.name, "batch_size": self.batch_size}
