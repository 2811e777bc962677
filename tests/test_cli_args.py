"""`--algorithm_arg` (tf_sparse/cli.py): constructor arguments of GMP and
AC/DC that a config file does not define reach the algorithm."""

import pytest

from tf_sparse import cli
from tf_sparse import recipes
from tf_sparse import runs
from tf_sparse.runs import algorithm as algorithm_lib
from tf_sparse.runs import plan as plan_lib

PLAN = plan_lib.Plan(steps_per_epoch=10, epochs=10, total_steps=100)


def test_values_are_python_literals_else_strings():
    assert cli.parse_algorithm_args(
        ["reset_momentum=False", "phase_length=0.1", "schedule=cubic",
         "scope = global", "sizes=(1, 2)"]) == {
            "reset_momentum": False, "phase_length": 0.1,
            "schedule": "cubic", "scope": " global", "sizes": [1, 2]}


@pytest.mark.parametrize("bad", ["reset_momentum", "=1", "two words=1"])
def test_a_value_that_is_not_key_equals_value_is_named(bad):
    with pytest.raises(ValueError, match=f"--algorithm_arg={bad!r}: expected "
                       "key=value"):
        cli.parse_algorithm_args([bad])


def test_arguments_reach_the_acdc_constructor_of_a_locked_config():
    config = runs.default_config("cifar10")
    config.algorithm = "acdc"
    config.sparsity = 0.9
    config.lock()
    cli.apply_algorithm_args(config, ["sparsity=0.8", "reset_momentum=False",
                                      "phase_length=0.25"])
    alg = algorithm_lib.make(config, PLAN)
    assert type(alg).__name__ == "ACDC"
    assert alg.reset_momentum is False
    assert alg.sparsity == 0.8        # the argument wins over config.sparsity
    assert config.is_locked


def test_gradual_algorithms_take_their_target_from_the_config():
    config = runs.default_config("fashion_mnist")
    config.algorithm = "gmp"
    config.sparsity = 0.75
    config.algorithm_kwargs = {"frequency": 5}
    assert algorithm_lib.make(config, PLAN).final_sparsity == 0.75


def test_an_argument_the_algorithm_does_not_take_is_named():
    config = runs.default_config("cifar10")
    config.algorithm = "gmp"
    cli.apply_algorithm_args(config, ["not_an_arg=1"])
    with pytest.raises(ValueError, match="does not accept algorithm_kwargs="
                       "{'not_an_arg': 1"):
        algorithm_lib.make(config, PLAN)


def test_every_kind_of_config_takes_them():
    for config in (runs.default_config("fashion_mnist"),
                   runs.default_config("imagenet"),
                   recipes.default_config()):
        cli.apply_algorithm_args(config, ["final_sparsity=0.9"])
        assert config.algorithm_kwargs.final_sparsity == 0.9


@pytest.mark.parametrize("old,new", [("lr_decay_at", "lr_boundaries"),
                                     ("exclude", "keep_dense"),
                                     ("warmup_epochs", "warmup")])
def test_a_renamed_config_key_is_named_with_its_new_name(old, new):
    hint = cli.renamed_key_hint([f"--config.{old}=1", "--verbose=0"])
    assert repr(old) in hint and repr(new) in hint
    assert cli.renamed_key_hint(["--config.sparsity=0.9"]) == ""
