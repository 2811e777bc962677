"""The one config schema: presets, composition, points, and what kinds share."""

import pytest

from tf_sparse import lottery
from tf_sparse import recipes
from tf_sparse import runs
from tf_sparse.runs import config as config_lib


def test_presets_start_from_the_papers_settings():
    mnist = runs.default_config("fashion_mnist")
    assert (mnist.seed, mnist.batch_size, mnist.learning_rate) == (17, 100, 0.1)
    assert (mnist.epochs, mnist.lr_decay_every) == (100, "25000")
    assert (mnist.weight_decay_mode, mnist.init) == ("coupled", "torch")
    assert mnist.validation_fraction == 0.1 and not mnist.rescale_init
    cifar = runs.default_config("cifar10")
    assert cifar.lr_decay_every == "25000" and tuple(cifar.lr_boundaries) == ()
    assert cifar.weight_decay_mode == "coupled" and cifar.validation_fraction == 0.1
    imagenet = runs.default_config("imagenet")
    assert imagenet.warmup == "5ep" and imagenet.lr_scaling == "linear"
    assert tuple(imagenet.lr_boundaries) == ("30ep", "60ep", "80ep")
    with pytest.raises(ValueError, match="Unknown config preset 'cifar100'"):
        runs.default_config("cifar100")


def test_a_misspelt_key_is_an_error_and_points_take_every_form():
    config = runs.default_config("fashion_mnist")
    with pytest.raises(AttributeError, match="sparsty"):
        config.sparsty = 0.9
    for value in (0.05, 100, "2ep", "500it"):
        config.warmup = value
        assert config.warmup == value
    config.lr_boundaries = (0.5, "30ep", 100)
    assert tuple(config.lr_boundaries) == (0.5, "30ep", 100)


def test_compose_refuses_a_key_defined_twice_or_a_preset_for_no_key():
    with pytest.raises(ValueError,
                       match=r"defined twice: \['data_seed', 'seed'\]"):
        runs.compose(config_lib.SEEDS + config_lib.SEEDS)
    with pytest.raises(ValueError, match=r"does not have: \['epochs'\]"):
        runs.compose(config_lib.SEEDS, {"epochs": 3})


@pytest.mark.parametrize("make,preset,own", [
    (lottery.default_config, lottery.config.PRESET, lottery.config.LOTTERY),
    (recipes.default_config, recipes.PRESET, recipes.RECIPE)])
def test_kinds_share_the_schema_and_only_add_their_sections(make, preset,
                                                            own):
    config = make()
    schema = {key.name: key for key in config_lib.TRAINING}
    assert set(config.keys()) - set(schema) == {key.name for key in own}
    for name in set(config.keys()) & set(schema):
        expected = preset.get(name, schema[name].default)
        assert config_lib.plain(config[name]) == config_lib.plain(expected)


def test_a_lottery_config_has_no_keys_that_would_do_nothing():
    config = lottery.default_config()
    for name in ("sparsity", "algorithm", "teacher", "max_steps"):
        assert name not in config
    assert "keep_dense" in config and "prune_scope" in config


def test_identity_keys_are_what_a_run_is():
    identity = config_lib.identity_names(config_lib.TRAINING)
    for name in ("model", "dataset", "seed", "batch_size", "sparsity",
                 "algorithm", "optimizer"):
        assert name in identity
    for name in ("data_dir", "epochs", "eval_every_epochs", "verbose"):
        assert name not in identity
    assert "epochs" in lottery.config.IDENTITY     # levels train identically


def test_renamed_keys_are_named_with_their_new_names():
    assert "'lr_boundaries'" in config_lib.renamed_hint("lr_decay_at")
    assert config_lib.renamed_hint("sparsity") == ""
