"""Bad checkpoints and .keras files: every one a clear error naming the file.

A sparse checkpoint into a dense model (and the reverse), a checkpoint of
another model, a truncated data file, a garbage index, a folder of
checkpoints without an index, a kill during a save, a save on a full disk,
a truncated .keras file or a damaged mask index inside it.
"""

import glob
import os
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sparse as tfs
from tf_sparse import checkpoints
from tf_sparse import saving

X = np.random.default_rng(0).normal(size=(16, 8)).astype("float32")
Y = np.random.default_rng(1).normal(size=(16, 3)).astype("float32")


def mlp(width=16, layers=2, sparse=True, momentum=0.9):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    x = inputs
    for i in range(layers):
        x = keras.layers.Dense(width if i == 0 else 16, name=f"fc{i}")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(x),
                        name="mlp")
    if sparse:
        model = tfs.sparsify(model, sparsity=0.5, seed=1)
    model.compile(keras.optimizers.SGD(0.1, momentum=momentum), "mse")
    model.fit(X, Y, epochs=1, verbose=0)
    return model


def saved(directory, model, numbers=(1, 2)):
    ckpt = checkpoints.TrainingCheckpoint(str(directory), model,
                                          max_to_keep=len(numbers))
    for n in numbers:
        ckpt.save(n)
    return str(directory)


def data_file(directory, number):
    return glob.glob(os.path.join(directory, f"ckpt-{number}.data-*"))[0]


def weights(model):
    return [np.array(v) for v in model.weights]


# --- another model -----------------------------------------------------------


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_a_sparse_checkpoint_into_a_dense_model_is_refused(tmp_path,
                                                           momentum):
    """With plain SGD every variable of the dense model matches, so this
    restored silently before, dropping the masks."""
    folder = saved(tmp_path, mlp(momentum=momentum))
    dense = mlp(sparse=False, momentum=momentum)
    before = weights(dense)
    with pytest.raises(checkpoints.CheckpointMismatchError,
                       match=r"ckpt-2 holds a sparse model \(3 masks.*but "
                             r"model 'mlp' is dense: restoring it would drop "
                             r"the masks"):
        checkpoints.TrainingCheckpoint(folder, dense).restore()
    for a, b in zip(before, weights(dense)):   # nothing was restored
        np.testing.assert_array_equal(a, b)


def test_a_dense_checkpoint_into_a_sparse_model_is_refused(tmp_path):
    folder = saved(tmp_path, mlp(sparse=False))
    with pytest.raises(checkpoints.CheckpointMismatchError,
                       match=r"ckpt-2 holds a dense model \(no masks\), but "
                             r"model 'mlp' is sparse \(3 masked weights, "
                             r"e.g. fc0/kernel\)"):
        checkpoints.TrainingCheckpoint(folder, mlp()).restore()


def test_other_layer_shapes_name_the_first_differing_variable(tmp_path):
    folder = saved(tmp_path, mlp(width=16))
    with pytest.raises(checkpoints.CheckpointMismatchError,
                       match=r"variable fc0/kernel .* has shape \(8, 16\) in "
                             r"the checkpoint and \(8, 32\) in the model"):
        checkpoints.TrainingCheckpoint(folder, mlp(width=32)).restore()


def test_more_layers_in_the_checkpoint_is_refused(tmp_path):
    """A model that is a prefix of the checkpoint's would have restored
    its layers and left the rest unused."""
    folder = saved(tmp_path, mlp(layers=3, width=16))
    with pytest.raises(checkpoints.CheckpointMismatchError,
                       match="does not match model 'mlp': variable "):
        checkpoints.TrainingCheckpoint(folder, mlp(layers=2)).restore()


def test_other_layer_names_of_a_subclassed_model_are_named(tmp_path):
    class Net(keras.Model):
        def __init__(self, names):
            super().__init__(name="net")
            self.first = keras.layers.Dense(4)
            setattr(self, names, keras.layers.Dense(3))
            self.last_name = names

        def call(self, x):
            return getattr(self, self.last_name)(self.first(x))

    def build(name):
        keras.utils.set_random_seed(0)
        model = Net(name)
        model(X[:1])
        model = tfs.sparsify(model, sparsity=0.5)
        model.compile("sgd", "mse")
        return model

    folder = saved(tmp_path, build("head"))
    with pytest.raises(checkpoints.CheckpointMismatchError,
                       match=r"the checkpoint holds model/head/"):
        checkpoints.TrainingCheckpoint(folder, build("out")).restore()


# --- damaged files -----------------------------------------------------------


def test_a_truncated_data_file_is_named_with_the_way_back(tmp_path):
    folder = saved(tmp_path, mlp())
    path = data_file(folder, 2)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    with pytest.raises(checkpoints.CheckpointCorruptError) as error:
        checkpoints.TrainingCheckpoint(folder, mlp()).restore()
    message = str(error.value)
    assert path in message and "truncated" in message
    assert "--config.on_bad_checkpoint=previous" in message
    assert "ckpt-1" in message                     # the one to fall back to
    assert os.path.exists(path)                    # nothing was changed


def test_previous_falls_back_and_keeps_the_damaged_files(tmp_path):
    source = mlp()
    folder = saved(tmp_path, source, numbers=(1, 2, 3))
    reader = checkpoints.TrainingCheckpoint(folder, mlp())
    path = data_file(folder, 3)
    with open(path, "r+b") as f:
        f.truncate(64)
    fresh = mlp(width=16)
    fresh.layers[1].kernel.assign(np.zeros((8, 16), "float32"))
    ckpt = checkpoints.TrainingCheckpoint(folder, fresh, max_to_keep=3,
                                          on_bad_checkpoint="previous")
    assert ckpt.restore() == 2
    assert ckpt.restored_from.endswith("ckpt-2")
    assert ckpt.skipped == [os.path.join(folder, "ckpt-3")]
    for a, b in zip(weights(source), weights(fresh)):
        np.testing.assert_array_equal(a, b)
    assert os.path.exists(path + ".damaged")       # renamed, not deleted
    assert reader.latest.endswith("ckpt-2")        # the index was rewritten
    assert ckpt.save(4).endswith("ckpt-4")


@pytest.mark.parametrize("content", ["garbage {{ \x01", ""])
def test_a_garbage_index_never_restarts_from_zero(tmp_path, content):
    """TensorFlow ignores an index it cannot parse: the run restarted from
    step 0 and overwrote its checkpoints."""
    folder = saved(tmp_path, mlp())
    index = os.path.join(folder, "checkpoint")
    with open(index, "w") as f:
        f.write(content)
    with pytest.raises(checkpoints.CheckpointCorruptError,
                       match=f"index file {index} is damaged.*"
                             "on_bad_checkpoint=previous"):
        checkpoints.TrainingCheckpoint(folder, mlp()).restore()
    ckpt = checkpoints.TrainingCheckpoint(folder, mlp(),
                                          on_bad_checkpoint="previous")
    assert ckpt.restore() == 2 and ckpt.restored_from.endswith("ckpt-2")
    assert os.path.exists(index + ".damaged")
    assert ckpt.latest.endswith("ckpt-2")


def test_checkpoints_without_an_index_are_not_ignored(tmp_path):
    folder = saved(tmp_path, mlp())
    os.remove(os.path.join(folder, "checkpoint"))
    with pytest.raises(checkpoints.CheckpointCorruptError,
                       match="is missing, but the folder holds ckpt-2, "
                             "ckpt-1"):
        checkpoints.TrainingCheckpoint(folder, mlp()).restore()


def test_a_truncated_index_of_a_checkpoint_is_named(tmp_path):
    folder = saved(tmp_path, mlp())
    with open(os.path.join(folder, "ckpt-2.index"), "r+b") as f:
        f.truncate(10)
    with pytest.raises(checkpoints.CheckpointCorruptError,
                       match=r"ckpt-2.index is damaged or truncated"):
        checkpoints.TrainingCheckpoint(folder, mlp()).restore()


def test_no_readable_checkpoint_at_all_is_an_error(tmp_path):
    folder = saved(tmp_path, mlp())
    for n in (1, 2):
        with open(data_file(folder, n), "r+b") as f:
            f.truncate(16)
    with pytest.raises(checkpoints.CheckpointCorruptError,
                       match="No checkpoint in .* reads back"):
        checkpoints.TrainingCheckpoint(
            folder, mlp(), on_bad_checkpoint="previous").restore()


def test_an_unknown_policy_is_named():
    with pytest.raises(ValueError, match="on_bad_checkpoint='maybe' is not "
                                         "accepted; accepted: error, "
                                         "previous"):
        checkpoints.TrainingCheckpoint("unused", mlp(),
                                       on_bad_checkpoint="maybe")


# --- interrupted and failed saves ---------------------------------------------


def test_temporaries_of_killed_saves_are_removed_and_nothing_else(tmp_path):
    folder = saved(tmp_path, mlp())
    temp = os.path.join(folder, "ckpt-3_temp")       # a kill mid-save
    os.makedirs(temp)
    open(os.path.join(temp, "part-00000-of-00001.index"), "w").close()
    index_temp = os.path.join(folder, "checkpoint.tmp" + "ab" * 16)
    open(index_temp, "w").close()
    mine = os.path.join(folder, "notes_temp")         # not the library's
    os.makedirs(mine)
    before = sorted(os.listdir(folder))
    assert sorted(checkpoints.remove_temporaries(folder)) == sorted(
        [temp, index_temp])
    assert sorted(os.listdir(folder)) == sorted(
        set(before) - {"ckpt-3_temp", os.path.basename(index_temp)})
    assert checkpoints.TrainingCheckpoint(folder, mlp()).restore() == 2


def test_a_failed_save_is_named_and_keeps_the_checkpoints(tmp_path,
                                                          monkeypatch):
    model = mlp()
    folder = saved(tmp_path, model)
    before = sorted(os.listdir(folder))
    ckpt = checkpoints.TrainingCheckpoint(folder, model)
    ckpt.restore()

    def full(self, checkpoint_number=None, **kwargs):
        os.makedirs(os.path.join(folder, f"ckpt-{checkpoint_number}_temp"))
        raise tf.errors.ResourceExhaustedError(
            None, None, "No space left on device")

    monkeypatch.setattr(tf.train.CheckpointManager, "save", full)
    with pytest.raises(checkpoints.CheckpointWriteError,
                       match=r"Could not write checkpoint .*ckpt-3 \(No space "
                             r"left on device\)\. The checkpoints written "
                             r"before are kept \(ckpt-2, ckpt-1\)"):
        ckpt.save(3)
    assert sorted(os.listdir(folder)) == before       # no temp folder left
    monkeypatch.undo()
    assert checkpoints.TrainingCheckpoint(folder, mlp()).restore() == 2


# --- .keras files ------------------------------------------------------------


def test_a_truncated_keras_file_is_named(tmp_path):
    path = str(tmp_path / "sparse.keras")
    tfs.save_model(mlp(), path)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(saving.SavedModelError,
                       match=rf"{path} is not a readable .keras file: File "
                             r"is not a zip file.*save the model again"):
        tfs.load_model(path)


def test_a_damaged_mask_index_is_named(tmp_path):
    path = str(tmp_path / "sparse.keras")
    tfs.save_model(mlp(), path)
    rewritten = str(tmp_path / "rewritten.keras")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(rewritten, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "tf_sparse/masks.json":
                data = b'{"format_version": 1, "paths": ['
            dst.writestr(item, data)
    with pytest.raises(saving.SavedModelError,
                       match=r"rewritten.keras is not a readable .keras "
                             r"file: tf_sparse/masks.json is not valid"):
        tfs.load_model(rewritten)


def test_a_missing_keras_file_is_named(tmp_path):
    with pytest.raises(saving.SavedModelError, match="nothing.keras does not "
                                                     "exist"):
        tfs.load_model(str(tmp_path / "nothing.keras"))


def test_write_errors_are_not_oserrors_by_accident():
    """The binaries report these as one line (engine.USER_ERRORS)."""
    from tf_sparse.runs import engine
    for kind in (checkpoints.CheckpointWriteError,
                 checkpoints.CheckpointCorruptError,
                 checkpoints.CheckpointMismatchError, saving.SavedModelError):
        assert issubclass(kind, engine.USER_ERRORS)
