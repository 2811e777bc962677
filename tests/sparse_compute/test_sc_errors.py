"""Clear errors for what sparse compute does not take, and the kernels'
build: a fresh cache builds (CI=true, no stdin) or falls back to
TensorFlow ops with one line; TF_SPARSE_KERNELS is checked."""

import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import sc_testlib as lib
import tf_sparse as tfs
from tf_sparse.sparse_compute import build
from tf_sparse.sparse_compute import ops
from tf_sparse.sparse_compute import structure

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def mlp():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    x = keras.layers.Dense(16, name="fc1")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, name="out")(x))


def test_unknown_compute_is_named():
    with pytest.raises(ValueError, match="Unknown compute 'bogus'; "
                       "accepted: masked, sparse"):
        tfs.sparsify(mlp(), 0.5, compute="bogus")


def test_a_model_with_no_convertible_layer_is_refused_and_left_dense():
    inputs = keras.Input((6, 6, 2))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3, name="c3")(inputs))
    with pytest.raises(ValueError, match=r"no weight of model .* has a sparse "
                       r"compute form \(c3/kernel: a 3x3 convolution"):
        tfs.sparsify(model, 0.5, compute="sparse")
    assert not tfs.masking.is_sparse(model)


def test_einsum_dense_without_a_matmul_form_stays_masked_with_a_warning():
    # "b" is an input axis the kernel keeps in the output: a batched
    # product, not one 2-D matmul. "abc,cd->abd" is one and converts.
    inputs = keras.Input((5, 8))
    x = keras.layers.EinsumDense("abc,bcd->abd", output_shape=(5, 6),
                                 name="proj")(inputs)
    x = keras.layers.EinsumDense("abc,cd->abd", output_shape=(5, 4),
                                 name="matmul")(x)
    outputs = keras.layers.Dense(3, name="fc")(x)
    model = keras.Model(inputs, outputs)
    with pytest.warns(tfs.sparse_compute.MaskedLayersKeptWarning,
                      match=r"proj/kernel \(EinsumDense 'abc,bcd->abd' has no "
                      r"2-D matmul form \(axes \['b'\] are batched over the "
                      r"kernel or summed out of one operand\)\.\)"):
        tfs.sparsify(model, 0.5, compute="sparse")
    assert [p for p, _ in tfs.sparse_compute.sparse_kernels(model)] == [
        "matmul", "fc"]
    assert [mw.path for mw in tfs.masking.masked_weights(model)] == [
        "proj/kernel"]
    model.compile(keras.optimizers.SGD(0.1), "mse")
    # Prune-and-grow runs on one form only.
    with pytest.raises(ValueError, match="proj/kernel still use masks"):
        tfs.training.attach(model, tfs.algorithms.SET(total_steps=8,
                                                      every=2))


def test_a_structured_pattern_is_refused():
    with pytest.raises(ValueError, match="pattern '2:4': sparse compute "
                       "stores unstructured nonzeros"):
        tfs.sparsify(mlp(), compute="sparse", pattern="2:4")


def test_an_optimizer_built_for_the_dense_weights_is_refused():
    model = mlp()
    model.compile(keras.optimizers.Adam(), "mse")
    model.optimizer.build(model.trainable_variables)
    with pytest.raises(ValueError, match="optimizer built for its dense "
                       "weights; convert to compute='sparse' before"):
        tfs.sparsify(model, 0.5, compute="sparse")


def test_constraint_room_and_twice_are_refused():
    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(
        4, kernel_constraint=keras.constraints.NonNeg(), name="fc")(inputs))
    with pytest.raises(ValueError, match="fc/kernel: has the constraint "
                       "NonNeg"):
        tfs.sparsify(model, 0.5, compute="sparse")
    model = tfs.sparsify(mlp(), 0.5)
    with pytest.raises(ValueError, match=r"room must be a number >= 1.0 "
                       r"\(1.0: exactly the nonzeros\), got 0.5"):
        tfs.sparse_compute.to_sparse_compute(model, room=0.5)
    tfs.sparse_compute.to_sparse_compute(model)
    with pytest.raises(ValueError, match="is already sparse"):
        tfs.sparsify(model, 0.5, compute="sparse")


def test_other_backends_are_refused_by_name():
    code = ("import keras, tf_sparse as tfs\n"
            "i = keras.Input((4,))\n"
            "m = keras.Model(i, keras.layers.Dense(3)(i))\n"
            "try:\n"
            "    tfs.sparsify(m, 0.5, compute='sparse')\n"
            "except Exception as e:\n"
            "    print('ERROR', e)\n")
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True,
        timeout=300, cwd=ROOT, stdin=subprocess.DEVNULL,
        env=dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3"))
    if "No module named 'jax'" in proc.stderr:
        pytest.skip("JAX is not installed")
    assert "ERROR" in proc.stdout, proc.stderr[-2000:]
    assert "needs the tensorflow backend" in proc.stdout
    assert "'jax'" in proc.stdout and 'compute="masked"' in proc.stdout


def test_bad_kernel_mode_is_named(monkeypatch):
    monkeypatch.setenv(build.ENV_MODE, "fastest")
    with pytest.raises(ValueError, match="TF_SPARSE_KERNELS='fastest' is not "
                       "accepted; use one of auto, tf, compiled"):
        ops.choose_path(tf.float32)


def test_compiled_kernels_reject_a_bad_structure():
    if not lib.compiled_available():
        pytest.skip("compiled kernels unavailable here")
    x = tf.ones([2, 3])
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="invalid sparse structure"):
        ops.matmul(x, [0, 1, 2], [0, 7], tf.ones([2]), path="compiled")


@pytest.fixture
def no_compiler(monkeypatch, tmp_path):
    """A fresh cache and no C++ compiler; the loaded state is forgotten
    before and after."""
    monkeypatch.setenv("CXX", "no-such-compiler-tfs")
    monkeypatch.setenv(build.ENV_CACHE, str(tmp_path))
    build.reset()
    yield
    build.reset()


def test_without_a_compiler_auto_falls_back_with_one_line(no_compiler,
                                                          monkeypatch):
    monkeypatch.setenv(build.ENV_MODE, "auto")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ops.choose_path(tf.float32) == "csr"
        assert ops.choose_path(tf.float32) == "csr"
    said = [w for w in caught
            if issubclass(w.category, build.KernelsUnavailableWarning)]
    assert len(said) == 1                         # once per process
    text = str(said[0].message)
    assert "\n" not in text
    assert text.startswith("tf_sparse sparse compute: compiled kernels "
                           "unavailable (no C++ compiler "
                           "(no-such-compiler-tfs) on PATH")
    assert text.endswith("using TensorFlow ops (slower).")
    # And training works on the fallback: the masked model's output.
    mask = np.ones((5, 4), "float32")
    mask[::2] = 0
    masked, sparse = lib.pair("dense", mask, 5, 4)
    x = lib.inputs_for("dense", masked, 3)
    np.testing.assert_allclose(sparse(x).numpy(), masked(x).numpy(),
                               rtol=1e-6)
    assert build.status().startswith("TensorFlow ops (compiled kernels "
                                     "unavailable: no C++ compiler")


def test_without_a_compiler_compiled_mode_raises(no_compiler, monkeypatch):
    monkeypatch.setenv(build.ENV_MODE, "compiled")
    with pytest.raises(build.BuildError, match=r"no C\+\+ compiler "
                       r"\(no-such-compiler-tfs\) on PATH; install g\+\+ or "
                       "set CXX"):
        ops.choose_path(tf.float32)


def test_fresh_clone_build_in_ci_builds_or_falls_back_in_one_line(tmp_path):
    """What CI does on a fresh clone: an empty cache, CI=true, no stdin.
    The kernels build (about 40 s on a loaded 2-core machine) and give the
    masked model's output, or, where they cannot, the one-line message and
    the same output from TensorFlow ops."""
    code = (
        "import warnings, numpy as np, keras, tf_sparse as tfs\n"
        "warnings.simplefilter('always')\n"
        "keras.utils.set_random_seed(0)\n"
        "i = keras.Input((6,))\n"
        "m = keras.Model(i, keras.layers.Dense(5)(i))\n"
        "x = np.random.default_rng(0).normal(size=(4, 6)).astype('float32')\n"
        "tfs.sparsify(m, 0.5)\n"
        "expected = m(x).numpy()\n"
        "tfs.sparse_compute.to_sparse_compute(m)\n"
        "np.testing.assert_allclose(m(x).numpy(), expected, rtol=1e-6)\n"
        "print('STATUS', tfs.sparse_compute.build.status())\n")
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True,
        timeout=600, cwd=ROOT, stdin=subprocess.DEVNULL,
        env=dict(os.environ, CI="true", TF_CPP_MIN_LOG_LEVEL="3",
                 TF_SPARSE_CACHE_DIR=str(tmp_path),
                 TF_SPARSE_KERNELS="auto"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    status = proc.stdout.split("STATUS ", 1)[1]
    if status.startswith("compiled kernels"):
        assert [p.name for p in tmp_path.iterdir()
                if p.suffix == ".so"] != []
        assert "KernelsUnavailableWarning" not in proc.stderr
    else:
        lines = [line for line in proc.stderr.splitlines()
                 if "KernelsUnavailableWarning" in line]
        assert len(lines) == 1, proc.stderr[-3000:]
