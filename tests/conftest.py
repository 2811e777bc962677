"""Shared test set-up: quiet TensorFlow, a --runslow switch, small models."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Helpers next to the tests (golden_runs.py) are importable; the suite runs
# with --import-mode=importlib, which does not add test folders to sys.path.
HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run tests marked slow (long experiments)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow experiment: pass --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def mlp():
    """A small functional MLP on 8 features, 3 classes, built."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    x = keras.layers.Dense(32, activation="relu", name="fc1")(inputs)
    x = keras.layers.Dense(16, activation="relu", name="fc2")(x)
    outputs = keras.layers.Dense(3, name="out")(x)
    return keras.Model(inputs, outputs, name="mlp")


@pytest.fixture
def small_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = rng.integers(0, 3, size=(64,)).astype("int32")
    return x, y
