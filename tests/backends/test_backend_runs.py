"""The run engine (tf_sparse/runs) and tools/train.py on the Keras backend
this process runs on: TensorFlow in the normal suite, JAX and PyTorch
through tests/test_backends.py (`KERAS_BACKEND=jax python -m pytest
tests/backends/test_backend_runs.py`).

A few real Fashion-MNIST steps through the one engine with exact counts at
the end, a run stopped and started again that ends where the uninterrupted
one ends, one CLI run, and the settings the eager path refuses.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tf_sparse as tfs
from fashion_data import needs_fashion_mnist
from tf_sparse import backend
from tf_sparse.runs import eager
from tf_sparse.runs import engine
from tf_sparse.runs import restore

import backend_testlib as lib
from runs_testlib import tiny_data

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
SPE = 5          # steps per epoch (batch 100), 2 epochs


def config(algorithm="set", **overrides):
    """LeNet-300-100 at 95% on Fashion-MNIST, 2 epochs of 5 steps; SET
    and RigL update once, after step 5."""
    config = tfs.runs.default_config("fashion_mnist")
    config.model = "lenet300_100"
    config.sparsity = 0.95
    config.algorithm = algorithm
    config.epochs = 2
    config.steps_per_epoch = SPE
    config.eval_steps = 1
    if algorithm in ("set", "rigl"):
        config.algorithm_params.update_every = SPE
    for key, value in overrides.items():
        config[key] = value
    return config


def checkpoint_files(workdir):
    found = sorted(os.listdir(os.path.join(workdir, "checkpoints")))
    if backend.is_tensorflow():
        return [name[:-len(".index")] for name in found
                if name.endswith(".index")]
    return found


def network(workdir):
    """(weights, masks) of a workdir's latest checkpoint, as NumPy."""
    model, _ = restore.load_model(workdir)
    return lib.weights(model), lib.masks(model)


@needs_fashion_mnist
@pytest.mark.parametrize("algorithm", ["set", "rigl"])
def test_fashion_mnist_trains_through_the_engine(algorithm, tmp_path):
    workdir = str(tmp_path / algorithm)
    results = engine.run(config(algorithm), workdir, verbose=0)
    assert (results["steps"], results["batches"], results["epochs_done"]) \
        == (2 * SPE, 2 * SPE, 2)
    assert results["finished"]
    # 95% of 784x300, 300x100, 100x10, each rounded: 11760 + 1500 + 50.
    assert results["layers"]["fc1/kernel"]["nonzeros"] == 11760
    assert results["total_nonzeros"] == 13310
    assert np.isfinite(results["test_loss"])
    stored = json.load(open(os.path.join(workdir, "results.json")))
    assert stored["total_nonzeros"] == 13310
    assert json.load(open(os.path.join(workdir, "run.json")))[
        "backend"] == backend.name()
    expected = (["ckpt-10", "ckpt-5"] if backend.is_tensorflow()
                else ["ckpt-10.keras", "ckpt-5.keras"])
    assert checkpoint_files(workdir) == expected
    tags = lib.summary_steps(os.path.join(workdir, "tensorboard"))
    assert tags["sparsity/density"] == [5, 10]
    assert tags["epoch/loss"] == [5, 10]
    # The one mask update, after step 5, kept the exact count.
    assert tags["mask_update/dropped"] == [5]
    assert tags["mask_update/nonzeros"] == [5]
    weights, masks = network(workdir)
    assert [int(m.sum()) for m in masks] == [11760, 1500, 50]
    for w, m in zip(weights[0::2], masks):
        assert np.count_nonzero(w[m == 0]) == 0


@needs_fashion_mnist
def test_a_stopped_run_started_again_ends_as_the_whole_run(tmp_path):
    whole = str(tmp_path / "whole")
    engine.run(config("set"), whole, verbose=0)
    parts = str(tmp_path / "parts")
    # Checkpoints every 3 steps too (saved inside fit: at 3, 5, 6, 7; two
    # kept). Stopped mid-epoch (step 7), then at the end; the second start
    # reads the checkpoint of step 7 and plays epoch 2's batches 3 to 5.
    first = engine.run(config("set", max_steps=7, checkpoint_every_steps=3),
                       parts, verbose=0)
    assert (first["batches"], first["finished"]) == (7, False)
    assert checkpoint_files(parts) == (
        ["ckpt-6", "ckpt-7"] if backend.is_tensorflow()
        else ["ckpt-6.keras", "ckpt-7.keras"])
    rest = engine.run(config("set", checkpoint_every_steps=3), parts,
                      verbose=0)
    assert (rest["batches"], rest["steps_run"], rest["finished"]) == (
        10, 3, True)
    for name, (a, b) in {"weights": (network(whole)[0], network(parts)[0]),
                         "masks": (network(whole)[1], network(parts)[1])
                         }.items():
        assert len(a) == len(b)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y, err_msg=name)


@needs_fashion_mnist
def test_train_binary_runs_on_this_backend(tmp_path):
    workdir = str(tmp_path / "cli")
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "train.py"),
         f"--backend={backend.name()}",
         "--config=configs/fashion_mnist/lenet300_static.py",
         f"--workdir={workdir}", "--verbose=0", "--config.epochs=1",
         "--config.steps_per_epoch=3", "--config.eval_steps=1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "test accuracy" in done.stdout
    results = json.load(open(os.path.join(workdir, "results.json")))
    assert (results["steps"], results["total_nonzeros"]) == (3, 13310)
    assert results["config"]["algorithm"] == "static"


@pytest.mark.skipif(backend.is_tensorflow(), reason="checks the errors of "
                    "the JAX and PyTorch backends")
def test_what_the_eager_path_cannot_run_names_the_backend(tmp_path):
    named = f"'{backend.name()}'"
    with pytest.raises(backend.UnsupportedBackendError,
                       match=f"tf.distribute strategy 'mirrored' needs the "
                       f"tensorflow backend.*{named}"):
        engine.launch(config(), str(tmp_path / "a"), strategy="mirrored",
                      verbose=0)
    with pytest.raises(backend.UnsupportedBackendError,
                       match=f"steps_per_execution=2 on the {named} backend"):
        engine.run(config(steps_per_execution=2), str(tmp_path / "b"),
                   data=tiny_data(), verbose=0)
    assert not os.path.exists(tmp_path / "b" / "run.json")
    assert backend.UnsupportedBackendError in engine.USER_ERRORS


def test_a_checkpoint_of_another_backend_is_refused(tmp_path):
    workdir = str(tmp_path / "run")
    other = "jax" if backend.is_tensorflow() else "tensorflow"
    engine.run(config("static", epochs=1, steps_per_epoch=1), workdir,
               data=tiny_data(), verbose=0)
    record = json.load(open(os.path.join(workdir, "run.json")))
    record["backend"] = other
    json.dump(record, open(os.path.join(workdir, "run.json"), "w"))
    with pytest.raises(tfs.runs.RunMismatchError,
                       match=f"backend='{other}'.*'{backend.name()}'"):
        engine.run(config("static", epochs=1, steps_per_epoch=1), workdir,
                   data=tiny_data(), verbose=0)


@pytest.mark.skipif(backend.is_tensorflow(), reason="checks the errors of "
                    "the JAX and PyTorch backends")
@pytest.mark.parametrize("name", ["train_cifar10", "train_imagenet"])
def test_cifar10_and_imagenet_binaries_name_the_backend(name, tmp_path):
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", f"{name}.py"),
         f"--workdir={tmp_path / 'run'}"], cwd=ROOT, capture_output=True,
        text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{name}: error: tools/{name}.py (tf.distribute")
    assert (f"needs the tensorflow backend of Keras; this process runs Keras "
            f"on '{backend.name()}'") in last
    assert last.endswith("tools/train.py trains the Fashion-MNIST configs "
                         "on jax and torch too.")
    assert not (tmp_path / "run").exists()


def newest_checkpoint_file(workdir):
    """The file holding the newest checkpoint's weights."""
    folder = os.path.join(workdir, "checkpoints")
    newest = max(checkpoint_files(workdir),
                 key=lambda name: int(name.split("-")[1].split(".")[0]))
    if backend.is_tensorflow():
        return os.path.join(folder, newest + ".data-00000-of-00001")
    return os.path.join(folder, newest)


def test_a_damaged_newest_checkpoint_is_named_or_skipped(tmp_path):
    workdir = str(tmp_path / "run")
    engine.run(config("set", epochs=2), workdir, data=tiny_data(), verbose=0)
    damaged = newest_checkpoint_file(workdir)
    assert "ckpt-10" in damaged
    with open(damaged, "r+b") as f:
        f.truncate(64)
    with pytest.raises(tfs.checkpoints.CheckpointCorruptError,
                       match="on_bad_checkpoint=previous"):
        engine.run(config("set", epochs=3), workdir, data=tiny_data(),
                   verbose=0)
    # `previous`: resumes from the epoch-1 checkpoint and trains on to the
    # end; the damaged file is kept for inspection.
    results = engine.run(config("set", epochs=3,
                                on_bad_checkpoint="previous"),
                         workdir, data=tiny_data(), verbose=0)
    assert results["finished"] and results["steps"] == 3 * SPE
    assert results["total_nonzeros"] == 13310
    assert os.path.exists(damaged)


def test_jax_always_compiles_the_step_unless_run_eagerly():
    # TensorFlow's jit_compile=False is still a compiled graph; JAX has no
    # compiled step without XLA, so there the step is jitted.
    assert eager.jit_compile(config()) is (backend.name() == "jax")
    assert eager.jit_compile(config(jit_compile=True)) is True
    assert eager.jit_compile(config(run_eagerly=True)) is False
