"""SNIP: one-shot |g * w| on a batch at initialisation, global ranking,
exact count."""

import keras
import numpy as np
import tensorflow as tf

import tf_sparse as tfs
from tf_sparse.algorithms import snip

import dst_testlib as lib


def dense_mlp():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8,))
    x = keras.layers.Dense(32, activation="relu", name="fc1")(inputs)
    x = keras.layers.Dense(16, activation="relu", name="fc2")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="out")(x))


def test_snip_keeps_the_globally_most_sensitive_weights_exactly():
    model = dense_mlp()
    x, y = lib.mlp_data(n=50)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    weights = [model.get_layer(n).kernel for n in ("fc1", "fc2", "out")]
    with tf.GradientTape() as tape:
        value = tf.reduce_mean(loss(y, model(x, training=True)))
    grads = tape.gradient(value, weights)
    scores = np.concatenate([np.abs(g.numpy() * w.numpy()).ravel()
                             for g, w in zip(grads, weights)])
    masks = snip.snip_masks(model, (x, y), loss, sparsity=0.9)
    total = scores.size
    budget = int(np.floor(0.1 * total + 0.5))
    flat = np.concatenate([masks[p].ravel() for p in
                           ("fc1/kernel", "fc2/kernel", "out/kernel")])
    assert flat.sum() == budget
    # Global: every kept score >= every pruned score.
    assert scores[flat > 0].min() >= scores[flat == 0].max()
    # Layers get different densities (not a per-layer ranking).
    densities = {p: m.mean() for p, m in masks.items()}
    assert len({round(d, 3) for d in densities.values()}) == 3
    tfs.sparsify(model, masks=masks)
    assert sum(mw.nonzeros() for mw in tfs.masked_weights(model)) == budget


def test_snip_respects_keep_dense_and_is_deterministic():
    x, y = lib.mlp_data(n=50)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    a = snip.snip_masks(dense_mlp(), (x, y), loss, 0.8, keep_dense=["out"])
    b = snip.snip_masks(dense_mlp(), (x, y), loss, 0.8, keep_dense=["out"])
    assert set(a) == {"fc1/kernel", "fc2/kernel"}
    for p in a:
        assert np.array_equal(a[p], b[p])
    assert sum(m.sum() for m in a.values()) == int(
        np.floor(0.2 * (8 * 32 + 32 * 16) + 0.5))


def test_snip_algorithm_is_static_afterwards():
    alg = tfs.algorithms.from_params("snip", {"snip_batch_size": 64},
                                     steps_per_epoch=10, total_steps=100)
    assert isinstance(alg, tfs.algorithms.SNIP)
    assert alg.batch_size == 64 and alg.prunes_at_init
    assert alg.should_update(5) is False


def test_sparsify_with_snip_in_one_call():
    x, y = lib.mlp_data(n=50)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    expected = snip.snip_masks(dense_mlp(), (x, y), loss, 0.9)
    model = snip.sparsify_with_snip(dense_mlp(), (x, y), loss, 0.9)
    for mw in tfs.masked_weights(model):
        assert np.array_equal(mw.mask.numpy(), expected[mw.path])
