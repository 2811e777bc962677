"""Real sparse inference on CPU: large Dense, EinsumDense and 1x1-conv
layers as CSR matmuls.

Masking keeps the zeros but runs dense kernels, so a masked model is exactly
as fast as the dense one. This module builds an *inference form* of a
trained sparse model in which chosen layers hold only their nonzero weights
and multiply with TensorFlow's CSR sparse-matrix kernel
(`SparseTensorToCSRSparseMatrix` + `SparseMatrixMatMul`). Everything else
stays as it was. The form is a plain functional Keras model of ordinary
TensorFlow ops, so `model.export` writes it as a SavedModel that needs
neither tf_sparse nor custom ops to serve.

EinsumDense layers (the attention projections of `MultiHeadAttention` and
keras-hub's transformer blocks) run as one 2-D CSR matmul between a
transpose and a reshape (`EinsumPlan`). Layers held by a composite layer
(an attention layer's query, a block's feed-forward dense) are swapped in
the rebuilt model's composite layer; such a form serves through
`model.export` (its `.keras` config would rebuild them dense).

A layer is switched only where that is faster than dense, decided per layer
by `plan(..., method="measure")` (the default: times the dense layer and
its CSR replacement on this machine at the serving batch size, interleaved,
and keeps CSR only when the speed-ups of the medians and of the minima are
both at least `min_speedup`) or by
`method="rule"`, the rule measured on a 2-core x86 machine (see
benchmarks/results/export_benchmark.md): CSR when the weight density is at
most 10%, the batch at least 32 and the weight at least 256K entries. At
batch 1 the CSR kernel is slower than dense at 90% sparsity here, so the
form is a per-batch-size choice.

What is measured here (TF 2.21, 2 x86 cores): CSR matmul of a 1024x1024
weight at batch 128 is ~1.2-1.6x faster than dense at 90% sparsity and
~2.5-5x at 99%; `tf.sparse.sparse_dense_matmul` (COO) is ~5x *slower* at
90%. The CSR structure is rebuilt from stored COO indices on every call
(a variant tensor cannot be stored in a SavedModel); that costs ~4 ns per
nonzero and is included in every timing.

Example:

    choices = tfs.sparse_inference.plan(model, batch_size=128)
    form = tfs.sparse_inference.to_sparse_inference(model, choices)
    form.export("served/")             # a SavedModel with CSR matmuls
"""

import dataclasses
import time

import keras
import numpy as np
import tensorflow as tf

from tf_sparse import backend
from tf_sparse import cloning
from tf_sparse import export
from tf_sparse import masking
from tf_sparse import model_report
from tf_sparse.sparse_compute.einsum import EinsumPlan

# method="rule": CSR only where all three hold (measured, see the docstring).
RULE_MAX_DENSITY = 0.10
RULE_MIN_BATCH = 32
RULE_MIN_SIZE = 1 << 18
# Below this many weight entries a layer is never considered.
MIN_SIZE = 1 << 14
# Tolerance of the CSR form against the Keras model (float32 sums in another
# order).
ATOL = 1e-4
RTOL = 1e-4


def _csr_matmul(x, indices, values, out_dim, in_dim):
    """x @ W for W^T given as COO (row = output unit, column = input)."""
    matrix = tf.raw_ops.SparseTensorToCSRSparseMatrix(
        indices=indices, values=values,
        dense_shape=tf.constant([out_dim, in_dim], tf.int64))
    # (W^T x^T)^T: the sparse operand must be on the left.
    return tf.raw_ops.SparseMatrixMatMul(a=matrix, b=x, transpose_b=True,
                                         transpose_output=True)


@keras.saving.register_keras_serializable(package="tf_sparse")
class CSRDense(keras.layers.Layer):
    """A Dense layer whose kernel is held as nonzeros and run as CSR.

    Computes `activation(x @ kernel + bias)` over the last axis of `x`, like
    `keras.layers.Dense`, from `nnz` stored nonzeros of `kernel^T`.
    """

    def __init__(self, units, input_dim, nnz, activation=None, use_bias=True,
                 **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.input_dim = int(input_dim)
        self.nnz = int(nnz)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)

    def build(self, input_shape):
        self.indices = self.add_weight(
            shape=(self.nnz, 2), dtype="int64", initializer="zeros",
            trainable=False, name="indices")
        self.values = self.add_weight(
            shape=(self.nnz,), initializer="zeros", trainable=False,
            name="values")
        self.bias = self.add_weight(
            shape=(self.units,), initializer="zeros", trainable=False,
            name="bias") if self.use_bias else None

    def set_kernel(self, kernel, bias=None):
        """Stores the nonzeros of a (input_dim, units) kernel."""
        kernel = np.asarray(kernel)
        if kernel.shape != (self.input_dim, self.units):
            raise ValueError(f"kernel shape {kernel.shape}, expected "
                             f"{(self.input_dim, self.units)}.")
        transposed = kernel.T
        index = np.argwhere(transposed != 0).astype(np.int64)  # row-major
        if len(index) != self.nnz:
            raise ValueError(f"kernel has {len(index)} nonzeros, layer "
                             f"holds {self.nnz}.")
        self.indices.assign(index)
        self.values.assign(transposed[index[:, 0], index[:, 1]])
        if self.use_bias:
            self.bias.assign(np.asarray(bias))

    def kernel_matrix(self):
        """The dense (input_dim, units) kernel, rebuilt from the nonzeros."""
        kernel = np.zeros((self.units, self.input_dim), np.float32)
        index = keras.ops.convert_to_numpy(self.indices)
        kernel[index[:, 0], index[:, 1]] = keras.ops.convert_to_numpy(
            self.values)
        return kernel.T

    def _matmul(self, x):
        shape = tf.shape(x)
        flat = tf.reshape(x, [-1, self.input_dim])
        y = _csr_matmul(flat, self.indices.value, self.values.value,
                        self.units, self.input_dim)
        return tf.reshape(y, tf.concat([shape[:-1], [self.units]], 0))

    def call(self, inputs):
        y = self._matmul(inputs)
        if self.use_bias:
            y = y + self.bias
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, input_dim=self.input_dim,
                      nnz=self.nnz,
                      activation=keras.activations.serialize(self.activation),
                      use_bias=self.use_bias)
        return config


@keras.saving.register_keras_serializable(package="tf_sparse")
class CSRConv1x1(CSRDense):
    """A 1x1 Conv2D (channels_last, one group) run as a CSR matmul.

    Strides subsample the input first; for a 1x1 kernel "same" and "valid"
    padding give the same output.
    """

    def __init__(self, units, input_dim, nnz, strides=(1, 1), **kwargs):
        super().__init__(units, input_dim, nnz, **kwargs)
        self.strides = tuple(int(s) for s in strides)

    def call(self, inputs):
        sh, sw = self.strides
        if sh != 1 or sw != 1:
            inputs = inputs[:, ::sh, ::sw, :]
        return super().call(inputs)

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        sh, sw = self.strides
        h = None if h is None else (h + sh - 1) // sh
        w = None if w is None else (w + sw - 1) // sw
        return (b, h, w, self.units)

    def get_config(self):
        config = super().get_config()
        config["strides"] = list(self.strides)
        return config


@keras.saving.register_keras_serializable(package="tf_sparse")
class CSREinsumDense(keras.layers.Layer):
    """An EinsumDense layer whose kernel is held as nonzeros and run as one
    CSR matmul (`EinsumPlan`): attention query/key/value/output projections
    and the feed-forward projections of keras-hub models.

    Computes `activation(einsum(equation, x, kernel) + bias)` like
    `keras.layers.EinsumDense`.
    """

    def __init__(self, equation, kernel_shape, nnz, bias_shape=None,
                 activation=None, **kwargs):
        super().__init__(**kwargs)
        self.plan = EinsumPlan(equation, kernel_shape)
        self.kernel_shape = tuple(int(d) for d in kernel_shape)
        self.nnz = int(nnz)
        self.bias_shape = None if bias_shape is None else tuple(
            int(d) for d in bias_shape)
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        self.indices = self.add_weight(
            shape=(self.nnz, 2), dtype="int64", initializer="zeros",
            trainable=False, name="indices")
        self.values = self.add_weight(
            shape=(self.nnz,), initializer="zeros", trainable=False,
            name="values")
        self.bias = None if self.bias_shape is None else self.add_weight(
            shape=self.bias_shape, initializer="zeros", trainable=False,
            name="bias")

    def set_kernel(self, kernel, bias=None):
        """Stores the nonzeros of a kernel of `kernel_shape`."""
        kernel = np.asarray(kernel)
        if kernel.shape != self.kernel_shape:
            raise ValueError(f"kernel shape {kernel.shape}, expected "
                             f"{self.kernel_shape}.")
        transposed = self.plan.kernel_2d(kernel).T
        index = np.argwhere(transposed != 0).astype(np.int64)
        if len(index) != self.nnz:
            raise ValueError(f"kernel has {len(index)} nonzeros, layer "
                             f"holds {self.nnz}.")
        self.indices.assign(index)
        self.values.assign(transposed[index[:, 0], index[:, 1]])
        if self.bias is not None:
            self.bias.assign(np.asarray(bias))

    def call(self, inputs):
        y = self.plan.apply(inputs, lambda flat: _csr_matmul(
            flat, self.indices.value, self.values.value, self.plan.n,
            self.plan.k))
        if self.bias is not None:
            y = y + self.bias
        return self.activation(y)

    def get_config(self):
        config = super().get_config()
        config.update(equation=self.plan.equation,
                      kernel_shape=list(self.kernel_shape), nnz=self.nnz,
                      bias_shape=(None if self.bias_shape is None
                                  else list(self.bias_shape)),
                      activation=keras.activations.serialize(self.activation))
        return config


def _bias_of(layer):
    bias = getattr(layer, "bias", None)
    return None if bias is None else keras.ops.convert_to_numpy(bias)


def _dense_kernel_of(layer):
    """(kind, 2-D kernel) if `layer` can run as a CSR matmul, else None."""
    if getattr(layer, "quantization_mode", None) or getattr(
            layer, "lora_enabled", False):
        return None
    if type(layer) is keras.layers.Dense:
        return "dense", keras.ops.convert_to_numpy(layer.kernel)
    if type(layer) is keras.layers.EinsumDense:
        try:
            plan_ = EinsumPlan(layer.equation, layer.kernel.shape)
        except ValueError:
            return None
        return "einsum", plan_.kernel_2d(
            keras.ops.convert_to_numpy(layer.kernel))
    if type(layer) is keras.layers.Conv2D:
        if (tuple(layer.kernel_size) == (1, 1) and layer.groups == 1
                and layer.data_format == "channels_last"
                and tuple(layer.dilation_rate) == (1, 1)):
            kernel = keras.ops.convert_to_numpy(layer.kernel)
            return "conv1x1", kernel.reshape(kernel.shape[2], kernel.shape[3])
    return None


def csr_layer_for(layer):
    """The CSR replacement of a Dense, EinsumDense or 1x1 Conv2D layer, and
    the kernel to give its `set_kernel`."""
    found = _dense_kernel_of(layer)
    if found is None:
        raise ValueError(f"Layer {layer.name!r} ({type(layer).__name__}) has "
                         "no CSR form (Dense, EinsumDense with a 2-D matmul "
                         "form, or 1x1 Conv2D only).")
    kind, kernel = found
    if kind == "einsum":
        bias = _bias_of(layer)
        new = CSREinsumDense(
            layer.equation, layer.kernel.shape, int(np.count_nonzero(kernel)),
            bias_shape=None if bias is None else bias.shape,
            activation=keras.activations.serialize(layer.activation),
            name=layer.name, dtype=layer.dtype_policy.name)
        return new, keras.ops.convert_to_numpy(layer.kernel)
    common = dict(units=kernel.shape[1], input_dim=kernel.shape[0],
                  nnz=int(np.count_nonzero(kernel)),
                  activation=keras.activations.serialize(layer.activation),
                  use_bias=layer.use_bias, name=layer.name,
                  dtype=layer.dtype_policy.name)
    if kind == "conv1x1":
        new = CSRConv1x1(strides=layer.strides, **common)
    else:
        new = CSRDense(**common)
    return new, kernel


@dataclasses.dataclass(frozen=True)
class LayerChoice:
    """Whether one layer runs dense or CSR, and why."""
    name: str
    kind: str
    shape: tuple
    density: float
    choice: str            # "csr" or "dense"
    reason: str
    dense_ms: float | None = None
    csr_ms: float | None = None

    @property
    def speedup(self):
        if self.dense_ms and self.csr_ms:
            return self.dense_ms / self.csr_ms
        return None

    def as_dict(self):
        d = dataclasses.asdict(self)
        d["speedup"] = self.speedup
        return d


def _median_times(functions, repeats, inner=3):
    """Interleaved (medians, minima), seconds per call, of functions."""
    for f in functions:
        f()
        f()
    samples = [[] for _ in functions]
    n = len(functions)
    for r in range(repeats):
        for k in range(n):  # the order rotates every repetition
            i = (k + r) % n
            start = time.perf_counter()
            for _ in range(inner):
                functions[i]()
            samples[i].append((time.perf_counter() - start) / inner)
    return ([float(np.median(s)) for s in samples],
            [float(np.min(s)) for s in samples])


def _layer_input_shape(layer, batch_size):
    shape = model_report.built_input_shape(layer)
    if shape is None or any(d is None for d in shape[1:]):
        return None
    return (batch_size,) + tuple(int(d) for d in shape[1:])


def time_layer(layer, batch_size, repeats=15, seed=0):
    """Dense and CSR seconds of one layer on a random batch.

    Returns `((dense median, CSR median), (dense min, CSR min))`.
    """
    shape = _layer_input_shape(layer, batch_size)
    if shape is None:
        raise ValueError(f"Layer {layer.name!r} has no known input shape.")
    x = tf.constant(np.random.default_rng(seed).normal(size=shape),
                    dtype=layer.compute_dtype)
    new, kernel = csr_layer_for(layer)
    new.build(shape)
    new.set_kernel(kernel, _bias_of(layer))
    dense_fn = tf.function(lambda a: layer(a), autograph=False)
    csr_fn = tf.function(lambda a: new(a), autograph=False)
    medians, minima = _median_times(
        [lambda: dense_fn(x).numpy(), lambda: csr_fn(x).numpy()], repeats)
    return tuple(medians), tuple(minima)


def eligible_layers(model):
    """`(path, layer)` of the layers a CSR form can replace: Dense, 1x1
    Conv2D and EinsumDense layers (`_dense_kernel_of`) at the model's top
    level, or held as an attribute by a composite layer anywhere below it
    (the projections of `MultiHeadAttention` and of keras-hub's transformer
    blocks). Layers of a nested functional model are graph nodes, not
    attributes, and stay as they are."""
    found = []
    by_path = {}
    for path, layer in masking.iter_layers(model):
        by_path[path] = layer
        if _dense_kernel_of(layer) is None:
            continue
        parent = path.rpartition("/")[0]
        if not parent or not isinstance(by_path[parent], keras.Model):
            found.append((path, layer))
    return found


def _swap_sublayer(parent, old, new):
    """Makes `parent` (a composite layer) call `new` where it called `old`."""
    names = [k for k, v in vars(parent).items() if v is old]
    if len(names) != 1:
        raise ValueError(
            f"Layer {old.name!r} is held by {type(parent).__name__} "
            f"{parent.name!r} under {len(names)} attributes; cannot replace "
            "it by its CSR form.")
    # Keras tracks sublayers in `_layers`; the old one must leave it, or
    # its dense kernel would stay a weight of the form.
    # pylint: disable=protected-access
    parent._layers.remove(old)
    tracker = parent._tracker
    locked = tracker.locked       # a built layer refuses new sublayers
    tracker.unlock()
    try:
        delattr(parent, names[0])
        setattr(parent, names[0], new)
    finally:
        if locked:
            tracker.lock()


def plan(model, batch_size=128, method="measure", min_speedup=1.1,
         repeats=15, min_size=MIN_SIZE):
    """Decides, layer by layer, which layers of `model` run as CSR.

    Args:
      model: a sparse (masked) or stripped Sequential/functional model.
      batch_size: the serving batch size the decision is for.
      method: "measure" (time dense vs CSR here), "rule" (the documented
        density/batch/size rule), "all" (every eligible layer; for tests) or
        "none".
      min_speedup: with "measure", the median dense/CSR time ratio a layer
        needs to be switched.
      repeats: interleaved timing repetitions per layer.
      min_size: smaller weights are never switched.

    Returns:
      A list of `LayerChoice`, one per eligible layer (`eligible_layers`),
      named by its path.
    """
    if method not in ("measure", "rule", "all", "none"):
        raise ValueError(f"Unknown method {method!r}; accepted: measure, "
                         "rule, all, none.")
    choices = []
    for path, layer in eligible_layers(model):
        kind, kernel = _dense_kernel_of(layer)
        size = kernel.size
        density = float(np.count_nonzero(kernel)) / size
        common = dict(name=path, kind=kind, shape=tuple(kernel.shape),
                      density=density)
        if method == "none":
            choices.append(LayerChoice(choice="dense", reason="method=none",
                                       **common))
        elif method == "all":
            choices.append(LayerChoice(choice="csr", reason="method=all",
                                       **common))
        elif size < min_size:
            choices.append(LayerChoice(
                choice="dense", reason=f"small ({size} < {min_size} weights)",
                **common))
        elif method == "rule":
            ok = (density <= RULE_MAX_DENSITY and batch_size >= RULE_MIN_BATCH
                  and size >= RULE_MIN_SIZE)
            choices.append(LayerChoice(
                choice="csr" if ok else "dense",
                reason=(f"rule: density <= {RULE_MAX_DENSITY}, batch >= "
                        f"{RULE_MIN_BATCH}, size >= {RULE_MIN_SIZE}: "
                        f"{'yes' if ok else 'no'}"), **common))
        elif _layer_input_shape(layer, batch_size) is None:
            choices.append(LayerChoice(
                choice="dense", reason="input shape not fully known (e.g. "
                "any sequence length): cannot be timed; use method='rule'",
                **common))
        else:
            (dense_t, csr_t), (dense_min, csr_min) = time_layer(
                layer, batch_size, repeats)
            ratio = dense_t / csr_t
            ratio_min = dense_min / csr_min
            # Both the medians and the fastest runs must agree (a shared
            # machine's noise can fake either one alone).
            ok = ratio >= min_speedup and ratio_min >= min_speedup
            choices.append(LayerChoice(
                choice="csr" if ok else "dense",
                reason=(f"measured at batch {batch_size}: CSR {ratio:.2f}x "
                        f"dense by medians, {ratio_min:.2f}x by minima "
                        f"({'both >=' if ok else 'not both >='} "
                        f"{min_speedup})"),
                dense_ms=dense_t * 1e3, csr_ms=csr_t * 1e3, **common))
    return choices


def _check_rebuildable(model):
    if not (isinstance(model, keras.Sequential)
            or cloning.is_functional(model)
            or getattr(model, "_is_graph_network", False)):
        raise ValueError(
            f"The CSR inference form needs a Sequential or functional model; "
            f"{type(model).__name__!r} is subclassed. Build the network "
            "functionally for serving, or export it dense with "
            "tfs.export.export_saved_model.")


def to_sparse_inference(model, choices=None, **plan_kwargs):
    """The inference form of `model`: chosen layers as CSR, others as is.

    `model` may be sparse (masked; pruned weights are read as 0) or a
    stripped plain model. `choices` comes from `plan` (computed with
    `plan_kwargs` when not given). Returns a new functional model.
    """
    backend.require_tensorflow(
        "CSR inference (tf.sparse kernels)",
        "Save the model with tfs.save_model and convert it in a process "
        "with KERAS_BACKEND=tensorflow.")
    _check_rebuildable(model)
    if masking.is_sparse(model):
        export.check_pruned_weights_are_zero(model)
    if choices is None:
        choices = plan(model, **plan_kwargs)
    switch = {c.name for c in choices if c.choice == "csr"}
    eligible = dict(eligible_layers(model))
    unknown = sorted(switch - set(eligible))
    if unknown:
        raise ValueError(f"choices name layers with no CSR form in "
                         f"{model.name!r}: {unknown}.")
    replaced = {}

    def clone(layer):
        if layer.name in switch:
            new, kernel = csr_layer_for(layer)
            replaced[layer.name] = (kernel, _bias_of(layer))
            return new
        return layer.__class__.from_config(layer.get_config())

    form = keras.models.clone_model(model, clone_function=clone)
    if len(form.layers) != len(model.layers):
        raise ValueError("The rebuilt model has another number of layers.")
    for original, new in zip(model.layers, form.layers):
        if original.name in replaced:
            new.set_kernel(*replaced[original.name])
        else:
            new.set_weights(original.get_weights())
    in_form = dict(masking.iter_layers(form))
    for path in sorted(p for p in switch if "/" in p):
        layer = eligible[path]
        new, kernel = csr_layer_for(layer)
        new.build(model_report.built_input_shape(layer))
        new.set_kernel(kernel, _bias_of(layer))
        _swap_sublayer(in_form[path.rpartition("/")[0]], in_form[path], new)
    return form


def export_saved_model(model, path, x, choices=None, *, atol=ATOL, rtol=RTOL,
                       **plan_kwargs):
    """Builds the CSR form, checks it against `model`, exports a SavedModel.

    Checks use `|a - b| <= atol + rtol * |b|`: the form against the Keras
    model on `x`, the loaded SavedModel against the form (SavedModel
    tolerance) and against the Keras model. Returns `(form, ExportResult)`;
    the result's `max_abs_diff` is against the Keras model.
    """
    form = to_sparse_inference(model, choices, **plan_kwargs)
    expected = export.keras_outputs(model, x)
    diff = export.compare("CSR inference form", expected,
                          export.keras_outputs(form, x), atol, rtol)
    result = export.export_saved_model(form, path, x)
    # Report the check against the original Keras model (the looser one).
    served = tf.saved_model.load(path)  # keep a reference while serving
    served_diff = export.compare(
        "CSR SavedModel", expected,
        np.asarray(served.serve(tf.constant(x))), atol, rtol)
    return form, dataclasses.replace(
        result, format="csr_saved_model", atol=atol, rtol=rtol,
        max_abs_diff=max(diff, served_diff))
