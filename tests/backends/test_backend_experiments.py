"""The lottery (IMP with rewinding, its baselines, stability and
linear-interpolation instability) and a gradual-pruning recipe with the
under-training diagnostics, on the Keras backend this process runs on:
TensorFlow in the normal suite, JAX and PyTorch through tests/test_backends.py
(`KERAS_BACKEND=jax python -m pytest tests/backends`).

Each runs a few real Fashion-MNIST steps through the same code as
tools/lottery.py, tools/stability.py and tools/recipe.py, and checks exact
counts and that every file of the run is written.
"""

import importlib.util
import json
import os

import numpy as np

from fashion_data import needs_fashion_mnist
from tf_sparse import recipes
from tf_sparse.lottery import imp
from tf_sparse.lottery import stability

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))


def short_config(*path, epochs, steps_per_epoch):
    """`get_config()` of a file under configs/, cut to a few steps (one
    evaluation batch)."""
    spec = importlib.util.spec_from_file_location(
        "config_under_test", os.path.join(ROOT, "configs", *path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    config.epochs = epochs
    config.steps_per_epoch = steps_per_epoch
    config.eval_steps = 1
    return config


@needs_fashion_mnist
def test_imp_with_rewinding_then_stability(tmp_path):
    workdir = str(tmp_path / "lth")
    config = short_config("lottery", "lenet300_fashion_mnist.py", epochs=1,
                          steps_per_epoch=5)
    config.levels = 1
    config.rewind = "2it"
    config.baselines = ("random_prune", "random_reinit")
    result = imp.run(config, workdir, verbose=0)

    # 20% of fc1 + fc2 (265,200) pruned globally; fc3's 1,000 stay.
    level = result["levels"][1]
    assert level["nonzeros"] == 212160 + 1000
    assert level["start_step"] == 2
    masks = np.load(os.path.join(workdir, "level_01", "mask.npz"))
    assert int(masks["k0"].sum() + masks["k1"].sum()) == 212160
    assert int(masks["k2"].sum()) == 1000
    for name in ("random_prune", "random_reinit"):
        (baseline,) = [m for m in result["baselines"][name] if m]
        assert baseline["nonzeros"] == 213160
        assert np.isfinite(baseline["test_loss"])
    for name in ("report.md", "accuracy.png", "run.json",
                 os.path.join("rewind", "rewind.npz")):
        assert os.path.exists(os.path.join(workdir, name)), name

    analysis = stability.default_config()
    analysis.levels = (1,)
    analysis.alphas = 3
    analysis.train_eval_examples = 500
    stability.run(workdir, analysis, verbose=0)
    saved = json.load(open(os.path.join(workdir, "stability",
                                        "results.json")))
    rows = {row["kind"]: row for row in saved["results"]}
    assert set(rows) == {"imp", "random"}
    for row in rows.values():
        assert row["rewind_step"] == 2
        assert len(row["pairs"][0]["test_errors"]) == 3
        assert np.isfinite(row["test_barrier"])
        assert row["data_order_l2"] > 0


@needs_fashion_mnist
def test_gmp_recipe_with_diagnostics(tmp_path):
    workdir = str(tmp_path / "gmp")
    config = short_config("recipes", "lenet5_gmp.py", epochs=2,
                          steps_per_epoch=20)
    results = recipes.run(config, workdir)
    assert results["finished"]
    # 90% of LeNet-5's 430,500 prunable weights: exactly 43,050 remain.
    assert (results["total_nonzeros"], results["total_size"]) \
        == (43050, 430500)
    diagnostics = json.load(open(os.path.join(workdir, "diagnostics.json")))
    assert [row["step"] for row in diagnostics] == [20, 40]
    for row in diagnostics:
        assert np.isfinite(row["val_loss"]) and np.isfinite(row["entropy"])
