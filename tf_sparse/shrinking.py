"""`shrink(model)`: a smaller plain Keras model without the pruned channels.

A channel is *pruned* when the masks remove its whole kernel slice: a
Conv/Dense/SeparableConv output channel whose kernel slice is all masked,
or a depthwise channel whose kernel slice is. `shrink` removes every
dependency group (`tf_sparse.channel_graph`) whose removal leaves the
predictions unchanged, and builds a new functional (or Sequential) model
from the original's config with smaller `filters`/`units` and the weights
sliced to the channels kept.

Biases: a masked channel still outputs its bias, and BatchNormalization or
an activation after it turns that into another constant. The readers of a
removed channel get that constant added to their own bias (a reader without
a bias gets one), which is exact for Dense layers and for convolutions that
see the whole kernel at every position (padding "valid" or a 1x1 kernel).
A pruned channel that carries a nonzero constant into a "same"-padded
convolution with a larger kernel, or that is tied (through an Add, a
Multiply, a depthwise layer) to a channel that is not pruned, or that
reaches a model output or a layer tf-sparse cannot shrink (Lambda, nested
models, custom layers, a Reshape that mixes channels) cannot be removed
exactly. `shrink` then raises `ShrinkError` naming the layer and why
(`strict=True`, the default), or keeps those channels and warns
(`strict=False`). `plan(model)` says what would be removed and kept
without building anything.

Channels that only their readers ignore (every reader's input slice masked)
are removed too when that is exact.

Example:

    groups = tfs.channel_graph.dependency_groups(model)
    chosen = [g for g in groups if not g.blocked][::2]
    tfs.sparsify(model, masks=tfs.channel_graph.group_masks(model, chosen))
    small = tfs.shrink(model, x[:16])     # checks predictions on x[:16]
    small.save("small.keras")
"""

import collections
import copy
import dataclasses
import warnings

import keras
import numpy as np

from tf_sparse import channel_constants
from tf_sparse import channel_graph
from tf_sparse import masking

WEIGHT_NAMES = ("kernel", "bias", "depthwise_kernel", "pointwise_kernel",
                "gamma", "beta", "moving_mean", "moving_variance", "alpha",
                "embeddings")
SIZE_KEYS = {"conv": "filters", "transpose": "filters",
             "separable": "filters", "dense": "units",
             "embedding": "output_dim"}
OUT_WEIGHTS = {"conv": "kernel", "transpose": "kernel", "dense": "kernel",
               "separable": "pointwise_kernel", "embedding": "embeddings"}
ATOL, RTOL = 1e-6, 1e-4


class ShrinkError(ValueError):
    """A model, or some of its pruned channels, cannot be shrunk."""


class ShrinkMismatchError(ShrinkError):
    """The shrunk model's predictions differ from the masked model's."""


@dataclasses.dataclass(frozen=True)
class KeptGroup:
    """A pruned dependency group that stays in the model, and why."""
    group: channel_graph.ChannelGroup
    reason: str

    def describe(self):
        return f"{describe(self.group)}: {self.reason}"


@dataclasses.dataclass(frozen=True)
class ShrinkPlan:
    """What `shrink` removes from a masked model.

    Attributes:
      groups: every `ChannelGroup` of the model.
      removed: indices of the groups removed.
      kept: `KeptGroup`s: pruned groups that cannot be removed exactly.
      channels: creator layer name -> (channels before, channels after),
        for the layers that lose channels.
      bias_shifts: layer name -> float64 array (one per original output
        channel) added to its bias to absorb removed constant channels;
        only layers with a nonzero shift.
    """
    groups: tuple
    removed: frozenset
    kept: tuple
    channels: dict
    bias_shifts: dict
    graph: channel_graph.ChannelGraph = dataclasses.field(repr=False,
                                                          compare=False)
    weights: dict = dataclasses.field(repr=False, compare=False)

    def format(self, limit=20):
        """The plan as text: channels per layer, then kept groups."""
        lines = [f"shrink: removes {len(self.removed)} of {len(self.groups)} "
                 f"channel groups; {len(self.kept)} pruned groups kept"]
        for name, (before, after) in self.channels.items():
            lines.append(f"  {name}: {before} -> {after} channels")
        if self.bias_shifts:
            lines.append("  biases absorbing removed constants: "
                         + ", ".join(self.bias_shifts))
        for kept in self.kept[:limit]:
            lines.append(f"  kept {kept.describe()}")
        if len(self.kept) > limit:
            lines.append(f"  ... and {len(self.kept) - limit} more kept")
        return "\n".join(lines)


def describe(group):
    """"channel 3 of 'conv1'" for a group, named by its first creator."""
    member = (group.creators or group.members)[0]
    where = member.indices[0] if len(member.indices) == 1 else list(
        member.indices)
    return f"channel {where} of '{member.layer}'"


def _slice_all_masked(mask, axis, positions):
    """For each position along `axis`, True if the whole slice is masked."""
    other = tuple(a for a in range(mask.ndim) if a != axis)
    empty = ~(mask != 0).any(axis=other) if other else mask == 0
    return empty[np.asarray(positions, dtype=np.int64)]


def _weights_and_masks(model, graph):
    masks = {id(mw.variable): mw for mw in masking.masked_weights(model)}
    weights, layer_masks = {}, {}
    for name, op in graph.operations.items():
        if not isinstance(op, keras.layers.Layer):
            continue
        for attr in WEIGHT_NAMES:
            variable = getattr(op, attr, None)
            if not isinstance(variable, keras.Variable):
                continue
            mw = masks.get(id(variable))
            value = variable if mw is None else masking.keep_active(
                variable, mw.mask)
            weights[(name, attr)] = np.asarray(
                keras.ops.convert_to_numpy(value))
            if mw is not None:
                layer_masks[(name, attr)] = np.asarray(
                    keras.ops.convert_to_numpy(mw.mask))
    return weights, layer_masks


def _candidates(graph, masks):
    """(pruned roots, candidate roots): groups with a fully masked creator
    or depthwise slice, and those plus groups with a masked reader slice."""
    pruned, candidates = set(), set()
    for axis in graph.axes:
        mask = masks.get((axis.layer, axis.weight))
        if mask is None:
            continue
        empty = _slice_all_masked(mask, axis.axis, np.arange(len(axis.ids)))
        if axis.role == "in":
            # A Flatten repeats a channel over rows: all of them must go.
            roots = graph.roots(axis.ids)
            full = {int(r) for r in np.unique(roots[empty])}
            full -= {int(r) for r in np.unique(roots[~empty])}
            candidates |= full
            continue
        roots = {int(r) for r in np.unique(graph.roots(axis.ids[empty]))}
        pruned |= roots
        candidates |= roots
    return pruned, candidates


def _unmasked_creator(group, masks):
    for member in group.creators:
        mask = masks.get((member.layer, member.weight))
        if mask is None or not _slice_all_masked(
                mask, member.axis, member.indices).all():
            return member
    return None


def _failure_reason(group, failure, masks, values, calls_per_layer):
    edge, row = failure
    member = _unmasked_creator(group, masks)
    if member is not None:
        return (f"its group also holds output channel {member.indices[0]} of "
                f"'{member.layer}', which is not masked out (channels tied "
                "by an Add, a Multiply or a depthwise layer are removed "
                "together; mask whole dependency groups)")
    op = edge.call.op
    value = values[edge.tensor][row]
    if np.isnan(value):
        return (f"the values it passes to '{edge.call.name}' change with the "
                "input or the position (zero padding or a 'same'-padded "
                "kernel turns its constant into a pattern)")
    if calls_per_layer[edge.call.name] > 1:
        return (f"it carries the constant {value:.4g} into "
                f"'{edge.call.name}', which is called "
                f"{calls_per_layer[edge.call.name]} times, so one bias "
                "cannot absorb it")
    kernel = tuple(getattr(op, "kernel_size", ()))
    why = ("spreads a constant unevenly over its output positions"
           if edge.call.kind == "transpose" else
           "cannot absorb a constant exactly at the borders")
    return (f"it carries the constant {value:.4g} (a masked channel's bias, "
            f"after any normalisation and activation) into '{edge.call.name}' "
            f"({type(op).__name__}, kernel {kernel}, padding "
            f"'{getattr(op, 'padding', '?')}'), which {why}")


def plan(model):
    """The `ShrinkPlan` of a masked functional or Sequential model.

    Raises ShrinkError when the model has no masks, no masked-out channel,
    or is not a functional or Sequential model.
    """
    if not masking.is_sparse(model):
        raise ShrinkError(
            f"Model {model.name!r} has no masks, so no channel is pruned. "
            "shrink removes channels whose whole kernel slice is masked out: "
            "mask channels first, e.g. tfs.sparsify(model, masks="
            "tfs.channel_graph.group_masks(model, groups)).")
    try:
        graph = channel_graph.ChannelGraph(model)
    except channel_graph.ChannelGraphError as error:
        raise ShrinkError(str(error)) from error
    weights, masks = _weights_and_masks(model, graph)
    pruned, candidates = _candidates(graph, masks)
    if not pruned:
        raise ShrinkError(
            f"Model {model.name!r} has masks but no channel masks: no "
            "output channel of a Conv/Dense/SeparableConv layer and no "
            "depthwise channel has its whole kernel slice masked out, so "
            "there is no channel to remove (unstructured masks zero single "
            "weights; shrink removes whole channels).")
    values = channel_constants.constants(graph, weights)
    calls_per_layer = collections.Counter(c.name for c in graph.calls)
    failures, effects = {}, []
    for edge in graph.edges:
        effect = channel_constants.EdgeEffect(
            edge, values[edge.tensor], weights,
            shared=calls_per_layer[edge.call.name] > 1)
        roots = graph.roots(graph.ids[edge.tensor])
        effects.append((edge, effect, roots))
        for row in np.flatnonzero(~effect.exact):
            failures.setdefault(int(roots[row]), (edge, int(row)))
    blocked = graph.blocked_reasons()
    removed_roots = {r for r in candidates
                     if r not in blocked and r not in failures}
    groups = graph.groups()
    by_root = {g.element: g for g in groups}
    kept = []
    for root in sorted(pruned - removed_roots):
        group = by_root[root]
        if root in blocked:
            reason = f"it cannot be removed: {blocked[root]}"
        else:
            reason = _failure_reason(group, failures[root], masks, values,
                                     calls_per_layer)
        kept.append(KeptGroup(group, reason))
    shifts = _bias_shifts(effects, removed_roots)
    removed = frozenset(by_root[r].index for r in removed_roots)
    return ShrinkPlan(groups=tuple(groups), removed=removed,
                      kept=tuple(kept), channels=_channels(graph,
                                                           removed_roots),
                      bias_shifts=shifts, graph=graph, weights=weights)


def _bias_shifts(effects, removed_roots):
    removed = np.array(sorted(removed_roots), dtype=np.int64)
    shifts = {}
    for edge, effect, roots in effects:
        rows = np.flatnonzero(np.isin(roots, removed))
        if not len(rows):
            continue
        shift = effect.shift(rows)
        if np.any(shift != 0):
            name = edge.call.name
            shifts[name] = shifts.get(name, 0.0) + shift
    return shifts


def _kept_positions(graph, removed_roots):
    removed = np.array(sorted(removed_roots), dtype=np.int64)
    keep = {}
    for axis in graph.axes:
        roots = graph.roots(axis.ids)
        keep[(axis.layer, axis.weight, axis.axis)] = np.flatnonzero(
            ~np.isin(roots, removed))
    return keep


def _channels(graph, removed_roots):
    keep = _kept_positions(graph, removed_roots)
    result = {}
    for call in graph.calls:
        if call.kind not in OUT_WEIGHTS or call.index:
            continue
        variable = getattr(call.op, OUT_WEIGHTS[call.kind])
        axis = len(variable.shape) - (2 if call.kind == "transpose" else 1)
        before = int(variable.shape[axis])
        after = len(keep[(call.name, OUT_WEIGHTS[call.kind], axis)])
        if after != before:
            result[call.name] = (before, after)
    return result


def _config_edits(shrink_plan, removed_roots):
    """Layer name -> {config key: new value}."""
    graph = shrink_plan.graph
    removed = np.array(sorted(removed_roots), dtype=np.int64)

    def kept_count(key):
        return int(np.count_nonzero(~np.isin(graph.roots(graph.ids[key]),
                                             removed)))

    edits = collections.defaultdict(dict)
    for name, (_, after) in shrink_plan.channels.items():
        call = next(c for c in graph.calls if c.name == name)
        edits[name][SIZE_KEYS[call.kind]] = after
    for name in shrink_plan.bias_shifts:
        if getattr(graph.operations[name], "bias", None) is None:
            edits[name]["use_bias"] = True
    for call in graph.calls:
        op = call.op
        if isinstance(op, keras.layers.Reshape) and call.kind == "flatten":
            target = list(op.target_shape)
            target[-1] = kept_count(call.outputs[0])
            if target[-1] != op.target_shape[-1]:
                edits[call.name]["target_shape"] = tuple(target)
        noise = getattr(op, "noise_shape", None)
        if noise is not None and call.inputs and noise[-1] not in (None, 1):
            count = kept_count(call.inputs[0])
            if count != noise[-1]:
                edits[call.name]["noise_shape"] = tuple(noise[:-1]) + (count,)
    return edits


def _rebuild(model, edits):
    """The model rebuilt from its config with `edits`; layers are built by
    their first call (their recorded build shapes are the old ones)."""
    config = copy.deepcopy(model.get_config())
    for entry in config["layers"]:
        name = entry.get("name", entry["config"].get("name"))
        entry["config"].update(edits.get(name, {}))
        if entry["class_name"] != "InputLayer":
            entry.pop("build_config", None)
    if isinstance(model, keras.Sequential):
        return keras.Sequential.from_config(config)
    return keras.Model.from_config(config)


def _attributes(layer):
    return {id(getattr(layer, a)): a for a in WEIGHT_NAMES
            if isinstance(getattr(layer, a, None), keras.Variable)}


def _set_weights(shrunk, shrink_plan, removed_roots):
    graph = shrink_plan.graph
    keep = _kept_positions(graph, removed_roots)
    axes = collections.defaultdict(list)
    for (layer, weight, axis) in keep:
        axes[(layer, weight)].append(axis)
    outputs = {axis.layer: (axis.layer, axis.weight, axis.axis)
               for axis in graph.axes if axis.role == "out"}
    masked = {id(mw.variable): mw.mask
              for mw in masking.masked_weights(shrink_plan.graph.model)}
    for name, op in graph.operations.items():
        if not isinstance(op, keras.layers.Layer) or not op.weights:
            continue
        new = shrunk.get_layer(name)
        old_attrs = {a: i for i, a in enumerate(
            _attributes(op).get(id(v)) for v in op.weights)}
        values = []
        for index, variable in enumerate(new.weights):
            attr = _attributes(new).get(id(variable))
            if attr is None or attr not in old_attrs:
                if attr == "bias":
                    value = np.zeros(tuple(variable.shape))
                else:
                    old = op.weights[index]
                    value = old if id(old) not in masked else (
                        masking.keep_active(old, masked[id(old)]))
                    value = keras.ops.convert_to_numpy(value)
            else:
                value = shrink_plan.weights[(name, attr)]
                for axis in axes.get((name, attr), ()):
                    value = np.take(value, keep[(name, attr, axis)],
                                    axis=axis)
            if attr == "bias" and name in shrink_plan.bias_shifts:
                value = np.asarray(value, np.float64) + (
                    shrink_plan.bias_shifts[name][keep[outputs[name]]])
            values.append(np.asarray(value).astype(
                keras.backend.standardize_dtype(variable.dtype)))
        new.set_weights(values)


def _compare(model, shrunk, x, atol, rtol):
    expected = keras.tree.flatten(model(x, training=False))
    actual = keras.tree.flatten(shrunk(x, training=False))
    for index, (e, a) in enumerate(zip(expected, actual)):
        e = np.asarray(keras.ops.convert_to_numpy(e), np.float64)
        a = np.asarray(keras.ops.convert_to_numpy(a), np.float64)
        if a.shape != e.shape:
            raise ShrinkMismatchError(
                f"Output {index} of the shrunk model has shape {a.shape}, the "
                f"masked model's {e.shape}.")
        diff = np.abs(a - e)
        scale = float(np.abs(e).max()) if e.size else 0.0
        if not np.all(diff <= atol + rtol * scale):
            raise ShrinkMismatchError(
                f"Output {index} of the shrunk model differs from the masked "
                f"model's by up to {float(diff.max()):.3g} (tolerance "
                f"{atol:g} + {rtol:g} * {scale:.3g}, the largest |output|).")


def shrink(model, x=None, *, strict=True, atol=ATOL, rtol=RTOL):
    """A new plain Keras model without the masked-out channels.

    Args:
      model: a masked functional or Sequential Keras model (see the module
        docstring for what counts as a pruned channel).
      x: optional inputs; when given, the shrunk model's predictions on `x`
        are compared with the masked model's, and `ShrinkMismatchError` is
        raised if any differs by more than `atol + rtol * max|masked|` (the
        largest output magnitude: float32 sums in another order differ by
        a fraction of the values summed, not of each result).
      strict: raise `ShrinkError` if a pruned channel cannot be removed
        exactly (naming it, the layer and why); with False, keep such
        channels and warn.
      atol, rtol: tolerances of the check on `x`.

    Returns:
      A new model (same layer names, no masks) with fewer channels. Weights
      that were masked inside the kept channels stay zero.

    Example:

        small = tfs.shrink(model, x_test[:32])
        print(model.count_params(), "->", small.count_params())
    """
    shrink_plan = plan(model)
    if shrink_plan.kept:
        shown = "\n  ".join(k.describe() for k in shrink_plan.kept[:10])
        more = (f"\n  ... and {len(shrink_plan.kept) - 10} more"
                if len(shrink_plan.kept) > 10 else "")
        message = (f"{len(shrink_plan.kept)} pruned channel groups of "
                   f"{model.name!r} cannot be removed exactly:\n  {shown}"
                   f"{more}")
        if strict:
            raise ShrinkError(message + "\nPass strict=False to keep them.")
        warnings.warn(message + "\nThey are kept.", stacklevel=2)
    removed_roots = {g.element for g in shrink_plan.groups
                     if g.index in shrink_plan.removed}
    edits = _config_edits(shrink_plan, removed_roots)
    try:
        shrunk = _rebuild(model, edits)
    except Exception as error:  # Keras raises many types from from_config.
        raise ShrinkError(
            f"Rebuilding {model.name!r} with fewer channels failed "
            f"({type(error).__name__}: {str(error)[:300]}).") from error
    _set_weights(shrunk, shrink_plan, removed_roots)
    if x is not None:
        _compare(model, shrunk, x, atol, rtol)
    return shrunk
