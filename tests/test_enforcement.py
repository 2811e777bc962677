"""Pruned weights are exactly 0.0 after every optimizer step.

For every optimizer, with and without XLA, with steps_per_execution > 1, in
`fit` and in a custom training loop. Each test also checks that the pruned
weights *would* move without the mask (dense gradients reach them), so a
broken enforcement cannot pass.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sparse as tfs

OPTIMIZERS = {
    "sgd": lambda: keras.optimizers.SGD(0.1),
    "momentum": lambda: keras.optimizers.SGD(0.1, momentum=0.9),
    "nesterov": lambda: keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    "adam": lambda: keras.optimizers.Adam(0.01),
    "adamw": lambda: keras.optimizers.AdamW(0.01, weight_decay=0.1),
}


def build(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(16, activation="relu", name="fc1")(x)
    outputs = keras.layers.Dense(3, name="out")(x)
    return keras.Model(inputs, outputs)


def data(n=48):
    rng = np.random.default_rng(1)
    return (rng.normal(size=(n, 6, 6, 1)).astype("float32"),
            rng.integers(0, 3, size=n).astype("int32"))


class ZerosAfterEveryBatch(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.checked = 0

    def on_train_batch_end(self, batch, logs=None):
        for mw in tfs.masked_weights(self.model):
            w = mw.variable.numpy()
            pruned = w[mw.mask.numpy() == 0]
            assert pruned.size and np.all(pruned == 0.0), mw.path
            assert not np.any(np.signbit(pruned)), mw.path
        self.checked += 1


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("jit,spe", [(False, 1), (True, 1), (False, 4),
                                     (True, 3)])
def test_zeros_after_every_step(optimizer, jit, spe):
    model = tfs.sparsify(build(), sparsity=0.8, seed=1)
    counts = {mw.path: mw.nonzeros() for mw in tfs.masked_weights(model)}
    model.compile(OPTIMIZERS[optimizer](),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=jit, steps_per_execution=spe)
    check = ZerosAfterEveryBatch()
    x, y = data()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[check],
              shuffle=False)
    assert int(model.optimizer.iterations.numpy()) == 12
    # 6 steps an epoch; callbacks see one batch end per execution.
    assert check.checked == 2 * -(-6 // spe)
    assert {mw.path: mw.nonzeros()
            for mw in tfs.masked_weights(model)} == counts


def test_pruned_weights_receive_dense_gradients():
    """Without the constraint the pruned weights would move: the test above
    could fail."""
    model = tfs.sparsify(build(), sparsity=0.8, seed=1)
    x, y = data(8)
    with tf.GradientTape() as tape:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
            y, model(x))
    mw = tfs.masked_weights(model)[1]
    grad = tape.gradient(loss, mw.variable).numpy()
    assert np.count_nonzero(grad[mw.mask.numpy() == 0]) > 0


def test_custom_training_loop_with_optimizer_apply():
    model = tfs.sparsify(build(), sparsity=0.9, seed=2)
    optimizer = keras.optimizers.Adam(0.05)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    x, y = data(16)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))

    for _ in range(5):
        step(x, y)
        for mw in tfs.masked_weights(model):
            assert np.all(mw.variable.numpy()[mw.mask.numpy() == 0] == 0.0)


def test_apply_masks_after_set_weights():
    model = tfs.sparsify(build(), sparsity=0.9, seed=2)
    model.set_weights([np.ones_like(w) for w in model.get_weights()])
    tfs.apply_masks(model)
    for mw in tfs.masked_weights(model):
        assert np.count_nonzero(mw.variable.numpy()) == mw.nonzeros()
