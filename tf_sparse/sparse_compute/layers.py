"""Turning masked layers into layers that hold and compute with only their
nonzero weights, in place.

`convert_layer(layer, name, mask)` replaces the layer's dense weight (a
Dense, EinsumDense or 1x1 Conv2D kernel, an Embedding table) by three
variables:

* `<name>_values` `[capacity]`, trainable: the nonzero weights, so the
  optimizer's slots have `capacity` entries too;
* `<name>_row_ptr` `[outputs + 1]` and `<name>_cols` `[capacity]`, int32,
  not trainable: where they are (see `structure`).

The dense weight is deleted (untracked, like Keras's own `quantize` does to
a quantized kernel), so memory of weights and slots grows with the nonzeros.
The layer keeps its class, name and config; its `call` is replaced by one
that computes with the sparse form (`ops.matmul`), and its
`save_own_variables` / `load_own_variables` write and read the dense
layout, so `model.save` writes the same `.keras` file as the masked model
(zeros in place) and a plain `keras.models.load_model` reads it as a dense
model. A `SparseKernel` holder on the layer (attribute `tf_sparse_compute`)
says which weight is sparse and reads or changes it.

Supported: `Dense`, `EinsumDense` whose equation is one 2-D matmul
(`einsum.EinsumPlan`: the input transposed and flattened to `[M, K]`, the
kernel seen as `[K, N]`, the product reshaped back; its bias is added over
its `bias_axes` as EinsumDense adds it), `Conv2D` with a 1x1 kernel
(channels_last, one group; strides subsample), `Embedding` (rows looked up
from the nonzeros). The
layer's kernel regularizer is kept (L1/L2 of the nonzeros equal those of
the dense weight); a kernel constraint, LoRA and quantized layers are
refused with the reason.

Example:

    holder = convert_layer(model.get_layer("fc1"), "kernel", mask)
    holder.nonzeros(), holder.dense_weight().shape
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from tf_sparse import cloning
from tf_sparse import masking
from tf_sparse.sparse_compute import einsum
from tf_sparse.sparse_compute import ops
from tf_sparse.sparse_compute import structure as structure_lib

ATTR = "tf_sparse_compute"
KINDS = ("dense", "einsum", "conv1x1", "embedding")


def einsum_plan(layer):
    """The `einsum.EinsumPlan` of a built EinsumDense layer's kernel; raises
    ValueError when its equation is not one 2-D matmul."""
    if not layer.built:
        raise ValueError(f"layer {layer.name!r} is not built (its kernel "
                         "shape is unknown)")
    return einsum.EinsumPlan(layer.equation, tuple(layer.kernel.shape))


def kind_of(layer, name):
    """("dense" | "einsum" | "conv1x1" | "embedding", None) for a weight
    sparse compute handles, else (None, why not)."""
    if getattr(layer, "quantization_mode", None):
        return None, "quantized layers are not supported"
    if getattr(layer, "lora_enabled", False):
        return None, "layers with LoRA enabled are not supported"
    if type(layer) is keras.layers.Dense and name == "kernel":
        return "dense", None
    if type(layer) is keras.layers.Embedding and name == "embeddings":
        return "embedding", None
    if type(layer) is keras.layers.EinsumDense and name == "kernel":
        try:
            einsum_plan(layer)
        except ValueError as error:
            return None, f"EinsumDense {error}"
        return "einsum", None
    if type(layer) is keras.layers.Conv2D and name == "kernel":
        if tuple(layer.kernel_size) != (1, 1):
            return None, (f"a {layer.kernel_size[0]}x{layer.kernel_size[1]} "
                          "convolution (only 1x1 convolutions are matmuls)")
        if layer.data_format != "channels_last":
            return None, "channels_first convolutions are not supported"
        if getattr(layer, "groups", 1) != 1:
            return None, "grouped convolutions are not supported"
        return "conv1x1", None
    return None, (f"{type(layer).__name__}.{name} has no sparse form "
                  "(Dense, EinsumDense, 1x1 Conv2D and Embedding do)")


def _to_matrix(kind, weight, plan=None):
    """The weight as the `[inputs, outputs]` matrix the structure
    describes (an Embedding table is stored by token: its transpose; an
    EinsumDense kernel is its plan's `[K, N]` matrix)."""
    weight = np.asarray(weight)
    if kind == "conv1x1":
        return weight.reshape(weight.shape[-2], weight.shape[-1])
    if kind == "embedding":
        return weight.T
    if kind == "einsum":
        return plan.kernel_2d(weight)
    return weight


def _from_matrix(kind, matrix, shape, plan=None):
    if kind == "embedding":
        return np.ascontiguousarray(matrix.T)
    if kind == "einsum":
        return np.ascontiguousarray(plan.kernel_nd(matrix))
    return matrix.reshape(shape)


@dataclasses.dataclass
class SparseKernel:
    """The sparse weight of one converted layer.

    Attributes:
      layer: the Keras layer.
      name: the weight it replaced ("kernel" or "embeddings").
      kind: "dense", "einsum", "conv1x1" or "embedding".
      shape: the dense weight's shape.
      values, row_ptr, cols: the layer's variables (see `structure`).
      dtype: the dense weight's dtype.
      plan: for "einsum", the `einsum.EinsumPlan` of the kernel (else
        None).
    """
    layer: keras.layers.Layer
    name: str
    kind: str
    shape: tuple
    values: keras.Variable
    row_ptr: keras.Variable
    cols: keras.Variable
    dtype: str
    # Where the dense weight stood among the layer's trainable variables
    # (`restore_layer` puts it back there, so weight order and saving
    # stay those of the original layer).
    position: int = 0
    # Set by an algorithm while it records inputs and output gradients.
    recorder: object = None
    plan: object = None

    @property
    def matrix_shape(self):
        if self.kind == "embedding":
            return (self.shape[1], self.shape[0])
        if self.kind == "einsum":
            return (self.plan.k, self.plan.n)
        return (int(np.prod(self.shape[:-1])), self.shape[-1])

    @property
    def size(self):
        return int(np.prod(self.shape))

    @property
    def capacity(self):
        return int(self.values.shape[0])

    def structure(self):
        """The current `structure.Structure` (NumPy)."""
        return structure_lib.Structure(
            keras.ops.convert_to_numpy(self.row_ptr).astype(np.int32),
            keras.ops.convert_to_numpy(self.cols).astype(np.int32),
            self.matrix_shape)

    def nonzeros(self):
        """The number of weights in use (Python int)."""
        return int(keras.ops.convert_to_numpy(self.row_ptr)[-1])

    def density(self):
        return self.nonzeros() / self.size

    def dense_of(self, entries):
        """Per-entry numbers `[capacity]` (the values, their gradient, an
        optimizer slot) as an array of the dense weight's shape, zeros
        elsewhere (NumPy)."""
        matrix = structure_lib.to_dense(self.structure(), np.asarray(entries))
        return _from_matrix(self.kind, matrix, self.shape, self.plan)

    def dense_weight(self):
        """The dense weight (NumPy, the original shape), zeros in place."""
        return self.dense_of(keras.ops.convert_to_numpy(self.values))

    def mask(self):
        """The 0/1 float32 mask in the dense weight's shape."""
        matrix = structure_lib.mask_of(self.structure())
        return _from_matrix(self.kind, matrix, self.shape, self.plan)

    def assign_dense(self, weight, mask=None):
        """Sets the structure to `mask` (default: keep the current one) and
        the values to `weight` there. Raises ValueError when the mask has
        more nonzeros than the capacity, or when `mask` is None and
        `weight` has nonzeros outside the structure."""
        weight = np.asarray(weight)
        if tuple(weight.shape) != tuple(self.shape):
            raise ValueError(
                f"{self.layer.name}/{self.name}: weight of shape "
                f"{weight.shape}, expected {self.shape}.")
        if mask is None:
            outside = np.count_nonzero(weight[self.mask() == 0])
            if outside:
                raise ValueError(
                    f"{self.layer.name}/{self.name}: {outside} nonzero "
                    "weights outside the sparse structure would be lost; "
                    "pass their mask (assign_dense(weight, mask)).")
            s = self.structure()
        else:
            mask = masking.check_mask(f"{self.layer.name}/{self.name}", mask,
                                      self.shape)
            s = structure_lib.from_mask(
                _to_matrix(self.kind, mask, self.plan), self.capacity)
        values = structure_lib.gather(
            _to_matrix(self.kind, weight, self.plan), s)
        self.row_ptr.assign(s.row_ptr)
        self.cols.assign(s.cols)
        self.values.assign(values.astype(self.dtype))

    def matmul(self, x):
        """`x [..., inputs] @ matrix`."""
        y = ops.matmul(x, self.row_ptr.value, self.cols.value,
                       self.values.value, self.matrix_shape[1])
        if self.recorder is not None:
            y = self.recorder.record(self, x, y)
        return y


def sparse_kernel(layer):
    """The `SparseKernel` of a converted layer, or None."""
    return getattr(layer, ATTR, None)


def sparse_kernels(model):
    """[(layer path, SparseKernel)] of every converted layer, model order."""
    found = []
    if sparse_kernel(model) is not None:
        found.append((model.name, sparse_kernel(model)))
    for path, layer in masking.iter_layers(model):
        holder = sparse_kernel(layer)
        if holder is not None:
            found.append((path, holder))
    return found


def is_sparse_compute(model):
    """True if any layer of `model` computes with a sparse weight."""
    return bool(sparse_kernels(model))


# --------------------------------------------------------------------------
# The replaced methods.


def _dense_call(holder):
    layer = holder.layer

    def call(inputs, training=None):
        del training
        return _bias_and_activation(layer, holder.matmul(inputs))

    return call


def _bias_and_activation(layer, x):
    """The rest of a Dense, EinsumDense or Conv2D call after its product:
    bias (None when the layer has none; an EinsumDense bias has the shape
    of its `bias_axes` with 1s between them, so it broadcasts as in
    EinsumDense's own call), then activation."""
    if layer.bias is not None:
        x = x + layer.bias
    if layer.activation is not None:
        x = layer.activation(x)
    return x


def _einsum_call(holder):
    layer, plan = holder.layer, holder.plan

    def call(inputs, training=None):
        del training
        flat, context = plan.flatten_input(inputs)
        y = plan.unflatten_output(holder.matmul(flat), context)
        return _bias_and_activation(layer, y)

    return call


def _conv_call(holder):
    layer = holder.layer

    def call(inputs):
        sh, sw = layer.strides
        if sh != 1 or sw != 1:
            inputs = inputs[:, ::sh, ::sw, :]
        return _bias_and_activation(layer, holder.matmul(inputs))

    return call


def _embedding_call(holder):
    layer = holder.layer

    def call(inputs):
        ids = tf.convert_to_tensor(inputs)
        if ids.dtype not in (tf.int32, tf.int64):
            ids = tf.cast(ids, tf.int32)
        ids = tf.cast(ids, tf.int32)
        values = tf.convert_to_tensor(holder.values.value)
        row_ptr = tf.convert_to_tensor(holder.row_ptr.value)
        cols = tf.convert_to_tensor(holder.cols.value)
        dim = holder.shape[1]
        flat = tf.reshape(ids, [-1])
        if ops.in_xla():
            table = structure_lib.dense_in_graph(
                row_ptr, cols, values, [dim, holder.shape[0]])
            out = tf.gather(tf.transpose(table), flat)
        else:
            starts = tf.gather(row_ptr, flat)
            counts = tf.gather(row_ptr, flat + 1) - starts
            entries = tf.ragged.range(starts, starts + counts)
            owner = entries.value_rowids()
            entry = entries.flat_values
            index = tf.stack([tf.cast(owner, tf.int32),
                              tf.gather(cols, entry)], axis=1)
            out = tf.scatter_nd(index, tf.gather(values, entry),
                                tf.stack([tf.shape(flat)[0], dim]))
        out = tf.reshape(out, tf.concat([tf.shape(ids), [dim]], axis=0))
        return tf.cast(out, layer.compute_dtype)

    return call


_CALLS = {"dense": _dense_call, "einsum": _einsum_call,
          "conv1x1": _conv_call, "embedding": _embedding_call}


def _own_variables(layer):
    """The layer's own variables in Keras's saving order (the lists Keras
    keeps for `_check_load_own_variables`)."""
    return list(layer._trainable_variables) + list(
        layer._non_trainable_variables)  # pylint: disable=protected-access


def _saving(holder, layout):
    """save/load_own_variables writing the dense layout: the dense weight
    at its original position among the layer's variables."""
    layer = holder.layer

    def save_own_variables(store):
        for index, item in enumerate(layout):
            store[str(index)] = (holder.dense_weight() if item is None
                                 else keras.ops.convert_to_numpy(item))

    def load_own_variables(store):
        if len(store.keys()) != len(layout):
            raise ValueError(
                f"Layer {layer.name!r} (sparse compute) expects "
                f"{len(layout)} variables in the saved file, found "
                f"{len(store.keys())}.")
        for index, item in enumerate(layout):
            value = np.asarray(store[str(index)])
            if item is None:
                holder.assign_dense(value)
            else:
                item.assign(value)

    return save_own_variables, load_own_variables


# --------------------------------------------------------------------------
# Conversion.


def check_layer(layer, name, where):
    """Raises ValueError naming `where` when the weight cannot be converted
    (unsupported kind, a user constraint); returns its kind."""
    kind, why = kind_of(layer, name)
    if kind is None:
        raise ValueError(f"{where}: no sparse compute form: {why}.")
    variable = getattr(layer, name)
    constraint = variable.constraint
    if isinstance(constraint, masking.MaskConstraint):
        constraint = constraint.inner
    if constraint is not None:
        raise ValueError(
            f"{where}: has the constraint {type(constraint).__name__}; "
            "sparse compute cannot apply a constraint of the dense weight to "
            "its nonzeros. Remove it, or keep compute='masked'.")
    if sparse_kernel(layer) is not None:
        raise ValueError(f"{where}: already computes sparse.")
    return kind


def convert_layer(layer, name, mask, capacity=None):
    """Replaces `layer`'s weight `name` by its nonzeros where `mask` is 1
    (the masked layer's masks are removed first if it has them).

    Args:
      layer: a built Dense, EinsumDense, 1x1 Conv2D or Embedding layer.
      name: "kernel" or "embeddings".
      mask: 0/1 array of the weight's shape.
      capacity: entries to allocate (>= the mask's nonzeros; default:
        exactly them). Spare entries let a layer gain weights later.

    Returns:
      The `SparseKernel` now on the layer.
    """
    where = f"{layer.name}/{name}"
    kind = check_layer(layer, name, where)
    variable = getattr(layer, name)
    mask = masking.check_mask(where, mask, tuple(variable.shape))
    weight = keras.ops.convert_to_numpy(variable)
    shape = tuple(int(d) for d in variable.shape)
    plan = einsum_plan(layer) if kind == "einsum" else None
    matrix_mask = _to_matrix(kind, mask, plan)
    s = structure_lib.from_mask(matrix_mask, capacity)
    values = structure_lib.gather(
        _to_matrix(kind, weight * (mask > 0), plan), s)
    regularizer = getattr(variable, "regularizer", None)
    dtype = variable.dtype
    before = _own_variables(layer)
    position = [id(v) for v in layer._trainable_variables].index(  # pylint: disable=protected-access
        id(variable)) if variable.trainable else 0
    if hasattr(layer, masking.ATTR):
        masking.detach_masks(layer)
    private = "_" + name
    layer._tracker.unlock()  # pylint: disable=protected-access
    try:
        delattr(layer, private)
        new_values = layer.add_weight(
            shape=(s.capacity,), dtype=dtype, initializer="zeros",
            regularizer=regularizer, trainable=True, name=f"{name}_values")
        new_row_ptr = layer.add_weight(
            shape=s.row_ptr.shape, dtype="int32", initializer="zeros",
            trainable=False, name=f"{name}_row_ptr")
        new_cols = layer.add_weight(
            shape=(s.capacity,), dtype="int32", initializer="zeros",
            trainable=False, name=f"{name}_cols")
        # Attributes too: checkpoints track a layer's variables by attribute.
        setattr(layer, f"{name}_values", new_values)
        setattr(layer, f"{name}_row_ptr", new_row_ptr)
        setattr(layer, f"{name}_cols", new_cols)
    finally:
        layer._tracker.lock()  # pylint: disable=protected-access
    new_values.assign(values)
    new_row_ptr.assign(s.row_ptr)
    new_cols.assign(s.cols)
    holder = SparseKernel(layer=layer, name=name, kind=kind, shape=shape,
                          values=new_values, row_ptr=new_row_ptr,
                          cols=new_cols, dtype=dtype, position=position,
                          plan=plan)
    layout = [None if v is variable else v for v in before]
    save, load = _saving(holder, layout)
    # Instance attributes, not Keras-tracked: the class, config and weight
    # saving protocol of the layer stay as they are.
    object.__setattr__(layer, "call", _CALLS[kind](holder))
    object.__setattr__(layer, "save_own_variables", save)
    object.__setattr__(layer, "load_own_variables", load)
    object.__setattr__(layer, ATTR, holder)
    return holder


def convertible(model):
    """[(MaskedWeight, kind or None, why not)] for every masked weight."""
    found = []
    for mw in masking.masked_weights(model):
        kind, why = kind_of(mw.layer, mw.name)
        found.append((mw, kind, why))
    return found


def check_model(model):
    """Raises ValueError when `model` cannot take sparse compute now: not
    the TensorFlow backend, or an optimizer already built for the dense
    weights."""
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ValueError(
            f"compute='sparse' needs the TensorFlow backend; Keras runs on "
            f"{backend!r}. Use compute='masked', or set KERAS_BACKEND="
            "tensorflow.")
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and getattr(optimizer, "built", False):
        raise ValueError(
            f"Model {model.name!r} has an optimizer built for its dense "
            "weights; convert to compute='sparse' before the first training "
            "step (then compile), so that its slots are made for the "
            "nonzeros only.")


def plain_copy(model):
    """A plain Keras model of `model`'s architecture with the dense weights
    (zeros in place): what `tfs.strip` gives for the masked model."""
    clone = cloning.clone_architecture(model)

    def holding(root):
        # Layers without variables are left out: a rebuilt keras-hub task
        # model can have an extra InputLayer, and auto-named sublayers
        # (softmax_1) may be named differently in the copy.
        return [layer for layer in [root] + [
            sub for _, sub in masking.iter_layers(root)]
            if _own_variables(layer)]

    originals, copies = holding(model), holding(clone)
    if [type(x) for x in originals] != [type(x) for x in copies]:
        raise ValueError(
            f"Rebuilt {type(model).__name__!r} has {len(copies)} layers with "
            f"weights, the original {len(originals)} (or of other types); "
            "cannot strip it.")
    for original, copy in zip(originals, copies):
        store = {}
        original.save_own_variables(store)
        copy.load_own_variables(store)
    copy_of = {id(o): c for o, c in zip(originals, copies)}
    for mw in masking.masked_weights(model):
        getattr(copy_of[id(mw.layer)], mw.name).assign(
            masking.keep_active(mw.variable, mw.mask))
    return clone


def restore_layer(layer):
    """Undoes `convert_layer`: the layer gets its dense weight back (zeros
    in place, no masks) and computes densely again. Returns the dense
    weight."""
    holder = sparse_kernel(layer)
    if holder is None:
        raise ValueError(f"Layer {layer.name!r} does not compute sparse.")
    dense = holder.dense_weight()
    regularizer = getattr(holder.values, "regularizer", None)
    layer._tracker.unlock()  # pylint: disable=protected-access
    try:
        for part in ("values", "row_ptr", "cols"):
            delattr(layer, f"{holder.name}_{part}")  # untracks it too
        weight = layer.add_weight(shape=holder.shape, dtype=holder.dtype,
                                  initializer="zeros",
                                  regularizer=regularizer,
                                  name=holder.name)
        setattr(layer, "_" + holder.name, weight)
        # Back to its original place (add_weight appended it), so that
        # `layer.weights`, `get_weights` and Keras's positional saving of
        # e.g. Conv2D see (kernel, bias) again.
        order = layer._trainable_variables  # pylint: disable=protected-access
        del order[[id(v) for v in order].index(id(weight))]
        order.insert(holder.position, weight)
    finally:
        layer._tracker.lock()  # pylint: disable=protected-access
    weight.assign(dense)
    for name in ("call", "save_own_variables", "load_own_variables", ATTR):
        object.__delattr__(layer, name)
    return dense
