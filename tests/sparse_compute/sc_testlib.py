"""Helpers of the sparse-compute tests: one-layer models of every kind, the
same model masked and computing sparse, and their outputs and gradients."""

import contextlib
import os

import keras
import numpy as np
import tensorflow as tf

import tf_sparse as tfs
from tf_sparse.sparse_compute import build
from tf_sparse.sparse_compute import layers as sc_layers

KINDS = ("dense", "conv1x1", "embedding")
WEIGHT = {"dense": "layer/kernel", "conv1x1": "layer/kernel",
          "embedding": "layer/embeddings"}


@contextlib.contextmanager
def kernels(mode):
    """Runs the block with TF_SPARSE_KERNELS=`mode` ("auto": the compiled
    kernels where they build, "tf": TensorFlow ops)."""
    old = os.environ.get(build.ENV_MODE)
    os.environ[build.ENV_MODE] = mode
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(build.ENV_MODE, None)
        else:
            os.environ[build.ENV_MODE] = old


def compiled_available():
    """True when the compiled kernels build and load here."""
    with kernels("auto"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", build.KernelsUnavailableWarning)
            return build.load() is not None


def one_layer(kind, k, n, seed=0, strides=1, use_bias=True):
    """A built functional model with one layer named "layer": Dense(k -> n),
    1x1 Conv2D (k -> n channels on 3x4 images) or Embedding(k tokens, n
    dims); random nonzero weights (and bias)."""
    keras.utils.set_random_seed(seed)
    if kind == "dense":
        inputs = keras.Input((k,))
        layer = keras.layers.Dense(n, use_bias=use_bias, name="layer")
    elif kind == "conv1x1":
        inputs = keras.Input((3, 4, k))
        layer = keras.layers.Conv2D(n, 1, strides=strides, use_bias=use_bias,
                                    name="layer")
    else:
        inputs = keras.Input((5,), dtype="int32")
        layer = keras.layers.Embedding(k, n, name="layer")
    model = keras.Model(inputs, layer(inputs), name=f"one_{kind}")
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        w.assign(rng.normal(size=w.shape).astype("float32"))
    return model


def inputs_for(kind, model, batch, seed=0):
    rng = np.random.default_rng(seed + 100)
    shape = (batch,) + tuple(model.input_shape[1:])
    if kind == "embedding":
        k = model.get_layer("layer").input_dim
        return rng.integers(0, k, size=shape).astype("int32")
    return rng.normal(size=shape).astype("float32")


def weight_mask(kind, mask):
    """A [inputs, outputs] mask in the weight's shape (a 1x1 kernel has two
    leading 1s; an Embedding table is [tokens, dims] = [inputs, outputs])."""
    return mask.reshape(1, 1, *mask.shape) if kind == "conv1x1" else mask


def pair(kind, mask, k, n, seed=0, **kwargs):
    """(masked model, sparse-compute model): the same weights and mask
    ([inputs, outputs])."""
    mask = weight_mask(kind, mask)
    masked = one_layer(kind, k, n, seed, **kwargs)
    tfs.sparsify(masked, masks={WEIGHT[kind]: mask})
    sparse = one_layer(kind, k, n, seed, **kwargs)
    tfs.sparsify(sparse, masks={WEIGHT[kind]: mask}, compute="sparse")
    return masked, sparse


def dense_of(holder, entries):
    """Per-entry numbers of a sparse layer (values, their gradient, a slot)
    as an array of the dense weight's shape, zeros elsewhere."""
    return holder.dense_of(entries)


# EinsumDense layers: (equation, input shape, output shape, bias_axes,
# activation), without the batch axis.
EINSUM_CASES = {
    # keras.layers.MultiHeadAttention's query/key/value and output.
    "mha_qkv": ("abc,cde->abde", (5, 16), (5, 2, 8), "de", None),
    "mha_output": ("abcd,cde->abe", (5, 2, 8), (5, 16), "e", None),
    "plain": ("ab,bc->ac", (12,), (7,), "c", None),
    # A keras-hub-like feed-forward (Gemma's gating: "btd,df->btf").
    "ffn": ("btd,df->btf", (5, 16), (5, 24), "f", "gelu"),
    # Gemma's query: heads first in the kernel, no bias.
    "gemma_query": ("btd,ndh->btnh", (5, 16), (5, 2, 8), None, None),
    "ellipsis": ("...b,bc->...c", (3, 6), (5,), "c", "relu"),
}


def one_einsum(case, seed=0):
    """A built functional model with one EinsumDense named "layer" of
    `EINSUM_CASES[case]`; random nonzero weights (and bias)."""
    equation, in_shape, out_shape, bias_axes, activation = EINSUM_CASES[case]
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(in_shape)
    layer = keras.layers.EinsumDense(equation, output_shape=out_shape,
                                     bias_axes=bias_axes,
                                     activation=activation, name="layer")
    model = keras.Model(inputs, layer(inputs), name=f"one_einsum_{case}")
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        w.assign(rng.normal(size=w.shape).astype("float32"))
    return model


def einsum_plan(case):
    """The `EinsumPlan` of a case's kernel."""
    return sc_layers.einsum_plan(one_einsum(case).get_layer("layer"))


def einsum_pair(case, mask, seed=0):
    """(masked, sparse-compute) one-EinsumDense models with the same
    weights and `mask` (the kernel's shape)."""
    masked = one_einsum(case, seed)
    tfs.sparsify(masked, masks={"layer/kernel": mask})
    sparse = one_einsum(case, seed)
    tfs.sparsify(sparse, masks={"layer/kernel": mask}, compute="sparse")
    return masked, sparse


def outputs_and_gradients(model, x, upstream_seed=7, jit=False):
    """(y, dx or None, {weight name: gradient as a dense array of the
    original weight's shape}) of sum(y * r) for a fixed random r."""
    layer = model.get_layer("layer")
    holder = sc_layers.sparse_kernel(layer)
    variables = list(layer.trainable_variables)
    x = tf.convert_to_tensor(x)
    floating = x.dtype.is_floating

    shape = model.compute_output_shape(tuple(x.shape))
    r = tf.constant(np.random.default_rng(upstream_seed).normal(
        size=shape).astype("float32"))

    def run(x):
        with tf.GradientTape() as tape:
            if floating:
                tape.watch(x)
            y = model(x)
            loss = tf.reduce_sum(y * r)
        grads = tape.gradient(loss, ([x] if floating else []) + variables)
        return y, grads

    if jit:
        run = tf.function(run, jit_compile=True)
    y, grads = run(x)
    dx = grads[0] if floating else None
    grads = grads[1:] if floating else grads
    out = {}
    for v, g in zip(variables, grads):
        g = tf.convert_to_tensor(g) if g is not None else tf.zeros_like(v)
        name = v.path.split("/")[-1]
        if holder is not None and v is holder.values:
            out[holder.name] = dense_of(holder, g.numpy())
        else:
            out[name] = g.numpy()
    return (y.numpy(), None if dx is None else dx.numpy(), out)
