"""SR-STE (Zhou et al. 2021): the forward pass uses the N:M projection of
the dense weights, the dense weights get the straight-through gradient plus
lambda_W * (1 - m) * W, checked by hand on a tiny example; strip gives
exact N:M weights; bad inputs named; an engine run."""

import keras
import numpy as np
import pytest

import tf_sparse as tfs
from tf_sparse import patterns
from tf_sparse.algorithms import sr_ste


def model_with(w, pattern="2:4", optimizer=None):
    inputs = keras.Input((w.shape[0],))
    out = keras.layers.Dense(w.shape[1], use_bias=False, name="fc")(inputs)
    model = keras.Model(inputs, out)
    model.get_layer("fc").kernel.assign(w.astype(np.float32))
    tfs.sparsify(model, 0.0, pattern=pattern)
    model.compile(optimizer or keras.optimizers.SGD(0.1), "mse")
    return model


def projection(w, n=2, m=4):
    """The N:M projection of a (inputs x outputs) kernel by hand: in each
    column, each run of m inputs keeps its n largest |w|."""
    out = np.zeros_like(w)
    for j in range(w.shape[1]):
        for g in range(0, w.shape[0], m):
            block = w[g:g + m, j]
            keep = np.argsort(-np.abs(block), kind="stable")[:n]
            out[g + keep, j] = block[keep]
    return out


W = np.array([[0.5, -0.1], [-0.9, 0.2], [0.3, 0.8], [0.05, -0.7],
              [1.0, 0.4], [-0.2, 0.35], [0.6, -0.3], [-0.4, 0.1]])
X = np.array([[1.0, 2.0, -1.0, 0.5, 0.3, -0.2, 1.5, 0.7],
              [0.2, -1.0, 0.4, 2.0, -0.6, 1.1, 0.0, -0.3],
              [-0.5, 0.3, 1.2, -0.8, 0.9, 0.4, -1.0, 0.6]], np.float32)
T = np.array([[1.0, -1.0], [0.0, 0.5], [0.3, 0.2]], np.float32)


def test_forward_is_the_projected_weights_forward():
    model = model_with(W)
    sr_ste.SRSTE().attach(model)
    np.testing.assert_allclose(model.predict(X, verbose=0),
                               X @ projection(W), rtol=1e-6)
    np.testing.assert_array_equal(model.get_layer("fc").kernel.numpy(),
                                  projection(W).astype(np.float32))


@pytest.mark.parametrize("lambda_w,weight_decay", [
    (2e-4, None), (0.5, None), (0.0, None), (0.5, 0.1)])
def test_one_step_by_hand(lambda_w, weight_decay):
    lr = 0.1
    model = model_with(W, optimizer=keras.optimizers.SGD(
        lr, weight_decay=weight_decay))
    alg = sr_ste.SRSTE(lambda_w)
    model.fit(X, T, batch_size=3, epochs=1, shuffle=False, verbose=0,
              callbacks=[tfs.callbacks.MaskUpdate(alg)])
    projected = projection(W)
    mask = (projected != 0).astype(np.float64)
    # mse over 3 examples x 2 outputs; gradient at the projected weights,
    # dense at every position (straight through).
    residual = X.astype(np.float64) @ projected - T
    gradient = X.T.astype(np.float64) @ (2.0 * residual / residual.size)
    assert np.all(gradient[mask == 0] != 0)
    start = W if weight_decay is None else W * (1 - weight_decay * lr)
    expected = start - lr * (gradient + lambda_w * (1 - mask) * W)
    dense = alg.dense_weights()[0]
    np.testing.assert_allclose(dense, expected, rtol=1e-5, atol=1e-7)
    # The kernel and its mask are the projection of the new dense weights.
    kernel = model.get_layer("fc").kernel.numpy()
    np.testing.assert_allclose(kernel, projection(dense), rtol=0, atol=0)
    np.testing.assert_array_equal(
        tfs.masked_weights(model)[0].mask.numpy(), projection(dense) != 0)


def test_a_pruned_weight_returns_with_its_trained_dense_value():
    model = model_with(W, optimizer=keras.optimizers.SGD(0.5))
    alg = sr_ste.SRSTE(0.0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype(np.float32)
    t = rng.normal(size=(64, 2)).astype(np.float32) * 3
    model.fit(x, t, batch_size=8, epochs=3, shuffle=False, verbose=0,
              callbacks=[tfs.callbacks.MaskUpdate(alg)])
    start = projection(W) != 0
    now = tfs.masked_weights(model)[0].mask.numpy() > 0
    assert np.any(start != now)             # the projection moved
    dense = alg.dense_weights()[0]
    kernel = model.get_layer("fc").kernel.numpy()
    assert np.array_equal(kernel[now], dense[now])
    assert np.all(kernel[~now] == 0) and np.all(dense[~now] != 0)


def test_strip_gives_exact_n_m_weights_after_training():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((16,))
    h = keras.layers.Dense(12, activation="relu", name="a")(inputs)
    out = keras.layers.Dense(4, name="b")(h)
    model = keras.Model(inputs, out)
    tfs.sparsify(model, 0.0, pattern="1:4")
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    alg = sr_ste.SRSTE()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 16)).astype(np.float32)
    model.fit(x, rng.normal(size=(64, 4)).astype(np.float32), batch_size=16,
              epochs=2, verbose=0, callbacks=[tfs.callbacks.MaskUpdate(alg)])
    plain = tfs.strip(model)
    np.testing.assert_allclose(plain.predict(x, verbose=0),
                               model.predict(x, verbose=0), rtol=1e-6)
    for mw, dense in zip(tfs.masked_weights(model), alg.dense_weights()):
        layout = patterns.layout_of("1:4", mw.layer, mw.name, mw.shape)
        kernel = plain.get_layer(mw.layer.name).kernel.numpy()
        ones = keras.ops.convert_to_numpy(layout.groups(kernel != 0)).sum(1)
        assert np.all(ones == 1), mw.path
        np.testing.assert_array_equal(kernel, projection(dense, 1, 4))
        assert tfs.summary(model) is not None


@pytest.mark.parametrize("pattern,message", [
    ("block:2x2", r"SRSTE trains N:M masks; the mask of fc/kernel follows "
                  r"'block:2x2'"),
    ("channel", r"follows 'channel'"),
])
def test_other_patterns_are_refused(pattern, message):
    model = model_with(W, pattern=pattern)
    with pytest.raises(ValueError, match=message):
        sr_ste.SRSTE().attach(model)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"lambda_w=-1.0 must be a number "
                       r">= 0 \(paper: 2e-4\)"):
        sr_ste.SRSTE(-1.0)
    model = model_with(W)
    with pytest.raises(ValueError, match=r"SRSTE sparsity=0.9 cannot be "
                       r"reached with pattern '2:4'"):
        sr_ste.SRSTE(sparsity=0.9).attach(model)
    inputs = keras.Input((8,))
    bare = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    tfs.sparsify(bare, 0.0, pattern="2:4")
    with pytest.raises(ValueError, match="compile the model before"):
        sr_ste.SRSTE().attach(bare)


def test_engine_run_with_sr_ste(tmp_path):
    from tf_sparse import runs
    from tf_sparse.data import pipelines
    from tf_sparse.runs import data as data_lib
    from tf_sparse.runs import restore
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, size=(120, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, size=120).astype(np.int32)
    data = data_lib.ArrayData(x, y, x[:40], y[:40], batch_size=20,
                              preprocess=pipelines.scale_grayscale(),
                              num_classes=10)
    config = runs.default_config("fashion_mnist")
    config.update(dict(epochs=2, steps_per_epoch=3, sparsity=0.5,
                       pattern="2:4", algorithm="sr_ste",
                       eval_every_epochs=0))
    config.algorithm_kwargs = {"lambda_w": 2e-4}
    results = runs.run(config, str(tmp_path / "run"), data=data, verbose=0)
    assert results["steps"] == 6
    model, _ = restore.load_model(str(tmp_path / "run"))
    for mw in tfs.masked_weights(model):
        layout = patterns.layout_of("2:4", mw.layer, mw.name, mw.shape)
        mask = mw.mask.numpy()
        ones = keras.ops.convert_to_numpy(layout.groups(mask)).sum(1)
        assert np.all(ones == 2), mw.path
        assert np.all(mw.variable.numpy()[mask == 0] == 0)


def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path):
    """The dense weights are in the checkpoints: stopping after epoch 1 and
    resuming ends with the same weights, masks and dense copies."""
    from tf_sparse import runs
    from tf_sparse.data import pipelines
    from tf_sparse.runs import data as data_lib
    from tf_sparse.runs import restore
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, size=(120, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, size=120).astype(np.int32)

    def data():
        return data_lib.ArrayData(x, y, x[:40], y[:40], batch_size=20,
                                  preprocess=pipelines.scale_grayscale(),
                                  num_classes=10)

    def config(epochs):
        c = runs.default_config("fashion_mnist")
        c.update(dict(epochs=epochs, steps_per_epoch=3, sparsity=0.5,
                      pattern="2:4", algorithm="sr_ste",
                      eval_every_epochs=0))
        return c

    runs.run(config(2), str(tmp_path / "whole"), data=data(), verbose=0)
    runs.run(config(1), str(tmp_path / "split"), data=data(), verbose=0)
    runs.run(config(2), str(tmp_path / "split"), data=data(), verbose=0)
    whole, _ = restore.load_model(str(tmp_path / "whole"))
    split, _ = restore.load_model(str(tmp_path / "split"))
    for a, b in zip(whole.get_weights(), split.get_weights()):
        np.testing.assert_array_equal(a, b)
    import tensorflow as tf
    dense = {}
    for name in ("whole", "split"):
        reader = tf.train.load_checkpoint(str(tmp_path / name / "checkpoints"))
        dense[name] = {k: reader.get_tensor(k)
                       for k in reader.get_variable_to_shape_map()
                       if "sr_ste_dense" in k}
    assert dense["whole"] and dense["whole"].keys() == dense["split"].keys()
    for key in dense["whole"]:
        np.testing.assert_array_equal(dense["whole"][key], dense["split"][key])
