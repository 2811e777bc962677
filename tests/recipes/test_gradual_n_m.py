"""The gradual 2:4 recipe (configs/recipes/lenet5_gmp_2of4.py): GMP's cubic
ramp acting on the N:M groups keeps k of every 4 with k = 4, 3, then 2 at
the steps worked out by hand, every group alike at every update, and the
recipe ends exactly 2:4."""

import importlib
import os
import sys
import warnings

import keras
import numpy as np
import pytest

import tf_sparse as tfs
from tf_sparse import patterns
from tf_sparse import recipes
from tf_sparse.data import pipelines
from tf_sparse.runs import algorithm as algorithm_lib
from tf_sparse.runs import data as data_lib
from tf_sparse.runs import model as model_lib
from tf_sparse.runs import plan as plan_lib
from tf_sparse.runs import restore

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def recipe_config(**changes):
    sys.path.insert(0, ROOT)
    try:
        module = importlib.import_module("configs.recipes.lenet5_gmp_2of4")
    finally:
        sys.path.remove(ROOT)
    config = module.get_config()
    for key, value in changes.items():
        config[key] = value
    return config


def cubic(step, total, begin=0.0, end=0.7, final=0.5):
    b, e = round(begin * total), round(end * total)
    t = min(max((step - b) / (e - b), 0.0), 1.0)
    return final * (1 - (1 - t) ** 3)


def test_ramp_steps_and_counts_by_hand():
    config = recipe_config()
    plan = plan_lib.Plan(steps_per_epoch=50, epochs=2, total_steps=100)
    ramp = recipes.n_m_ramp(config, plan)
    # Updates every 5 steps (5% of 100) from 0 to 70.
    assert [s for s, _ in ramp] == list(range(0, 71, 5))
    # k = max(2, floor(4 (1 - s) + 1/2)): s(5) = 0.5 (1 - (13/14)^3) =
    # 0.099 -> 4; s(10) = 0.185 -> 3; s(25) = 0.369 -> 3; s(30) = 0.401 -> 2.
    expected = [max(2, int(np.floor(4 * (1 - cubic(s, 100)) + 0.5)))
                for s, _ in ramp]
    assert [k for _, k in ramp] == expected
    assert dict(ramp)[5] == 4 and dict(ramp)[10] == 3
    assert dict(ramp)[25] == 3 and dict(ramp)[30] == 2
    assert dict(ramp)[70] == 2


def test_ramp_needs_gmp_with_n_m():
    plan = plan_lib.Plan(steps_per_epoch=50, epochs=2, total_steps=100)
    with pytest.raises(ValueError, match=r"n_m_ramp needs algorithm='gmp' "
                       r"with an 'N:M' pattern, got algorithm='gmp', "
                       r"pattern='block:2x2'"):
        recipes.n_m_ramp(recipe_config(pattern="block:2x2", sparsity=0.5),
                         plan)


def tiny_data(batch_size=20):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, size=(200, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, size=200).astype(np.int32)
    return data_lib.ArrayData(x, y, x[:40], y[:40], batch_size=batch_size,
                              preprocess=pipelines.scale_grayscale(),
                              num_classes=10)


def test_every_update_keeps_the_ramps_k_in_every_group():
    config = recipe_config(epochs=1)
    data = tiny_data()
    plan = plan_lib.Plan(steps_per_epoch=10, epochs=1, total_steps=10)
    ramp = dict(recipes.n_m_ramp(config, plan))
    with warnings.catch_warnings(action="ignore"):
        model = model_lib.sparsify(config, model_lib.build(config, data),
                                   gradual=True)
    model.compile(keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
    gmp = algorithm_lib.make(config, plan)
    seen = {}

    def counts():
        found = set()
        for mw in tfs.masked_weights(model):
            layout = patterns.layout_of("2:4", mw.layer, mw.name, mw.shape)
            ones = keras.ops.convert_to_numpy(
                layout.groups(mw.mask.numpy())).sum(axis=1)
            found |= set(ones.tolist())
        return found

    class Record(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen[0] = counts()

        def on_train_batch_end(self, batch, logs=None):
            seen[batch + 1] = counts()

    rng = np.random.default_rng(1)
    images = rng.uniform(size=(200, 28, 28, 1)).astype(np.float32)
    labels = rng.integers(0, 10, size=200).astype(np.int32)
    model.fit(images, labels, batch_size=20, epochs=1, shuffle=False,
              verbose=0, callbacks=[tfs.callbacks.MaskUpdate(gmp), Record()])
    # After every step every group holds the same k: the ramp's at the
    # last update so far.
    current = None
    for step in range(0, 11):
        if step in ramp:
            current = ramp[step]
        assert seen[step] == {current}, (step, seen[step], ramp)
    assert [ramp[s] for s in sorted(ramp)][0] == 4
    assert 3 in ramp.values() and seen[10] == {2}


def test_the_recipe_ends_exactly_two_four(tmp_path):
    config = recipe_config(epochs=1, steps_per_epoch=10, diagnostics=False,
                           validation_fraction=0.0)
    results = recipes.run(config, str(tmp_path / "run"), data=tiny_data())
    assert results["steps"] == 10
    model, stored = restore.load_model(str(tmp_path / "run"))
    assert stored["pattern"] == "2:4"
    weights = tfs.masked_weights(model)
    assert [mw.layer.name for mw in weights] and all(
        mw.layer.name != "conv1" for mw in weights)   # 1 input channel
    for mw in weights:
        layout = patterns.layout_of("2:4", mw.layer, mw.name, mw.shape)
        ones = keras.ops.convert_to_numpy(layout.groups(mw.mask.numpy()))
        assert np.all(ones.sum(axis=1) == 2), mw.path
        assert np.all(mw.variable.numpy()[mw.mask.numpy() == 0] == 0)
