"""End to end: tools/train.py on real Fashion-MNIST, resume, bad input."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tf_sparse import runs
from tf_sparse.runs import runner
from fashion_data import needs_fashion_mnist

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "fashion_mnist", "lenet300_static.py")


def tensorboard_tags(log_dir):
    tags = set()
    for name in os.listdir(log_dir):
        for event in tf.compat.v1.train.summary_iterator(
                os.path.join(log_dir, name)):
            tags.update(v.tag for v in event.summary.value)
    return tags


def train_cli(workdir, *overrides):
    cmd = [sys.executable, os.path.join(ROOT, "tools", "train.py"),
           f"--config={CONFIG}", f"--workdir={workdir}", "--verbose=0",
           *overrides]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(cmd, capture_output=True, text=True, env=env,
                          timeout=600, cwd=ROOT)


@needs_fashion_mnist
def test_cli_trains_real_steps_then_resumes(tmp_path):
    workdir = str(tmp_path / "run")
    first = train_cli(workdir, "--config.epochs=1",
                      "--config.steps_per_epoch=200")
    assert first.returncode == 0, first.stderr[-3000:]
    results = json.load(open(os.path.join(workdir, "results.json")))
    assert results["steps"] == 200
    assert results["layers"]["fc1/kernel"]["nonzeros"] == 11760
    assert results["total_nonzeros"] == 13310
    # 200 real steps leave chance level (10%, loss ln 10 = 2.303); with the
    # reference's initialisation a 5%-dense LeNet needs about 100 to start.
    assert results["test_accuracy"] > 0.25
    assert results["test_loss"] < 2.25
    assert "test accuracy" in first.stdout
    tags = tensorboard_tags(os.path.join(workdir, "tensorboard"))
    assert {"epoch/loss", "epoch/accuracy", "learning_rate",
            "sparsity/density", "sparsity/fc1/kernel"} <= tags

    second = train_cli(workdir, "--config.epochs=2",
                       "--config.steps_per_epoch=200", "--verbose=1")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Resuming" in second.stdout
    assert json.load(open(os.path.join(workdir, "results.json")))[
        "steps"] == 400


@needs_fashion_mnist
def test_cli_refuses_a_workdir_of_another_run(tmp_path):
    workdir = str(tmp_path / "run")
    assert train_cli(workdir, "--config.epochs=1",
                     "--config.steps_per_epoch=2").returncode == 0
    before = sorted(os.listdir(workdir))
    other = train_cli(workdir, "--config.model=lenet5_caffe")
    assert other.returncode != 0
    assert "model='lenet300_100'" in other.stderr
    assert "model='lenet5_caffe'" in other.stderr
    assert sorted(os.listdir(workdir)) == before


def test_cli_refuses_an_unknown_config_key(tmp_path):
    proc = train_cli(str(tmp_path / "run"), "--config.sparsty=0.9")
    assert proc.returncode != 0
    assert "sparsty" in proc.stderr and "sparsity" in proc.stderr
    assert not os.path.exists(tmp_path / "run")


def small_config(**changes):
    config = runs.default_config("fashion_mnist")
    config.unlock()
    config.update(dict(epochs=3, steps_per_epoch=15, batch_size=50,
                       sparsity=0.9, lr_boundaries=(0.5,)), **changes)
    config.lock()
    return config


def checkpoint_values(workdir):
    reader = tf.train.load_checkpoint(os.path.join(workdir, "checkpoints"))
    names = sorted(n for n in reader.get_variable_to_shape_map()
                   if "model/" in n or "optimizer/" in n)
    return {n: reader.get_tensor(n) for n in names}


@needs_fashion_mnist
def test_resumed_run_equals_uninterrupted_run(tmp_path, monkeypatch):
    whole = str(tmp_path / "whole")
    runs.run(small_config(), whole, verbose=0)

    class Killed(Exception):
        pass

    parted = str(tmp_path / "parted")
    original = runner.Progress.on_epoch_end

    def save_then_die(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 0:
            raise Killed()

    monkeypatch.setattr(runner.Progress, "on_epoch_end", save_then_die)
    with pytest.raises(Killed):
        runs.run(small_config(), parted, verbose=0)
    monkeypatch.setattr(runner.Progress, "on_epoch_end", original)
    runs.run(small_config(), parted, verbose=0)

    a, b = checkpoint_values(whole), checkpoint_values(parted)
    assert a.keys() == b.keys()
    assert any("tf_sparse_masks" in k for k in a)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    ra = json.load(open(os.path.join(whole, "results.json")))
    rb = json.load(open(os.path.join(parted, "results.json")))
    assert ra["test_loss"] == rb["test_loss"]


@needs_fashion_mnist
def test_run_killed_mid_epoch_resumes_to_the_same_weights(tmp_path,
                                                           monkeypatch):
    config = small_config(checkpoint_every_steps=4)
    whole = str(tmp_path / "whole")
    runs.run(config, whole, verbose=0)

    class Killed(Exception):
        pass

    parted = str(tmp_path / "parted")
    original = runner.Progress.on_train_batch_end

    def die_after_step_22(self, batch, logs=None):
        original(self, batch, logs)
        if self.position == 22:
            raise Killed()   # last checkpoint: step 20, mid epoch 2

    monkeypatch.setattr(runner.Progress, "on_train_batch_end",
                        die_after_step_22)
    with pytest.raises(Killed):
        runs.run(config, parted, verbose=0)
    monkeypatch.setattr(runner.Progress, "on_train_batch_end", original)
    runs.run(config, parted, verbose=0)
    a, b = checkpoint_values(whole), checkpoint_values(parted)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
