"""Where masks live and the one rule that keeps pruned weights at zero.

A sparsified layer carries a `LayerMasks` object (attribute
`tf_sparse_masks`) holding one non-trainable mask variable per prunable
weight. Masks are not added to the layer's own weight lists, so
`model.get_weights()` of a sparse model lines up with the dense model's and a
`.keras` file of a sparse model loads as a plain dense model with zeros in
place. `tf.train.Checkpoint` tracks the masks through the layer attribute.

Enforcement: the prunable variable's `constraint` is set to a
`MaskConstraint`. Every Keras 3 optimizer applies variable constraints right
after its update, inside the compiled train function, so pruned weights are
exactly 0.0 after every optimizer step, whatever the optimizer, with
`jit_compile`, `steps_per_execution` and tf.distribute, and in custom
training loops that call `optimizer.apply`. A constraint the user had set on
the weight is kept and applied first.

Example:

    model = tfs.sparsify(model, sparsity=0.9)
    for mw in tfs.masking.masked_weights(model):
        print(mw.path, mw.nonzeros(), mw.size)
"""

import contextlib
import dataclasses

import keras
import numpy as np
import tensorflow as tf

ATTR = "tf_sparse_masks"


def keep_active(weight, mask):
    """Returns `weight` with the entries where `mask` is 0 set to +0.0.

    Pruned entries are bitwise +0.0 (a pruned negative weight does not
    become -0.0, as `weight * mask` would make it; a pruned NaN or inf
    becomes 0) and kept entries are `weight`'s bits unchanged. This runs
    after every optimizer step for every masked weight (`MaskConstraint`),
    so it is one fused elementwise op where the backend has one: on
    TensorFlow `multiply_no_nan` (`mask == 0 ? +0 : weight * mask`, and
    masks hold only 0 and 1), which reads the float mask directly, where
    `where(mask > 0, weight, 0)` is three ops (a comparison that writes a
    bool tensor, a select and the zeros); elsewhere `keras.ops.where`
    against a scalar zero. Both give the same bits
    (`tests/test_masking.py`).

    >>> keep_active(np.float32([-1.0, 2.0, -3.0]), np.float32([0, 1, 0]))
    ... # [0.0, 2.0, 0.0], all three +0.0 where pruned
    """
    value = keras.ops.convert_to_tensor(weight)
    if keras.backend.backend() == "tensorflow":
        mask = tf.convert_to_tensor(mask)
        if mask.dtype != value.dtype:
            mask = tf.cast(mask, value.dtype)
        return tf.math.multiply_no_nan(value, mask)
    zero = keras.ops.zeros((), value.dtype)
    return keras.ops.where(keras.ops.convert_to_tensor(mask) > 0, value, zero)


# Mask values that stand in for the mask variables while a compiled step is
# traced (`masks_as_inputs`): id(mask variable) -> value.
_MASK_INPUTS = {}


@contextlib.contextmanager
def masks_as_inputs(variables, values):
    """Within the block, `MaskConstraint` reads `values[i]` instead of the
    mask variable `variables[i]`.

    JAX's compiled train step traces whatever else it reads as a constant;
    a step that takes the masks as arguments and enforces them inside this
    block reads them as inputs instead, so new masks need no new trace
    (`training.EagerUpdates` does this under JAX).

    Example:

        with masks_as_inputs([mask_variable], [traced_mask]):
            new_weight = constraint(weight)    # multiplies by traced_mask
    """
    variables = list(variables)
    values = list(values)
    if len(variables) != len(values):
        raise ValueError(f"masks_as_inputs: {len(variables)} mask variables "
                         f"but {len(values)} values.")
    previous = dict(_MASK_INPUTS)
    _MASK_INPUTS.update((id(v), x) for v, x in zip(variables, values))
    try:
        yield
    finally:
        _MASK_INPUTS.clear()
        _MASK_INPUTS.update(previous)


class MaskConstraint(keras.constraints.Constraint):
    """Multiplies a weight by its mask, after an optional inner constraint
    (inside `masks_as_inputs`, by the value given for its mask)."""

    def __init__(self, mask, inner=None):
        self.mask = mask
        self.inner = inner

    def __call__(self, w):
        if self.inner is not None:
            w = self.inner(w)
        return keep_active(w, _MASK_INPUTS.get(id(self.mask), self.mask))

    def get_config(self):
        # Masks are state, not configuration: a constraint rebuilt from a
        # config would not know its mask. Layer configs never see this object
        # because only the variable's constraint is replaced.
        return {}


UNSTRUCTURED = "unstructured"


class LayerMasks(tf.Module):
    """The masks of one layer, one variable per prunable weight name, and
    the sparsity pattern of each (`tf_sparse.patterns` spec strings such as
    "2:4"; "unstructured" when none was given)."""

    def __init__(self, masks, patterns=None):
        super().__init__(name=None)
        self.masks = dict(masks)
        patterns = dict(patterns or {})
        # A tuple of plain strings: nothing for checkpoints to track.
        self.pattern_specs = tuple(
            (name, str(patterns.get(name, UNSTRUCTURED))) for name in masks)

    def pattern(self, name):
        """The pattern spec of weight `name`."""
        return dict(self.pattern_specs).get(name, UNSTRUCTURED)


@dataclasses.dataclass(frozen=True)
class MaskedWeight:
    """A prunable weight of a sparsified model with its mask.

    Attributes:
      path: unique name in the model, `"<layer path>/<weight name>"`, for
        example `"block1/conv1/kernel"`.
      layer_path: the layer part of `path`.
      layer: the Keras layer that owns the weight.
      name: the weight's attribute name on the layer (`"kernel"`).
      variable: the weight variable.
      mask: the mask variable (same shape and dtype, values 0 or 1).
      pattern: the sparsity pattern the mask follows, as a spec string
        ("unstructured", "2:4", "block:4x4", "channel"; parse it with
        `tf_sparse.patterns.parse`).
    """
    path: str
    layer_path: str
    layer: keras.layers.Layer
    name: str
    variable: keras.Variable
    mask: keras.Variable
    pattern: str = UNSTRUCTURED

    @property
    def shape(self):
        return tuple(self.variable.shape)

    @property
    def size(self):
        return int(np.prod(self.shape))

    def nonzeros(self):
        """Number of active (mask == 1) entries, as a Python int."""
        return int(np.count_nonzero(keras.ops.convert_to_numpy(self.mask)))

    def density(self):
        return self.nonzeros() / self.size


def iter_layers(model):
    """Yields `(path, layer)` for every layer below `model`, depth first.

    Paths join layer names with "/" (e.g. `"resnet50/conv1_conv"` for a layer
    of a nested model). A layer reachable twice is yielded once.
    """
    seen = set()

    def walk(parent, prefix):
        for layer in parent._flatten_layers(include_self=False,
                                            recursive=False):
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            path = f"{prefix}{layer.name}"
            yield path, layer
            yield from walk(layer, path + "/")

    yield from walk(model, "")


def is_sparse(model_or_layer):
    """True if `sparsify` has attached masks to the layer or to any sublayer."""
    if hasattr(model_or_layer, ATTR):
        return True
    return any(hasattr(layer, ATTR) for _, layer in iter_layers(model_or_layer))


def masked_weights(model):
    """Lists the `MaskedWeight`s of a sparsified model in a stable order."""
    result = []
    for layer_path, layer in iter_layers(model):
        holder = getattr(layer, ATTR, None)
        if holder is None:
            continue
        for name, mask in holder.masks.items():
            result.append(
                MaskedWeight(path=f"{layer_path}/{name}", layer_path=layer_path,
                             layer=layer, name=name,
                             variable=getattr(layer, name), mask=mask,
                             pattern=holder.pattern(name)))
    return result


def check_mask(where, value, shape):
    """Raises a ValueError naming `where` unless `value` is a 0/1 array of
    `shape`; returns it as a NumPy array.

    Example:

        check_mask("fc1/kernel", np.ones((8, 32)), (8, 32))
    """
    value = np.asarray(value)
    if tuple(value.shape) != tuple(shape):
        raise ValueError(
            f"Mask for {where} has shape {value.shape}; the weight has shape "
            f"{tuple(shape)}.")
    if not np.isin(value, (0, 1)).all():
        raise ValueError(f"Mask for {where} must hold only 0 and 1.")
    return value


def attach_masks(layer, masks, patterns=None):
    """Attaches masks to one layer and zeroes the pruned weights.

    Args:
      layer: a built Keras layer.
      masks: dict from weight attribute name to a 0/1 array of the weight's
        shape.
      patterns: optional dict from weight name to the pattern spec its mask
        follows (recorded, not checked here; `sparsify` checks it).

    Returns:
      The `LayerMasks` attached.
    """
    if hasattr(layer, ATTR):
        raise ValueError(f"Layer {layer.name!r} already carries masks.")
    for name, value in masks.items():
        check_mask(f"{layer.name}/{name}", value, getattr(layer, name).shape)
    mask_vars = {}
    for name, value in masks.items():
        variable = getattr(layer, name)
        value = np.asarray(value)
        mask = keras.Variable(
            value.astype(variable.dtype), dtype=variable.dtype,
            trainable=False, name=f"{name}_mask")
        variable.constraint = MaskConstraint(mask, inner=variable.constraint)
        variable.assign(keep_active(variable, mask))
        mask_vars[name] = mask
    holder = LayerMasks(mask_vars, patterns)
    # Not a Keras-tracked type, so the layer's weight lists stay as they are;
    # TensorFlow's attribute tracking makes it a checkpoint dependency.
    setattr(layer, ATTR, holder)
    return holder


def detach_masks(layer):
    """Removes the masks of a layer and restores the weights' constraints."""
    holder = getattr(layer, ATTR, None)
    if holder is None:
        return
    for name in holder.masks:
        variable = getattr(layer, name)
        constraint = variable.constraint
        if isinstance(constraint, MaskConstraint):
            variable.constraint = constraint.inner
    delattr(layer, ATTR)


def apply_masks(model):
    """Zeroes every pruned weight now (e.g. after `model.set_weights`)."""
    for mw in masked_weights(model):
        mw.variable.assign(keep_active(mw.variable, mw.mask))
