"""Fashion-MNIST loading: small IDX files in the real layout, and the real files if installed."""

import gzip
import os
import struct

import numpy as np
import pytest

from tf_sparse.data import DataNotFoundError, fashion_mnist, load_fashion_mnist
from tf_sparse.data.pipelines import fashion_mnist_datasets

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
REAL_DIR = "/usr/share/datasets/fashion-mnist"


def idx_uint8(array: np.ndarray) -> bytes:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fashion(directory, n_train=12, n_test=5, compress=(True, True, True, True), seed=0):
    """Writes the four files; returns the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = (rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              rng.integers(0, 10, n_train, dtype=np.uint8),
              rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              rng.integers(0, 10, n_test, dtype=np.uint8))
    os.makedirs(directory, exist_ok=True)
    for name, array, gz in zip(FILES, arrays, compress):
        path = os.path.join(directory, name + (".gz" if gz else ""))
        with (gzip.open if gz else open)(path, "wb") as f:
            f.write(idx_uint8(array))
    return arrays


@pytest.fixture
def no_defaults(monkeypatch, tmp_path):
    """No env var, and the Debian path pointed at an empty place."""
    monkeypatch.delenv(fashion_mnist.ENV_VAR, raising=False)
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", str(tmp_path / "no-debian-package"))


@pytest.mark.parametrize("compress", [(True,) * 4, (False,) * 4, (True, False, False, True)])
def test_loads_exact_arrays(tmp_path, no_defaults, compress):
    x_tr, y_tr, x_te, y_te = write_fashion(tmp_path / "fm", compress=compress)
    (a, b), (c, d) = load_fashion_mnist(tmp_path / "fm")
    for got, want in zip((a, b, c, d), (x_tr, y_tr, x_te, y_te)):
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, want)


def test_env_var_is_used_when_no_argument(tmp_path, no_defaults, monkeypatch):
    written = write_fashion(tmp_path / "env", seed=1)
    monkeypatch.setenv(fashion_mnist.ENV_VAR, str(tmp_path / "env"))
    np.testing.assert_array_equal(load_fashion_mnist()[0][1], written[1])


def test_argument_wins_over_env_var(tmp_path, no_defaults, monkeypatch):
    write_fashion(tmp_path / "env", seed=1)
    from_arg = write_fashion(tmp_path / "arg", seed=2)
    monkeypatch.setenv(fashion_mnist.ENV_VAR, str(tmp_path / "env"))
    np.testing.assert_array_equal(load_fashion_mnist(tmp_path / "arg")[0][0], from_arg[0])


def test_search_falls_through_to_the_next_directory(tmp_path, no_defaults, monkeypatch):
    (tmp_path / "empty").mkdir()
    written = write_fashion(tmp_path / "debian", seed=3)
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", str(tmp_path / "debian"))
    np.testing.assert_array_equal(load_fashion_mnist(tmp_path / "empty")[1][0], written[2])


def test_missing_files_name_directories_files_and_remedy(tmp_path, no_defaults, monkeypatch):
    partial = tmp_path / "partial"
    write_fashion(partial)
    os.remove(partial / "t10k-labels-idx1-ubyte.gz")
    monkeypatch.setenv(fashion_mnist.ENV_VAR, str(tmp_path / "env-missing"))
    with pytest.raises(DataNotFoundError) as info:
        load_fashion_mnist(partial)
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    for expected in (str(partial), "missing t10k-labels-idx1-ubyte", str(tmp_path / "env-missing"),
                     fashion_mnist.DEBIAN_DIR, "no such directory",
                     "apt-get install dataset-fashion-mnist", "tfds"):
        assert expected in message, (expected, message)
    for name in FILES:
        assert name + ".gz" in message


def test_mismatched_counts_name_both_files(tmp_path, no_defaults):
    write_fashion(tmp_path / "fm")
    with gzip.open(tmp_path / "fm" / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(idx_uint8(np.zeros(11, np.uint8)))
    with pytest.raises(ValueError, match="12 images but .*train-labels-idx1-ubyte.gz.* has 11 labels"):
        load_fashion_mnist(tmp_path / "fm")


def test_label_out_of_range_is_an_error(tmp_path, no_defaults):
    write_fashion(tmp_path / "fm")
    with gzip.open(tmp_path / "fm" / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(idx_uint8(np.array([0, 1, 2, 3, 10], np.uint8)))
    with pytest.raises(ValueError, match="label 10; accepted labels are 0-9"):
        load_fashion_mnist(tmp_path / "fm")


def test_wrong_image_size_is_an_error(tmp_path, no_defaults):
    write_fashion(tmp_path / "fm")
    with gzip.open(tmp_path / "fm" / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(idx_uint8(np.zeros((12, 32, 32), np.uint8)))
    with pytest.raises(ValueError, match=r"shape \(12, 32, 32\); expected uint8 images of shape \(N, 28, 28\)"):
        load_fashion_mnist(tmp_path / "fm")


def test_datasets_scale_to_unit_range_with_a_channel_axis(tmp_path, no_defaults):
    x_tr, y_tr, x_te, y_te = write_fashion(tmp_path / "fm", n_train=20, n_test=7)
    train, val, test, info = fashion_mnist_datasets(4, seed=0, validation_fraction=0.25,
                                                    data_dir=tmp_path / "fm")
    assert info["num_examples"] == {"train": 15, "validation": 5, "test": 7}
    assert info["steps_per_epoch"] == 3 and info["input_shape"] == (28, 28, 1)
    images = np.concatenate([x.numpy() for x, _ in test])
    labels = np.concatenate([y.numpy() for _, y in test])
    assert images.dtype == np.float32 and images.shape == (7, 28, 28, 1)
    np.testing.assert_allclose(images[..., 0], x_te / np.float32(255.0), rtol=0, atol=1e-7)
    np.testing.assert_array_equal(labels, y_te)
    seen = np.concatenate([y.numpy() for _, y in val] + [y.numpy() for _, y in train])
    assert len(seen) == 5 + 12  # 15 training examples in full batches of 4
    channels_first = fashion_mnist_datasets(4, seed=0, data_dir=tmp_path / "fm",
                                            channels_last=False)
    assert channels_first[3]["input_shape"] == (1, 28, 28)
    assert channels_first[1] is None


@pytest.mark.skipif(not all(os.path.exists(os.path.join(REAL_DIR, n + ".gz")) for n in FILES),
                    reason="dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_from_the_debian_package(monkeypatch):
    monkeypatch.delenv(fashion_mnist.ENV_VAR, raising=False)
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert x_train.dtype == y_train.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(y_train, minlength=10), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(y_test, minlength=10), [1000] * 10)
    assert x_train.max() == 255 and x_train.min() == 0
    # Upstream facts: the first training label is 9 (ankle boot), the first test label 9 too.
    assert y_train[0] == 9 and y_test[0] == 9
