"""Under-training diagnostics: entropy by hand, per-epoch curves, report."""

import json
import os

import keras
import numpy as np
import pytest

import tf_sparse as tfs
from tf_sparse import undertraining


def test_entropy_against_hand_computation():
    uniform = np.zeros((2, 4))
    assert undertraining.predictive_entropy(uniform) == pytest.approx(
        [np.log(4)] * 2)
    confident = np.array([[100.0, 0.0, 0.0]])
    assert undertraining.predictive_entropy(confident)[0] == pytest.approx(
        0.0, abs=1e-12)
    logits = np.array([[1.0, 2.0, 3.0]])
    p = np.exp(logits) / np.exp(logits).sum()
    assert undertraining.mean_predictive_entropy(logits) == pytest.approx(
        float(-(p * np.log(p)).sum()))
    probs = np.array([[0.5, 0.5, 0.0], [0.25, 0.25, 0.5]])
    assert undertraining.predictive_entropy(probs, from_logits=False) == \
        pytest.approx([np.log(2), 1.5 * np.log(2)])


def model_and_data():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    outputs = keras.layers.Dense(3, name="out")(
        keras.layers.Dense(8, activation="relu", name="fc")(inputs))
    model = tfs.sparsify(keras.Model(inputs, outputs), sparsity=0.5)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 6)).astype("float32")
    y = rng.integers(0, 3, 90).astype("int32")
    return model, x, y


def test_callback_records_every_diagnostic_per_epoch(tmp_path):
    model, x, y = model_and_data()
    model.compile(keras.optimizers.SGD(0.1),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    path = str(tmp_path / "d.json")
    diag = undertraining.UndertrainingDiagnostics(
        eval_batch=(x[:10], y[:10]), validation_data=(x[60:], y[60:]),
        train_eval_data=(x[:60], y[:60]), path=path, batch_size=7)
    model.fit(x[:60], y[:60], batch_size=10, epochs=2, verbose=0,
              callbacks=[diag])
    assert [h["epoch"] for h in diag.history] == [1, 2]
    last = diag.history[-1]
    logits = keras.ops.convert_to_numpy(model(x, training=False))
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    train = -log_p[np.arange(60), y[:60]].mean()
    val = -log_p[60 + np.arange(30), y[60:]].mean()
    assert last["train_loss"] == pytest.approx(train, rel=1e-5)
    assert last["val_loss"] == pytest.approx(val, rel=1e-5)
    assert last["gap"] == pytest.approx(val - train, rel=1e-5)
    assert last["entropy"] == pytest.approx(
        undertraining.mean_predictive_entropy(logits[:10]), rel=1e-5)
    assert last["density"] == pytest.approx(0.5, abs=0.02)
    assert last["step"] == 12 and "fit_loss" in last
    assert json.load(open(path)) == diag.history


def history(losses):
    return [{"epoch": i + 1, "train_loss": l, "val_loss": l + 0.1,
             "val_accuracy": 0.5, "entropy": 1.0 - 0.1 * i,
             "gap": 0.1, "density": 1.0} for i, l in enumerate(losses)]


def test_report_states_which_sparse_runs_look_under_trained(tmp_path):
    runs = [{"name": "dense", "history": history([1.0, 0.5])},
            {"name": "gmp90", "history": history([1.2, 0.7]),
             "reference": "dense"},
            {"name": "acdc90", "history": history([1.1, 0.4]),
             "reference": "dense"}]
    verdicts = undertraining.compare_runs(runs, str(tmp_path))
    by_run = {v["run"]: v for v in verdicts}
    assert by_run["gmp90"]["higher_train_loss"] is True
    assert by_run["gmp90"]["train_loss_excess"] == pytest.approx(0.2)
    assert "looks under-trained" in by_run["gmp90"]["statement"]
    assert by_run["acdc90"]["higher_train_loss"] is False
    text = open(tmp_path / "report.md").read()
    assert "| gmp90 | dense | 0.7000 | 0.5000 | 0.2000 |" in text
    for name in ("train_loss.png", "val_loss.png", "entropy.png", "gap.png",
                 "report.json"):
        assert os.path.getsize(tmp_path / name) > 0
    with pytest.raises(ValueError, match="names reference 'dense2'"):
        undertraining.compare_runs(
            [{"name": "a", "history": history([1.0]), "reference": "dense2"}],
            str(tmp_path))
