"""MNIST: IDX files in a directory, tfds (mocked, offline) and a fast clear error when absent."""

import gzip
import struct
import time

import numpy as np
import pytest

from tf_sparse.data import DataNotFoundError, load_mnist, mnist_datasets
from tf_sparse.data import mnist


def write_idx(path, array):
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
                + array.tobytes())


def test_reads_idx_files_when_the_directory_has_them(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte": rng.integers(0, 10, 6, dtype=np.uint8),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (2, 28, 28), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, 2, dtype=np.uint8)}
    for name, array in arrays.items():
        write_idx(tmp_path / (name + ".gz"), array)
    (x_train, y_train), (x_test, y_test) = load_mnist(tmp_path)
    np.testing.assert_array_equal(x_train, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(y_test, arrays["t10k-labels-idx1-ubyte"])


def test_tfds_path_with_mock_data(tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    monkeypatch.delenv(mnist.ENV_VAR, raising=False)
    with tfds.testing.mock_data(num_examples=5):
        train, val, test, info = mnist_datasets(2, seed=0, data_dir=tmp_path)
    assert info["num_examples"] == {"train": 5, "validation": 0, "test": 5}
    x, y = next(iter(train))
    assert x.shape == (2, 28, 28, 1) and float(x.numpy().max()) <= 1.0


def test_absent_data_fails_fast_with_instructions(tmp_path, monkeypatch):
    pytest.importorskip("tensorflow_datasets")
    monkeypatch.delenv(mnist.ENV_VAR, raising=False)
    start = time.monotonic()
    with pytest.raises(DataNotFoundError) as info:
        load_mnist(tmp_path)
    assert time.monotonic() - start < 20  # download=False: no retries
    message = str(info.value)
    assert str(tmp_path) in message and "download_and_prepare" in message
    assert "train-images-idx3-ubyte.gz" in message and "download=False" in message
