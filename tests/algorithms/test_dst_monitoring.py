"""Monitoring: the update's statistics are algorithm state, written to
TensorBoard by MaskUpdateSummaries at every update."""

import glob

import keras
import numpy as np
import tensorflow as tf

import tf_sparse as tfs

import dst_testlib as lib


def read_scalars(log_dir):
    values = {}
    for path in glob.glob(f"{log_dir}/events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(path):
            for v in event.summary.value:
                value = float(tf.make_ndarray(v.tensor))
                values.setdefault(v.tag, []).append((event.step, value))
    return values


def test_summaries_at_every_update(tmp_path):
    model = lib.mlp()
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    alg = tfs.algorithms.SparseMomentum(total_steps=24, every=6)
    x, y = lib.mlp_data(n=64)
    log_dir = str(tmp_path / "tb")
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, shuffle=False,
              callbacks=[tfs.callbacks.MaskUpdate(alg),
                         tfs.callbacks.MaskUpdateSummaries(log_dir, alg)])
    scalars = read_scalars(log_dir)
    for tag in ("rate", "churn", "itop", "nonzeros", "dropped", "grown"):
        assert [s for s, _ in scalars[f"mask_update/{tag}"]] == [6, 12, 18]
    for path in ("fc1/kernel", "fc2/kernel", "out/kernel"):
        for key in ("density", "dropped", "grown", "share", "rate"):
            assert len(scalars[f"mask_update/{key}/{path}"]) == 3
    shares = [scalars[f"mask_update/share/{p}"][-1][1]
              for p in ("fc1/kernel", "fc2/kernel", "out/kernel")]
    assert np.isclose(sum(shares), 1.0, atol=1e-5)
    rates = [v for _, v in scalars["mask_update/rate"]]
    assert rates == sorted(rates, reverse=True)       # cosine decay
    itop = [v for _, v in scalars["mask_update/itop"]]
    assert itop == sorted(itop) and itop[0] > 0.2     # only grows
    nonzeros = {v for _, v in scalars["mask_update/nonzeros"]}
    assert nonzeros == {float(sum(mw.nonzeros()
                                  for mw in tfs.masked_weights(model)))}
    values = alg.summary_values()
    assert values["num_updates"] == 3 and values["step"] == 18
    assert 0 < values["churn"] <= 1


def test_algorithm_state_is_checkpointed(tmp_path):
    model = lib.mlp()
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    alg = tfs.algorithms.SparseMomentum(total_steps=16, every=4)
    x, y = lib.mlp_data(n=64)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0,
              callbacks=[tfs.callbacks.MaskUpdate(alg)])
    ckpt = tfs.checkpoints.TrainingCheckpoint(str(tmp_path), model, alg)
    ckpt.save(1)
    ever = [e.numpy().copy() for e in alg.state.ever_active]
    alg.state.num_updates.assign(0)
    for e in alg.state.ever_active:
        e.assign(tf.zeros_like(e))
    ckpt.restore()
    assert int(alg.state.num_updates.numpy()) == 2
    for a, b in zip(ever, alg.state.ever_active):
        assert np.array_equal(a, b.numpy())


def _summaries(tmp_path, steps_per_execution, name):
    model = lib.mlp()
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=steps_per_execution)
    alg = tfs.algorithms.SparseMomentum(total_steps=24, every=2)
    x, y = lib.mlp_data(n=64)
    log_dir = str(tmp_path / name)
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, shuffle=False,
              callbacks=[tfs.callbacks.MaskUpdate(alg),
                         tfs.callbacks.MaskUpdateSummaries(log_dir, alg)])
    return read_scalars(log_dir), alg


def test_every_update_of_a_multi_step_execution_is_written(tmp_path):
    """Updates every 2 steps, 8 steps per execution: the callback runs after
    4 updates at a time and still writes each one, with the same values as
    a run that stops after every step."""
    one, _ = _summaries(tmp_path, 1, "spe1")
    eight, alg = _summaries(tmp_path, 8, "spe8")
    assert [s for s, _ in eight["mask_update/rate"]] == list(range(2, 23, 2))
    assert sorted(eight) == sorted(one)
    for tag in one:
        np.testing.assert_allclose([v for _, v in eight[tag]],
                                   [v for _, v in one[tag]], rtol=1e-6)
    history = alg.update_history(since=9)
    assert [h["update"] for h in history] == [10, 11]
    assert history[-1]["step"] == 22
    last = alg.summary_values()
    assert history[-1]["layers"] == last["layers"]
    assert history[-1]["nonzeros"] == last["nonzeros"]
