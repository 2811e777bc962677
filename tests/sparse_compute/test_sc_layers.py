"""Forward outputs and every gradient (inputs, nonzero values, bias) of the
sparse-compute layers equal those of the same masked dense layer: Dense,
1x1 Conv2D (strides 1 and 2), Embedding and EinsumDense (the attention
projections, a plain matmul, a feed-forward), over random shapes and
densities (empty rows and columns, density 0 and 1), with the compiled
kernels, with the TensorFlow fallback, and under XLA (jit_compile)."""

import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest
import tensorflow as tf

import sc_testlib as lib
from tf_sparse.sparse_compute import layers as sc_layers
from tf_sparse.sparse_compute import ops
from tf_sparse.sparse_compute import structure

RTOL, ATOL = 1e-5, 1e-5
MODES = ("auto", "tf")

# No shrinking: each example builds TensorFlow graphs, and a failure is
# reported with the drawn example as it is.
PHASES = (hypothesis.Phase.explicit, hypothesis.Phase.generate)
SETTINGS = hypothesis.settings(
    max_examples=10, deadline=None, derandomize=True, phases=PHASES,
    suppress_health_check=list(hypothesis.HealthCheck))


@st.composite
def masks(draw, max_in=40, max_out=40):
    """A 0/1 mask [inputs, outputs] of a drawn density, sometimes with an
    empty input row and an empty output column forced."""
    k = draw(st.integers(1, max_in))
    n = draw(st.integers(1, max_out))
    density = draw(st.sampled_from([0.0, 0.03, 0.2, 0.6, 1.0]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    mask = (rng.random((k, n)) < density).astype("float32")
    if draw(st.booleans()):
        mask[draw(st.integers(0, k - 1)), :] = 0
        mask[:, draw(st.integers(0, n - 1))] = 0
    return mask


def _reference(x, w, loss_weights):
    w = tf.Variable(w)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.matmul(x, w)
        loss = tf.reduce_sum(y * loss_weights)
    dx, dw = tape.gradient(loss, [x, w])
    return y.numpy(), dx.numpy(), dw.numpy()


def _sparse(x, s, values, loss_weights, path, jit):
    values = tf.Variable(values)

    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = ops.matmul(x, s.row_ptr, s.cols, values, path=path)
            loss = tf.reduce_sum(y * loss_weights)
        dx, dv = tape.gradient(loss, [x, values])
        return y, dx, tf.convert_to_tensor(dv)

    if jit:
        run = tf.function(run, jit_compile=True)
    return [t.numpy() for t in run(x)]


@pytest.mark.parametrize("path,jit", [("compiled", False), ("csr", False),
                                      ("dense", False), ("auto", True)])
@SETTINGS   # 10 examples per path, XLA included
@hypothesis.given(mask=masks(), batch=st.sampled_from([0, 1, 3, 17, 130]),
                  spare=st.integers(0, 3))
def test_matmul_equals_masked_dense_product(path, jit, mask, batch, spare):
    if path == "compiled" and not lib.compiled_available():
        pytest.skip("compiled kernels unavailable here")
    rng = np.random.default_rng(batch)
    k, n = mask.shape
    w = (rng.normal(size=mask.shape) * mask).astype("float32")
    s = structure.from_mask(mask, capacity=int(mask.sum()) + spare)
    values = structure.gather(w, s)
    x = tf.constant(rng.normal(size=(batch, k)).astype("float32"))
    loss_weights = tf.constant(rng.normal(size=(batch, n)).astype("float32"))
    y, dx, dw = _reference(x, w, loss_weights)
    ys, dxs, dv = _sparse(x, s, values, loss_weights, path, jit)
    np.testing.assert_allclose(ys, y, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(dxs, dx, rtol=RTOL, atol=ATOL)
    # The gradient of every stored weight is the dense gradient there;
    # unused capacity gets exactly 0.
    np.testing.assert_allclose(dv[:s.nnz], structure.gather(dw, s)[:s.nnz],
                               rtol=RTOL, atol=ATOL)
    assert not np.any(dv[s.nnz:])


def test_paths_are_chosen_as_documented():
    with lib.kernels("tf"):
        assert ops.choose_path(tf.float32) == "csr"
    assert ops.choose_path(tf.float16) == "dense"
    assert ops.choose_path(tf.bfloat16) == "dense"
    seen = []

    @tf.function(jit_compile=True)
    def inside(x):
        seen.append(ops.choose_path(tf.float32))
        return x

    inside(tf.zeros([1]))
    assert seen == ["dense"]
    if lib.compiled_available():
        with lib.kernels("auto"):
            assert ops.choose_path(tf.float32) == "compiled"
    with pytest.raises(ValueError, match="path must be one of auto, "
                       "compiled, csr, dense, got 'fast'"):
        ops.choose_path(tf.float32, "fast")


def _layer_case(kind, mask, batch, mode, jit, strides=1, use_bias=True):
    k, n = mask.shape
    masked, sparse = lib.pair(kind, mask, k, n, strides=strides,
                              use_bias=use_bias)
    x = lib.inputs_for(kind, masked, batch)
    _compare(masked, sparse, x, lib.WEIGHT[kind].split("/")[1],
             lib.weight_mask(kind, mask), mode, jit)


def _compare(masked, sparse, x, name, mask, mode, jit):
    """Outputs, input gradient and every weight gradient of the sparse
    model equal the masked model's (weight `name` at its nonzeros)."""
    y, dx, grads = lib.outputs_and_gradients(masked, x)
    with lib.kernels(mode):
        ys, dxs, grads_s = lib.outputs_and_gradients(sparse, x, jit=jit)
    np.testing.assert_allclose(ys, y, rtol=RTOL, atol=ATOL)
    if dx is not None:
        np.testing.assert_allclose(dxs, dx, rtol=RTOL, atol=ATOL)
    assert sorted(grads_s) == sorted(grads)
    # The masked layer's gradient is dense; the sparse layer has one at
    # its nonzeros only: equal there, and nothing elsewhere.
    np.testing.assert_allclose(grads_s[name], grads[name] * mask,
                               rtol=RTOL, atol=ATOL)
    for other in set(grads) - {name}:
        np.testing.assert_allclose(grads_s[other], grads[other], rtol=RTOL,
                                   atol=ATOL)


def _layer_settings(examples):
    return hypothesis.settings(
        max_examples=examples, deadline=None, derandomize=True,
        phases=PHASES, suppress_health_check=list(hypothesis.HealthCheck))


@pytest.mark.parametrize("kind", lib.KINDS)
@pytest.mark.parametrize("mode", MODES)
@_layer_settings(5)
@hypothesis.given(mask=masks(max_in=24, max_out=24),
                  batch=st.sampled_from([1, 4, 9]))
def test_layer_outputs_and_gradients_equal_the_masked_layer(kind, mode, mask,
                                                            batch):
    _layer_case(kind, mask, batch, mode, jit=False)


@pytest.mark.parametrize("kind", lib.KINDS)
@_layer_settings(3)   # an XLA compilation per example
@hypothesis.given(mask=masks(max_in=24, max_out=24),
                  batch=st.sampled_from([1, 4, 9]))
def test_layer_under_xla_equals_the_masked_layer(kind, mask, batch):
    _layer_case(kind, mask, batch, "auto", jit=True)


@pytest.mark.parametrize("mode,jit", [("auto", False), ("tf", False),
                                      ("auto", True)])
def test_strided_1x1_conv_without_bias(mode, jit):
    rng = np.random.default_rng(3)
    mask = (rng.random((6, 5)) < 0.4).astype("float32")
    _layer_case("conv1x1", mask, 2, mode, jit, strides=2, use_bias=False)


@pytest.mark.parametrize("kind", lib.KINDS)
def test_density_zero_layer_outputs_the_bias_and_no_kernel_gradient(kind):
    mask = np.zeros((7, 4), "float32")
    masked, sparse = lib.pair(kind, mask, 7, 4)
    x = lib.inputs_for(kind, masked, 3)
    ys, dxs, grads = lib.outputs_and_gradients(sparse, x)
    layer = sparse.get_layer("layer")
    bias = layer.bias.numpy() if getattr(layer, "bias", None) is not None \
        else 0.0
    np.testing.assert_array_equal(ys, np.broadcast_to(bias, ys.shape))
    name = lib.WEIGHT[kind].split("/")[1]
    assert not np.any(grads[name])
    if dxs is not None:
        assert not np.any(dxs)


@st.composite
def einsum_masks(draw, plan):
    """A 0/1 mask of a kernel, drawn on its plan's `[K, N]` matmul matrix:
    a drawn density, sometimes with an empty input row and an empty output
    column of that matrix forced."""
    density = draw(st.sampled_from([0.0, 0.05, 0.3, 1.0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    matrix = (rng.random((plan.k, plan.n)) < density).astype("float32")
    if draw(st.booleans()):
        matrix[draw(st.integers(0, plan.k - 1)), :] = 0
        matrix[:, draw(st.integers(0, plan.n - 1))] = 0
    return plan.kernel_nd(matrix)


def _einsum_case(case, mask, batch, mode, jit):
    masked, sparse = lib.einsum_pair(case, mask)
    x = np.random.default_rng(batch).normal(
        size=(batch,) + tuple(masked.input_shape[1:])).astype("float32")
    assert sc_layers.sparse_kernel(sparse.get_layer("layer")).kind \
        == "einsum"
    _compare(masked, sparse, x, "kernel", mask, mode, jit)


@pytest.mark.parametrize("case", sorted(lib.EINSUM_CASES))
@pytest.mark.parametrize("mode", MODES)
@_layer_settings(3)
@hypothesis.given(data=st.data(), batch=st.sampled_from([1, 3]))
def test_einsum_dense_outputs_and_gradients_equal_the_masked_layer(
        case, mode, data, batch):
    mask = data.draw(einsum_masks(lib.einsum_plan(case)))
    _einsum_case(case, mask, batch, mode, jit=False)


@pytest.mark.parametrize("case", ["mha_qkv", "mha_output"])
def test_einsum_dense_under_xla_equals_the_masked_layer(case):
    plan = lib.einsum_plan(case)
    mask = plan.kernel_nd((np.random.default_rng(5).random(
        (plan.k, plan.n)) < 0.3).astype("float32"))
    _einsum_case(case, mask, 2, "auto", jit=True)


@pytest.mark.parametrize("case", sorted(lib.EINSUM_CASES))
def test_einsum_plan_kernel_nd_inverts_kernel_2d(case):
    plan = lib.einsum_plan(case)
    kernel = np.arange(plan.k * plan.n, dtype="float32").reshape(
        plan.kernel_shape)
    np.testing.assert_array_equal(plan.kernel_nd(plan.kernel_2d(kernel)),
                                  kernel)
