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
    assert alg.momentum_from == "ema"
    assert len(check.records) == len(alg.update_steps())
    ema = alg.tap.ema[0].numpy()
    assert np.any(ema[model.get_layer("fc1").tf_sparse_masks.masks[
        "kernel"].numpy() == 0] != 0)


def test_adam_momentum_is_read_from_the_optimizer():
    alg = make("sparse_momentum")
    _, check = fit(alg, optimizer=keras.optimizers.Adam(1e-3), epochs=2)
    assert alg.momentum_from == "optimizer"
    assert len(check.records) == 4       # steps 4, 8, 12, 16


class StepSnapshots(keras.callbacks.Callback):
    """Per training step: every trainable variable and optimizer slot
    before and after it, and the masks after it."""

    def __init__(self):
        super().__init__()
        self.steps = []

    def _state(self):
        opt = self.model.optimizer
        return {"vars": [v.numpy().copy() for v in self.model.trainable_variables],
                "masks": {id(mw.variable): mw.mask.numpy() > 0
                          for mw in tfs.masked_weights(self.model)},
                "slots": [v.numpy().copy() for v in opt.variables
                          if v is not opt.iterations and v.shape.rank],
                "iterations": int(opt.iterations.numpy())}

    def on_train_batch_begin(self, batch, logs=None):
        self.before = self._state()

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append((self.before, self._state()))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_rigl_skips_the_gradient_step_on_update_iterations(optimizer):
    """RigL's Algorithm 1 (its default): on an update iteration only the
    masks change; weights and slots keep their values (dropped and grown
    weights are 0), the step counter advances; other steps train."""
    alg = make("rigl", regrow_dropped="never")
    assert alg.skip_gradient_step
    opt = (keras.optimizers.SGD(0.05, momentum=0.9) if optimizer == "sgd"
           else keras.optimizers.Adam(1e-2))
    model = lib.mlp()
    model.compile(opt, keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    snaps = StepSnapshots()
    x, y = lib.mlp_data()
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False,
              callbacks=[tfs.callbacks.MaskUpdate(alg), snaps])
    kinds = [id(v) if any(v is mw.variable for mw in alg.weights)
             else "other" for v in model.trainable_variables]
    updates = set(alg.update_steps())
    assert updates == {4, 8, 12, 16, 20, 24, 28, 32}
    for step, (before, after) in enumerate(snaps.steps, start=1):
        assert after["iterations"] == before["iterations"] + 1 == step
        pairs = list(zip(before["vars"], after["vars"], kinds))
        if step in updates:
            for old, new, kind in pairs:
                if kind == "other":
                    np.testing.assert_array_equal(new, old)
                else:
                    # Weights active before and after keep their values;
                    # dropped and grown ones are 0.
                    kept = before["masks"][kind] & after["masks"][kind]
                    assert kept.sum() < after["masks"][kind].sum()
                    np.testing.assert_array_equal(new, np.where(kept, old, 0))
            # Slots of the unmasked variables (biases) are untouched.
            for old, new in zip(before["slots"], after["slots"]):
                if old.ndim == 1:
                    np.testing.assert_array_equal(new, old)
        else:
            assert all(not np.array_equal(old, new) for old, new, kind in pairs
                       if kind == "other")


def test_the_gradient_step_of_an_update_is_applied_when_asked():
    alg = make("rigl", skip_gradient_step=False)
    model = lib.mlp()
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    snaps = StepSnapshots()
    x, y = lib.mlp_data()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False,
              callbacks=[tfs.callbacks.MaskUpdate(alg), snaps])
    before, after = snaps.steps[3]                  # step 4: an update
    assert int(alg.state.last_step.numpy()) == 8
    biases = [(o, n) for o, n in zip(before["vars"], after["vars"])
              if o.ndim == 1]
    assert all(not np.array_equal(o, n) for o, n in biases)


def test_skip_gradient_step_from_config_params_and_bad_value():
    alg = tfs.algorithms.from_params(
        "set", {"skip_gradient_step": True}, steps_per_epoch=8,
        total_steps=STEPS)
    assert alg.skip_gradient_step and alg.get_config()["skip_gradient_step"]
    assert not make("sparse_momentum").skip_gradient_step
    with pytest.raises(ValueError, match="skip_gradient_step must be True or "
                       "False, got 'yes'"):
        make("set", skip_gradient_step="yes")
