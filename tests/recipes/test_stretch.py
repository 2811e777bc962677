"""Stretched schedules: `train_multiplier` scales every schedule exactly."""

import json
import os

import keras
import numpy as np
import pytest

import tf_sparse as tfs
from tf_sparse import recipes
from tf_sparse import runs
from tf_sparse import schedules
from tf_sparse.algorithms import acdc as acdc_lib
from tf_sparse.algorithms import gmp as gmp_lib
from tf_sparse.data import pipelines
from tf_sparse.runs import algorithm as algorithm_lib
from tf_sparse.runs import data as data_lib
from tf_sparse.runs import plan as plan_lib


def test_gmp_stretched_k_times_equals_original_at_k_times_the_step():
    base = tfs.algorithms.GMP(0.9, initial_sparsity=0.1, begin=0.1, end=0.6,
                              frequency=0.05, total_steps=400)
    for k in (2, 4):
        config = recipes.default_config()
        config.algorithm, config.sparsity = "gmp", 0.9
        kwargs = config.algorithm_kwargs
        kwargs.initial_sparsity, kwargs.begin = 0.1, 0.1
        kwargs.end, kwargs.frequency = 0.6, 0.05
        kwargs.scope, kwargs.final_update = "layerwise", False
        long = algorithm_lib.make(config, plan_lib.Plan(
            steps_per_epoch=400 * k, epochs=1, total_steps=400 * k))
        assert long.update_steps(400 * k) == [
            k * s for s in base.update_steps(400)]
        for step in range(0, 401, 7):
            assert long.target(k * step) == base.target(step)
        again = gmp_lib.stretched(base, k)
        assert again.update_steps(400 * k) == long.update_steps(400 * k)


def test_int_steps_stretch_too():
    base = tfs.algorithms.GMP(0.8, begin=10, end=60, frequency=5,
                              total_steps=100)
    long = gmp_lib.stretched(base, 3)
    assert long.update_steps(300) == [3 * s for s in base.update_steps(100)]


def test_acdc_phases_and_lr_stretch_exactly():
    base = tfs.algorithms.ACDC(0.9, warmup=0.1, phase_length=0.1,
                               end_sparse=0.2, total_steps=300)
    for k in (2, 4):
        long = tfs.algorithms.ACDC(0.9, warmup=0.1, phase_length=0.1,
                                   end_sparse=0.2, total_steps=300 * k)
        assert long.phases() == tuple((k * a, k * b, s)
                                      for a, b, s in base.phases())
        assert acdc_lib.stretched(base, k).phases() == long.phases()
        lr = schedules.WarmupCosineLR(0.05, warmup=0.05, total_steps=300)
        lr_k = schedules.WarmupCosineLR(0.05, warmup=0.05,
                                        total_steps=300 * k)
        for step in range(0, 301, 10):
            assert lr_k(k * step) == pytest.approx(lr(step), abs=1e-12)


def tiny_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 255, size=(n, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, size=n).astype(np.int32)
    return x, y


def test_in_training_masks_at_k_times_the_step_match():
    """GMP counts after step k*s of a k-times longer run equal the 1x run's
    after step s (counts depend only on the schedule)."""
    counts = {}
    for k in (1, 2):
        keras.utils.set_random_seed(0)
        model = tfs.sparsify(tfs.models.get_model("lenet300_100"), 0.0)
        algorithm = tfs.algorithms.GMP(0.9, begin=0.1, end=0.5,
                                       frequency=0.1, total_steps=10 * k)
        model.compile(keras.optimizers.SGD(0.01),
                      keras.losses.SparseCategoricalCrossentropy(
                          from_logits=True))
        seen = []
        record = keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda b, logs: seen.append(sum(
                mw.nonzeros() for mw in tfs.masked_weights(model))))
        x, y = tiny_data(10 * k * 4)
        model.fit(x[..., None] / 255.0, y, batch_size=4, verbose=0,
                  callbacks=[tfs.callbacks.MaskUpdate(algorithm), record])
        counts[k] = seen
    assert counts[2][1::2] == counts[1]


def test_plan_and_bad_multiplier():
    config = recipes.default_config()
    config.epochs, config.train_multiplier, config.batch_size = 2, 4.0, 100
    plan = plan_lib.resolve(config, 54000 // config.batch_size)
    assert (plan.steps_per_epoch, plan.epochs, plan.total_steps) == (
        540, 8, 4320)
    config.epochs, config.train_multiplier = 1, 1.5
    with pytest.raises(ValueError, match="1 \\* 1.5 = 1.5 must be a whole"):
        plan_lib.resolve(config, 540)


def test_experiment_run_with_gmp_multiplier_diagnostics_and_teacher(tmp_path):
    """tools/train.py's run: GMP from a dense start, 2x, diagnostics, KD."""
    teacher = tfs.models.get_model("lenet300_100")
    teacher_path = str(tmp_path / "teacher.keras")
    teacher.save(teacher_path)
    config = runs.default_config("fashion_mnist")
    config.epochs, config.train_multiplier = 1, 2.0
    config.steps_per_epoch = 5
    config.algorithm, config.sparsity = "gmp", 0.8
    import ml_collections
    config.algorithm_kwargs = ml_collections.ConfigDict(
        dict(begin=0.0, end=0.6, frequency=0.2, scope="global"))
    config.teacher = teacher_path
    config.diagnostics = True
    results = runs.run(config, str(tmp_path / "run"), verbose=0)
    assert results["steps"] == 10 and results["epochs"] == 2
    assert results["total_nonzeros"] == round(0.2 * results["total_size"])
    with open(tmp_path / "run" / "diagnostics.json") as f:
        history = json.load(f)
    assert [h["epoch"] for h in history] == [1, 2]
    assert {"train_loss", "val_loss", "entropy", "gap"} <= set(history[0])
    with pytest.raises(runs.RunMismatchError, match="train_multiplier"):
        config.train_multiplier = 4.0
        runs.run(config, str(tmp_path / "run"), verbose=0)


def test_recipe_run_with_pretraining_acdc_and_distillation(tmp_path):
    x, y = tiny_data(300)
    xt, yt = tiny_data(100, seed=1)
    data = data_lib.ArrayData(x, y, xt, yt, batch_size=20,
                              preprocess=pipelines.scale_grayscale(),
                              validation_fraction=0.2, num_classes=10)
    config = recipes.default_config()
    config.model = "lenet300_100"
    config.algorithm, config.sparsity = "acdc", 0.8
    config.algorithm_kwargs = dict(warmup=0.1, phase_length=0.1,
                                   end_sparse=0.2)
    config.batch_size, config.epochs, config.steps_per_epoch = 20, 2, 5
    config.pretrain_epochs = 1
    config.teacher = "pretrained"
    config.train_eval_examples, config.entropy_examples = 50, 20
    results = recipes.run(config, str(tmp_path / "r"), data=data)
    assert results["steps"] == 10
    assert results["density"] == pytest.approx(0.2, abs=1e-4)
    assert len(results["history"]) == 2
    assert "dense_cotrained_test_accuracy" in results
    for name in ("pretrained.keras", "sparse.keras", "dense_cotrained.keras",
                 "diagnostics.json", "results.json"):
        assert os.path.exists(tmp_path / "r" / name), name
    # A finished run is returned as it is.
    assert recipes.run(config, str(tmp_path / "r"), data=data) == json.load(
        open(tmp_path / "r" / "results.json"))
