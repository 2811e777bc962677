"""The algorithm hook runs inside the compiled train step at exact steps."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sparse as tfs
from tf_sparse import training


class ShiftEveryK(tfs.algorithms.MaskAlgorithm):
    """Test algorithm: every k steps, roll the first mask by one position and
    count the updates in a variable."""

    name = "shift"

    def __init__(self, k):
        super().__init__()
        self.k = k

    def attach(self, model):
        super().attach(model)
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.step_sum = tf.Variable(0, dtype=tf.int64, trainable=False)

    def should_update(self, step):
        return tf.equal(step % self.k, 0)

    def update(self, step, data):
        mw = self.weights[0]
        flat = tf.reshape(mw.mask, [-1])
        mw.mask.assign(tf.reshape(tf.roll(flat, 1, 0), mw.mask.shape))
        self.updates.assign_add(1)
        self.step_sum.assign_add(tf.cast(step, tf.int64))

    def checkpoint_items(self):
        return {"updates": self.updates}


def build():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    outputs = keras.layers.Dense(4, name="fc")(inputs)
    model = keras.Model(inputs, outputs)
    return tfs.sparsify(model, sparsity=0.5, seed=0)


@pytest.mark.parametrize("jit,spe", [(False, 1), (False, 3), (True, 3)])
def test_updates_happen_at_exact_steps_in_graph(jit, spe):
    model = build()
    model.compile(keras.optimizers.SGD(0.1), "mse", jit_compile=jit,
                  steps_per_execution=spe)
    first_mask = model.get_layer("fc").tf_sparse_masks.masks["kernel"].numpy()
    algorithm = ShiftEveryK(4)
    x = np.ones((96, 8), "float32")
    y = np.zeros((96, 4), "float32")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0,
              callbacks=[tfs.callbacks.MaskUpdate(algorithm)])
    # 12 steps, updates after steps 4, 8, 12.
    assert int(algorithm.updates.numpy()) == 3
    assert int(algorithm.step_sum.numpy()) == 4 + 8 + 12
    mask = model.get_layer("fc").tf_sparse_masks.masks["kernel"].numpy()
    expected = np.roll(first_mask.ravel(), 3).reshape(first_mask.shape)
    assert np.array_equal(mask, expected)
    weights = model.get_layer("fc").kernel.numpy()
    assert np.all(weights[mask == 0] == 0.0)


def test_static_adds_nothing_and_keeps_masks():
    model = build()
    mask = model.get_layer("fc").tf_sparse_masks.masks["kernel"].numpy()
    model.compile(keras.optimizers.SGD(0.1), "mse")
    model.fit(np.ones((16, 8)), np.zeros((16, 4)), batch_size=4, verbose=0,
              callbacks=[tfs.callbacks.MaskUpdate(tfs.algorithms.Static())])
    assert np.array_equal(
        model.get_layer("fc").tf_sparse_masks.masks["kernel"].numpy(), mask)


def test_attach_requires_a_sparse_model_and_detach_restores():
    inputs = keras.Input((3,))
    dense = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with pytest.raises(ValueError, match="no masks"):
        training.attach(dense, tfs.algorithms.Static())
    model = build()
    own = model.train_step
    training.attach(model, tfs.algorithms.Static())
    assert model.train_step is not own
    training.detach(model)
    assert model.train_step == own


def test_algorithm_registry():
    assert isinstance(tfs.algorithms.get("static"), tfs.algorithms.Static)
    with pytest.raises(ValueError, match="'sparse_magic'.*static"):
        tfs.algorithms.get("sparse_magic")
