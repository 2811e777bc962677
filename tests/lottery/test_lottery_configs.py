"""The lottery configs load, validate and resolve to the papers' step counts."""

import importlib.util
import os

import pytest

from tf_sparse.lottery import config as config_lib
from tf_sparse.lottery import pruning
from tf_sparse.lottery import stability

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def load(name):
    path = os.path.join(ROOT, "configs", "lottery", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"lottery_cfg_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert "Where the numbers come from" in module.__doc__
    return module.get_config()


@pytest.mark.parametrize("name, steps_per_epoch, total, rewind, warmup", [
    ("lenet300_fashion_mnist", 468, 40 * 468, 0, 0),
    ("lenet300_original_lth", 1000, 50_000, 0, 0),      # 50K iterations
    ("resnet20_cifar10", 390, 62_400, 500, 0),          # 160 epochs, k = 500
    ("vgg19_cifar10", 781, 111_683, 100, 0),            # ~112K, k = 100
    ("resnet50_imagenet", 1251, 112_590, 6 * 1251, 5 * 1251),   # epoch 6
])
def test_config_resolves_to_the_papers_steps(name, steps_per_epoch, total,
                                             rewind, warmup):
    config = load(name)
    config_lib.check(config)
    steps = config_lib.resolve(config, steps_per_epoch)
    assert (steps.total, steps.rewind, steps.warmup) == (total, rewind,
                                                         warmup)


def test_lenet_configs_prune_to_the_stated_densities():
    sizes = {"fc1/kernel": 235200, "fc2/kernel": 30000, "fc3/kernel": 1000}
    config = load("lenet300_fashion_mnist")
    pools = pruning.make_pools(list(sizes), config.prune_fraction,
                               strategy=config.prune_scope,
                               exclude=list(config.keep_dense))
    plan = pruning.plan_levels(sizes, pools, config.levels)
    assert plan[-1][0] / 265200 == pytest.approx(0.8 ** 15, abs=1e-4)
    config = load("lenet300_original_lth")
    pools = pruning.make_pools(list(sizes), config.prune_fraction,
                               strategy=config.prune_scope,
                               layer_rates=config.layer_rates)
    assert [p.rate for p in pools] == [0.2, 0.2, 0.1]


def test_stability_config():
    path = os.path.join(ROOT, "configs", "lottery", "stability.py")
    spec = importlib.util.spec_from_file_location("lottery_stab_cfg", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    assert config.alphas == 30 and config.copies >= 2
    assert set(config.kinds) <= set(stability.KINDS)
