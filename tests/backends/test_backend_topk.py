"""The exact selection (`tf_sparse.topk`) on the Keras backend this process
runs on: `keras.ops` radix and sort selections return the backend's boolean
tensor and pick bit for bit what the NumPy twin picks (ties to the lower
index), with many ties, signed zeros, infinities, NaNs of both signs, empty
eligible sets, k = 0 and k above the eligible count.

Run on TensorFlow by the normal suite and on JAX and PyTorch by
tests/test_backends.py (`KERAS_BACKEND=jax python -m pytest tests/backends`).
"""

import keras
import numpy as np
import pytest

from tf_sparse import topk

# Every float32 class the key order must place: NaNs of both signs with the
# smallest and the largest payloads, infinities, signed zeros, denormals.
SPECIAL = np.concatenate([
    np.float32([np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 1.0, -1.0]),
    np.uint32([0x7F800001, 0x7FC00000, 0x7FFFFFFF, 0xFF800001, 0xFFC00000,
               0xFFFFFFFF]).view(np.float32)])


def selections(scores, eligible, k, method, jit):
    top = topk.select_top(scores, eligible, k, method, jit)
    bottom = topk.select_bottom(scores, eligible, k, method, jit)
    return top, bottom


def numpy_of(mask):
    assert keras.ops.is_tensor(mask)
    assert keras.backend.standardize_dtype(mask.dtype) == "bool"
    return keras.ops.convert_to_numpy(mask)


def scores_with_ties(rng, n):
    """Few distinct values, half of them from `SPECIAL`."""
    plain = rng.integers(-3, 4, n).astype(np.float32) * np.float32(0.5)
    special = SPECIAL[rng.integers(0, SPECIAL.size, n)]
    return np.where(rng.random(n) < 0.5, special, plain)


@pytest.mark.parametrize("method", topk.METHODS)
@pytest.mark.parametrize("seed", range(3))
def test_selection_equals_the_numpy_twin_bit_for_bit(method, seed):
    rng = np.random.default_rng(seed)
    # Two lengths only: JAX compiles each op per shape.
    for n in (0, 1, 257, 257, 257, 257):
        x = scores_with_ties(rng, n)
        eligible = rng.random(n) < rng.choice([0.0, 0.3, 0.8, 1.0])
        available = int(eligible.sum())
        for k in (0, 1, available // 2, available, available + 7):
            want_top = topk.numpy_select_top(x, k, eligible)
            want_bottom = topk.numpy_select_bottom(x, k, eligible)
            assert want_top.sum() == want_bottom.sum() == min(k, available)
            top, bottom = selections(
                x, eligible, keras.ops.convert_to_tensor(k, "int32"), method,
                jit=bool(k % 2))
            np.testing.assert_array_equal(numpy_of(top), want_top)
            np.testing.assert_array_equal(numpy_of(bottom), want_bottom)


@pytest.mark.parametrize("method", topk.METHODS)
def test_k_as_python_int_numpy_int64_and_tensor_give_one_answer(method):
    rng = np.random.default_rng(7)
    x = scores_with_ties(rng, 500).reshape(20, 25)       # flattened inside
    eligible = keras.ops.convert_to_tensor(rng.random((20, 25)) < 0.5)
    want = topk.numpy_select_top(x, 100, keras.ops.convert_to_numpy(
        eligible))
    for k in (100, np.int64(100), keras.ops.convert_to_tensor(100, "int32")):
        got = topk.select_top(keras.ops.convert_to_tensor(x), eligible, k,
                              method)
        np.testing.assert_array_equal(numpy_of(got), want)


def test_order_keys_match_the_numpy_keys_and_put_negative_zero_below_zero():
    x = np.concatenate([SPECIAL, np.float32([-2.5, 3.5, 0.0, -0.0])])
    got = keras.ops.convert_to_numpy(topk.order_keys(x))
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got.astype(np.int64),
                                  topk.numpy_order_keys(x))
    zeros = keras.ops.convert_to_numpy(topk.order_keys(np.float32([0, -0.0])))
    assert zeros.tolist() == [0, -1]
    # float64 scores are ranked as their float32 images.
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(topk.order_keys(np.float64([0.1, -2.0]))),
        keras.ops.convert_to_numpy(topk.order_keys(np.float32([0.1, -2.0]))))


def test_equal_scores_go_to_the_lower_index_with_both_methods():
    x = np.float32([0.0, -0.0, 0.0, -0.0, 1.0])
    every = np.ones(5, bool)
    for method in topk.METHODS:
        top, bottom = selections(x, every, 3, method, jit=True)
        assert np.flatnonzero(numpy_of(top)).tolist() == [0, 2, 4]
        assert np.flatnonzero(numpy_of(bottom)).tolist() == [0, 1, 3]
