"""Which channels of a Keras model must be removed together.

Removing output channel 5 of a convolution also removes input channel 5 of
every layer that reads it, the 5th weights of the BatchNormalization after
it, and, when the channel enters an `Add`, channel 5 of every other input of
that `Add` (an element-wise op needs equal channel counts). Channels tied
this way form a *dependency group*: they are removed together or not at all.
This is the idea of DepGraph (Fang et al. 2023, "DepGraph: Towards Any
Structural Pruning", the Torch-Pruning library), worked out here for Keras 3
functional models from their public config (`model.get_config()`'s
`inbound_nodes`); the code is our own.

How channels flow, by layer type (channels last):

| layer | channels out |
|---|---|
| Conv, Dense, SeparableConv, ConvTranspose, Embedding | new channels (the layer *creates* them); its input channels are *read* by its kernel |
| DepthwiseConv | the input's channels (input channel c makes outputs c*m .. c*m+m-1) |
| BatchNormalization, PReLU | the input's, with per-channel weights |
| activations, Dropout family, Rescaling (scalar), pooling, global pooling, padding, cropping, upsampling | the input's |
| Add, Subtract, Multiply, Maximum, Minimum, Average (layers or `keras.ops`) | the inputs', tied position by position; an input with one channel that is broadcast over the others blocks its own channel |
| Concatenate (last axis) | the inputs' side by side; on another axis, the inputs' tied |
| Flatten, Reshape keeping channels innermost | the input's, repeated once per spatial position |
| anything else (Lambda, nested models, LayerNormalization, attention, custom layers) | new channels; the channels it reads and makes are *blocked* |

A group is *blocked* (it can never be removed) when it holds a model input
or output, or passes through a layer of the last row; `ChannelGroup.blocked`
says which layer and why.

Example:

    groups = tfs.channel_graph.dependency_groups(model)
    for g in groups[:3]:
        print(g.index, g.blocked, [(m.layer, m.weight, m.indices) for m in
                                   g.members])
    masks = tfs.channel_graph.group_masks(model, [g for g in groups
                                                  if not g.blocked][:10])
    tfs.sparsify(model, masks=masks)      # those 10 channels masked out
"""

import dataclasses

import keras
import numpy as np

from tf_sparse import masking
from tf_sparse import registry
from tf_sparse import topk

ROLES = ("out", "in", "channel")

_OPS_MODULE = "keras.src.ops.numpy"
_MERGE_OPS = {"Add": "add", "Subtract": "subtract", "Multiply": "multiply",
              "Maximum": "maximum", "Minimum": "minimum"}
_MERGE_LAYERS = (
    (keras.layers.Add, "add"), (keras.layers.Subtract, "subtract"),
    (keras.layers.Multiply, "multiply"), (keras.layers.Maximum, "maximum"),
    (keras.layers.Minimum, "minimum"), (keras.layers.Average, "average"))
_DEPTHWISE = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
_SEPARABLE = (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)
_TRANSPOSE = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
              keras.layers.Conv3DTranspose)
_CONV = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
_IDENTITY = (keras.layers.Dropout, keras.layers.GaussianNoise,
             keras.layers.GaussianDropout, keras.layers.AlphaDropout,
             keras.layers.ActivityRegularization, keras.layers.Identity)
_ELEMENTWISE = (keras.layers.Activation, keras.layers.ReLU,
                keras.layers.LeakyReLU, keras.layers.ELU,
                keras.layers.Rescaling)
_POOLING = (keras.layers.MaxPooling1D, keras.layers.MaxPooling2D,
            keras.layers.MaxPooling3D, keras.layers.AveragePooling1D,
            keras.layers.AveragePooling2D, keras.layers.AveragePooling3D,
            keras.layers.GlobalMaxPooling1D, keras.layers.GlobalMaxPooling2D,
            keras.layers.GlobalMaxPooling3D,
            keras.layers.GlobalAveragePooling1D,
            keras.layers.GlobalAveragePooling2D,
            keras.layers.GlobalAveragePooling3D, keras.layers.Cropping1D,
            keras.layers.Cropping2D, keras.layers.Cropping3D,
            keras.layers.UpSampling1D, keras.layers.UpSampling2D,
            keras.layers.UpSampling3D)
_PADDING = (keras.layers.ZeroPadding1D, keras.layers.ZeroPadding2D,
            keras.layers.ZeroPadding3D)

# Kinds of operation, as `Call.kind`.
CREATOR_KINDS = ("conv", "transpose", "separable", "dense", "embedding")
KINDS = CREATOR_KINDS + (
    "input", "depthwise", "batchnorm", "prelu", "identity", "elementwise",
    "pooling", "padding", "flatten", "merge", "concatenate", "unknown")


class ChannelGraphError(ValueError):
    """The model's layer graph cannot be read (not a functional model)."""


@dataclasses.dataclass(frozen=True)
class Member:
    """The slice of one weight that belongs to a group.

    Attributes:
      layer: the layer's name.
      weight: the weight's attribute name on the layer (`"kernel"`).
      axis: the weight's axis (non-negative) the indices run along.
      indices: positions along `axis` (several when a channel is repeated:
        a depthwise multiplier, or a Flatten in front of a Dense).
      role: "out" (a kernel's output slice: the layer creates the channel),
        "in" (a kernel's input slice: the layer reads the channel) or
        "channel" (a per-channel weight: bias, BatchNormalization, depthwise
        kernel, PReLU).
    """
    layer: str
    weight: str
    axis: int
    indices: tuple
    role: str


@dataclasses.dataclass(frozen=True)
class ChannelGroup:
    """Channels that must be removed together, with every weight slice they
    own. `blocked` is None, or why the group can never be removed;
    `element` is the group's id inside its `ChannelGraph`."""
    index: int
    members: tuple
    blocked: str | None
    element: int

    @property
    def layers(self):
        """Names of the layers with weights in the group, in member order."""
        return tuple(dict.fromkeys(m.layer for m in self.members))

    @property
    def creators(self):
        """The members that create the channel (role "out")."""
        return tuple(m for m in self.members if m.role == "out")


@dataclasses.dataclass
class Call:
    """One call of an operation in the model's graph.

    `inputs` and `outputs` are tensor keys `(operation name, call index,
    output index)`, as in the functional config's `keras_history`;
    `function` is "add", "multiply", ... for a merge.
    """
    name: str
    index: int
    op: object
    kind: str
    reason: str | None
    inputs: list
    outputs: list
    function: str | None = None


@dataclasses.dataclass(frozen=True)
class WeightAxis:
    """An axis of a weight whose positions carry channels: `ids[i]` is the
    channel element at position i."""
    layer: str
    weight: str
    axis: int
    ids: np.ndarray
    role: str


@dataclasses.dataclass(frozen=True)
class Edge:
    """A call that reads the channels of `tensor` through weights `rows`
    (role "in"): where a removed channel's value has to be absorbed."""
    call: Call
    tensor: tuple
    rows: tuple


def _is_keras_tensor(obj):
    return isinstance(obj, dict) and obj.get("class_name") == (
        "__keras_tensor__")


def _tensor_refs(obj):
    """The keras-tensor records in a serialized argument, in order."""
    if _is_keras_tensor(obj):
        yield obj["config"]
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _tensor_refs(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _tensor_refs(value)


def _key(history):
    return (history[0], int(history[1]), int(history[2]))


def _endpoints(value):
    """`input_layers`/`output_layers` of a config as a list of keys."""
    if value and isinstance(value[0], str):
        return [_key(value)]
    return [_key(v) for v in value]


def _last_axis(axis, rank):
    if isinstance(axis, (list, tuple)):
        if len(axis) != 1:
            return False
        axis = axis[0]
    return rank is not None and int(axis) in (-1, rank - 1)


def _channels_last(op):
    return getattr(op, "data_format", "channels_last") in (
        None, "channels_last")


def layer_kind(op, module=None, class_name=None, input_rank=None):
    """`(kind, reason)` of an operation; reason says why `"unknown"` ones
    cannot be shrunk (None otherwise)."""
    name = type(op).__name__
    if isinstance(op, keras.layers.InputLayer):
        return "input", None
    if not isinstance(op, keras.layers.Layer):
        if module == _OPS_MODULE and class_name in _MERGE_OPS:
            return "merge", None
        return "unknown", (f"keras.ops operation {class_name or name} is not "
                           "one tf-sparse can shrink through")
    if isinstance(op, keras.Model):
        return "unknown", "a nested model; shrink it on its own"
    if isinstance(op, keras.layers.Lambda):
        return "unknown", ("a Lambda layer runs arbitrary code, so which "
                           "input channel makes which output is unknown")
    if getattr(op, "lora_enabled", False):
        return "unknown", "LoRA is enabled on it"
    if getattr(op, "quantization_mode", None):
        return "unknown", "it is quantized"
    if not _channels_last(op):
        return "unknown", (f"data_format={op.data_format!r}; only "
                           "channels_last layers are shrunk")
    if isinstance(op, _DEPTHWISE):
        return "depthwise", None
    if isinstance(op, _SEPARABLE):
        return "separable", None
    if isinstance(op, _TRANSPOSE):
        if getattr(op, "groups", 1) != 1:
            return "unknown", f"a grouped convolution (groups={op.groups})"
        return "transpose", None
    if isinstance(op, _CONV):
        if op.groups != 1:
            return "unknown", f"a grouped convolution (groups={op.groups})"
        return "conv", None
    if isinstance(op, keras.layers.EinsumDense):
        return "unknown", "EinsumDense layers are not shrunk"
    if isinstance(op, keras.layers.Dense):
        return "dense", None
    if isinstance(op, keras.layers.Embedding):
        return "embedding", None
    if isinstance(op, keras.layers.BatchNormalization):
        if not _last_axis(op.axis, input_rank):
            return "unknown", (f"BatchNormalization over axis {op.axis}, not "
                               "the channel axis")
        return "batchnorm", None
    if isinstance(op, keras.layers.PReLU):
        alpha = getattr(op, "alpha", None)
        if alpha is None or any(int(d) != 1 for d in alpha.shape[:-1]):
            return "unknown", ("PReLU with a slope per position (set "
                               "shared_axes to the spatial axes)")
        return "prelu", None
    if isinstance(op, keras.layers.Rescaling):
        if np.ndim(op.scale) or np.ndim(op.offset):
            return "unknown", "Rescaling with a scale or offset per channel"
        return "elementwise", None
    if isinstance(op, _IDENTITY):
        return "identity", None
    if isinstance(op, _ELEMENTWISE):
        return "elementwise", None
    if isinstance(op, _POOLING):
        return "pooling", None
    if isinstance(op, _PADDING):
        return "padding", None
    if isinstance(op, keras.layers.Flatten):
        return "flatten", None
    if isinstance(op, keras.layers.Reshape):
        return "flatten", None
    if isinstance(op, keras.layers.Concatenate):
        return "concatenate", None
    for cls, _ in _MERGE_LAYERS:
        if isinstance(op, cls):
            return "merge", None
    if isinstance(op, (keras.layers.LayerNormalization,
                       keras.layers.GroupNormalization,
                       keras.layers.UnitNormalization)):
        return "unknown", ("it normalises across channels, so removing a "
                           "channel changes the others")
    if isinstance(op, keras.layers.Softmax):
        return "unknown", "softmax mixes the channels"
    return "unknown", (f"tf-sparse does not know how {name} maps input "
                       "channels to output channels")


def merge_function(op, class_name=None):
    """The element-wise function of a merge call: "add", "multiply", ..."""
    for cls, function in _MERGE_LAYERS:
        if isinstance(op, cls):
            return function
    return _MERGE_OPS[class_name]


def functional_view(model):
    """`(config, operations by name)` of a functional or Sequential model.

    Raises ChannelGraphError for a subclassed or unbuilt model.
    """
    if isinstance(model, keras.Sequential):
        if not model.built or not model.inputs:
            raise ChannelGraphError(
                f"Sequential model {model.name!r} is not built; build it "
                "with an Input first.")
        model = keras.Model(model.inputs, model.outputs)
    try:
        config = model.get_config()
    except NotImplementedError as error:
        raise ChannelGraphError(
            f"Model {model.name!r} ({type(model).__name__}) has no config; "
            "channel groups are read from the config of a functional or "
            "Sequential model.") from error
    if not isinstance(config, dict) or not {
            "layers", "input_layers", "output_layers"} <= set(config):
        raise ChannelGraphError(
            f"Model {model.name!r} is a subclassed {type(model).__name__}; "
            "channel groups and shrink() work on functional and Sequential "
            "models, whose layer graph is in their config.")
    operations = {op.name: op for op in model.operations}
    return config, operations


class ChannelGraph:
    """The channel elements of a functional model and how they are tied.

    Every channel of every tensor is an element; elements tied by a layer
    (Add inputs, depthwise in = out) are joined (union-find), and each class
    is one dependency group. Read by `dependency_groups`, `tf_sparse.shrink`
    and the channel-constant analysis.

    Attributes:
      config: the functional config the graph was read from.
      calls: the `Call`s in an order where every input comes first.
      shapes: tensor key -> shape (batch dimension included).
      ids: tensor key -> numpy array of the elements of its last axis.
      axes: the `WeightAxis` of every weight axis that carries channels.
      edges: the `Edge`s (calls reading channels through their weights).
      outputs: the keys of the model's outputs.
    """

    def __init__(self, model):
        self.model = model
        self.config, self.operations = functional_view(model)
        self.entries = {e["name"]: e for e in self.config["layers"]}
        self.shapes = {}
        self.calls = self._read_calls()
        self.outputs = _endpoints(self.config["output_layers"])
        self.ids = {}
        self.axes = []
        self.edges = []
        self._parent = []
        self._reasons = {}
        self._layer_ids = {}
        for call in self.calls:
            self._visit(call)
        for index, key in enumerate(self.outputs):
            self.block(self.ids[key], f"it is model output {index} "
                       f"('{key[0]}')")
        self._root = np.array([self._find(e) for e in
                               range(len(self._parent))], dtype=np.int64)

    # -- reading the config ------------------------------------------------

    def _read_calls(self):
        calls = {}
        for entry in self.config["layers"]:
            name = entry["name"]
            op = self.operations.get(name)
            if op is None:
                raise ChannelGraphError(
                    f"Layer {name!r} of the config is not among the model's "
                    "operations.")
            if isinstance(op, keras.layers.InputLayer):
                shape = tuple(entry["config"]["batch_shape"])
                self.shapes[(name, 0, 0)] = shape
                calls[(name, 0)] = Call(name, 0, op, "input", None, [],
                                        [(name, 0, 0)])
                continue
            for index, node in enumerate(entry["inbound_nodes"]):
                refs = list(_tensor_refs(node.get("args", [])))
                kwarg_refs = list(_tensor_refs(node.get("kwargs", {})))
                inputs = []
                for ref in refs:
                    key = _key(ref["keras_history"])
                    inputs.append(key)
                    self.shapes.setdefault(key, tuple(ref["shape"]))
                rank = len(self.shapes[inputs[0]]) if inputs else None
                kind, reason = layer_kind(op, entry.get("module"),
                                          entry.get("class_name"), rank)
                if kwarg_refs and kind != "unknown":
                    kind, reason = "unknown", ("it takes tensors as keyword "
                                               "arguments")
                function = merge_function(op, entry.get("class_name")) if (
                    kind == "merge") else None
                calls[(name, index)] = Call(name, index, op, kind, reason,
                                            inputs, [], function)
        for key in _endpoints(self.config["output_layers"]):
            calls[key[:2]].outputs.append(key)
        for call in calls.values():
            for key in call.inputs:
                producer = calls.get(key[:2])
                if producer is None:
                    raise ChannelGraphError(
                        f"Call {call.name!r} reads {key}, which no layer "
                        "makes.")
                if key not in producer.outputs:
                    producer.outputs.append(key)
        for key, tensor in zip(_endpoints(self.config["output_layers"]),
                               self.model.outputs):
            self.shapes.setdefault(key, tuple(tensor.shape))
        for call in calls.values():
            call.outputs.sort()
        return _topological(calls)

    # -- elements and union-find -------------------------------------------

    def _fresh(self, count):
        start = len(self._parent)
        self._parent.extend(range(start, start + count))
        return np.arange(start, start + count, dtype=np.int64)

    def _find(self, element):
        parent = self._parent
        root = element
        while parent[root] != root:
            root = parent[root]
        while parent[element] != root:
            parent[element], element = root, parent[element]
        return root

    def union(self, a, b):
        """Ties the elements of `a` and `b` position by position."""
        if len(a) != len(b):
            raise ChannelGraphError(
                f"Cannot tie {len(a)} channels to {len(b)}.")
        for x, y in zip(a.tolist(), b.tolist()):
            rx, ry = self._find(x), self._find(y)
            if rx != ry:
                self._parent[max(rx, ry)] = min(rx, ry)

    def block(self, ids, reason):
        """Marks the groups of `ids` as never removable, for `reason`."""
        for element in np.asarray(ids).tolist():
            self._reasons.setdefault(element, (len(self._reasons), reason))

    def roots(self, ids):
        """The group (root element) of each element of `ids`."""
        return self._root[np.asarray(ids, dtype=np.int64)]

    def blocked_reasons(self):
        """Root element -> why its group is blocked (the first reason)."""
        found = {}
        for element, (order, reason) in self._reasons.items():
            root = int(self._root[element])
            if root not in found or order < found[root][0]:
                found[root] = (order, reason)
        return {root: reason for root, (_, reason) in found.items()}

    # -- the rules ---------------------------------------------------------

    def _channels(self, key):
        shape = self.shapes.get(key)
        if shape is None or not shape or shape[-1] is None:
            return None
        return int(shape[-1])

    def _add_axis(self, call, weight, axis, ids, role):
        if call.index == 0:
            self.axes.append(WeightAxis(call.name, weight, axis, ids, role))

    def _layer_inputs(self, call, ids):
        """Ties a shared layer's input channels across its calls."""
        first = self._layer_ids.setdefault((call.name, "in"), ids)
        if first is not ids:
            self.union(first, ids)

    def _layer_outputs(self, call, count):
        """The channels a layer creates: the same for each of its calls."""
        key = (call.name, "out")
        if key not in self._layer_ids:
            self._layer_ids[key] = self._fresh(count)
        return self._layer_ids[key]

    def _unknown(self, call, reason):
        where = f"it passes through '{call.name}' ({type(call.op).__name__}"
        where += f"), which cannot be shrunk: {reason}"
        for key in call.inputs:
            self.block(self.ids[key], where)
        for key in call.outputs:
            count = self._channels(key) or 0
            self.ids[key] = self._fresh(count)
            self.block(self.ids[key], where)

    def _visit(self, call):
        op, kind = call.op, call.kind
        if kind == "input":
            key = call.outputs[0]
            self.ids[key] = self._fresh(self._channels(key) or 0)
            self.block(self.ids[key], f"it is a channel of model input "
                       f"'{call.name}'")
            return
        if kind == "unknown" or len(call.outputs) != 1:
            self._unknown(call, call.reason or "it has several outputs")
            return
        x = [self.ids[k] for k in call.inputs]
        out_key = call.outputs[0]
        try:
            out = self._flow(call, op, kind, x)
        except _Unsupported as error:
            self._unknown(call, str(error))
            return
        expected = self._channels(out_key)
        if expected is not None and len(out) != expected:
            raise ChannelGraphError(
                f"Channel bookkeeping of '{call.name}' gives {len(out)} "
                f"channels, its output has {expected}.")
        self.ids[out_key] = out

    def _flow(self, call, op, kind, x):
        if kind in ("conv", "transpose", "dense", "separable"):
            if len(x) != 1:
                raise _Unsupported("it has several inputs")
            ids = x[0]
            self._layer_inputs(call, ids)
            kernel_name = "pointwise_kernel" if kind == "separable" else (
                "kernel")
            kernel = getattr(op, kernel_name)
            rank = len(kernel.shape)
            out_axis = rank - 2 if kind == "transpose" else rank - 1
            out = self._layer_outputs(call, int(kernel.shape[out_axis]))
            if kind == "separable":
                multiplier = int(op.depthwise_kernel.shape[-1])
                rows = (WeightAxis(call.name, "depthwise_kernel", rank - 2,
                                   ids, "in"),
                        WeightAxis(call.name, "pointwise_kernel", rank - 2,
                                   np.repeat(ids, multiplier), "in"))
            else:
                in_axis = rank - 1 if kind == "transpose" else rank - 2
                rows = (WeightAxis(call.name, "kernel", in_axis, ids, "in"),)
            for row in rows:
                self._add_axis(call, row.weight, row.axis, row.ids, "in")
            self._add_axis(call, kernel_name, out_axis, out, "out")
            if getattr(op, "bias", None) is not None:
                self._add_axis(call, "bias", 0, out, "channel")
            self.edges.append(Edge(call, call.inputs[0], rows))
            return out
        if kind == "embedding":
            out = self._layer_outputs(call, int(op.embeddings.shape[1]))
            self._add_axis(call, "embeddings", 1, out, "out")
            return out
        if len(x) != 1 and kind not in ("merge", "concatenate"):
            raise _Unsupported("it has several inputs")
        if kind == "depthwise":
            ids = x[0]
            self._layer_inputs(call, ids)
            rank = len(op.kernel.shape)
            multiplier = int(op.kernel.shape[-1])
            self._add_axis(call, "kernel", rank - 2, ids, "channel")
            out = np.repeat(ids, multiplier)
            if getattr(op, "bias", None) is not None:
                self._add_axis(call, "bias", 0, out, "channel")
            return out
        if kind in ("batchnorm", "prelu"):
            ids = x[0]
            self._layer_inputs(call, ids)
            names = (("gamma", "beta", "moving_mean", "moving_variance")
                     if kind == "batchnorm" else ("alpha",))
            for name in names:
                variable = getattr(op, name, None)
                if variable is not None:
                    axis = len(variable.shape) - 1
                    self._add_axis(call, name, axis, ids, "channel")
            return ids
        if kind in ("identity", "elementwise", "pooling", "padding"):
            return x[0]
        if kind == "flatten":
            return self._flatten(call, x[0])
        if kind == "merge":
            return self._merge(call, x)
        if kind == "concatenate":
            rank = len(self.shapes[call.inputs[0]])
            if _last_axis(op.axis, rank):
                return np.concatenate(x)
            return self._merge(call, x)
        raise _Unsupported(f"kind {kind!r}")

    def _flatten(self, call, ids):
        in_shape = self.shapes[call.inputs[0]]
        out_shape = self.shapes.get(call.outputs[0])
        if out_shape is None:
            out_shape = tuple(call.op.compute_output_shape(in_shape))
        channels, last = len(ids), out_shape[-1]
        if last is None or any(d is None for d in in_shape[1:]):
            raise _Unsupported("its shapes are not all known")
        if channels == 0 or last % channels:
            raise _Unsupported(
                f"it reshapes {tuple(in_shape[1:])} to "
                f"{tuple(out_shape[1:])}, which mixes the channels with "
                "other axes (the last axis must stay a multiple of the "
                f"{channels} channels)")
        return np.tile(ids, last // channels)

    def _merge(self, call, x):
        width = max(len(a) for a in x)
        full = [a for a in x if len(a) == width]
        for a in x:
            if len(a) != width:
                if len(a) != 1:
                    raise _Unsupported(
                        f"its inputs have {sorted({len(a) for a in x})} "
                        "channels")
                self.block(a, f"'{call.name}' broadcasts it over "
                           f"{width} channels")
        for a in full[1:]:
            self.union(full[0], a)
        return full[0]

    # -- groups --------------------------------------------------------------

    def groups(self):
        """The `ChannelGroup`s, in the order their first element appeared."""
        by_root = {}
        for axis in self.axes:
            roots = self.roots(axis.ids)
            order = np.argsort(roots, kind="stable")
            values, starts = np.unique(roots[order], return_index=True)
            bounds = list(starts[1:]) + [len(order)]
            for root, start, stop in zip(values.tolist(), starts, bounds):
                by_root.setdefault(root, []).append(Member(
                    axis.layer, axis.weight, axis.axis,
                    tuple(int(i) for i in np.sort(order[start:stop])),
                    axis.role))
        reasons = self.blocked_reasons()
        return [ChannelGroup(index, tuple(by_root[root]), reasons.get(root),
                             root)
                for index, root in enumerate(sorted(by_root))]


class _Unsupported(Exception):
    """A supported layer type used in a way its rule does not cover."""


def _topological(calls):
    """The calls ordered so that each comes after the calls it reads."""
    pending = {key: {k[:2] for k in call.inputs}
               for key, call in calls.items()}
    users = {}
    for key, deps in pending.items():
        for dep in deps:
            users.setdefault(dep, []).append(key)
    ready = [key for key in calls if not pending[key]]
    order = []
    while ready:
        key = ready.pop(0)
        order.append(calls[key])
        for user in users.get(key, ()):
            pending[user].discard(key)
            if not pending[user]:
                ready.append(user)
    if len(order) != len(calls):
        raise ChannelGraphError("The layer graph has a cycle.")
    return order


def dependency_groups(model):
    """The channel dependency groups of a functional or Sequential model.

    Each group is one channel together with every channel tied to it
    (see the module docstring), listed as the weight slices it owns.
    Pruning algorithms that remove channels choose whole groups; groups
    with `blocked` set cannot be removed.

    Example:

        inputs = keras.Input((8, 8, 3))
        a = keras.layers.Conv2D(4, 3, name="a")(inputs)
        b = keras.layers.Conv2D(4, 1, name="b")(a)
        s = keras.layers.Add()([a, b])
        out = keras.layers.Conv2D(2, 1, name="c")(s)
        groups = dependency_groups(keras.Model(inputs, out))
        # 3 input channels (blocked), 4 groups of a/b tied by the Add,
        # 2 output channels of c (blocked)
    """
    return ChannelGraph(model).groups()


def families(groups):
    """Groups with the same creator layers, as {creator names: [groups]}.

    A family is "the channels of one layer" (or of layers tied together,
    such as the convolutions that feed one residual stream); choosing a
    fraction of each family prunes every layer by that fraction.
    Blocked groups are left out.
    """
    found = {}
    for group in groups:
        if not group.blocked and group.creators:
            key = tuple(sorted({m.layer for m in group.creators}))
            found.setdefault(key, []).append(group)
    return found


def group_norms(model, groups):
    """The L1 norm of each group's creator slices (kernel weights only), as
    a float64 array: the usual score for choosing channels to remove."""
    norms = np.zeros(len(groups))
    values = {}
    for i, group in enumerate(groups):
        for member in group.creators:
            key = (member.layer, member.weight)
            if key not in values:
                variable = getattr(model.get_layer(member.layer),
                                   member.weight)
                values[key] = np.abs(keras.ops.convert_to_numpy(variable))
            norms[i] += np.take(values[key], list(member.indices),
                                axis=member.axis).sum()
    return norms


def layer_paths(model):
    """Layer name -> the layer's path in `masking.iter_layers` (the prefix of
    its weights' paths in `sparsify(masks=...)`)."""
    paths = {}
    for path, layer in masking.iter_layers(model):
        paths.setdefault(layer.name, path)
    return paths


def group_masks(model, groups, base=None):
    """Masks that remove `groups`: every creator's output slice set to 0,
    and the depthwise kernel slices of the group too (so that a depthwise
    layer outputs only its bias there, a constant `tfs.shrink` can fold).

    Returns a dict from weight path to a 0/1 float32 array, for
    `tfs.sparsify(model, masks=...)`. `base` (same form) gives masks to
    start from; weights not in it start all ones.

    Example:

        groups = dependency_groups(model)
        masks = group_masks(model, [g for g in groups if not g.blocked][:8])
        tfs.sparsify(model, masks=masks)
    """
    paths = layer_paths(model)
    prunable = {}
    masks = {path: np.array(value, dtype=np.float32)
             for path, value in (base or {}).items()}
    for group in groups:
        if group.blocked:
            raise ValueError(
                f"Group {group.index} cannot be removed: {group.blocked}.")
        if not group.creators:
            raise ValueError(
                f"Group {group.index} has no layer creating it; nothing to "
                "mask.")
        for member in group.members:
            if member.layer not in prunable:
                prunable[member.layer] = {name for name, _ in (
                    registry.prunable_variables(model.get_layer(
                        member.layer)))}
            if member.role == "in" or (
                    member.weight not in prunable[member.layer]):
                continue
            path = f"{paths[member.layer]}/{member.weight}"
            if path not in masks:
                variable = getattr(model.get_layer(member.layer),
                                   member.weight)
                masks[path] = np.ones(tuple(variable.shape), np.float32)
            index = [slice(None)] * masks[path].ndim
            index[member.axis] = list(member.indices)
            masks[path][tuple(index)] = 0.0
    return masks


# --------------------------------------------------------------------------
# Tied channels for the algorithms of the "channel" pattern
# --------------------------------------------------------------------------


def is_channel_layout(layout):
    """Whether a `patterns.Layout` keeps or removes whole output channels
    (one group per column of the (inputs x outputs) matrix)."""
    return (layout.keep is None and not layout.unstructured
            and layout.block == (layout.rows, 1))


class ChannelTies:
    """Which output channels of the masked kernels are one dependency group.

    Channel-pattern algorithms rank channels by a score summed over the
    channel's kernel column (`patterns.Layout.group_sums`). With ties, the
    score of a channel is the sum over its whole dependency group (every
    creating kernel and depthwise kernel in it), so tied layers rank their
    channels alike and, keeping equal counts, keep the same groups, which
    `tfs.shrink` can then remove. `ids[i]` gives each column of entry `i`
    its tie id (columns outside any removable group get an id of their
    own); None for entries that are not channel layouts.

    Example:

        ties = ChannelTies.of(model, [(mw.layer.name, mw.name, layout)
                                      for mw, layout in ...])
        tied = ties.numpy_tie(column_sums)     # same score per group
    """

    def __init__(self, ids, num_ids):
        self.ids = ids
        self.num_ids = int(num_ids)

    @classmethod
    def of(cls, model, entries):
        """Ties of `entries` [(layer name, weight name, Layout)] of `model`,
        or None when no entry is a channel layout or no two channels are
        tied (the graph of a subclassed model cannot be read: None)."""
        if not any(is_channel_layout(layout) for _, _, layout in entries):
            return None
        try:
            groups = dependency_groups(model)
        except ChannelGraphError:
            return None
        where = {(layer, weight): i
                 for i, (layer, weight, layout) in enumerate(entries)
                 if is_channel_layout(layout)}
        ids = [None] * len(entries)
        for i, (_, _, layout) in enumerate(entries):
            if is_channel_layout(layout):
                ids[i] = np.full(layout.num_groups, -1, np.int64)
        tied = 0
        for group in groups:
            if group.blocked:
                continue
            hits = []
            for member in group.members:
                i = where.get((member.layer, member.weight))
                if i is None or member.role == "in":
                    continue
                layout = entries[i][2]
                mark = np.zeros(layout.shape, np.float32)
                index = [slice(None)] * mark.ndim
                index[member.axis] = list(member.indices)
                mark[tuple(index)] = 1.0
                columns = keras.ops.convert_to_numpy(
                    layout.groups(mark)).min(axis=1) > 0
                hits.append((i, columns))
            if len(hits) < 2 and not any(c.sum() > 1 for _, c in hits):
                continue
            for i, columns in hits:
                ids[i][columns] = group.index
            tied += 1
        if not tied:
            return None
        next_id = max(g.index for g in groups) + 1
        for i, column_ids in enumerate(ids):
            if column_ids is None:
                continue
            free = column_ids < 0
            column_ids[free] = np.arange(next_id, next_id + free.sum())
            next_id += int(free.sum())
        return cls(ids, next_id)

    def numpy_tie(self, sums):
        """Per entry, its column scores replaced by their tie group's total
        (float64 NumPy; entries with id None are returned as they are)."""
        total = np.zeros(self.num_ids)
        for column_ids, s in zip(self.ids, sums):
            if column_ids is not None:
                np.add.at(total, column_ids, np.asarray(s, np.float64))
        return [s if column_ids is None else total[column_ids]
                for column_ids, s in zip(self.ids, sums)]

    def tie(self, sums):
        """`numpy_tie` in graph (keras.ops, any backend): float32 [C]
        tensors (None passes)."""
        ops = keras.ops
        pieces = [(ops.cast(s, "float32"), c)
                  for c, s in zip(self.ids, sums) if c is not None]
        total = ops.segment_sum(
            ops.concatenate([s for s, _ in pieces], axis=0),
            ops.convert_to_tensor(np.concatenate([c for _, c in pieces]),
                                  "int32"),
            num_segments=self.num_ids)
        return [s if c is None else ops.take(
            total, ops.convert_to_tensor(c, "int32"), axis=0)
            for c, s in zip(self.ids, sums)]

    def tied_scores(self, scores, layouts):
        """Kernel-shaped scores whose channel sums are the tied sums (each
        channel's total on its first row, zeros elsewhere: the sums are then
        exact, so tied columns of different fan-in rank alike), in graph
        (keras.ops, any backend)."""
        ops = keras.ops
        sums = [None if c is None else layout.group_sums(score)
                for c, score, layout in zip(self.ids, scores, layouts)]
        tied = self.tie(sums)
        result = []
        for c, score, layout, s in zip(self.ids, scores, layouts, tied):
            if c is None:
                result.append(score)
                continue
            first = ops.one_hot(ops.zeros([layout.num_groups], "int32"),
                                layout.group_size, dtype="float32")
            result.append(layout.ungroup(first * ops.reshape(s, (-1, 1))))
        return result

    def components(self):
        """Lists of entry indices whose channels share a tie id."""
        parent = list(range(len(self.ids)))

        def find(i):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        owner = {}
        for i, column_ids in enumerate(self.ids):
            if column_ids is None:
                continue
            for tie_id in np.unique(column_ids):
                j = owner.setdefault(int(tie_id), i)
                parent[find(i)] = find(j)
        found = {}
        for i, column_ids in enumerate(self.ids):
            if column_ids is not None:
                found.setdefault(find(i), []).append(i)
        return list(found.values())

    def equal_counts(self, units):
        """`units` (kept channels per entry, a list) made equal inside each
        set of tied entries with the same channel count: the mean rounded
        half up, so tied layers keep the same number of channels."""
        units = list(units)
        for members in self.components():
            sizes = {len(self.ids[i]) for i in members}
            if len(members) < 2 or len(sizes) != 1:
                continue
            mean = sum(units[i] for i in members) / len(members)
            for i in members:
                units[i] = int(np.floor(mean + 0.5))
        return units


def tied_channel_masks(model, targets, scores, counts):
    """Exact channel masks choosing whole dependency groups.

    Args:
      model: the (dense) model.
      targets: objects with `.layer`, `.name`, `.path`, `.shape` and
        `layout(...)` already applied: pairs `(target, layout)`.
      scores: per target, a kernel-shaped NumPy score (|w|, SNIP's |g w|,
        random numbers).
      counts: per target path, the weights it keeps (None: left dense).

    Returns:
      dict path -> 0/1 float32 mask: each layer keeps its count of
      channels (equalised among tied layers of one width, `equal_counts`),
      the channels with the highest score summed over their group; None
      when no two channels are tied (each layer's own choice is then the
      same as `Layout.exact_mask`'s).
    """
    chosen = [(t, layout, s) for (t, layout), s in zip(targets, scores)
              if counts[t.path] is not None]
    ties = ChannelTies.of(model, [(t.layer.name, t.name, layout)
                                  for t, layout, _ in chosen])
    if ties is None:
        return None
    sums = ties.numpy_tie([layout.numpy_group_sums(s)
                           for _, layout, s in chosen])
    units = ties.equal_counts([layout.units_of(counts[t.path], t.path)
                               for t, layout, _ in chosen])
    return {t.path: layout.groups_mask(topk.numpy_select_top(s, k))
            for (t, layout, _), s, k in zip(chosen, sums, units)}
