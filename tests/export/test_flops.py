"""Inference and training FLOPs against hand counts."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sparse as tfs
from tf_sparse import flops


def tiny(sparsity=0.5):
    # Dense 8 -> 4: 32 MACs; at 50% density 16 active weights.
    model = keras.Sequential([keras.Input((8,)),
                              keras.layers.Dense(4, name="fc")])
    return tfs.sparsify(model, sparsity=sparsity, seed=0)


def test_dense_layer_inference_and_training_by_rule():
    model = tiny()
    f_d, f_s = 2 * 8 * 4, 2 * 16          # 64 and 32 FLOPs per example
    t = flops.training_flops(model)        # static: fixed mask
    assert (t.forward_dense, t.forward_sparse) == (f_d, f_s)
    assert t.train_dense == 3 * f_d == 192
    assert t.train_sparse == 3 * f_s == 96
    assert flops.training_flops(model, "dense").train_sparse == 192
    # Sparse momentum: dense weight gradient every step.
    sm = flops.training_flops(model, "sparse_momentum")
    assert sm.train_sparse == 2 * f_s + f_d == 128
    # RigL, dT = 4: (3 f_S dT + 2 f_S + f_D) / (dT + 1).
    rigl = flops.training_flops(model, "rigl", update_every=4)
    assert rigl.train_sparse == pytest.approx((3 * 32 * 4 + 2 * 32 + 64) / 5)
    # AC/DC-style dense phases for a quarter of training.
    acdc = flops.training_flops(model, "static", dense_fraction=0.25)
    assert acdc.train_sparse == pytest.approx(0.75 * 96 + 0.25 * 192)
    assert t.total(10)["sparse"] == 960


def test_conv_training_flops_and_kept_dense_layers():
    inputs = keras.Input((10, 10, 3))
    x = keras.layers.Conv2D(8, 3, name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(4, name="fc")(x))
    tfs.sparsify(model, sparsity=0.75, keep_dense=["fc"])
    t = {w.path: w for w in flops.training_flops(model, "snfs").layers}
    conv_d = 2 * 8 * 8 * 3 * 3 * 3 * 8            # 27648
    assert t["conv/kernel"].forward_dense == conv_d
    assert t["conv/kernel"].forward_sparse == conv_d // 4
    assert t["conv/kernel"].train_sparse == 2 * conv_d / 4 + conv_d
    fc_d = 2 * 512 * 4                            # dense layer: f_S = f_D
    assert t["fc/kernel"].train_sparse == 3 * fc_d


def test_algorithm_objects_and_errors():
    model = tiny()

    class Custom:
        name = "mine"
        training_flops_rule = "dense_gradient_on_updates"
        update_every = 9

    t = flops.training_flops(model, Custom())
    assert t.dense_gradient_fraction == pytest.approx(0.1)
    assert flops.training_flops(model, tfs.algorithms.Static()).rule == (
        "sparse")
    with pytest.raises(ValueError, match="No FLOPs counting rule"):
        flops.training_flops(model, "no_such_algorithm")
    with pytest.raises(ValueError, match="update_every"):
        flops.training_flops(model, "rigl")
    with pytest.raises(ValueError, match="dense_fraction"):
        flops.training_flops(model, dense_fraction=2.0)


def test_summary_shows_inference_and_training_flops():
    text = tfs.summary(tiny())
    assert "inference FLOPs/example: dense 64, sparse 32" in text
    assert "training FLOPs/example/step" in text and "dense 192" in text
    text = tfs.summary(tiny(), algorithm="sparse_momentum")
    assert "sparse 128" in text


def test_tensorboard_scalars(tmp_path, small_data):
    x, y = small_data
    model = tiny()
    model.compile(optimizer="sgd", loss="mse")
    cb = flops.FlopsSummaries(str(tmp_path), batch_size=16)
    model.fit(x, np.zeros((64, 4), np.float32), batch_size=16, epochs=2,
              verbose=0, callbacks=[cb])
    values = {}
    for name in os.listdir(tmp_path):
        for event in tf.compat.v1.train.summary_iterator(
                str(tmp_path / name)):
            for v in event.summary.value:
                values[(v.tag, event.step)] = float(
                    tf.make_ndarray(v.tensor))
    assert values[("flops/train_step_sparse", 8)] == 96
    assert values[("flops/inference_dense", 4)] == 64
    assert values[("flops/train_total_sparse", 8)] == 96 * 8 * 16
    assert values[("flops/train_total_dense", 8)] == 192 * 8 * 16


def test_cli_final_report_line():
    from tf_sparse import runs
    t = flops.training_flops(tiny()).as_dict()
    t.update(train_total_sparse=96 * 100, train_total_dense=192 * 100)
    text = runs.final_report({
        "summary": "table", "test_accuracy": 0.5, "test_loss": 1.0,
        "density": 0.5, "total_nonzeros": 16, "total_size": 32, "steps": 100,
        "flops": t})
    assert "training FLOPs (sparse rule, at the final masks): 9.6e+03 " \
        "sparse vs 1.92e+04 dense (2.00x fewer)" in text
    assert flops.final_report_line(None) == ""


def test_rigl_reads_its_update_interval_from_the_algorithm():
    model = tiny()
    rigl = tfs.algorithms.get("rigl", total_steps=1000, every=4)
    t = flops.training_flops(model, rigl)
    assert t.rule == "dense_gradient_on_updates" and t.update_every == 4
    assert t.train_sparse == pytest.approx((3 * 32 * 4 + 2 * 32 + 64) / 5)
    for name in ("sparse_momentum", "set", "snip", "gmp", "acdc"):
        assert name in tfs.algorithms.names()
        assert flops.rule_for(name) in flops.RULES
