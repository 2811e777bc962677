"""Save, load, checkpoint and strip keep masks, weights and optimizer slots."""

import keras
import numpy as np
import pytest

import tf_sparse as tfs
from tf_sparse import checkpoints

X = np.random.default_rng(0).normal(size=(32, 8)).astype("float32")
Y = np.random.default_rng(1).integers(0, 3, size=32).astype("int32")


def sequential():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((8,)),
                             keras.layers.Dense(16, activation="relu",
                                                name="hidden"),
                             keras.layers.Dense(3, name="out")])


def functional():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    a = keras.layers.Dense(16, activation="relu", name="a")(inputs)
    b = keras.layers.Dense(16, activation="tanh", name="b")(inputs)
    outputs = keras.layers.Dense(3, name="out")(keras.layers.Concatenate()(
        [a, b]))
    return keras.Model(inputs, outputs)


@keras.saving.register_keras_serializable("tf_sparse_tests")
class Subclassed(keras.Model):
    def __init__(self, width=16, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        self.hidden = keras.layers.Dense(width, activation="relu",
                                         name="hidden")
        self.out = keras.layers.Dense(3, name="out")

    def call(self, x):
        return self.out(self.hidden(x))

    def get_config(self):
        return {**super().get_config(), "width": self.width}


def subclassed():
    keras.utils.set_random_seed(0)
    model = Subclassed()
    model(X[:1])
    return model


BUILDERS = {"sequential": sequential, "functional": functional,
            "subclassed": subclassed}


def trained(builder):
    model = tfs.sparsify(builder(), sparsity=0.8, seed=3)
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(X, Y, epochs=2, batch_size=8, verbose=0)
    return model


def masks_of(model):
    return {mw.path: mw.mask.numpy() for mw in tfs.masked_weights(model)}


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_strip_predicts_exactly_what_the_sparse_model_predicts(kind):
    model = trained(BUILDERS[kind])
    plain = tfs.strip(model)
    assert not tfs.is_sparse(plain)
    np.testing.assert_array_equal(plain.predict(X, verbose=0),
                                  model.predict(X, verbose=0))
    for mw in tfs.masked_weights(model):
        assert np.count_nonzero(
            plain.get_layer(mw.layer.name).kernel.numpy()) <= mw.nonzeros()


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_keras_file_round_trip_keeps_masks_weights_and_slots(kind, tmp_path):
    model = trained(BUILDERS[kind])
    path = str(tmp_path / "model.keras")
    tfs.save_model(model, path)
    loaded = tfs.load_model(path)
    assert masks_of(loaded).keys() == masks_of(model).keys()
    for key, mask in masks_of(model).items():
        np.testing.assert_array_equal(masks_of(loaded)[key], mask)
    np.testing.assert_array_equal(loaded.predict(X, verbose=0),
                                  model.predict(X, verbose=0))
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # Training goes on sparse after loading.
    loaded.fit(X, Y, epochs=1, batch_size=8, verbose=0)
    for mw in tfs.masked_weights(loaded):
        assert np.all(mw.variable.numpy()[mw.mask.numpy() == 0] == 0.0)


def test_plain_keras_reads_a_tf_sparse_file_as_dense_with_zeros(tmp_path):
    model = trained(functional)
    path = str(tmp_path / "model.keras")
    tfs.save_model(model, path)
    plain = keras.models.load_model(path)
    assert not tfs.is_sparse(plain)
    np.testing.assert_array_equal(plain.predict(X, verbose=0),
                                  model.predict(X, verbose=0))


def test_load_model_refuses_a_file_without_masks(tmp_path):
    path = str(tmp_path / "plain.keras")
    functional().save(path)
    with pytest.raises(ValueError, match="no tf_sparse masks"):
        tfs.load_model(path)


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_tf_checkpoint_round_trip(kind, tmp_path):
    model = trained(BUILDERS[kind])
    ckpt = checkpoints.TrainingCheckpoint(str(tmp_path), model)
    ckpt.save(2)
    fresh = tfs.sparsify(BUILDERS[kind](), sparsity=0.8, seed=99)
    fresh.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert any(not np.array_equal(masks_of(fresh)[k], v)
               for k, v in masks_of(model).items())
    restored = checkpoints.TrainingCheckpoint(str(tmp_path), fresh)
    assert restored.restore() == 2
    for key, mask in masks_of(model).items():
        np.testing.assert_array_equal(masks_of(fresh)[key], mask)
    for a, b in zip(model.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(model.optimizer.variables, fresh.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_checkpoint_of_another_model_is_refused(tmp_path):
    model = trained(functional)
    checkpoints.TrainingCheckpoint(str(tmp_path), model).save(1)
    keras.utils.set_random_seed(0)
    other = keras.Sequential([keras.Input((8,)), keras.layers.Dense(5),
                              keras.layers.Dense(3)])
    tfs.sparsify(other, sparsity=0.5)
    other.compile("sgd", "mse")
    with pytest.raises(checkpoints.CheckpointMismatchError,
                       match="does not match"):
        checkpoints.TrainingCheckpoint(str(tmp_path), other).restore()


def test_strip_of_a_dense_model_is_refused():
    with pytest.raises(ValueError, match="not sparse"):
        tfs.strip(functional())


@pytest.mark.parametrize("pattern", ["2:4", "block:2x2", "channel"])
def test_the_sparsity_pattern_survives_save_and_load(tmp_path, pattern):
    model = sequential()
    sparsity = None if pattern == "2:4" else 0.5
    tfs.sparsify(model, sparsity=sparsity, pattern=pattern, seed=3)
    path = str(tmp_path / "patterned.keras")
    tfs.save_model(model, path)
    assert tfs.saving.read_pattern(path) == pattern
    loaded = tfs.load_model(path)
    before = {mw.path: mw for mw in tfs.masking.masked_weights(model)}
    after = tfs.masking.masked_weights(loaded)
    assert [mw.path for mw in after] == list(before)
    for mw in after:
        assert mw.pattern == pattern
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(mw.mask),
            keras.ops.convert_to_numpy(before[mw.path].mask))


def test_a_file_from_before_patterns_were_saved_loads_unstructured(tmp_path):
    model = tfs.sparsify(sequential(), sparsity=0.5, seed=0)
    path = str(tmp_path / "old.keras")
    tfs.save_model(model, path)
    # Rewrite the mask index as the first format wrote it (no "patterns").
    import json
    import zipfile
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    info = json.loads(members["tf_sparse/masks.json"])
    del info["patterns"]
    members["tf_sparse/masks.json"] = json.dumps(info).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    assert tfs.saving.read_pattern(path) == "unstructured"
    assert all(mw.pattern == "unstructured"
               for mw in tfs.masking.masked_weights(tfs.load_model(path)))
