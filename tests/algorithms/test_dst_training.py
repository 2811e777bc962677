"""Dynamic sparse training inside `fit`: exact counts and the recorded
drop/grow sets after every update, determinism, RigL's gradient, the
momentum EMA fallback."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sparse as tfs

import dst_testlib as lib

STEPS = 32   # 4 epochs of 8 batches of 16


def make(name, **kwargs):
    if name == "sparse_momentum":
        return tfs.algorithms.SparseMomentum(total_steps=STEPS, every=4,
                                             **kwargs)
    if name == "set":
        return tfs.algorithms.SET(total_steps=STEPS, steps_per_epoch=8,
                                  **kwargs)
    if name == "rigl":
        return tfs.algorithms.RigL(total_steps=STEPS, every=4, end=1.0,
                                   **kwargs)
    raise ValueError(name)


def fit(algorithm, optimizer=None, epochs=4, seed=0, jit=False, spe=1):
    model = lib.mlp(seed=seed)
    model.compile(optimizer or keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=jit, steps_per_execution=spe)
    check = lib.CheckEveryUpdate(algorithm)
    x, y = lib.mlp_data()
    model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, shuffle=False,
              callbacks=[tfs.callbacks.MaskUpdate(algorithm), check])
    return model, check


@pytest.mark.parametrize("name,kwargs", [
    ("sparse_momentum", {}),
    ("sparse_momentum", {"regrow_dropped": "never"}),
    ("set", {}),
    ("rigl", {"regrow_dropped": "never"}),
])
def test_exact_counts_and_drop_grow_sets_after_every_update(name, kwargs):
    alg = make(name, **kwargs)
    model, check = fit(alg)
    expected = len(alg.update_steps())
    if name == "set":
        assert alg.update_steps() == [8, 16, 24]
    assert len(check.records) == expected
    assert [r["step"] for r in check.records] == alg.update_steps()
    # Masks really move.
    assert sum(l["entered"] for r in check.records for l in r["layers"]) > 0
    if kwargs.get("regrow_dropped") == "never":
        # Disjoint: nothing dropped in an update is grown in it.
        assert all(l["regrown"] == 0 for r in check.records
                   for l in r["layers"])
    if name in ("set", "rigl"):
        # In place: per-layer counts never change.
        first = [l["n"] for l in check.records[0]["layers"]]
        assert all([l["n"] for l in r["layers"]] == first
                   for r in check.records)
    itop = alg.summary_values()["itop"]
    assert 0.2 < itop <= 1.0       # started at density 0.2, grew


def test_updates_inside_xla_and_steps_per_execution():
    alg = make("sparse_momentum")
    _, check = fit(alg, jit=True, spe=4)
    assert len(check.records) == len(alg.update_steps())


def test_same_seed_same_masks_and_another_seed_differs():
    runs = []
    for seed in (3, 3, 4):
        model, _ = fit(make("set", seed=seed), epochs=3)
        runs.append(lib.masks_of(model))
    assert all(np.array_equal(a, b) for a, b in zip(runs[0], runs[1]))
    assert not all(np.array_equal(a, b) for a, b in zip(runs[0], runs[2]))


def test_rigl_grows_by_the_gradient_the_optimizer_applied():
    """The captured gradient is the update step's batch gradient at the
    weights before that step (what rigl uses), all layers dense."""
    model = lib.mlp()
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = lib.mlp_data(n=16)
    alg = tfs.algorithms.RigL(total_steps=4, every=1, end=1.0)
    tfs.training.attach(model, alg)
    variables = [mw.variable for mw in alg.weights]
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x=x, y=y, y_pred=model(x, training=True))
    expected = tape.gradient(loss, variables)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    for mw, g, e in zip(alg.weights, alg.tap.captured.values(), expected):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-5,
                                   atol=1e-7)
        # Dense: inactive positions have gradients too.
        inactive = mw.mask.numpy() == 0
        assert np.any(g.numpy()[inactive] != 0)


def test_rigl_with_tape_gradient_trains():
    alg = make("rigl", gradient_source="tape")
    _, check = fit(alg, epochs=2)
    assert len(check.records) == 4


def test_ema_fallback_for_optimizers_without_momentum():
    alg = make("sparse_momentum")         # momentum_source="auto"
    model, check = fit(alg, optimizer=keras.optimizers.SGD(0.1))
    assert alg._momentum_from == "ema"
    assert len(check.records) == len(alg.update_steps())
    ema = alg.tap.ema[0].numpy()
    assert np.any(ema[model.get_layer("fc1").tf_sparse_masks.masks[
        "kernel"].numpy() == 0] != 0)


def test_adam_momentum_is_read_from_the_optimizer():
    alg = make("sparse_momentum")
    _, check = fit(alg, optimizer=keras.optimizers.Adam(1e-3), epochs=2)
    assert alg._momentum_from == "optimizer"
    assert len(check.records) == 4       # steps 4, 8, 12, 16
