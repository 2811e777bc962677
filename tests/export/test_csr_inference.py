"""The CSR inference form computes what the dense model computes."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sparse as tfs
from tf_sparse import sparse_inference as si


def mixed_model():
    inputs = keras.Input((8, 8, 6))
    x = keras.layers.Conv2D(16, 1, activation="relu", name="pw")(inputs)
    x = keras.layers.Conv2D(12, 1, strides=2, padding="same",
                            name="pw_s2")(x)
    x = keras.layers.Conv2D(8, 3, name="conv3")(x)      # stays dense
    x = keras.layers.Reshape((2 * 2, 8))(x)
    x = keras.layers.Dense(32, activation="relu", name="fc_rank3")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(5, use_bias=False, name="out")(x)
    return keras.Model(inputs, outputs)


def test_csr_form_equals_dense_model():
    keras.utils.set_random_seed(0)
    model = tfs.sparsify(mixed_model(), sparsity=0.8, seed=0)
    x = np.random.default_rng(0).normal(size=(3, 8, 8, 6)).astype("float32")
    choices = si.plan(model, method="all")
    assert {c.name for c in choices} == {"pw", "pw_s2", "fc_rank3", "out"}
    form = si.to_sparse_inference(model, choices)
    kinds = {l.name: type(l).__name__ for l in form.layers}
    assert kinds["pw_s2"] == "CSRConv1x1" and kinds["out"] == "CSRDense"
    assert kinds["conv3"] == "Conv2D"
    np.testing.assert_allclose(form(x).numpy(), model(x).numpy(),
                               atol=si.ATOL, rtol=si.RTOL)
    # The stored nonzeros are the kernel's nonzeros.
    out = form.get_layer("out")
    np.testing.assert_array_equal(out.kernel_matrix(),
                                  model.get_layer("out").kernel.numpy())
    assert out.nnz == tfs.diagnostics.report(model).as_dict()["layers"][
        "out/kernel"]["nonzeros"]


def test_csr_form_round_trips_as_saved_model_and_keras(tmp_path):
    keras.utils.set_random_seed(1)
    model = tfs.sparsify(keras.Sequential([
        keras.Input((20,)), keras.layers.Dense(30, activation="relu"),
        keras.layers.Dense(4)]), sparsity=0.9, seed=0)
    x = np.random.default_rng(1).normal(size=(7, 20)).astype("float32")
    form, result = si.export_saved_model(model, str(tmp_path / "csr"), x,
                                         si.plan(model, method="all"))
    served = tf.saved_model.load(result.path)
    np.testing.assert_allclose(served.serve(x).numpy(), model(x).numpy(),
                               atol=1e-4, rtol=1e-4)
    form.save(tmp_path / "form.keras")
    again = keras.models.load_model(tmp_path / "form.keras")
    np.testing.assert_allclose(again(x).numpy(), form(x).numpy(), atol=1e-6)


def test_plan_rules_and_measurement():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((512,))
    h = keras.layers.Dense(512, name="big")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, name="small")(h))
    tfs.sparsify(model, sparsity=0.95, keep_dense=["small"])
    by_rule = {c.name: c for c in si.plan(model, batch_size=128,
                                          method="rule")}
    assert by_rule["big"].choice == "csr"            # 262144 weights, 5%
    assert by_rule["small"].choice == "dense"
    assert by_rule["big"].reason.startswith("rule")
    assert si.plan(model, batch_size=1, method="rule")[0].choice == "dense"
    measured = si.plan(model, batch_size=8, repeats=2)
    big = measured[0]
    assert big.dense_ms > 0 and big.csr_ms > 0 and big.speedup > 0
    if big.speedup < 1.1:
        assert big.choice == "dense"
    assert "by medians" in big.reason and "by minima" in big.reason
    assert all(c.choice == "dense" for c in si.plan(model, method="none"))
    with pytest.raises(ValueError, match="accepted"):
        si.plan(model, method="fastest")


def test_subclassed_models_are_refused_clearly():
    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.fc = keras.layers.Dense(4)

        def call(self, x):
            return self.fc(x)

    model = Sub()
    model(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="Sequential or functional"):
        si.to_sparse_inference(model, [])
