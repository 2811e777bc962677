"""`sparsify` on every model kind and layer type: exact counts, seeds, errors."""

import hypothesis
from hypothesis import strategies as st
import keras
import numpy as np
import pytest

import tf_sparse as tfs
from tf_sparse import masking


def mask_counts(model):
    return {mw.path: mw.nonzeros() for mw in tfs.masked_weights(model)}


def weights_match_masks(model):
    for mw in tfs.masked_weights(model):
        w = keras.ops.convert_to_numpy(mw.variable)
        m = keras.ops.convert_to_numpy(mw.mask)
        assert np.all(w[m == 0] == 0.0), mw.path
        assert np.all(np.signbit(w[m == 0]) == False), mw.path  # noqa: E712


def test_uniform_counts_are_exact_and_total_is_the_budget(mlp):
    tfs.sparsify(mlp, sparsity=0.9)
    counts = mask_counts(mlp)
    # 8*32=256 -> 25.6 -> 26; 32*16=512 -> 51.2 -> 51; 16*3=48 -> 4.8 -> 5;
    # budget floor(0.1*816+0.5)=82.
    assert counts == {"fc1/kernel": 26, "fc2/kernel": 51, "out/kernel": 5}
    assert sum(counts.values()) == 82
    weights_match_masks(mlp)


def test_biases_are_never_masked(mlp):
    tfs.sparsify(mlp, sparsity=0.5)
    assert all(mw.name == "kernel" for mw in tfs.masked_weights(mlp))
    assert np.count_nonzero(mlp.get_layer("fc1").bias.numpy() == 0) == 32


def test_same_seed_same_masks_other_seed_other_masks():
    def build(seed):
        keras.utils.set_random_seed(0)
        m = keras.Sequential([keras.Input((20,)), keras.layers.Dense(30),
                              keras.layers.Dense(5)])
        tfs.sparsify(m, sparsity=0.8, seed=seed)
        return [mw.mask.numpy() for mw in tfs.masked_weights(m)]
    a, b, c = build(3), build(3), build(4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_keep_dense_by_name_and_pattern(mlp):
    tfs.sparsify(mlp, sparsity=0.9, keep_dense=["out", "fc*2"])
    assert list(mask_counts(mlp)) == ["fc1/kernel"]
    assert mask_counts(mlp)["fc1/kernel"] == 26


def test_per_layer_mapping_leaves_other_layers_dense(mlp):
    tfs.sparsify(mlp, sparsity={"fc1": 0.5, "fc2": 0.75})
    assert mask_counts(mlp) == {"fc1/kernel": 128, "fc2/kernel": 128}


def test_magnitude_init_keeps_the_largest_weights(mlp):
    before = np.abs(mlp.get_layer("fc2").kernel.numpy()).ravel()
    tfs.sparsify(mlp, sparsity=0.75, mask_init="magnitude")
    mask = mlp.get_layer("fc2").tf_sparse_masks.masks["kernel"].numpy().ravel()
    assert before[mask == 1].min() >= before[mask == 0].max()


def test_explicit_masks_are_used_as_given(mlp):
    given = np.zeros((8, 32), "float32")
    given[0, :3] = 1
    tfs.sparsify(mlp, masks={"fc1/kernel": given})
    assert mask_counts(mlp) == {"fc1/kernel": 3}


ALL_LAYERS = [
    (keras.layers.Conv1D(4, 3), (10, 3), ["kernel"]),
    (keras.layers.Conv2D(4, 3), (8, 8, 3), ["kernel"]),
    (keras.layers.Conv3D(2, 2), (4, 4, 4, 2), ["kernel"]),
    (keras.layers.Conv2DTranspose(4, 3), (8, 8, 3), ["kernel"]),
    (keras.layers.DepthwiseConv2D(3, depth_multiplier=2), (8, 8, 3),
     ["kernel"]),
    (keras.layers.SeparableConv2D(6, 3), (8, 8, 3),
     ["depthwise_kernel", "pointwise_kernel"]),
    (keras.layers.EinsumDense("ab,bc->ac", output_shape=5, bias_axes="c"),
     (7,), ["kernel"]),
    (keras.layers.Embedding(50, 8), None, ["embeddings"]),
]


@pytest.mark.parametrize("layer,input_shape,names", ALL_LAYERS,
                         ids=lambda v: type(v).__name__ if isinstance(
                             v, keras.layers.Layer) else None)
def test_every_supported_layer_type_gets_exact_counts(layer, input_shape,
                                                      names):
    if input_shape is None:
        inputs = keras.Input((6,), dtype="int32")
    else:
        inputs = keras.Input(input_shape)
    model = keras.Model(inputs, layer(inputs))
    tfs.sparsify(model, sparsity=0.5)
    found = tfs.masked_weights(model)
    assert [mw.name for mw in found] == names
    for mw in found:
        assert mw.nonzeros() == int(np.floor(0.5 * mw.size + 0.5)) or (
            len(found) > 1)
    assert sum(mw.nonzeros() for mw in found) == int(
        np.floor(0.5 * sum(mw.size for mw in found) + 0.5))
    weights_match_masks(model)


def test_multi_head_attention_projections_are_masked():
    inputs = keras.Input((5, 16))
    outputs = keras.layers.MultiHeadAttention(2, 8, name="mha")(inputs, inputs)
    model = keras.Model(inputs, outputs)
    tfs.sparsify(model, sparsity=0.75)
    paths = [mw.path for mw in tfs.masked_weights(model)]
    assert paths == ["mha/query/kernel", "mha/key/kernel", "mha/value/kernel",
                     "mha/attention_output/kernel"]
    assert all(mw.nonzeros() == mw.size // 4 for mw in tfs.masked_weights(model))


class TwoTower(keras.Model):
    def __init__(self):
        super().__init__()
        self.left = keras.layers.Dense(16, name="left")
        self.right = keras.layers.Dense(16, name="right")
        self.head = keras.layers.Dense(2, name="head")

    def call(self, x):
        return self.head(self.left(x) + self.right(x))


def test_subclassed_model():
    model = TwoTower()
    model(np.zeros((1, 4), "float32"))
    tfs.sparsify(model, sparsity=0.5)
    assert mask_counts(model) == {"left/kernel": 32, "right/kernel": 32,
                                  "head/kernel": 16}


def test_nested_keras_application_inside_functional_model():
    backbone = keras.applications.MobileNetV2(
        weights=None, include_top=False, input_shape=(32, 32, 3), alpha=0.35)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    model = keras.Model(inputs, keras.layers.Dense(10, name="head")(x))
    tfs.sparsify(model, sparsity=0.9, distribution="erk",
                 keep_dense=["mobilenetv2_0.35_32/Conv1"])
    paths = [mw.path for mw in tfs.masked_weights(model)]
    assert paths[0].startswith("mobilenetv2_0.35_32/")
    assert "mobilenetv2_0.35_32/Conv1/kernel" not in paths
    assert "head/kernel" in paths
    assert any(isinstance(mw.layer, keras.layers.DepthwiseConv2D)
               for mw in tfs.masked_weights(model))
    report = tfs.diagnostics.report(model)
    masked = report.masked
    assert sum(w.nonzeros for w in masked) == int(
        np.floor(0.1 * sum(w.size for w in masked) + 0.5))


class Projection(keras.layers.Layer):
    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], 4), name="w")

    def call(self, x):
        return x @ self.w


class Declared(Projection):
    def get_prunable_weights(self):
        return [self.w]


def test_custom_layer_by_registration_and_by_protocol():
    for layer, register in ((Projection(), True), (Declared(), False)):
        inputs = keras.Input((10,))
        model = keras.Model(inputs, layer(inputs))
        if register:
            with pytest.raises(ValueError, match="no prunable weights"):
                tfs.sparsify(model, sparsity=0.5)
            tfs.register_prunable(Projection, ["w"])
        tfs.sparsify(model, sparsity=0.5)
        assert [mw.nonzeros() for mw in tfs.masked_weights(model)] == [20]


def test_unmaskable_layers_are_listed_in_the_summary():
    inputs = keras.Input((5, 3))
    x = keras.layers.LSTM(4, name="lstm")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="fc")(x))
    tfs.sparsify(model, sparsity=0.5)
    # The LSTM cell owns the kernels, so the cell is the layer named.
    assert "lstm/lstm_cell (LSTMCell)" in tfs.summary(model)


@pytest.mark.parametrize("bad", [1.0, 1.2, -0.1])
def test_sparsity_outside_range_names_the_value(mlp, bad):
    with pytest.raises(ValueError, match=rf"\[0, 1\).*{bad}"):
        tfs.sparsify(mlp, sparsity=bad)


def test_sparsity_of_wrong_type(mlp):
    with pytest.raises(TypeError, match="'high'"):
        tfs.sparsify(mlp, sparsity="high")


def test_unknown_names_are_refused_with_the_known_ones(mlp):
    with pytest.raises(ValueError, match="'fc9'.*fc1, fc2, out"):
        tfs.sparsify(mlp, sparsity=0.5, keep_dense=["fc9"])
    with pytest.raises(ValueError, match="'nope'.*fc1"):
        tfs.sparsify(mlp, sparsity={"nope": 0.5})
    with pytest.raises(ValueError, match="unknown weights"):
        tfs.sparsify(mlp, masks={"fc9/kernel": np.ones((8, 32))})
    assert not tfs.is_sparse(mlp)


def test_model_with_nothing_prunable():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.BatchNormalization()(inputs))
    with pytest.raises(ValueError, match="no prunable weights"):
        tfs.sparsify(model, sparsity=0.5)


def test_sparsifying_twice_is_refused_until_unsparsified(mlp):
    tfs.sparsify(mlp, sparsity=0.5)
    with pytest.raises(ValueError, match="already sparse"):
        tfs.sparsify(mlp, sparsity=0.9)
    tfs.unsparsify(mlp)
    assert not tfs.is_sparse(mlp)
    tfs.sparsify(mlp, sparsity=0.9)
    assert sum(mask_counts(mlp).values()) == 82


def test_unbuilt_model_is_refused():
    model = keras.Sequential([keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="not built"):
        tfs.sparsify(model, sparsity=0.5)


def test_bad_mask_values_and_shapes(mlp):
    with pytest.raises(ValueError, match="shape"):
        tfs.sparsify(mlp, masks={"fc1/kernel": np.ones((3, 3))})
    with pytest.raises(ValueError, match="only 0 and 1"):
        tfs.sparsify(mlp, masks={"fc1/kernel": np.full((8, 32), 0.5)})


def test_masks_do_not_change_the_weight_list(mlp):
    before = [w.path for w in mlp.weights]
    tfs.sparsify(mlp, sparsity=0.5)
    assert [w.path for w in mlp.weights] == before


def test_user_constraint_is_kept_and_applied_first():
    inputs = keras.Input((6,))
    layer = keras.layers.Dense(
        6, kernel_constraint=keras.constraints.MaxNorm(0.1), name="fc")
    model = keras.Model(inputs, layer(inputs))
    tfs.sparsify(model, sparsity=0.5)
    assert isinstance(layer.kernel.constraint, masking.MaskConstraint)
    assert isinstance(layer.kernel.constraint.inner, keras.constraints.MaxNorm)
    model.compile(keras.optimizers.SGD(1.0), "mse")
    model.fit(np.ones((4, 6)), np.full((4, 6), 100.0), verbose=0, epochs=2)
    norms = np.sqrt((layer.kernel.numpy() ** 2).sum(axis=0))
    assert norms.max() <= 0.1 + 1e-6
    weights_match_masks(model)
    tfs.unsparsify(model)
    assert isinstance(layer.kernel.constraint, keras.constraints.MaxNorm)


def test_rescale_weights_divides_kept_weights_by_sqrt_density(mlp):
    before = mlp.get_layer("fc2").kernel.numpy()
    tfs.sparsify(mlp, sparsity=0.75, rescale_weights=True)
    layer = mlp.get_layer("fc2")
    mask = layer.tf_sparse_masks.masks["kernel"].numpy()
    np.testing.assert_allclose(layer.kernel.numpy()[mask == 1],
                               before[mask == 1] / np.sqrt(0.25), rtol=1e-6)


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(
    values=st.lists(st.integers(-3, 3), min_size=1, max_size=40),
    fraction=st.floats(0.0, 1.0))
def test_exact_count_mask_is_the_head_of_a_stable_descending_argsort(
        values, fraction):
    """Many ties: the partition-based selection keeps exactly `count`
    entries, ties to the lower index, as the argsort it replaces."""
    from tf_sparse.sparsification import exact_count_mask
    scores = np.array(values, dtype=np.float32)
    count = int(round(fraction * scores.size))
    expected = np.zeros(scores.size, np.float32)
    expected[np.argsort(-scores, kind="stable")[:count]] = 1.0
    got = exact_count_mask(scores.reshape(1, -1), count)
    assert got.shape == (1, scores.size)
    np.testing.assert_array_equal(got.reshape(-1), expected)
