"""PyTorch's optimizers in Keras (tf_sparse.optimizers), checked against
steps worked out by hand with PyTorch's formulas."""

import keras
import numpy as np
import pytest

import tf_sparse as tfs
from tf_sparse import optimizers


def apply(optimizer, variable, gradients, rates=None):
    for i, g in enumerate(gradients):
        if rates is not None:
            optimizer.learning_rate = rates[i]
        optimizer.apply([keras.ops.convert_to_tensor(g)], [variable])
    return keras.ops.convert_to_numpy(variable)


def test_nesterov_sgd_with_coupled_weight_decay_matches_pytorch_by_hand():
    # lr 0.1 then 0.01, momentum 0.9, weight decay 0.5, w0 = (1, -2),
    # gradient (0.2, 0.4) both times. PyTorch: d = g + wd w; buf = mu buf + d;
    # d = d + mu buf (Nesterov); w -= lr d.
    #   step 1: d = (0.7, -0.6), buf = (0.7, -0.6), d = (1.33, -1.14),
    #           w = (0.867, -1.886)
    #   step 2: d = (0.6335, -0.543), buf = (1.2635, -1.083),
    #           d = (1.77065, -1.5177), w = (0.8492935, -1.870823)
    w = keras.Variable(np.array([1.0, -2.0], np.float32))
    opt = optimizers.TorchSGD(0.1, momentum=0.9, nesterov=True,
                              weight_decay=0.5)
    got = apply(opt, w, [[0.2, 0.4], [0.2, 0.4]], rates=[0.1, 0.01])
    np.testing.assert_allclose(got, [0.8492935, -1.870823], rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(opt.momentums[0]),
                               [1.2635, -1.083], rtol=1e-6)
    # Keras's SGD gives the same first step but not the second: its buffer
    # carries the learning rate of the step it was made at.
    w2 = keras.Variable(np.array([1.0, -2.0], np.float32))
    keras_sgd = keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True)
    decayed = [np.array([0.2, 0.4]) + 0.5 * np.array([1.0, -2.0])]
    first = apply(keras_sgd, w2, decayed, rates=[0.1])
    np.testing.assert_allclose(first, [0.867, -1.886], rtol=1e-6)


def test_plain_sgd_and_excluded_variables():
    w = keras.Variable(np.array([1.0, -2.0], np.float32), name="kernel")
    b = keras.Variable(np.array([3.0], np.float32), name="beta")
    opt = optimizers.TorchSGD(0.1, weight_decay=0.5,
                              weight_decay_exclude=("*beta*",))
    opt.apply([keras.ops.ones([2]), keras.ops.ones([1])], [w, b])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(w),
                               [1 - 0.1 * 1.5, -2 - 0.1 * 0.0], rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(b), [2.9],
                               rtol=1e-6)


def test_coupled_adam_is_adam_on_the_decayed_gradient():
    g = np.array([0.3, -0.1], np.float32)
    w = keras.Variable(np.array([1.0, -2.0], np.float32))
    got = apply(optimizers.CoupledAdam(0.01, weight_decay=0.1), w, [g, g])
    w_ref = keras.Variable(np.array([1.0, -2.0], np.float32))
    ref = keras.optimizers.Adam(0.01)
    for _ in range(2):
        decayed = g + 0.1 * keras.ops.convert_to_numpy(w_ref)
        ref.apply([keras.ops.convert_to_tensor(decayed)], [w_ref])
    np.testing.assert_array_equal(got, keras.ops.convert_to_numpy(w_ref))


def test_masks_stay_exact_and_sparse_momentum_reads_the_torch_buffer(mlp,
                                                                     small_data):
    x, y = small_data
    model = tfs.sparsify(mlp, sparsity=0.8, seed=0)
    model.compile(optimizers.TorchSGD(0.05, momentum=0.9, nesterov=True,
                                      weight_decay=5e-4),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    algorithm = tfs.algorithms.SparseMomentum(total_steps=8, every=4)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0,
              callbacks=[tfs.callbacks.MaskUpdate(algorithm)])
    assert algorithm.summary_values()["num_updates"] == 1
    for mw in tfs.masked_weights(model):
        w = keras.ops.convert_to_numpy(mw.variable)
        m = keras.ops.convert_to_numpy(mw.mask)
        assert np.all(w[m == 0] == 0.0)
    assert model.optimizer.get_config()["weight_decay"] == 5e-4


def test_negative_weight_decay_is_refused():
    with pytest.raises(ValueError, match="weight_decay=-1"):
        optimizers.TorchSGD(0.1, weight_decay=-1)
