"""The sparse-momentum paper's speed-up estimate on toy models."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tf_sparse import speedup

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def toy():
    """Two convolutions reading the same input, with known zeros."""
    inputs = keras.Input((6, 6, 2))
    a = keras.layers.Conv2D(4, 3, name="a")(inputs)
    b = keras.layers.Conv2D(4, 3, name="b")(inputs)
    model = keras.Model(inputs, keras.layers.Add()([a, b]))
    ka = np.ones((3, 3, 2, 4), np.float32)
    ka[:, :, 1, :] = 0             # input channel 1: all weights zero
    ka[:, :, 0, :2] = 0            # half of channel 0 -> density 0.25
    model.get_layer("a").kernel.assign(ka)
    model.get_layer("b").kernel.assign(np.ones((3, 3, 2, 4), np.float32))
    x = np.zeros((4, 6, 6, 2), np.float32)
    x[..., 0] = 1.0                # channel 1 of the input is all zero
    return model, x


def test_estimate_with_known_densities_and_times():
    model, x = toy()
    est = speedup.estimate(model, x, timer=lambda pairs: [2e-3, 1e-3])
    a, b = est.layers
    assert (a.weight_density, a.activation_density) == (0.25, 0.5)
    assert (b.weight_density, b.activation_density) == (1.0, 0.5)
    assert (a.zero_weight_channels, a.zero_activation_channels) == (0.5, 0.5)
    assert (b.zero_weight_channels, b.zero_activation_channels) == (0.0, 0.5)
    # sparse: 2 x 0.25 x 0.5 + 1 x 1 x 0.5 = 0.75 ms against 3 ms dense.
    assert est.sparse_ms == pytest.approx(0.75)
    assert est.speedup == pytest.approx(4.0)
    # channel-sparse: 2 x 0.5 x 0.5 + 1 x 1 x 0.5 = 1 ms.
    assert est.channel_speedup == pytest.approx(3.0)
    # The model's layers are left as they were.
    assert "call" not in model.get_layer("a").__dict__


def test_report_labels_estimate_and_measurement_apart():
    model, x = toy()
    est = speedup.estimate(model, x, repeats=2)
    assert all(w.dense_ms > 0 for w in est.layers)
    measured = speedup.measure({"keras": model}, x, repeats=2)
    text = speedup.format_report(est, measured)
    assert text.startswith("ESTIMATE, not a measurement")
    assert "MEASURED on this machine" in text and "keras:" in text


def test_dense_layers_only_when_asked_and_errors():
    inputs = keras.Input((5,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    x = np.ones((2, 5), np.float32)
    with pytest.raises(ValueError, match="no convolution"):
        speedup.estimate(model, x)
    est = speedup.estimate(model, x, include_dense=True,
                           timer=lambda p: [1e-3])
    assert est.speedup == pytest.approx(1.0)


def test_cli_prints_estimate_next_to_measurement():
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "speedup_estimate.py"),
         "--zoo_model=lenet5_caffe", "--sparsity=0.9", "--batch_size=8",
         "--repeats=2"], capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ESTIMATE, not a measurement" in proc.stdout
    assert "MEASURED on this machine" in proc.stdout


def test_subclassed_models_and_the_check_batch_fallback():
    import tf_sparse as tfs

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(3, 3, activation="relu")
            self.pool = keras.layers.GlobalAveragePooling2D()

        def call(self, x):
            return self.pool(self.conv(x))

    model = Net()
    x = np.ones((2, 5, 5, 2), np.float32)
    model(x)
    tfs.sparsify(model, sparsity=0.5)
    est = speedup.estimate(model, x, timer=lambda p: [1e-3])
    assert est.layers[0].weight_density == 0.5
    assert est.layers[0].activation_density == 1.0
    assert est.speedup == pytest.approx(2.0)
    inputs = keras.Input((4, 4, 1))
    functional = keras.Model(inputs, keras.layers.Flatten()(inputs))
    from tf_sparse.runs import restore
    batch, described = restore.check_batch(functional, None, n=3)
    assert batch.shape == (3, 4, 4, 1) and "random" in described
