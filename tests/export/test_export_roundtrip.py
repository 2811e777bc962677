"""Exports of Sequential, functional and subclassed sparse models round-trip."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sparse as tfs
from tf_sparse import export
from tf_sparse import runs
from tf_sparse.runs import model as model_lib
from tf_sparse.runs import restore
from tf_sparse.runs import workdir as workdir_lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

try:
    import ai_edge_litert  # noqa: F401
    HAVE_LITERT = True
except ImportError:
    HAVE_LITERT = False
needs_litert = pytest.mark.skipif(
    not HAVE_LITERT, reason="ai-edge-litert not installed (pip install "
    "'tf-sparse[export]'); TFLite files cannot be run and checked")


@keras.saving.register_keras_serializable(package="tf_sparse_tests")
class TwoLayer(keras.Model):
    """A subclassed model with a config, so it can be rebuilt."""

    def __init__(self, hidden=24, classes=5, **kwargs):
        super().__init__(**kwargs)
        self.hidden, self.classes = hidden, classes
        self.fc1 = keras.layers.Dense(hidden, activation="relu", name="fc1")
        self.fc2 = keras.layers.Dense(classes, name="fc2")

    def call(self, x):
        return self.fc2(self.fc1(x))

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden,
                "classes": self.classes}


class NoConfig(keras.Model):
    def __init__(self):
        super().__init__()
        self.fc = keras.layers.Dense(6)

    def call(self, x):
        return self.fc(x)


def sequential():
    return keras.Sequential([keras.Input((12,)),
                             keras.layers.Dense(24, activation="relu"),
                             keras.layers.Dense(5)], name="seq")


def functional():
    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(6, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.Conv2D(8, 1, name="pointwise")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(5, name="fc")(x),
                       name="func")


def subclassed():
    model = TwoLayer(name="sub")
    model(np.zeros((1, 12), np.float32))
    return model


BUILDERS = {"sequential": (sequential, (12,)),
            "functional": (functional, (8, 8, 2)),
            "subclassed": (subclassed, (12,))}


def sparse_model(kind):
    keras.utils.set_random_seed(0)
    build, shape = BUILDERS[kind]
    model = tfs.sparsify(build(), sparsity=0.8, seed=1)
    x = np.random.default_rng(0).normal(size=(16,) + shape).astype("float32")
    return model, x


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_keras_and_saved_model_round_trips(kind, tmp_path):
    model, x = sparse_model(kind)
    expected = model(x).numpy()
    r = export.export_keras(model, tmp_path / "m.keras", x)
    assert r.max_abs_diff <= 1e-6 and r.size_bytes > 0 and r.gzip_bytes > 0
    loaded = keras.models.load_model(r.path)
    assert not tfs.is_sparse(loaded)
    np.testing.assert_allclose(loaded(x).numpy(), expected, atol=1e-6)
    r = export.export_saved_model(model, str(tmp_path / "sm"), x)
    served = tf.saved_model.load(r.path)
    np.testing.assert_allclose(served.serve(x).numpy(), expected, atol=1e-5)
    # The masks are not part of the SavedModel.
    assert len(served.variables) == len(model.weights)


@needs_litert
@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_tflite_sparse_round_trip_through_litert(kind, tmp_path):
    model, x = sparse_model(kind)
    r = export.export_tflite(model, tmp_path / "m.tflite", x)
    assert r.format == "tflite" and r.max_abs_diff <= 1e-4
    runner = export.TFLiteRunner(r.path)
    np.testing.assert_allclose(runner(x), model(x).numpy(), atol=1e-4,
                               rtol=1e-4)
    # A different batch size works too (the input is resized).
    np.testing.assert_allclose(runner(x[:3]), model(x[:3]).numpy(),
                               atol=1e-4, rtol=1e-4)


@needs_litert
def test_sparse_tflite_is_smaller_than_dense_tflite(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((256,))
    h = keras.layers.Dense(256, activation="relu")(inputs)
    model = tfs.sparsify(keras.Model(inputs, keras.layers.Dense(256)(h)),
                         sparsity=0.9)
    x = np.random.default_rng(0).normal(size=(4, 256)).astype("float32")
    results = export.export_all(model, tmp_path, x,
                                formats=("tflite", "tflite_dense"))
    ratio = results["tflite_dense"].size_bytes / results["tflite"].size_bytes
    assert ratio >= 5, ratio


def test_mismatch_is_refused_and_the_file_removed(tmp_path):
    model, x = sparse_model("sequential")
    path = tmp_path / "m.keras"
    with pytest.raises(export.ExportMismatchError, match="tolerance"):
        export.export_keras(model, path, x, atol=-1.0, rtol=0.0)
    assert not path.exists()
    with pytest.raises(export.ExportMismatchError, match="shape"):
        export.compare("x", np.zeros((2, 3)), np.zeros((2, 4)), 0, 0)


def test_clear_errors_for_models_that_cannot_be_exported(tmp_path):
    model = NoConfig()
    model(np.zeros((1, 4), np.float32))
    tfs.sparsify(model, sparsity=0.5)
    x = np.ones((2, 4), np.float32)
    with pytest.raises(export.ExportError, match="plain .keras"):
        export.export_keras(model, tmp_path / "m.keras", x)
    # Without a config it still exports as a SavedModel (no rebuild needed).
    export.export_saved_model(model, str(tmp_path / "sm"), x)
    with pytest.raises(export.ExportError, match="end in .keras"):
        export.export_keras(model, tmp_path / "m.h5", x)
    # Pruned weights that are not zero.
    seq, x = sparse_model("sequential")
    kernel = seq.layers[0].kernel
    kernel.assign(keras.ops.ones_like(kernel))
    with pytest.raises(export.ExportError, match="apply_masks"):
        export.export_saved_model(seq, str(tmp_path / "sm2"), x)
    # Several outputs / several inputs.
    a = keras.Input((3,))
    two = keras.Model(a, [keras.layers.Dense(2)(a), keras.layers.Dense(2)(a)])
    with pytest.raises(export.ExportError, match="several outputs"):
        export.export_saved_model(two, str(tmp_path / "sm3"),
                                  np.ones((2, 3), np.float32))
    with pytest.raises(export.ExportError, match="single-input"):
        export.export_saved_model(seq, str(tmp_path / "sm4"), [x, x])
    with pytest.raises(export.ExportError, match="Unknown export formats"):
        export.export_all(seq, tmp_path, x, formats=("onnx",))


class FashionShapes:
    input_shape, num_classes = (28, 28, 1), 10


def make_workdir(workdir, legacy=False):
    """A workdir as tools/train.py leaves it (`legacy`: a flat run.json, as
    the runners before the one engine wrote it)."""
    config = runs.default_config("fashion_mnist")
    config.sparsity = 0.9
    os.makedirs(workdir / "checkpoints")
    if legacy:
        with open(workdir / "run.json", "w") as f:
            json.dump({**config.to_dict(), "lr_decay_at": [0.5, 0.75]}, f)
    else:
        workdir_lib.Workdir(workdir).check(config, (), kind="train")
    model = model_lib.sparsify(config, model_lib.build(config, FashionShapes),
                               gradual=False)
    # Pretend training moved the weights.
    for mw in tfs.masked_weights(model):
        mw.variable.assign(mw.variable * 3.0)
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                               str(workdir / "checkpoints"), 1).save()
    return model


@pytest.mark.parametrize("legacy", [False, True])
def test_load_workdir_restores_weights_and_masks(tmp_path, legacy):
    model = make_workdir(tmp_path, legacy=legacy)
    loaded, raw = restore.load_model(str(tmp_path))
    assert raw["sparsity"] == 0.9
    x = np.random.default_rng(0).random((4, 28, 28, 1)).astype("float32")
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
    for a, b in zip(tfs.masked_weights(loaded), tfs.masked_weights(model)):
        np.testing.assert_array_equal(a.mask.numpy(), b.mask.numpy())
    with pytest.raises(restore.RestoreError, match="run.json"):
        restore.load_model(str(tmp_path / "checkpoints"))


def test_export_cli_on_a_workdir(tmp_path):
    make_workdir(tmp_path / "run")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "export.py"),
         f"--workdir={tmp_path / 'run'}", f"--output_dir={out}",
         "--formats=keras,csr_saved_model", "--csr_method=all",
         "--batch=8"], capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "csr_saved_model" in proc.stdout
    assert "training FLOPs" in proc.stdout
    assert (out / "model.keras").exists()
    report = json.loads((out / "export_report.json").read_text())
    assert set(report["results"]) == {"keras", "csr_saved_model"}
    assert {c["choice"] for c in report["csr_choices"]} == {"csr"}
    assert report["flops"]["rule"] == "sparse"
    bad = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "export.py"),
         f"--output_dir={out}"], capture_output=True, text=True, timeout=120,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), cwd=ROOT)
    assert bad.returncode != 0 and "--workdir" in bad.stderr
