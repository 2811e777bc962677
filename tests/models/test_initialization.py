"""PyTorch's initial weights for the zoo (tf_sparse.models.initialization)."""

import math

import keras
import numpy as np
import pytest

from tf_sparse import models
from tf_sparse.models import initialization


def values(layer):
    return (keras.ops.convert_to_numpy(layer.kernel),
            keras.ops.convert_to_numpy(layer.bias))


def test_torch_draws_kernels_and_biases_within_one_over_sqrt_fan_in():
    model = initialization.reinitialize(models.get_model("lenet5_caffe"),
                                        "torch", seed=3)
    for name, fan_in in (("conv1", 25), ("conv2", 500), ("fc3", 800),
                         ("fc4", 500)):
        kernel, bias = values(model.get_layer(name))
        bound = 1 / math.sqrt(fan_in)
        assert np.abs(kernel).max() <= bound and np.abs(bias).max() <= bound
        assert np.abs(kernel).max() > 0.95 * bound          # U(-b, b) filled
        assert kernel.std() == pytest.approx(bound / math.sqrt(3), rel=0.1)
    again = initialization.reinitialize(models.get_model("lenet5_caffe"),
                                        "torch", seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(
        model.get_weights(), again.get_weights()))


def test_wrn_and_kaiming_normal_draw_normals_of_the_right_width():
    wrn = initialization.reinitialize(models.get_model("wrn16_8"), "wrn", 0)
    conv = [layer for layer in wrn.layers
            if isinstance(layer, keras.layers.Conv2D)][1]
    kernel = keras.ops.convert_to_numpy(conv.kernel)      # 3x3, 16 -> 128
    assert kernel.std() == pytest.approx(math.sqrt(2 / (9 * 128)), rel=0.05)
    dense = [layer for layer in wrn.layers
             if isinstance(layer, keras.layers.Dense)][-1]
    assert not keras.ops.convert_to_numpy(dense.bias).any()
    mlp = initialization.reinitialize(models.get_model("lenet300_100"),
                                      "kaiming_normal", 0)
    kernel, _ = values(mlp.get_layer("fc1"))
    assert kernel.std() == pytest.approx(math.sqrt(2 / 784), rel=0.02)
    assert np.abs(kernel).max() > 3 * math.sqrt(2 / 784)   # not truncated


def test_depthwise_fan_in_is_its_window_and_bad_names_are_refused():
    inputs = keras.Input((8, 8, 4))
    layer = keras.layers.DepthwiseConv2D(3)
    keras.Model(inputs, layer(inputs))
    assert initialization.fans(layer, layer.kernel.shape)[0] == 9
    with pytest.raises(ValueError, match="Unknown initialisation 'xavier'"):
        initialization.reinitialize(models.get_model("lenet300_100"),
                                    "xavier")
