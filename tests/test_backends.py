"""The backend subset (tests/backends) under JAX and PyTorch, and one
sparse-momentum update and one RigL update compared across TensorFlow, JAX
and PyTorch.

Keras fixes its backend when it is first imported, so each backend runs in
its own process (`KERAS_BACKEND=<name> python -m pytest tests/backends`,
JAX and PyTorch at the same time); the normal suite runs tests/backends
itself on TensorFlow. A backend whose package is not installed is skipped,
saying how to install it.
"""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

import tf_sparse  # noqa: F401  (the backend of this process)
from tf_sparse import backend as keras_backend

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "backends"))
import sm_update_script  # noqa: E402

OTHER_BACKENDS = ("jax", "torch")


def _installed(name):
    return importlib.util.find_spec(name) is not None


def _needs(name):
    return pytest.mark.skipif(
        not _installed(name),
        reason=f"the {name} backend is not installed: pip install "
        f"'tf-sparse[{name}]' (bash tools/run.sh test installs it)")


def _env(backend, **extra):
    return dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
                **extra)


def _run(backend, args, timeout=600):
    return subprocess.run([sys.executable, *args], cwd=ROOT,
                          env=_env(backend), capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def subset_runs(tmp_path_factory):
    """{backend: (return code, output, sparse-momentum .npz path)} of
    tests/backends run under each installed other backend, concurrently."""
    folder = tmp_path_factory.mktemp("backends")
    running = {}
    for name in OTHER_BACKENDS:
        if not _installed(name):
            continue
        npz = str(folder / f"{name}.npz")
        running[name] = (subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "tests/backends"], cwd=ROOT,
            env=_env(name, TF_SPARSE_SM_OUT=npz), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True), npz)
    done = {}
    for name, (process, npz) in running.items():
        output, _ = process.communicate(timeout=900)
        done[name] = (process.returncode, output, npz)
    return done


@pytest.mark.parametrize("backend", [
    pytest.param(name, marks=_needs(name)) for name in OTHER_BACKENDS])
def test_backend_subset_passes(backend, subset_runs):
    code, output, _ = subset_runs[backend]
    assert code == 0, output[-4000:]
    summary = output.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary, output[-4000:]


def test_sparse_momentum_and_rigl_updates_pick_the_same_masks_everywhere(
        tmp_path, subset_runs):
    if not keras_backend.is_tensorflow():
        pytest.skip("compares against this process's TensorFlow backend")
    if not subset_runs:
        pytest.skip("neither jax nor torch is installed: pip install "
                    "'tf-sparse[jax]' or 'tf-sparse[torch]'")
    path = str(tmp_path / "tensorflow.npz")
    sm_update_script.main(path)
    reference = dict(np.load(path))
    # One update, after step 2, dropping 12 weights (worked out on
    # TensorFlow; the other backends must agree).
    assert reference["update_steps"].tolist() == [2]
    assert reference["dropped"].tolist() == [12]
    for backend, (code, output, npz) in subset_runs.items():
        assert os.path.exists(npz), output[-4000:]
        other = dict(np.load(npz))
        for i in range(3):
            np.testing.assert_array_equal(
                other[f"mask{i}"], reference[f"mask{i}"],
                err_msg=f"{backend}: masks of layer {i}")
            for key in (f"kernel{i}", f"momentum{i}"):
                np.testing.assert_allclose(other[key], reference[key],
                                           rtol=1e-5, atol=1e-7,
                                           err_msg=f"{backend}: {key}")
        assert other["dropped"].tolist() == [12]
        # RigL: the grow score is the gradient of step 2's batch at the
        # weights before step 2, read from the optimizer on TensorFlow and
        # recomputed with the backend's autodiff elsewhere.
        for i in range(3):
            np.testing.assert_array_equal(
                other[f"rigl_mask{i}"], reference[f"rigl_mask{i}"],
                err_msg=f"{backend}: RigL masks of layer {i}")
            np.testing.assert_allclose(
                other[f"rigl_kernel{i}"], reference[f"rigl_kernel{i}"],
                rtol=1e-5, atol=1e-7, err_msg=f"{backend}: RigL kernel {i}")
        assert other["rigl_grown"].tolist() == [5]


def _error_line(done, program="train"):
    lines = [line for line in done.stderr.splitlines()
             if line.startswith(f"{program}: error:")]
    assert len(lines) == 1, done.stderr[-3000:]
    return lines[0]


@_needs("jax")
def test_train_binary_refuses_a_strategy_under_jax_in_one_line(tmp_path):
    # --backend=jax takes effect (the process starts with TensorFlow's
    # environment); tf.distribute is TensorFlow's, named with the backend.
    # (tests/backends/test_backend_runs.py trains through the binary.)
    done = _run("tensorflow", ["tools/train.py", "--backend=jax",
                               "--config=configs/fashion_mnist/"
                               "lenet300_static.py", "--strategy=mirrored",
                               f"--workdir={tmp_path / 'run'}"])
    assert done.returncode == 1
    assert _error_line(done) == (
        "train: error: tf.distribute strategy 'mirrored' needs the "
        "tensorflow backend of Keras; this process runs Keras on 'jax' "
        "(KERAS_BACKEND, fixed when keras is first imported). Run it with "
        "KERAS_BACKEND=tensorflow; under this backend tf-sparse trains on "
        "one device (keras.distribution is not tested with tf-sparse).")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("program", ["train", "lottery", "stability",
                                     "recipe"])
@pytest.mark.parametrize("args, message", [
    (["--backend=pytorch"], "{}: error: --backend='pytorch' is not "
     "accepted: use one of tensorflow, jax, torch."),
    (["--backend", "--workdir=x"], "{}: error: --backend needs a value: "
     "one of tensorflow, jax, torch."),
])
def test_binaries_refuse_a_bad_backend_flag(program, args, message):
    # tools/backend_flag.py: the same flag in every training binary.
    done = _run("tensorflow", [f"tools/{program}.py", *args])
    assert done.returncode == 1
    assert _error_line(done, program) == message.format(program)


def test_train_binary_takes_backend_tensorflow():
    # The flag is consumed: the engine's own flags see only the rest (here
    # the missing --workdir is the error).
    done = _run("jax", ["tools/train.py", "--backend=tensorflow",
                        "--config=configs/fashion_mnist/lenet300_static.py"])
    assert done.returncode == 1
    assert "Flag --workdir must have a value other than None" in done.stderr
