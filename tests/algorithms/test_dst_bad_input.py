"""Bad input to the dynamic sparse algorithms: errors that name the value and
what is accepted."""

import keras
import pytest

import tf_sparse as tfs

import dst_testlib as lib


def sm(**kwargs):
    kwargs.setdefault("total_steps", 100)
    kwargs.setdefault("steps_per_epoch", 10)
    return tfs.algorithms.SparseMomentum(**kwargs)


def test_unknown_names():
    with pytest.raises(ValueError, match="'sparse_magic'.*rigl.*sparse_momentum"):
        tfs.algorithms.get("sparse_magic")
    with pytest.raises(ValueError, match="growth 'magic'.*momentum, random, "
                       "gradient"):
        sm(growth="magic")
    with pytest.raises(ValueError, match="redistribution 'everywhere'.*"
                       "momentum, magnitude, nonzero, none, size"):
        sm(redistribution="everywhere")
    with pytest.raises(ValueError, match="decay 'step'.*cosine, linear, "
                       "constant"):
        sm(decay="step")
    with pytest.raises(ValueError, match="regrow_dropped 'yes'"):
        tfs.algorithms.SET(total_steps=100, steps_per_epoch=10,
                           regrow_dropped="yes")
    with pytest.raises(ValueError, match="grown_slots 'reset'.*keep, zero"):
        tfs.algorithms.RigL(total_steps=100, grown_slots="reset")


@pytest.mark.parametrize("rate", [0.0, 1.0, 1.5, -0.1, "half", True])
def test_prune_rate_outside_open_unit_interval(rate):
    with pytest.raises(ValueError, match=f"prune_rate={rate!r}.*in \\(0, 1\\)"):
        sm(prune_rate=rate)
    with pytest.raises(ValueError, match=f"drop_fraction={rate!r}.*\\(0, 1\\)"):
        tfs.algorithms.RigL(total_steps=100, drop_fraction=rate)


def test_schedule_that_ends_before_it_starts():
    with pytest.raises(ValueError, match="RigL: .*ends before it begins.*"
                       "begin=0.8.*end=0.2"):
        tfs.algorithms.RigL(total_steps=1000, begin=0.8, end=0.2)
    with pytest.raises(ValueError, match="RigL: .*end=2.0"):
        tfs.algorithms.RigL(total_steps=1000, end=2.0)
    with pytest.raises(ValueError, match="SparseMomentum: give "
                       "steps_per_epoch"):
        tfs.algorithms.SparseMomentum(total_steps=100)


def test_optimizer_without_momentum_and_no_fallback():
    model = lib.mlp()
    model.compile(keras.optimizers.SGD(0.1), "mse")
    alg = sm(momentum_source="optimizer")
    with pytest.raises(ValueError, match="momentum_source='optimizer'.*"
                       "SGD\\(momentum=0.0\\).*readable: SGD with momentum > "
                       "0, Adam, AdamW, Nadam.*'ema'"):
        tfs.training.attach(model, alg)
    model = lib.mlp()
    model.compile(keras.optimizers.RMSprop(), "mse")
    with pytest.raises(ValueError, match="RMSprop"):
        tfs.training.attach(model, sm(momentum_source="optimizer"))
    # Random growth with size redistribution needs no momentum: no error.
    model = lib.mlp()
    model.compile(keras.optimizers.SGD(0.1), "mse")
    tfs.training.attach(model, sm(momentum_source="optimizer",
                                  growth="random", redistribution="size"))


def test_uncompiled_model_and_unused_config_parameters():
    with pytest.raises(ValueError, match="compile the model"):
        tfs.training.attach(lib.mlp(), sm())
    with pytest.raises(ValueError, match="algorithm_params growth not used "
                       "by 'rigl'; it takes: .*update_every"):
        tfs.algorithms.from_params("rigl", {"growth": "random"},
                                   steps_per_epoch=10, total_steps=100)
    with pytest.raises(ValueError, match="not used by 'snip'"):
        tfs.algorithms.from_params("snip", {"drop_fraction": 0.3},
                                   steps_per_epoch=10, total_steps=100)
    with pytest.raises(ValueError, match="Unknown algorithm 'magic'"):
        tfs.algorithms.from_params("magic", {}, steps_per_epoch=10,
                                   total_steps=100)
