"""Magnitude masks (`tf_sparse.algorithms.magnitude`, GMP's and AC/DC's
mask math) on the Keras backend this process runs on: exact kept counts
(float64 rounding, also on JAX without 64-bit types) and masks equal to the
NumPy selection of the largest |w|, layer-wise and global, for unstructured
and N:M weights, as tensors of the backend.

Run on TensorFlow by the normal suite and on JAX and PyTorch by
tests/test_backends.py (`KERAS_BACKEND=jax python -m pytest tests/backends`).
"""

import keras
import numpy as np
import pytest

import backend_testlib as lib
import tf_sparse as tfs
from tf_sparse import topk
from tf_sparse.algorithms import magnitude


def test_kept_count_rounds_large_layers_like_the_python_twin():
    rng = np.random.default_rng(0)
    # Half-way cases in float64 that float32 arithmetic would round away,
    # and sizes of 25M weights.
    cases = [(0.5, 3), (0.5, 5), (0.75, 2), (0.9, 25_557_032), (0.8, 9)]
    cases += [(float(s), int(n)) for s, n in zip(
        rng.random(40), rng.integers(1, 30_000_000, 40))]
    for sparsity, size in cases:
        for value in (sparsity, np.float32(sparsity),
                      keras.ops.convert_to_tensor(sparsity, "float32")):
            got = magnitude.kept_count(value, size)
            assert keras.backend.standardize_dtype(got.dtype) == "int32"
            assert int(keras.ops.convert_to_numpy(got)) == (
                magnitude.kept_count_py(sparsity, size)), (sparsity, size)
    assert int(keras.ops.convert_to_numpy(magnitude.kept_count(1.0, 10))) == 1
    assert int(keras.ops.convert_to_numpy(
        magnitude.kept_count(0.75, 4, minimum=2))) == 2


def _abs_weights(weights):
    return [np.abs(keras.ops.convert_to_numpy(mw.variable)).reshape(-1)
            for mw in weights]


def _active(weights):
    return [keras.ops.convert_to_numpy(mw.mask).reshape(-1) > 0
            for mw in weights]


@pytest.mark.parametrize("only_active", [False, True])
def test_layerwise_and_global_masks_equal_the_numpy_selection(only_active):
    model = tfs.sparsify(lib.mlp(3), sparsity=0.5, seed=3)
    weights = tfs.masked_weights(model)
    scores, active = _abs_weights(weights), _active(weights)
    eligible = active if only_active else [np.ones_like(a) for a in active]
    sparsity = [0.9, 0.7, 0.6]
    got = magnitude.magnitude_masks(weights, [np.float32(s) for s in sparsity],
                                    "layerwise", only_active)
    for mask, s, e, sp, mw in zip(got, scores, eligible, sparsity, weights):
        assert keras.ops.is_tensor(mask)
        assert tuple(mask.shape) == tuple(mw.shape)
        want = topk.numpy_select_top(s, magnitude.kept_count_py(sp, s.size),
                                     e)
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(mask).reshape(-1), want.astype(
                np.float32))
    got = magnitude.magnitude_masks(weights, np.float32(0.8), "global",
                                    only_active)
    total = sum(s.size for s in scores)
    want = topk.numpy_select_top(np.concatenate(scores),
                                 magnitude.kept_count_py(0.8, total),
                                 np.concatenate(eligible))
    np.testing.assert_array_equal(
        np.concatenate([keras.ops.convert_to_numpy(m).reshape(-1)
                        for m in got]), want.astype(np.float32))


def test_n_m_masks_keep_the_largest_of_every_group():
    model = tfs.sparsify(lib.mlp(4), sparsity=0.5, pattern="2:4", seed=4)
    weights = tfs.masked_weights(model)
    got = magnitude.magnitude_masks(weights, [np.float32(0.5)] * 3,
                                    "layerwise", only_active=False)
    for mask, mw in zip(got, weights):
        layout = magnitude.weight_layout(mw)
        value = np.abs(keras.ops.convert_to_numpy(mw.variable))
        groups = np.asarray(layout.groups(value))
        kept = np.asarray(layout.groups(keras.ops.convert_to_numpy(mask)))
        want = np.stack([topk.numpy_select_top(g, 2) for g in groups])
        np.testing.assert_array_equal(kept, want.astype(np.float32))
