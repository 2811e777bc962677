"""The Fashion-MNIST configs of every algorithm: hyperparameters as stated,
and real runs through the run engine (sparse momentum resumed equals
uninterrupted; SNIP masks the dense initialisation)."""

import importlib.util
import os

import pytest

from tf_sparse import runs
from tf_sparse.runs import algorithm as algorithm_lib
from tf_sparse.runs import plan as plan_lib
from tf_sparse.runs import runner
from fashion_data import needs_fashion_mnist

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
CONFIGS = os.path.join(ROOT, "configs", "fashion_mnist")
ALGORITHMS = ("dense", "static", "snip", "set", "rigl", "sparse_momentum")


def load(name):
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(CONFIGS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


@pytest.mark.parametrize("model", ["lenet300", "lenet5"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_has_a_config_with_its_papers_defaults(model,
                                                               algorithm):
    config = load(f"{model}_{algorithm}")
    assert config.model == {"lenet300": "lenet300_100",
                            "lenet5": "lenet5_caffe"}[model]
    # sparse momentum's MNIST reference recipe (docs/paper_configs.md):
    # 54,000 training images in 540 batches of 100, 100 epochs.
    assert (config.epochs, config.batch_size, config.lr_decay_every) == (
        100, 100, "25000")
    assert (config.weight_decay_mode, config.init, config.rescale_init,
            config.validation_fraction) == ("coupled", "torch", False, 0.1)
    alg = algorithm_lib.make(config, plan_lib.resolve(config, 540))
    expected = {"dense": "static", "static": "static"}.get(algorithm,
                                                           algorithm)
    assert alg.name == expected
    if algorithm == "dense":
        assert config.sparsity == 0.0
    else:
        assert config.sparsity == 0.95
    if algorithm == "sparse_momentum":
        assert alg.drop_fraction(0) == 0.5
        assert alg.drop_fraction(54000) == pytest.approx(0.005)
        assert alg.update_steps() == [540 * k for k in range(1, 100)]
        assert (alg.growth, alg.redistribution) == ("momentum", "momentum")
    if algorithm == "rigl":
        assert alg.update_steps()[:2] == [100, 200]
        assert alg.update_steps()[-1] == 40500         # 0.75 of 54000
        assert alg.drop_fraction(0) == pytest.approx(0.3)
    if algorithm == "set":
        assert alg.drop_fraction(5000) == pytest.approx(0.3)
        assert len(alg.update_steps()) == 99


def small(config, epochs, steps=10):
    config.epochs = epochs
    config.steps_per_epoch = steps
    return config


@needs_fashion_mnist
def test_sparse_momentum_run_resumes_to_the_uninterrupted_result(
        tmp_path, monkeypatch):
    full = runs.run(small(load("lenet300_sparse_momentum"), 3),
                    str(tmp_path / "full"), verbose=0)
    # Killed right after the checkpoint of epoch 1 (mask update at step 10
    # done), then started again.
    save = runner.Progress.on_epoch_end

    def save_then_die(self, epoch, logs=None):
        save(self, epoch, logs)
        raise KeyboardInterrupt

    monkeypatch.setattr(runner.Progress, "on_epoch_end", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        runs.run(small(load("lenet300_sparse_momentum"), 3),
                 str(tmp_path / "part"), verbose=0)
    monkeypatch.undo()
    resumed = runs.run(small(load("lenet300_sparse_momentum"), 3),
                       str(tmp_path / "part"), verbose=0)
    assert full["steps"] == resumed["steps"] == 30
    assert full["layers"] == resumed["layers"]
    assert full["test_loss"] == resumed["test_loss"]
    assert full["total_nonzeros"] == 13310
    # Updates happened (after epochs 1 and 2) and moved the layout.
    assert full["layers"]["fc3/kernel"]["nonzeros"] != 500
    assert os.listdir(tmp_path / "full" / "tensorboard")


@needs_fashion_mnist
def test_snip_run_prunes_the_dense_initialisation(tmp_path):
    results = runs.run(small(load("lenet300_snip"), 1, steps=60),
                       str(tmp_path / "snip"), verbose=0)
    assert results["total_nonzeros"] == 13310
    densities = [results["layers"][p]["density"]
                 for p in ("fc1/kernel", "fc2/kernel", "fc3/kernel")]
    assert len({round(d, 4) for d in densities}) == 3   # global ranking
    assert results["test_accuracy"] > 0.15           # chance is 0.1
