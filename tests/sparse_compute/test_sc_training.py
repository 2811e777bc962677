"""Training a model that computes sparse: `fit` gives the masked model's
losses (SGD with momentum, Adam, under XLA), the optimizer keeps slots for
the nonzeros only, `.keras` files and checkpoints resume training exactly,
and `strip` / `unsparsify` give what they give for the masked model. Two
models: every Dense-like kind (Embedding, 1x1 Conv2D, Dense) and an
attention model (keras.layers.MultiHeadAttention's EinsumDense projections,
an EinsumDense feed-forward); and a tiny keras-hub ViT."""

import os

import keras
import numpy as np
import pytest

import sc_testlib as lib
import tf_sparse as tfs
from tf_sparse.sparse_compute import saving as sc_saving

SPARSITY = 0.8


def mixed_model(seed=0):
    """Embedding -> 1x1 Conv2D -> Dense -> Dense: every kind of sparse
    layer in one model; 3 classes."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,), dtype="int32")
    x = keras.layers.Embedding(20, 8, name="emb")(inputs)        # [6, 8]
    x = keras.layers.Reshape((2, 3, 8), name="grid")(x)
    x = keras.layers.Conv2D(12, 1, activation="relu", name="pw")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dense(16, activation="relu", name="fc")(x)
    outputs = keras.layers.Dense(3, name="out")(x)
    return keras.Model(inputs, outputs, name="mixed")


def mixed_data(n=48):
    rng = np.random.default_rng(1)
    return (rng.integers(0, 20, size=(n, 6)).astype("int32"),
            rng.integers(0, 3, size=(n,)).astype("int32"))


def attention_model(seed=0):
    """MultiHeadAttention (query/key/value "abc,cde->abde", bias "de";
    output "abcd,cde->abe") -> EinsumDense feed-forward -> Dense head."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6, 16))
    x = keras.layers.MultiHeadAttention(2, 8, name="mha")(inputs, inputs)
    x = keras.layers.EinsumDense("abc,cd->abd", output_shape=(6, 24),
                                 bias_axes="d", activation="relu",
                                 name="ffn")(x)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    outputs = keras.layers.Dense(3, name="out")(x)
    return keras.Model(inputs, outputs, name="attention")


def attention_data(n=48):
    rng = np.random.default_rng(1)
    return (rng.normal(size=(n, 6, 16)).astype("float32"),
            rng.integers(0, 3, size=(n,)).astype("int32"))


MODELS = {"mixed": (mixed_model, mixed_data),
          "attention": (attention_model, attention_data)}


def data_of(model, n=48):
    return MODELS[model.name][1](n)


def make(compute, optimizer, jit=False, seed=0, name="mixed"):
    model = MODELS[name][0](seed)
    tfs.sparsify(model, SPARSITY, seed=3, compute=compute)
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True), jit_compile=jit)
    return model


def losses(model, epochs=3):
    x, y = data_of(model)
    history = model.fit(x, y, batch_size=12, epochs=epochs, shuffle=False,
                        verbose=0)
    return history.history["loss"]


OPTIMIZERS = {
    "sgd_momentum": lambda: keras.optimizers.SGD(0.1, momentum=0.9),
    "adam": lambda: keras.optimizers.Adam(0.01),
}


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("mode", ["auto", "tf"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_fit_losses_equal_the_masked_model(name, mode, model):
    masked = make("masked", OPTIMIZERS[name](), name=model)
    expected = losses(masked)
    with lib.kernels(mode):
        sparse = make("sparse", OPTIMIZERS[name](), name=model)
        got = losses(sparse)
    # Every masked weight computes sparse (EinsumDense included).
    assert not tfs.masking.masked_weights(sparse)
    assert sorted(p for p, _ in tfs.sparse_compute.sparse_kernels(
        sparse)) == sorted(mw.layer_path for mw in
                           tfs.masking.masked_weights(masked))
    np.testing.assert_allclose(got, expected, rtol=2e-5)
    assert expected[-1] < expected[0]          # it did train
    # The trained weights agree too, zeros in place.
    stripped = dict(tfs.masking.iter_layers(tfs.strip(sparse)))
    for mw in tfs.masking.masked_weights(masked):
        a = mw.variable.numpy() * mw.mask.numpy()
        b = getattr(stripped[mw.layer_path], mw.name).numpy()
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_fit_under_xla_equals_the_masked_model(model):
    # SGD with momentum is linear in the gradient. (Under XLA the Embedding
    # values get a dense gradient; outside XLA, like the masked table, an
    # IndexedSlices one with a row per looked-up token, which Keras's Adam
    # applies row by row: the two differ for Adam, by design of Keras.)
    expected = losses(make("masked", OPTIMIZERS["sgd_momentum"](),
                           name=model), epochs=2)
    got = losses(make("sparse", OPTIMIZERS["sgd_momentum"](), jit=True,
                      name=model), epochs=2)
    np.testing.assert_allclose(got, expected, rtol=2e-5)


def _nonzeros(model):
    return {path: holder.nonzeros()
            for path, holder in tfs.sparse_compute.sparse_kernels(model)}


def test_optimizer_slots_hold_the_nonzeros_only():
    model = make("sparse", keras.optimizers.Adam(0.01))
    losses(model, epochs=1)
    counts = _nonzeros(model)
    # 20x8 table, 8x12 kernel, 72x16 kernel, 16x3 kernel at 80% sparsity.
    assert counts == {"emb": 32, "pw": 19, "fc": 230, "out": 10}
    biases = 12 + 16 + 3
    slots = [v for v in model.optimizer.variables
             if v.path.split("/")[-1] not in ("iteration", "learning_rate")]
    # Adam: momentum and velocity, one entry per stored weight and bias.
    assert sum(int(np.prod(v.shape)) for v in slots) == 2 * (
        sum(counts.values()) + biases)
    dense_sizes = 20 * 8 + 8 * 12 + 72 * 16 + 16 * 3
    assert sum(int(np.prod(v.shape)) for v in model.trainable_variables) \
        == sum(counts.values()) + biases
    assert sum(counts.values()) < dense_sizes / 4


@pytest.mark.parametrize("name", sorted(MODELS))
def test_keras_file_round_trip_resumes_training_exactly(tmp_path, name):
    x, y = MODELS[name][1]()
    uninterrupted = make("sparse", keras.optimizers.SGD(0.1, momentum=0.9),
                         name=name)
    uninterrupted.fit(x, y, batch_size=12, epochs=2, shuffle=False, verbose=0)
    expected = uninterrupted.fit(x, y, batch_size=12, epochs=1,
                                 shuffle=False, verbose=0).history["loss"]

    model = make("sparse", keras.optimizers.SGD(0.1, momentum=0.9),
                 name=name)
    model.fit(x, y, batch_size=12, epochs=2, shuffle=False, verbose=0)
    path = os.path.join(tmp_path, "sparse.keras")
    tfs.sparse_compute.save_model(model, path)
    loaded = tfs.sparse_compute.load_model(path)
    assert _nonzeros(loaded) == _nonzeros(model)
    for (_, a), (_, b) in zip(tfs.sparse_compute.sparse_kernels(model),
                              tfs.sparse_compute.sparse_kernels(loaded)):
        np.testing.assert_array_equal(a.dense_weight(), b.dense_weight())
        np.testing.assert_array_equal(a.row_ptr.numpy(), b.row_ptr.numpy())
    np.testing.assert_allclose(loaded.predict(x, verbose=0),
                               model.predict(x, verbose=0), rtol=1e-6)
    got = loaded.fit(x, y, batch_size=12, epochs=1, shuffle=False,
                     verbose=0).history["loss"]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # A plain Keras reader sees the dense model, zeros in place.
    plain = keras.models.load_model(path, compile=False)
    np.testing.assert_allclose(plain.predict(x, verbose=0),
                               model.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-6)


def test_load_model_refuses_a_file_without_sparse_compute_state(tmp_path):
    model = make("masked", keras.optimizers.Adam())
    path = os.path.join(tmp_path, "masked.keras")
    tfs.save_model(model, path)
    with pytest.raises(ValueError, match="holds no sparse-compute state"):
        tfs.sparse_compute.load_model(path)
    with pytest.raises(ValueError, match="has no layer that computes sparse"):
        sc_saving.save_model(model, path)
    with pytest.raises(ValueError, match="must end in .keras"):
        sc_saving.save_model(make("sparse", keras.optimizers.Adam()),
                             os.path.join(tmp_path, "x.h5"))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_checkpoint_resume_equals_uninterrupted_training(tmp_path, name):
    x, y = MODELS[name][1]()
    uninterrupted = make("sparse", keras.optimizers.Adam(0.01), name=name)
    full = uninterrupted.fit(x, y, batch_size=12, epochs=3, shuffle=False,
                             verbose=0).history["loss"]

    first = make("sparse", keras.optimizers.Adam(0.01), name=name)
    first.fit(x, y, batch_size=12, epochs=2, shuffle=False, verbose=0)
    tfs.checkpoints.TrainingCheckpoint(tmp_path, first).save(2)

    resumed = make("sparse", keras.optimizers.Adam(0.01), seed=5, name=name)
    checkpoint = tfs.checkpoints.TrainingCheckpoint(tmp_path, resumed)
    assert checkpoint.restore() == 2
    assert int(resumed.optimizer.iterations.numpy()) == 8
    rest = resumed.fit(x, y, batch_size=12, epochs=1, shuffle=False,
                       verbose=0).history["loss"]
    np.testing.assert_allclose(rest, full[2:], rtol=1e-6)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_strip_gives_the_plain_model_the_masked_one_strips_to(name):
    masked = make("masked", keras.optimizers.Adam(), name=name)
    sparse = make("sparse", keras.optimizers.Adam(), name=name)
    a, b = tfs.strip(masked), tfs.strip(sparse)
    assert not tfs.sparse_compute.is_sparse_compute(b)
    assert not tfs.masking.is_sparse(b)
    assert [type(layer) for layer in a.layers] == [type(layer)
                                                   for layer in b.layers]
    assert [layer.get_config() for layer in a.layers[1:]] == [
        layer.get_config() for layer in b.layers[1:]]       # not the Input
    assert len(a.weights) == len(b.weights)
    for wa, wb in zip(a.weights, b.weights):
        assert wa.path == wb.path
        np.testing.assert_array_equal(wa.numpy(), wb.numpy())
    # The sparse model itself is unchanged and still computes sparse.
    assert tfs.sparse_compute.is_sparse_compute(sparse)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_unsparsify_gives_the_dense_weights_back(name):
    masked = make("masked", keras.optimizers.Adam(), name=name)
    sparse = make("sparse", keras.optimizers.Adam(), name=name)
    tfs.unsparsify(sparse)
    assert not tfs.sparse_compute.is_sparse_compute(sparse)
    # Every layer's weights in the original order (kernel, then bias).
    masked_layers = dict(tfs.masking.iter_layers(masked))
    sparse_layers = dict(tfs.masking.iter_layers(sparse))
    paths = {mw.layer_path for mw in tfs.masking.masked_weights(masked)}
    assert paths == {"mixed": {"emb", "pw", "fc", "out"},
                     "attention": {"mha/query", "mha/key", "mha/value",
                                   "mha/attention_output", "ffn",
                                   "out"}}[name]
    for layer in paths:
        a = [w.numpy() for w in masked_layers[layer].weights
             if "mask" not in w.path]
        b = [w.numpy() for w in sparse_layers[layer].weights]
        assert [w.shape for w in b] == [w.shape for w in a]
        for wa, wb in zip(a, b):
            np.testing.assert_array_equal(wb, wa)
    x, _ = MODELS[name][1](8)
    np.testing.assert_allclose(sparse.predict(x, verbose=0),
                               masked.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-6)


def test_sequence_input_and_a_bfloat16_layer_train_like_the_masked_model():
    """A Dense on [batch, 5, 8] (rank 3) under the mixed_bfloat16 policy
    runs the dense-scatter path (no bfloat16 kernels) and trains like the
    masked model, to bfloat16 rounding."""
    def model():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((5, 8))
        x = keras.layers.Dense(6, dtype="mixed_bfloat16", name="a")(inputs)
        x = keras.layers.Flatten(name="flat")(x)
        return keras.Model(inputs, keras.layers.Dense(3, name="b")(x))

    x = np.random.default_rng(0).normal(size=(4, 5, 8)).astype("float32")
    y = np.array([0, 1, 2, 0])
    results = []
    for compute in ("masked", "sparse"):
        m = tfs.sparsify(model(), 0.5, seed=1, compute=compute)
        m.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True))
        loss = m.fit(x, y, epochs=2, verbose=0).history["loss"]
        results.append((m.predict(x, verbose=0), loss))
    (p_masked, l_masked), (p_sparse, l_sparse) = results
    assert tfs.sparse_compute.sparse_kernels(m)[0][1].nonzeros() == 24
    np.testing.assert_allclose(l_sparse, l_masked, rtol=5e-3)
    np.testing.assert_allclose(p_sparse, p_masked, rtol=2e-2, atol=2e-2)


def test_tfs_save_and_load_model_keep_the_sparse_form(tmp_path):
    x, y = mixed_data()
    model = make("sparse", keras.optimizers.SGD(0.1, momentum=0.9))
    model.fit(x, y, batch_size=12, epochs=1, shuffle=False, verbose=0)
    path = os.path.join(tmp_path, "model.keras")
    tfs.save_model(model, path)
    assert tfs.sparse_compute.is_sparse_compute_file(path)
    loaded = tfs.load_model(path)
    assert _nonzeros(loaded) == _nonzeros(model)
    np.testing.assert_allclose(loaded.predict(x, verbose=0),
                               model.predict(x, verbose=0), rtol=1e-6)
    assert int(loaded.optimizer.iterations.numpy()) == 4
    with pytest.raises(ValueError, match=r"computes sparse; its file takes "
                       r"no model.save options, got \['zipped'\]"):
        tfs.save_model(model, path, zipped=True)
    # A masked model's file is not taken for one.
    masked = make("masked", keras.optimizers.Adam())
    tfs.save_model(masked, os.path.join(tmp_path, "masked.keras"))
    assert not tfs.sparse_compute.is_sparse_compute_file(
        os.path.join(tmp_path, "masked.keras"))
    assert not tfs.sparse_compute.is_sparse_compute_file(
        os.path.join(tmp_path, "missing.keras"))


def test_keras_hub_vit_trains_like_the_masked_model():
    """A one-block keras-hub ViT built from its config: its attention
    projections (EinsumDense) and MLP (Dense) all compute sparse and `fit`
    gives the masked model's losses; strip gives the same plain model."""
    hub = pytest.importorskip("tf_sparse.models.hub")
    pytest.importorskip("keras_hub")

    def vit(compute):
        keras.utils.set_random_seed(0)
        model = hub.get_model("vit", num_classes=3, input_shape=(14, 14, 1),
                              patch_size=7, num_layers=1, num_heads=2,
                              hidden_dim=16, mlp_dim=32)
        tfs.sparsify(model, hub.sparsity_map(model, SPARSITY), seed=3,
                     compute=compute)
        # SGD: the key bias has a zero gradient up to rounding (softmax
        # ignores a shift of every key), which Adam would scale up to a
        # full step in both models, each from its own rounding.
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                      keras.losses.SparseCategoricalCrossentropy(
                          from_logits=True))
        return model

    rng = np.random.default_rng(0)
    x = rng.random((24, 14, 14, 1)).astype("float32")
    y = rng.integers(0, 3, size=(24,)).astype("int32")
    masked, sparse = vit("masked"), vit("sparse")
    kinds = sorted(h.kind for _, h in
                   tfs.sparse_compute.sparse_kernels(sparse))
    assert kinds == ["dense"] * 2 + ["einsum"] * 4
    assert not tfs.masking.masked_weights(sparse)
    expected = masked.fit(x, y, batch_size=8, epochs=2, shuffle=False,
                          verbose=0).history["loss"]
    got = sparse.fit(x, y, batch_size=8, epochs=2, shuffle=False,
                     verbose=0).history["loss"]
    np.testing.assert_allclose(got, expected, rtol=2e-5)
    for wa, wb in zip(tfs.strip(masked).weights, tfs.strip(sparse).weights):
        assert wa.path == wb.path
        np.testing.assert_allclose(wb.numpy(), wa.numpy(), rtol=1e-4,
                                   atol=1e-5)
