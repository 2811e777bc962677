"""The recipe configs and the tools/train.py GMP / AC/DC configs build their
plans; the SST-2 recipe fails fast without the data."""

import importlib.util
import os
import time

import pytest

from tf_sparse import recipes
from tf_sparse.data import errors
from tf_sparse.runs import algorithm as algorithm_lib
from tf_sparse.runs import plan as plan_lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def load(rel):
    spec = importlib.util.spec_from_file_location(
        "cfg_" + rel.replace("/", "_")[:-3], os.path.join(ROOT, "configs", rel))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


RECIPES = sorted(f"recipes/{n}" for n in os.listdir(
    os.path.join(ROOT, "configs", "recipes")) if n.endswith(".py"))


@pytest.mark.parametrize("rel", RECIPES)
def test_recipe_config_plans(rel):
    config = load(rel)
    algorithm = algorithm_lib.make(
        config, plan_lib.resolve(config, 54000 // config.batch_size))
    assert (algorithm is None) == (config.algorithm == "dense")
    if config.teacher == "pretrained":
        assert config.pretrain_epochs > 0
    if config.algorithm == "acdc":
        assert algorithm.phases()[-1][2] is True


def test_train_py_gmp_and_acdc_configs():
    gmp = load("fashion_mnist/lenet5_gmp.py")
    # 100 epochs of 540 steps (the fashion_mnist preset): T = 54,000.
    algorithm = algorithm_lib.make(gmp, plan_lib.resolve(gmp, 540))
    assert algorithm.name == "gmp" and algorithm.scope == "global"
    assert algorithm.update_steps()[0] == 5400
    assert algorithm.update_steps()[-1] == 32400
    assert algorithm.target(32400) == pytest.approx(0.95)
    acdc = load("fashion_mnist/lenet5_acdc.py")
    algorithm = algorithm_lib.make(acdc, plan_lib.resolve(acdc, 540))
    epochs = [(a // 540, b // 540, s) for a, b, s in algorithm.phases()]
    assert epochs[0] == (0, 10, False) and epochs[-2:] == [
        (75, 85, False), (85, 100, True)]


def test_sst2_recipe_fails_fast_without_data(tmp_path):
    config = load("recipes/bert_sst2_gmp.py")
    config.data_dir = str(tmp_path)
    start = time.time()
    with pytest.raises(errors.DataNotFoundError, match="glue/sst2"):
        recipes.run(config, str(tmp_path / "run"))
    assert time.time() - start < 30
