"""tfs.shrink on keras.applications models (weights=None, 32x32 inputs).

Half of every family of channel groups (the channels of one layer, or of
the layers tied into one residual stream) is masked, the lower L1 norms
first. MobileNetV2 (alpha 0.35) runs by default; the others are slow
(tens of seconds each on a small CPU): pass --runslow.
"""

import warnings

import keras
import numpy as np
import pytest

import tf_sparse as tfs
from tf_sparse import channel_graph
from tf_sparse import shrinking

from test_shrink import expected_params

APPLICATIONS = [
    pytest.param("MobileNetV2", {"alpha": 0.35}, id="MobileNetV2"),
    pytest.param("ResNet50", {}, id="ResNet50", marks=pytest.mark.slow),
    pytest.param("DenseNet121", {}, id="DenseNet121", marks=pytest.mark.slow),
    pytest.param("EfficientNetB0", {}, id="EfficientNetB0",
                 marks=pytest.mark.slow),
]


def build(name, kwargs):
    keras.utils.set_random_seed(0)
    return getattr(keras.applications, name)(
        weights=None, input_shape=(32, 32, 3), classifier_activation=None,
        **kwargs)


def half_of_each_family(model):
    chosen = []
    groups = channel_graph.dependency_groups(model)
    for family in channel_graph.families(groups).values():
        norms = channel_graph.group_norms(model, family)
        order = np.argsort(norms, kind="stable")
        chosen += [family[i] for i in order[:len(family) // 2]]
    return chosen


def calibrate(model, x, rng, shift):
    """BatchNormalization statistics of `x` (one training-mode pass with
    momentum 0), random scales, and with `shift` random offsets and conv
    biases, so that masked channels carry nonzero constants. Without this
    the outputs of an untrained MobileNetV2 or EfficientNet fade to ~1e-8."""
    norms = [layer for layer in model.layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0
    model(x, training=True)
    for layer in norms:
        layer.momentum = 0.99
        layer.gamma.assign(rng.uniform(0.5, 1.5, size=layer.gamma.shape))
        # Channels nearly constant over the batch would be scaled up by
        # 1/sqrt(epsilon) and float32 rounding with them.
        layer.moving_variance.assign(np.maximum(keras.ops.convert_to_numpy(
            layer.moving_variance), 0.1))
    if shift:
        for layer in model.layers:
            for name in ("beta", "bias"):
                variable = getattr(layer, name, None)
                if variable is not None:
                    variable.assign(rng.normal(size=variable.shape) * 0.1)


def inputs():
    return np.random.default_rng(0).uniform(
        0, 255, size=(4, 32, 32, 3)).astype("float32")


@pytest.mark.parametrize("name, kwargs", APPLICATIONS)
def test_shrunk_application_predicts_like_the_masked_one(name, kwargs):
    model = build(name, kwargs)
    chosen = half_of_each_family(model)
    tfs.sparsify(model, masks=channel_graph.group_masks(model, chosen))
    x = inputs()
    calibrate(model, x, np.random.default_rng(1), shift=False)
    # Zero biases and BatchNormalization offsets: every masked channel
    # carries 0 (its batch mean is 0), so every chosen group goes (strict) and the parameter
    # count is the one worked out from the kept channels.
    small = tfs.shrink(model, x)
    assert small.count_params() == expected_params(model, chosen)
    assert small.count_params() < 0.5 * model.count_params()
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    assert expected.std() > 0.1         # the check compares real signals
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(small(x, training=False)), expected,
        rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("name, kwargs", APPLICATIONS)
def test_shrunk_application_with_constants_keeps_what_it_must(name, kwargs):
    model = build(name, kwargs)
    tfs.sparsify(model, masks=channel_graph.group_masks(
        model, half_of_each_family(model)))
    x = inputs()
    calibrate(model, x, np.random.default_rng(2), shift=True)
    shrink_plan = shrinking.plan(model)
    assert len(shrink_plan.removed) > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        small = tfs.shrink(model, x, strict=False)
    assert small.count_params() < model.count_params()
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(small(x, training=False)), expected,
        rtol=1e-4, atol=1e-4 * np.abs(expected).max())
