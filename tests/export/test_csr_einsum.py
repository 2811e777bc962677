"""The CSR inference form of EinsumDense layers and of projections nested in
composite layers (MultiHeadAttention, keras-hub transformer blocks)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sparse as tfs
from tf_sparse import sparse_inference as si

EQUATIONS = [
    ("abc,cde->abde", (2, 5, 16), (16, 2, 8)),     # query/key/value
    ("abcd,cde->abe", (2, 5, 2, 8), (2, 8, 16)),   # attention output
    ("btd,ndh->btnh", (2, 5, 16), (2, 16, 8)),     # Gemma's query
    ("...b,bc->...c", (3, 4, 6), (6, 5)),
    ("ab,bc->ac", (3, 6), (6, 5)),
]


@pytest.mark.parametrize("equation,x_shape,kernel_shape", EQUATIONS)
def test_einsum_plan_is_the_einsum(equation, x_shape, kernel_shape):
    rng = np.random.default_rng(0)
    x = rng.normal(size=x_shape).astype("float32")
    kernel = rng.normal(size=kernel_shape).astype("float32")
    kernel[rng.random(kernel_shape) < 0.8] = 0.0
    plan = si.EinsumPlan(equation, kernel_shape)
    assert plan.k * plan.n == kernel.size
    got = plan.apply(tf.constant(x), lambda flat: tf.matmul(
        flat, tf.constant(plan.kernel_2d(kernel))))
    np.testing.assert_allclose(got.numpy(), np.einsum(equation, x, kernel),
                               atol=1e-5)


def test_equations_without_a_matmul_form_are_refused():
    with pytest.raises(ValueError, match="no 2-D matmul form"):
        si.EinsumPlan("ab,ab->ab", (3, 4))
    with pytest.raises(ValueError, match="no 2-D matmul form"):
        si.EinsumPlan("abc,cd->ad", (4, 5))
    with pytest.raises(ValueError, match="must start both"):
        si.EinsumPlan("...b,bc->c", (4, 5))
    with pytest.raises(ValueError, match="kernel has 3 axes"):
        si.EinsumPlan("ab,bc->ac", (4, 5, 6))


def attention_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 16))
    x = keras.layers.MultiHeadAttention(2, 8, name="mha")(inputs, inputs)
    x = keras.layers.EinsumDense("abc,cd->abd", output_shape=(6, 12),
                                 bias_axes="d", activation="relu",
                                 name="proj")(x)
    outputs = keras.layers.Dense(3, name="out")(keras.layers.Flatten()(x))
    return keras.Model(inputs, outputs)


def test_attention_projections_run_as_csr_and_match(tmp_path):
    model = tfs.sparsify(attention_model(), 0.9, seed=0)
    x = np.random.default_rng(1).normal(size=(4, 6, 16)).astype("float32")
    choices = si.plan(model, method="all")
    assert [c.name for c in choices] == [
        "mha/query", "mha/key", "mha/value", "mha/attention_output", "proj",
        "out"]
    form = si.to_sparse_inference(model, choices)
    inner = form.get_layer("mha")
    assert type(inner._query_dense).__name__ == "CSREinsumDense"
    assert type(form.get_layer("proj")).__name__ == "CSREinsumDense"
    # The dense kernels left the form: only CSR values remain.
    assert not any(w.path.endswith("kernel") for w in form.weights
                   if "mha" in w.path or "proj" in w.path)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(form(x)),
        keras.ops.convert_to_numpy(model(x)), atol=1e-5, rtol=1e-5)
    _, result = si.export_saved_model(model, str(tmp_path / "csr"), x,
                                      choices)
    assert result.max_abs_diff <= 1e-4
    with pytest.raises(ValueError, match="no CSR form"):
        si.to_sparse_inference(model, [si.LayerChoice(
            "nope", "dense", (1, 1), 1.0, "csr", "test")])


def test_measured_plan_skips_layers_of_unknown_sequence_length():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, 16))
    x = keras.layers.MultiHeadAttention(2, 8, name="mha")(inputs, inputs)
    model = keras.Model(inputs, x)
    choices = si.plan(model, method="measure", min_size=1)
    assert {c.choice for c in choices} == {"dense"}
    assert all("cannot be timed" in c.reason for c in choices)


def test_keras_hub_bert_form_matches_and_exports(tmp_path):
    pytest.importorskip("keras_hub")
    from tf_sparse.models import hub
    keras.utils.set_random_seed(0)
    model = hub.get_model("bert", num_classes=2, input_shape=(3, 8),
                          vocab_size=30, num_layers=2, num_heads=2,
                          hidden_dim=16, intermediate_dim=32)
    tfs.sparsify(model, hub.sparsity_map(model, 0.9))
    ids = np.random.default_rng(0).integers(1, 30, (4, 8))
    x = np.stack([ids, np.zeros_like(ids), np.ones_like(ids)], 1).astype(
        "int32")
    choices = si.plan(model, method="all")
    assert len(choices) == 12
    assert {c.kind for c in choices} == {"einsum", "dense"}
    _, result = si.export_saved_model(model, str(tmp_path / "bert"), x,
                                      choices)
    assert result.max_abs_diff <= 1e-4
