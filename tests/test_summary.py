"""Density and FLOPs reports against hand counts."""

import keras
import numpy as np

import tf_sparse as tfs


def test_dense_and_conv_flops_match_hand_counts():
    inputs = keras.Input((10, 10, 3))
    x = keras.layers.Conv2D(8, 3, padding="valid", name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(4, name="fc")(x)
    model = tfs.sparsify(keras.Model(inputs, outputs), sparsity=0.75)
    rep = {w.path: w for w in tfs.diagnostics.report(model).weights}
    # conv: 8x8 output positions x (3*3*3*8) kernel MACs, x2.
    assert rep["conv/kernel"].flops_dense == 2 * 8 * 8 * 3 * 3 * 3 * 8
    # fc: 512 x 4 MACs, x2.
    assert rep["fc/kernel"].flops_dense == 2 * 512 * 4
    conv = rep["conv/kernel"]
    assert conv.nonzeros == 54 and conv.size == 216
    assert conv.flops_sparse == conv.flops_dense // 4


def test_depthwise_separable_transpose_and_einsum_flops():
    inputs = keras.Input((6, 6, 4))
    d = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(inputs)
    s = keras.layers.SeparableConv2D(5, 3, padding="same", name="sep")(d)
    t = keras.layers.Conv2DTranspose(2, 2, strides=2, name="up")(s)
    f = keras.layers.Reshape((12 * 12, 2))(t)
    e = keras.layers.EinsumDense("abc,cd->abd", output_shape=(None, 7),
                                 name="ein")(f)
    model = tfs.sparsify(keras.Model(inputs, e), sparsity=0.5)
    rep = {w.path: w.flops_dense for w in tfs.diagnostics.report(model).weights}
    assert rep["dw/kernel"] == 2 * 36 * 3 * 3 * 4
    assert rep["sep/depthwise_kernel"] == 2 * 36 * 3 * 3 * 4
    assert rep["sep/pointwise_kernel"] == 2 * 36 * 4 * 5
    assert rep["up/kernel"] == 2 * 36 * 2 * 2 * 5 * 2   # per input position
    assert rep["ein/kernel"] == 2 * 144 * 7 * 2


def test_summary_lists_each_weight_and_the_total():
    inputs = keras.Input((784,))
    x = keras.layers.Dense(300, name="fc1")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10, name="fc2")(x))
    tfs.sparsify(model, sparsity=0.95, keep_dense=["fc2"])
    text = tfs.summary(model)
    assert "fc1/kernel" in text and "fc2/kernel (dense)" in text
    rep = tfs.diagnostics.report(model)
    assert rep.total_nonzeros == 11760 + 3000
    assert rep.masked_density == 11760 / 235200
    assert np.isclose(rep.density, (11760 + 3000) / (235200 + 3000))
    assert rep.as_dict()["layers"]["fc1/kernel"]["nonzeros"] == 11760
