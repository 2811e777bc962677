"""The backend subset (tests/backends) under JAX and PyTorch, and one
sparse-momentum update compared across TensorFlow, JAX and PyTorch.

Keras fixes its backend when it is first imported, so each backend runs in
its own process (`KERAS_BACKEND=<name> python -m pytest tests/backends`);
the normal suite runs tests/backends itself on TensorFlow. A backend whose
package is not installed is skipped, saying how to install it.
"""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OTHER_BACKENDS = ("jax", "torch")


def _installed(name):
    return importlib.util.find_spec(name) is not None


def _needs(name):
    return pytest.mark.skipif(
        not _installed(name),
        reason=f"the {name} backend is not installed: pip install "
        f"'tf-sparse[{name}]' (bash tools/run.sh test installs it)")


def _run(backend, args, timeout=600):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("backend", [
    pytest.param(name, marks=_needs(name)) for name in OTHER_BACKENDS])
def test_backend_subset_passes(backend):
    done = _run(backend, ["-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/backends"])
    tail = (done.stdout + done.stderr)[-4000:]
    assert done.returncode == 0, tail
    summary = done.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary, tail


def test_one_sparse_momentum_update_picks_the_same_masks_everywhere(
        tmp_path):
    backends = ["tensorflow"] + [b for b in OTHER_BACKENDS if _installed(b)]
    if len(backends) == 1:
        pytest.skip("neither jax nor torch is installed: pip install "
                    "'tf-sparse[jax]' or 'tf-sparse[torch]'")
    results = {}
    for backend in backends:
        path = str(tmp_path / f"{backend}.npz")
        done = _run(backend, ["tests/backends/sm_update_script.py", path])
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
        results[backend] = dict(np.load(path))
    reference = results["tensorflow"]
    # One update, after step 2, dropping 12 weights (worked out on
    # TensorFlow; the other backends must agree).
    assert reference["update_steps"].tolist() == [2]
    assert reference["dropped"].tolist() == [12]
    for backend in backends[1:]:
        other = results[backend]
        for i in range(3):
            np.testing.assert_array_equal(
                other[f"mask{i}"], reference[f"mask{i}"],
                err_msg=f"{backend}: masks of layer {i}")
            for key in (f"kernel{i}", f"momentum{i}"):
                np.testing.assert_allclose(other[key], reference[key],
                                           rtol=1e-5, atol=1e-7,
                                           err_msg=f"{backend}: {key}")
        assert other["dropped"].tolist() == [12]


def _error_line(done):
    lines = [line for line in done.stderr.splitlines()
             if line.startswith("train: error:")]
    assert len(lines) == 1, done.stderr[-3000:]
    return lines[0]


@pytest.mark.parametrize("backend", [
    pytest.param(name, marks=_needs(name)) for name in OTHER_BACKENDS])
def test_train_binary_names_the_backend_its_engine_needs(backend):
    done = _run("tensorflow", ["tools/train.py", f"--backend={backend}",
                               "--config=configs/fashion_mnist/"
                               "lenet300_static.py", "--workdir=unused"])
    assert done.returncode == 1
    assert _error_line(done) == (
        "train: error: tools/train.py (its run engine: tf.data input, "
        "tf.distribute, tf.train checkpoints) needs the tensorflow backend "
        f"of Keras; this process runs Keras on '{backend}' (KERAS_BACKEND, "
        "fixed when keras is first imported). Train with Keras's fit and "
        "tfs.callbacks.MaskUpdate under this backend (README, \"Backends\"), "
        "or pass --backend=tensorflow.")


@pytest.mark.parametrize("args, message", [
    (["--backend=pytorch"], "train: error: --backend='pytorch' is not "
     "accepted: use one of tensorflow, jax, torch."),
    (["--backend", "--workdir=x"], "train: error: --backend needs a value: "
     "one of tensorflow, jax, torch."),
])
def test_train_binary_refuses_a_bad_backend_flag(args, message):
    done = _run("tensorflow", ["tools/train.py", *args])
    assert done.returncode == 1
    assert _error_line(done) == message


def test_train_binary_takes_backend_tensorflow():
    # The flag is consumed: the engine's own flags see only the rest (here
    # the missing --workdir is the error).
    done = _run("jax", ["tools/train.py", "--backend=tensorflow",
                        "--config=configs/fashion_mnist/lenet300_static.py"])
    assert done.returncode == 1
    assert "Flag --workdir must have a value other than None" in done.stderr
