"""Every config in configs/cifar10/ and configs/imagenet/: its plan at full size
(steps, learning-rate boundaries, algorithm schedule) is what its docstring
says, and it builds its model and trains two steps on tiny synthetic batches
(ImageNet models at 32x32, batch 2); for configs that repeat a sibling's
model builder and algorithm the two-step run is in `--runslow` (see SLOW)."""

import importlib.util
import json
import math
import os

import keras
import pytest

from tf_sparse import algorithms
from tf_sparse import distribute
from tf_sparse import runs
from tf_sparse.runs import algorithm as algorithm_lib
from tf_sparse.runs import data as data_lib
from tf_sparse.runs import optimizer as optimizer_lib
from tf_sparse.runs import plan as plan_lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG_DIRS = ("cifar10", "imagenet")
# Config files that take an argument (`--config=file.py:ARG`), with the
# arguments the papers use.
ARGUMENTS = {
    "cifar10/wrn28_2_sparse_momentum.py": ("0.1", "0.5"),
    "imagenet/resnet50_sparse_momentum.py": ("0.1", "0.2"),
}


def config_files():
    found = []
    for folder in CONFIG_DIRS:
        for name in sorted(os.listdir(os.path.join(ROOT, "configs", folder))):
            if name.endswith(".py"):
                rel = f"{folder}/{name}"
                for arg in ARGUMENTS.get(rel, (None,)):
                    found.append((rel, arg))
    return found


def load(rel, arg=None):
    spec = importlib.util.spec_from_file_location(
        "config_" + rel.replace("/", "_")[:-3], os.path.join(ROOT, "configs", rel))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg) if arg is not None else module.get_config()


def full_size_plan(config):
    """(batch plan, run plan) on one CPU replica at the data set's size."""
    batch = distribute.batch_plan(
        config.batch_size, 1, base_learning_rate=config.learning_rate,
        reference_batch_size=config.lr_reference_batch_size,
        scaling=config.lr_scaling)
    num_train = data_lib.SYNTHETIC[config.dataset]["num_train"]
    num_train -= int(math.floor(num_train * config.validation_fraction + 0.5))
    return batch, plan_lib.resolve(config,
                                   num_train // batch.global_batch_size)


def lr_schedule(config, peak, steps_per_epoch, total_steps):
    plan = plan_lib.Plan(steps_per_epoch=steps_per_epoch,
                         epochs=total_steps // steps_per_epoch,
                         total_steps=total_steps)
    return optimizer_lib.learning_rate(config, plan, peak)


def needs_algorithm(config):
    if config.algorithm != "dense" and config.algorithm not in algorithms.names():
        pytest.skip(f"algorithm {config.algorithm!r} is not registered yet "
                    f"(registered: {', '.join(algorithms.names())})")


CONFIGS = config_files()
IDS = [f"{rel}:{arg}" if arg else rel for rel, arg in CONFIGS]
# Two-step training of these runs with --runslow only (~75 s more): each has a
# fast sibling with the same model builder and algorithm (another width,
# depth or density), and their plans are checked above in every run.
SLOW = {("cifar10/wrn28_2_sparse_momentum.py", "0.5"),
        ("imagenet/resnet50_sparse_momentum.py", "0.2"),
        ("cifar10/alexnet_b_sparse_momentum.py", None),    # alexnet_s
        ("cifar10/vgg16_d_sparse_momentum.py", None),      # vgg16_c
        ("cifar10/vgg16_like_sparse_momentum.py", None),   # vgg16_c
        ("cifar10/wrn16_10_sparse_momentum.py", None),     # wrn16_8
        ("cifar10/wrn22_8_sparse_momentum.py", None),      # wrn16_8
        ("imagenet/resnet50_dense.py", None)}              # resnet50 SM, resnet20 dense
TRAIN_CASES = [pytest.param(rel, arg, marks=pytest.mark.slow) if (rel, arg) in SLOW
               else (rel, arg) for rel, arg in CONFIGS]


def test_every_config_directory_is_covered():
    assert len(CONFIGS) >= 14
    for rel in ARGUMENTS:
        assert os.path.exists(os.path.join(ROOT, "configs", rel))


@pytest.mark.parametrize("rel,arg", CONFIGS, ids=IDS)
def test_config_plan_at_full_size(rel, arg):
    config = load(rel, arg)
    assert config.dataset == rel.split("/")[0]
    doc = open(os.path.join(ROOT, "configs", rel)).read()
    assert "papers.md" in doc or "peers_pruning_lottery.md" in doc, "source not stated"
    if arg:
        assert config.sparsity == pytest.approx(1 - float(arg))
    info = distribute.describe()
    batch, plan = full_size_plan(config)
    assert batch.per_replica_batch_size == config.batch_size
    assert distribute.resolve_precision(config.precision, info.platform) == "float32"
    assert plan.total_steps == plan.steps_per_epoch * config.epochs
    lr = optimizer_lib.learning_rate(config, plan, batch.learning_rate)
    assert lr(0) <= batch.learning_rate and lr(plan.total_steps) < batch.learning_rate
    if config.algorithm in algorithms.names():
        assert algorithm_lib.make(config, plan) is not None
    assert info.num_replicas == 1


@pytest.mark.parametrize("name", algorithms.names())
def test_every_registered_algorithm_is_selectable_by_name(name):
    config = load("cifar10/resnet20_dense.py")
    config.algorithm = name
    config.sparsity = 0.9
    plan = plan_lib.Plan(steps_per_epoch=390, epochs=160, total_steps=390 * 160)
    algorithm = algorithm_lib.make(config, plan)
    assert algorithm.name == name
    if name in algorithm_lib.GRADUAL:   # the target is config.sparsity
        assert getattr(algorithm, algorithm_lib.GRADUAL[name]) == 0.9


def test_sparse_momentum_cifar_plan_matches_the_reference():
    config = load("cifar10/wrn16_8_sparse_momentum.py")
    lr = lr_schedule(config, 0.1, 450, 45000)
    assert lr.resolved_steps()["boundaries"] == (25000,)  # every 25k iterations
    assert config.sparsity == pytest.approx(0.95)
    assert config.model_kwargs.to_dict() == {}  # the zoo's WRN has dropout 0.3


def test_imagenet_plans_match_the_recipes():
    config = load("imagenet/resnet50_sparse_momentum.py", "0.2")
    lr = lr_schedule(config, 0.4, 1251, 125100)
    steps = lr.resolved_steps()
    assert steps["boundaries"] == (30 * 1251, 60 * 1251, 80 * 1251)
    assert steps["warmup"] == 5 * 1251
    assert lr(5 * 1251) == pytest.approx(0.4)
    dense = load("imagenet/resnet50_dense.py")
    batch, _ = full_size_plan(dense)
    assert batch.learning_rate == pytest.approx(0.4)   # 0.1 x 1024 / 256
    acdc = load("imagenet/resnet50_acdc.py")
    lr = lr_schedule(acdc, 0.256, 1251, 125100)
    assert lr(125100) == pytest.approx(0.0) and lr(6255) == pytest.approx(0.256)
    if "acdc" in algorithms.names():
        algorithm = algorithm_lib.make(acdc, plan_lib.Plan(
            steps_per_epoch=1251, epochs=100, total_steps=125100))
        assert algorithm.sparsity == 0.9
        epochs = [(a // 1251, b // 1251, s) for a, b, s in algorithm.phases()]
        # The IST-DASLab YAML: dense 0-10, sparse/dense 5-epoch phases from
        # sparse 10-15 to sparse 70-75, dense 75-85, final sparse 85-100.
        middle = [(e, e + 5, (e - 10) % 10 == 0) for e in range(10, 75, 5)]
        assert epochs == [(0, 10, False)] + middle + [(75, 85, False), (85, 100, True)]


@pytest.mark.parametrize("rel,arg", TRAIN_CASES, ids=IDS)
def test_config_builds_and_trains_two_steps(rel, arg, tmp_path):
    config = load(rel, arg)
    needs_algorithm(config)
    config.synthetic_data = True
    config.batch_size = 2
    config.eval_batch_size = 2
    config.max_steps = 2
    config.eval_every_epochs = 0
    config.eval_steps = 1
    config.log_every_steps = 0
    config.image_size = 32
    # Tracing a big network's train step costs more than two eager steps;
    # the compiled path is covered by the binary and distributed tests.
    config.run_eagerly = True
    keras.backend.clear_session()
    results = runs.run(config, str(tmp_path), verbose=0)
    assert results["steps"] == 2 and results["steps_run"] == 2
    setup = json.load(open(tmp_path / "setup.json"))
    assert setup["total_steps"] > 1000   # schedules keep the real length
    if config.algorithm in ("dense", "acdc"):
        # AC/DC starts with a dense warm-up (an initialised weight may be 0.0).
        assert results["density"] == pytest.approx(1.0, abs=1e-6)
    else:
        assert results["density"] == pytest.approx(1 - config.sparsity, abs=1e-6)
    assert math.isfinite(results["test_loss"])
    assert not results["finished"]
    # Stopped mid-epoch: checkpointed where it stopped, resumable from there.
    assert os.path.exists(tmp_path / "checkpoints" / "ckpt-2.index")
