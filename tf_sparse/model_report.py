"""Nonzeros, density and forward FLOPs of every prunable weight of a model.

`report(model)` walks the model's prunable weights (masked ones and ones
left dense) and returns a `ModelReport` of `WeightReport`s. It is the data
under `tfs.diagnostics` (which re-exports these names and prints the
summary table) and under the training-FLOPs accounting of `tf_sparse.flops`.

FLOPs are forward-pass FLOPs per example, counted as 2 x multiply-accumulates
(as the RigL paper and `rigl.sparse_utils.get_stats` do); the sparse count
scales each layer's dense count by its weight density. Embedding lookups
count 0. A layer whose input shape is unknown (never built with a shape)
shows no FLOPs.

Example:

    rep = tf_sparse.model_report.report(model)
    print(rep.total_nonzeros, rep.density, rep.flops_sparse)
"""

import dataclasses

import keras
import numpy as np

from tf_sparse import masking
from tf_sparse import registry


@dataclasses.dataclass(frozen=True)
class WeightReport:
    """One prunable weight: its size, nonzeros and forward FLOPs per example.

    `nonzeros` counts the mask's ones for a masked weight and the weight's
    own nonzeros for one left dense; the FLOPs are None when the layer's
    input shape is unknown.
    """
    path: str
    layer_type: str
    shape: tuple
    size: int
    nonzeros: int
    masked: bool
    flops_dense: int | None
    flops_sparse: int | None

    @property
    def density(self):
        return self.nonzeros / self.size if self.size else 1.0


@dataclasses.dataclass(frozen=True)
class ModelReport:
    """The `WeightReport`s of a model and the totals over them.

    `unsupported_layers` names the layers with weights that cannot be masked
    (left dense, not in `weights`). A FLOPs total is None when any weight's
    FLOPs are unknown.
    """
    weights: list
    unsupported_layers: list

    @property
    def masked(self):
        return [w for w in self.weights if w.masked]

    @property
    def total_size(self):
        return sum(w.size for w in self.weights)

    @property
    def total_nonzeros(self):
        return sum(w.nonzeros for w in self.weights)

    @property
    def density(self):
        """Nonzeros over all prunable weights (masked and dense ones)."""
        return self.total_nonzeros / max(1, self.total_size)

    @property
    def masked_density(self):
        size = sum(w.size for w in self.masked)
        return sum(w.nonzeros for w in self.masked) / max(1, size)

    def _flops(self, attr):
        values = [getattr(w, attr) for w in self.weights]
        if any(v is None for v in values):
            return None
        return int(sum(values))

    @property
    def flops_dense(self):
        return self._flops("flops_dense")

    @property
    def flops_sparse(self):
        return self._flops("flops_sparse")

    def as_dict(self):
        return {
            "density": self.density,
            "total_nonzeros": self.total_nonzeros,
            "total_size": self.total_size,
            "flops_dense": self.flops_dense,
            "flops_sparse": self.flops_sparse,
            "layers": {w.path: {"shape": list(w.shape), "nonzeros": w.nonzeros,
                                "size": w.size, "density": w.density,
                                "masked": w.masked}
                       for w in self.weights},
            "unsupported_layers": list(self.unsupported_layers),
        }


def built_input_shape(layer):
    """The input shape `layer` was built with, or None.

    None when the layer was never built with a shape, or was built from
    several inputs (a dict of shapes, or nested shapes).

    Example:

        layer = keras.layers.Dense(4)
        layer.build((None, 8))
        built_input_shape(layer)   # (None, 8)
    """
    shapes = getattr(layer, "_build_shapes_dict", None)
    if not shapes or len(shapes) != 1:
        return None
    shape = tuple(shapes.values())[0]
    if not isinstance(shape, (tuple, list)) or any(
            isinstance(s, (tuple, list)) for s in shape):
        return None
    return tuple(shape)


def _prod(dims):
    return int(np.prod([int(d) for d in dims])) if dims else 1


def dense_flops(layer, weight_name, weight_shape):
    """Forward FLOPs per example of one prunable weight at full density."""
    input_shape = built_input_shape(layer)
    if isinstance(layer, keras.layers.Embedding):
        return 0
    if input_shape is None or any(d is None for d in input_shape[1:]):
        return None
    kernel_size = _prod(weight_shape)
    if isinstance(layer, keras.layers.EinsumDense):
        # Every kernel entry is used once per combination of the input's
        # free (non-kernel, non-batch) dimensions.
        inputs, rest = layer.equation.split(",")
        kernel = rest.split("->")[0]
        free = [d for label, d in zip(inputs[1:], input_shape[1:])
                if label not in kernel]
        return 2 * _prod(free) * kernel_size
    if isinstance(layer, keras.layers.Dense):
        return 2 * _prod(input_shape[1:-1]) * kernel_size
    out_shape = tuple(layer.compute_output_shape(input_shape))
    channels_last = getattr(layer, "data_format", "channels_last") == (
        "channels_last")
    spatial_out = out_shape[1:-1] if channels_last else out_shape[2:]
    spatial_in = input_shape[1:-1] if channels_last else input_shape[2:]
    transpose = isinstance(layer, (keras.layers.Conv1DTranspose,
                                   keras.layers.Conv2DTranspose,
                                   keras.layers.Conv3DTranspose))
    if isinstance(layer, (keras.layers.SeparableConv1D,
                          keras.layers.SeparableConv2D)):
        return 2 * _prod(spatial_out) * kernel_size
    # Every output position (input position for a transposed conv) uses the
    # whole kernel once; grouped kernels already hold in_channels/groups.
    positions = _prod(spatial_in) if transpose else _prod(spatial_out)
    return 2 * positions * kernel_size


def _has_own_unmaskable_weights(layer):
    own = [v for v in layer._trainable_variables if len(v.shape) >= 2]
    if not own:
        return False
    return not registry.prunable_variables(layer)


def report(model):
    """A `ModelReport` of every prunable weight (masked or left dense)."""
    weights = []
    unsupported = []
    for layer_path, layer in masking.iter_layers(model):
        holder = getattr(layer, masking.ATTR, None)
        if _has_own_unmaskable_weights(layer):
            unsupported.append(f"{layer_path} ({type(layer).__name__})")
            continue
        for name, variable in registry.prunable_variables(layer):
            shape = tuple(int(d) for d in variable.shape)
            size = _prod(shape)
            masked = holder is not None and name in holder.masks
            if masked:
                nonzeros = int(np.count_nonzero(
                    keras.ops.convert_to_numpy(holder.masks[name])))
            else:
                nonzeros = int(np.count_nonzero(
                    keras.ops.convert_to_numpy(variable)))
            flops = dense_flops(layer, name, shape)
            weights.append(WeightReport(
                path=f"{layer_path}/{name}", layer_type=type(layer).__name__,
                shape=shape, size=size, nonzeros=nonzeros, masked=masked,
                flops_dense=flops,
                flops_sparse=None if flops is None else int(
                    round(flops * nonzeros / size))))
    return ModelReport(weights=weights, unsupported_layers=unsupported)


def format_flops(value):
    """A FLOPs count as short text: "?" for None, else G/M/K with 2 decimals.

    Example:

        format_flops(1_234_567)   # "1.23M"
        format_flops(640)         # "640"
    """
    if value is None:
        return "?"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f}{unit}"
    return str(value)
