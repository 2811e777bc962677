"""The one exact selection: graph (radix and sort, with and without XLA) and
NumPy versions pick the same entries, ties to the lower flat index."""

import numpy as np
import pytest
import tensorflow as tf

from tf_sparse import topk


def stable_top(x, eligible, k):
    """The reference: the head of a stable descending argsort."""
    idx = np.flatnonzero(eligible)
    return sorted(idx[np.argsort(-x[idx], kind="stable")][:k].tolist())


def stable_bottom(x, eligible, k):
    idx = np.flatnonzero(eligible)
    return sorted(idx[np.argsort(x[idx], kind="stable")][:k].tolist())


def chosen(mask):
    return np.flatnonzero(np.asarray(mask)).tolist()


def test_radix_and_sort_selection_agree_with_numpy_on_ties():
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = 257
        x = (rng.integers(-4, 5, n) * rng.choice([1.0, 0.25], n)).astype(
            np.float32)
        eligible = rng.random(n) < 0.6
        k = int(rng.integers(0, n))
        top, bottom = stable_top(x, eligible, k), stable_bottom(x, eligible, k)
        for method in ("radix", "sort"):
            for jit in (True, False):
                got = topk.select_top(x, eligible, k, method, jit)
                assert chosen(got) == top
                got = topk.select_bottom(x, eligible, k, method, jit)
                assert chosen(got) == bottom
        assert chosen(topk.numpy_select_top(x, k, eligible)) == top
        assert chosen(topk.numpy_select_bottom(x, k, eligible)) == bottom


def graph_versions(x, eligible, k):
    for method in topk.METHODS:
        for jit in (True, False):
            yield (topk.select_top(x, eligible, k, method, jit).numpy(),
                   topk.select_bottom(x, eligible, k, method, jit).numpy())


@pytest.mark.parametrize("seed", range(6))
def test_graph_and_numpy_agree_with_many_ties_signed_zeros_and_any_k(seed):
    """Few distinct values, -0.0 next to +0.0 (-0.0 ranks just below),
    k = 0, k inside, k = eligible count and k above it."""
    rng = np.random.default_rng(seed)
    n = 300
    values = np.array([-2.0, -0.5, -0.0, 0.0, 0.0, 0.5, 3.0], np.float32)
    x = values[rng.integers(0, values.size, n)]
    eligible = rng.random(n) < [0.3, 0.7, 1.0][seed % 3]
    available = int(eligible.sum())
    for k in (0, 1, available // 2, available, available + 5, n + 10):
        want_top = topk.numpy_select_top(x, k, eligible)
        want_bottom = topk.numpy_select_bottom(x, k, eligible)
        assert want_top.sum() == want_bottom.sum() == min(k, available)
        assert not (want_top & ~eligible).any()
        for top, bottom in graph_versions(x, eligible, k):
            np.testing.assert_array_equal(top, want_top)
            np.testing.assert_array_equal(bottom, want_bottom)


def test_signed_zero_order_and_lower_index_ties():
    x = np.array([0.0, -0.0, 0.0, -0.0, 1.0], np.float32)
    # +0.0 ranks above -0.0; equal keys go to the lower index.
    assert chosen(topk.numpy_select_top(x, 2)) == [0, 4]
    assert chosen(topk.numpy_select_top(x, 3)) == [0, 2, 4]
    assert chosen(topk.numpy_select_bottom(x, 1)) == [1]
    assert chosen(topk.select_top(x, tf.ones([5], tf.bool), 3)) == [0, 2, 4]
    assert chosen(topk.select_bottom(x, tf.ones([5], tf.bool), 1)) == [1]


def test_numpy_version_without_eligible_is_the_head_of_a_stable_argsort():
    rng = np.random.default_rng(3)
    every = np.ones(1000, bool)
    for dtype in (np.float32, np.float64):
        x = rng.integers(0, 20, 1000).astype(dtype) / 7
        for k in (0, 1, 333, 1000, 2000):
            assert chosen(topk.numpy_select_top(x, k)) == stable_top(
                x, every, k)
            assert chosen(topk.numpy_select_bottom(x, k)) == stable_bottom(
                x, every, k)


def test_numpy_version_ranks_float64_at_full_precision():
    x = np.array([1.0, 1.0 + 1e-12, 1.0 + 2e-12])     # ties in float32
    assert chosen(topk.numpy_select_top(x, 1)) == [2]
    assert chosen(topk.numpy_select_bottom(x, 1)) == [0]
    assert chosen(topk.numpy_select_top(x.astype(np.float32), 1)) == [0]


def test_selection_takes_a_tensor_k_inside_a_compiled_function():
    x = tf.constant([0.3, 0.1, 0.3, 0.9, 0.2])
    every = tf.ones([5], tf.bool)

    @tf.function(jit_compile=True)
    def top(k):
        return topk.select_top(x, every, k, jit=False)

    assert chosen(top(tf.constant(2))) == [0, 3]
    assert chosen(top(tf.constant(3))) == [0, 2, 3]


@pytest.mark.parametrize("method", ["radix", "sort"])
def test_selection_of_a_tensor_of_unknown_length_in_graph(method):
    # What sparse-compute RigL selects from: a boolean_mask's output.
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def top_two_positive(x):
        positive = tf.boolean_mask(x, x > 0)
        return topk.select_top(positive, tf.ones_like(positive, tf.bool), 2,
                               method=method, jit=False)

    picked = top_two_positive(tf.constant([1.0, -1.0, 3.0, 2.0, 0.5]))
    assert chosen(picked) == [1, 2]          # 3.0 and 2.0 of [1, 3, 2, .5]


def test_unknown_method():
    with pytest.raises(ValueError, match="'heap'.*radix, sort"):
        topk.select_top([1.0], [True], 1, method="heap")
