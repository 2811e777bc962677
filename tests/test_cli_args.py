"""`--algorithm_arg` (tf_sparse/cli.py): constructor arguments of GMP and
AC/DC that a config file does not define reach the algorithm."""

import pytest

from tf_sparse import cli
from tf_sparse import experiment
from tf_sparse import image_experiment


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
    config = image_experiment.default_config()
    config.algorithm = "acdc"
    config.sparsity = 0.0
    config.lock()
    cli.apply_algorithm_args(config, ["sparsity=0.8", "reset_momentum=False",
                                      "phase_length=0.25"])
    alg = image_experiment.make_algorithm(config, steps_per_epoch=10,
                                          total_steps=100)
    assert type(alg).__name__ == "ACDC"
    assert alg.reset_momentum is False
    assert config.is_locked


def test_an_argument_the_algorithm_does_not_take_is_named():
    config = image_experiment.default_config()
    config.algorithm = "gmp"
    cli.apply_algorithm_args(config, ["not_an_arg=1"])
    with pytest.raises(ValueError, match="does not accept algorithm_kwargs="
                       "{'not_an_arg': 1"):
        image_experiment.make_algorithm(config, steps_per_epoch=10,
                                        total_steps=100)


def test_the_mnist_runner_config_takes_them_too():
    config = experiment.default_config()
    cli.apply_algorithm_args(config, ["final_sparsity=0.9"])
    assert config.algorithm_kwargs.final_sparsity == 0.9
