"""config.init_weights: the run starts from a saved model's weights, and a
bad file is one clear error naming the key and the file."""

import os

import keras
import numpy as np
import pytest

from tf_sparse.runs import model as model_lib


def small(units=4):
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(units)])


def test_weights_come_from_the_file(tmp_path):
    source = small()
    path = os.path.join(tmp_path, "start.keras")
    source.save(path)
    weights = model_lib.init_weights(path, small())
    for got, want in zip(weights, source.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_a_truncated_file_names_the_key_and_the_file(tmp_path):
    path = os.path.join(tmp_path, "start.keras")
    small().save(path)
    with open(path, "rb") as f:
        head = f.read(100)
    with open(path, "wb") as f:
        f.write(head)
    with pytest.raises(ValueError, match=r"config.init_weights=.*start.keras"
                       r".*cannot be loaded"):
        model_lib.init_weights(path, small())


def test_a_missing_file_names_the_key(tmp_path):
    with pytest.raises(ValueError, match="config.init_weights=.*nothing.keras"):
        model_lib.init_weights(os.path.join(tmp_path, "nothing.keras"),
                               small())


def test_weights_of_another_model_are_refused(tmp_path):
    path = os.path.join(tmp_path, "other.keras")
    small(units=5).save(path)
    with pytest.raises(ValueError, match="another model"):
        model_lib.init_weights(path, small(units=4))
