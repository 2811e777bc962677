"""Error barrier on a constructed case with a known answer; distances."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_sparse.lottery import instability
from tf_sparse.lottery import stability


def two_unit_net():
    """x -> [relu(w1 x), relu(w2 x)] -> logits h @ C + b, no hidden bias."""
    inputs = keras.Input((1,))
    h = keras.layers.Dense(2, activation="relu", use_bias=False,
                           name="hidden")(inputs)
    out = keras.layers.Dense(2, name="out")(h)
    return keras.Model(inputs, out)


def test_error_barrier_of_two_permuted_copies_is_known_exactly():
    # W1 and W2 compute the same function with their two hidden units
    # swapped: hidden = relu(+x), relu(-x) and the reverse. Read-out: class
    # 1 gets +1 per unit, class 0 a bias of 0.5. All labels are 1, so an
    # input is right iff relu(a x) + relu(-a x) = |a x| > 0.5. On the line,
    # a = 2 alpha - 1: |x| = 1 is wrong for alpha in [0.25, 0.75], |x| = 2
    # for alpha in [0.375, 0.625].
    model = two_unit_net()
    readout = np.array([[0.0, 1.0], [0.0, 1.0]], np.float32)
    bias = np.array([0.5, 0.0], np.float32)
    w1 = [np.array([[1.0, -1.0]], np.float32), readout, bias]
    w2 = [np.array([[-1.0, 1.0]], np.float32), readout, bias]
    x = np.array([[1.0], [-1.0], [2.0], [-2.0]], np.float32)
    y = np.ones(4, np.int32)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(3)
    alphas = instability.default_alphas()
    assert len(alphas) == 30 and alphas[0] == 0.0 and alphas[-1] == 1.0
    curve = instability.error_curve(model, w1, w2, {"test": ds}, alphas)
    expected = []
    for a in alphas:
        wrong_1 = 0.25 <= a <= 0.75
        wrong_2 = 0.375 <= a <= 0.625
        expected.append((2 * wrong_1 + 2 * wrong_2) / 4)
    assert curve["test"] == expected
    assert curve["test"][0] == 0.0 and curve["test"][-1] == 0.0
    assert max(curve["test"]) == 1.0
    assert instability.barrier(curve["test"]) == 1.0


def test_barrier_subtracts_the_mean_of_the_end_points():
    assert instability.barrier([0.1, 0.4, 0.3]) == pytest.approx(0.4 - 0.2)
    assert instability.barrier([0.2, 0.1, 0.2]) == 0.0       # convex: 0
    assert instability.barrier(np.full(30, 0.07)) == 0.0


def test_interpolation_keeps_masked_entries_at_zero_and_ints_from_w1():
    a = [np.array([1.0, 0.0, 3.0], np.float32), np.array([7], np.int64)]
    b = [np.array([3.0, 0.0, -1.0], np.float32), np.array([9], np.int64)]
    mid = instability.interpolate(a, b, 0.25)
    np.testing.assert_array_equal(mid[0], [2.5, 0.0, 0.0])
    assert mid[0].dtype == np.float32 and mid[1][0] == 7


def test_l2_distance_and_angle_over_the_mask_only():
    masks = {"a": np.array([1, 1, 0], np.float32), "b": np.array([1.0])}
    wa = {"a": np.array([3.0, 0.0, 100.0]), "b": np.array([0.0])}
    wb = {"a": np.array([0.0, 4.0, -50.0]), "b": np.array([0.0])}
    assert stability.l2_distance(wa, wb, masks) == 5.0       # 3-4-5, 100 masked
    assert stability.angle_degrees(wa, wb, masks) == pytest.approx(90.0)
    wc = {"a": np.array([6.0, 0.0, 1.0]), "b": np.array([0.0])}
    assert stability.angle_degrees(wa, wc, masks) == pytest.approx(0.0,
                                                                abs=1e-6)
    assert stability.l2_distance(wa, wa, masks) == 0.0
    assert math.isnan(stability.angle_degrees(
        {"a": np.zeros(3), "b": np.zeros(1)}, wa, masks))
