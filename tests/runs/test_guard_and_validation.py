"""The engine refuses a bad config before writing anything, trains short
runs of long recipes, and stops a diverging run with its last good
checkpoint kept."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_sparse import runs
from tf_sparse.runs import runner
from runs_testlib import tiny_data

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def config(**changes):
    c = runs.default_config("fashion_mnist")
    c.update(dict(epochs=2, sparsity=0.5, eval_every_epochs=0))
    for key, value in changes.items():
        c[key] = value
    return c


@pytest.mark.parametrize("key,value,message", [
    ("sparsity", 1.5, "sparsity=1.5 is not accepted: it must be a number in "
                      r"\[0.0, 1.0\)"),
    ("batch_size", 0, "batch_size=0 is not accepted: it must be an int >= 1"),
    ("steps_per_epoch", -1, "steps_per_epoch=-1 is not accepted"),
    ("learning_rate", -0.1, "learning_rate=-0.1 is not accepted"),
    ("weight_decay_mode", "l3", "weight_decay_mode='l3' is not accepted; "
                                "accepted: decoupled, coupled, l2"),
    ("algorithm", "magic", "Unknown algorithm 'magic'"),
])
def test_a_bad_config_is_refused_before_anything_is_written(tmp_path, key,
                                                             value, message):
    workdir = tmp_path / "run"
    with pytest.raises(ValueError, match=message):
        runs.run(config(**{key: value}), str(workdir), data=tiny_data(),
                 verbose=0)
    assert not os.path.exists(workdir / "run.json")
    # The corrected run starts in the same workdir.
    assert runs.run(config(epochs=1), str(workdir), data=tiny_data(),
                    verbose=0)["steps"] == 6


def test_a_short_run_of_a_long_recipe_trains(tmp_path):
    results = runs.run(config(epochs=1, steps_per_epoch=3,
                              lr_boundaries=(0.5, 0.75), lr_decay_every="0"),
                       str(tmp_path / "run"), data=tiny_data(), verbose=0)
    assert results["steps"] == 3
    assert results["setup"]["learning_rate_schedule"]["boundaries"] == [2, 2]


class NaNFrom(keras.layers.Layer):
    """Adds 0 to its input, and NaN from training step `step` on."""

    def __init__(self, step, **kwargs):
        super().__init__(**kwargs)
        self.step = step

    def build(self, input_shape):
        self.count = self.add_weight(shape=(), initializer="zeros",
                                     trainable=False, name="count")

    def call(self, x, training=False):
        if not training:
            return x
        self.count.assign_add(1.0)
        return x + keras.ops.where(self.count >= self.step, np.nan, 0.0)


def nan_model(step, hidden_behind_relu=False):
    inputs = keras.Input((28, 28, 1))
    h = keras.layers.Flatten()(inputs)
    h = keras.layers.Dense(16, name="fc1")(h)
    h = NaNFrom(step, name="nan_from")(h)
    if hidden_behind_relu:       # NaN weights of fc2 are hidden by the ReLU
        h = keras.layers.Dense(16, activation="relu", name="fc2")(h)
    return keras.Model(inputs, keras.layers.Dense(10, name="out")(h))


def test_the_guard_stops_a_nan_run_and_keeps_the_last_good_checkpoint(
        tmp_path):
    workdir = tmp_path / "run"
    results = runs.run(config(checkpoint_every_steps=2), str(workdir),
                       data=tiny_data(), model_fn=lambda: nan_model(5),
                       verbose=0)
    report = results["diverged"]
    assert report["step"] == 5 and not results["finished"]
    assert "training diverged at step 5: the training loss is nan" in (
        report["message"])
    assert report["non_finite_variable"] is not None
    assert report["last_checkpoint"].endswith("ckpt-4")
    names = os.listdir(workdir / "checkpoints")
    assert "ckpt-4.index" in names and "ckpt-5.index" not in names
    reader = tf.train.load_checkpoint(report["last_checkpoint"])
    for name in reader.get_variable_to_shape_map():
        value = reader.get_tensor(name)
        if np.issubdtype(np.asarray(value).dtype, np.floating):
            assert np.all(np.isfinite(value)), name


def test_non_finite_weights_that_the_loss_hides_are_caught_before_a_save(
        tmp_path):
    workdir = tmp_path / "run"
    results = runs.run(config(checkpoint_every_steps=2), str(workdir),
                       data=tiny_data(), model_fn=lambda: nan_model(
                           5, hidden_behind_relu=True), verbose=0)
    report = results["diverged"]
    assert report["step"] in (5, 6)           # the loss or the next save
    assert report["last_checkpoint"].endswith("ckpt-4")
    assert "ckpt-6.index" not in os.listdir(workdir / "checkpoints")


def test_a_loss_far_above_its_start_stops_the_run():
    saved = []
    progress = runner.Progress(position=0, steps_per_epoch=10, stop=100,
                               save=saved.append, divergence_factor=10)
    progress.on_epoch_begin(0)
    progress.on_train_batch_end(0, {"loss": 2.0})
    progress.on_train_batch_end(1, {"loss": 19.0})
    with pytest.raises(runner.Diverged, match="the training loss 21 is "
                       "above divergence_factor=10 x its first value 2"):
        progress.on_train_batch_end(2, {"loss": 21.0})
    assert progress.position == 2 and saved == []


def test_a_small_first_loss_is_measured_against_the_chance_level_loss():
    # Fine-tuning starts at a small loss; one batch after a pruning step
    # above 10x that is not a divergence until it passes 10 x ln(10).
    progress = runner.Progress(position=0, steps_per_epoch=10, stop=100,
                               save=[].append, divergence_factor=10,
                               loss_floor=runner.chance_loss(10))
    progress.on_epoch_begin(0)
    progress.on_train_batch_end(0, {"loss": 0.11})
    progress.on_train_batch_end(1, {"loss": 1.36})
    progress.on_train_batch_end(2, {"loss": 23.0})
    with pytest.raises(runner.Diverged, match=r"the training loss 23.1 is "
                       r"above divergence_factor=10 x the chance-level loss "
                       r"2.30259 \(its first value was 0.11\)"):
        progress.on_train_batch_end(3, {"loss": 23.1})


def test_the_cli_says_a_run_diverged_and_exits_non_zero(tmp_path):
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "train.py"),
         f"--config={os.path.join(ROOT, 'configs', 'fashion_mnist', 'lenet300_static.py')}",
         f"--workdir={tmp_path / 'run'}", "--verbose=0",
         "--config.learning_rate=1e30", "--config.epochs=1",
         "--config.steps_per_epoch=20"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode != 0
    assert "train: error: training diverged at step" in proc.stderr
    assert "Traceback" not in proc.stderr


def dead_relu_model():
    """A hidden ReLU layer whose bias keeps every unit below zero for any
    input: the output is the same for every image and no gradient reaches
    the layers below."""
    inputs = keras.Input((28, 28, 1))
    h = keras.layers.Flatten()(inputs)
    h = keras.layers.Dense(16, activation="relu", name="fc1",
                           kernel_initializer="zeros",
                           bias_initializer=keras.initializers.Constant(-1e3)
                           )(h)
    return keras.Model(inputs, keras.layers.Dense(10, name="out")(h))


def test_a_collapsed_network_is_reported_not_hidden_in_the_accuracy(
        tmp_path):
    # init="keras": the layers' own initializers (the preset's "torch"
    # would redraw the bias).
    results = runs.run(config(epochs=1, init="keras"), str(tmp_path / "run"),
                       data=tiny_data(), model_fn=dead_relu_model, verbose=0)
    assert results["finished"] and "diverged" not in results
    report = results["collapsed"]
    assert report["examples"] == 40 and report["output_std"] == 0.0
    assert "gives the same output to all 40 evaluation examples" in (
        report["message"])
    assert "WARNING: the network gives the same output" in (
        runs.final_report(results))


def test_a_network_that_learned_something_is_not_called_collapsed(tmp_path):
    results = runs.run(config(epochs=1), str(tmp_path / "run"),
                       data=tiny_data(), verbose=0)
    assert "collapsed" not in results


def test_collapse_report_compares_the_spread_with_the_outputs_scale():
    same = keras.Sequential([keras.Input((3,)), keras.layers.Dense(
        2, kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant(1e6))])
    images = np.arange(12, dtype="float32").reshape(4, 3)
    assert runner.collapse_report(same, images)["output_std"] == 0.0
    varied = keras.Sequential([keras.Input((3,)), keras.layers.Dense(
        2, kernel_initializer="ones")])
    assert runner.collapse_report(varied, images) is None
    assert runner.collapse_report(same, images[:1]) is None   # one example
