"""CIFAR-10: python and binary batches written in the real layouts, safe unpickling,
format detection, augmentation and the pipelines."""

import io
import os
import pickle
import struct

import numpy as np
import pytest
import tensorflow as tf

from tf_sparse.data import (DataNotFoundError, UnsafePickleError, augment_cifar10,
                            cifar10_datasets, detect_cifar10_format, load_cifar10_arrays,
                            normalize_cifar10)
from tf_sparse.data import cifar10

TRAIN_PER_BATCH = 3
NUM_TEST = 4
MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)
STD = np.array([0.2023, 0.1994, 0.2010], np.float32)


def make_arrays(seed=0):
    """Channel-planar rows (N, 3072) and labels, as stored on disk."""
    rng = np.random.default_rng(seed)
    train = [(rng.integers(0, 256, (TRAIN_PER_BATCH, 3072), dtype=np.uint8),
              rng.integers(0, 10, TRAIN_PER_BATCH).tolist()) for _ in range(5)]
    test = (rng.integers(0, 256, (NUM_TEST, 3072), dtype=np.uint8),
            rng.integers(0, 10, NUM_TEST).tolist())
    return train, test


def as_images(rows):
    """Independent decoding of the documented layout: row = R plane, G plane, B plane."""
    images = np.zeros((len(rows), 32, 32, 3), np.uint8)
    for n, row in enumerate(rows):
        for channel in range(3):
            for y in range(32):
                for x in range(32):
                    images[n, y, x, channel] = row[channel * 1024 + y * 32 + x]
    return images


class Py2StylePickler(pickle._Pickler):
    """Writes bytes and str as Python 2 `str` opcodes, as in the files made by Python 2
    (CIFAR-10's pickles: keys, pixel data and numpy's dtype codes are all py2 str)."""

    def save_bytes(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    def save_str(self, obj):
        self.save_bytes(obj.encode("latin1"))

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def pickle_batch(obj, py2_style=False) -> bytes:
    if not py2_style:
        return pickle.dumps(obj, protocol=2)
    buffer = io.BytesIO()
    Py2StylePickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def write_python_batches(directory, train, test, py2_style=False):
    os.makedirs(directory, exist_ok=True)
    for i, (data, labels) in enumerate(train, start=1):
        batch = {b"batch_label": f"training batch {i} of 5".encode(), b"labels": labels,
                 b"data": data, b"filenames": [b"img_%d.png" % j for j in range(len(labels))]}
        with open(os.path.join(directory, f"data_batch_{i}"), "wb") as f:
            f.write(pickle_batch(batch, py2_style))
    data, labels = test
    with open(os.path.join(directory, "test_batch"), "wb") as f:
        f.write(pickle_batch({b"batch_label": b"testing batch 1 of 1", b"labels": labels,
                              b"data": data, b"filenames": []}, py2_style))
    meta = {b"num_cases_per_batch": TRAIN_PER_BATCH, b"num_vis": 3072,
            b"label_names": [n.encode() for n in cifar10.CLASS_NAMES]}
    with open(os.path.join(directory, "batches.meta"), "wb") as f:
        f.write(pickle_batch(meta, py2_style))


def write_binary_batches(directory, train, test):
    os.makedirs(directory, exist_ok=True)
    batches = [(f"data_batch_{i}.bin", b) for i, b in enumerate(train, start=1)]
    for name, (data, labels) in batches + [("test_batch.bin", test)]:
        with open(os.path.join(directory, name), "wb") as f:
            for row, label in zip(data, labels):
                f.write(bytes([label]) + row.tobytes())
    with open(os.path.join(directory, "batches.meta.txt"), "w") as f:
        f.write("\n".join(cifar10.CLASS_NAMES) + "\n")


def check_arrays(loaded, train, test):
    (x_train, y_train), (x_test, y_test) = loaded
    assert x_train.shape == (5 * TRAIN_PER_BATCH, 32, 32, 3) and x_train.dtype == np.uint8
    np.testing.assert_array_equal(x_train, as_images(np.concatenate([d for d, _ in train])))
    np.testing.assert_array_equal(y_train, sum([labels for _, labels in train], []))
    np.testing.assert_array_equal(x_test, as_images(test[0]))
    np.testing.assert_array_equal(y_test, test[1])
    assert y_train.dtype == np.uint8


@pytest.mark.parametrize("py2_style", [False, True], ids=["py3-protocol2", "py2-strings"])
def test_python_batches_load_exactly(tmp_path, py2_style):
    train, test = make_arrays()
    write_python_batches(tmp_path / "cifar-10-batches-py", train, test, py2_style)
    check_arrays(load_cifar10_arrays(tmp_path), train, test)


def test_pixel_layout_is_channel_planar_row_major(tmp_path):
    train, test = make_arrays()
    row = np.zeros(3072, np.uint8)
    row[0], row[1024], row[2048], row[33], row[1024 + 32 * 31 + 5] = 10, 20, 30, 40, 50
    test = (row[None, :], [7])
    write_python_batches(tmp_path, train, test)
    (_, _), (x_test, y_test) = load_cifar10_arrays(tmp_path)
    image = x_test[0]
    assert image[0, 0].tolist() == [10, 20, 30]
    assert image[1, 1, 0] == 40 and image[31, 5, 1] == 50 and y_test.tolist() == [7]


def test_binary_batches_load_exactly(tmp_path):
    train, test = make_arrays(seed=1)
    write_binary_batches(tmp_path / "cifar-10-batches-bin", train, test)
    assert detect_cifar10_format(tmp_path) == ("binary", str(tmp_path / "cifar-10-batches-bin"))
    check_arrays(load_cifar10_arrays(tmp_path), train, test)


def test_format_detection(tmp_path):
    train, test = make_arrays()
    write_python_batches(tmp_path / "both" / "cifar-10-batches-py", train, test)
    write_binary_batches(tmp_path / "both" / "cifar-10-batches-bin", *make_arrays(seed=5))
    assert detect_cifar10_format(tmp_path / "both")[0] == "python"
    write_python_batches(tmp_path / "flat", train, test)
    assert detect_cifar10_format(tmp_path / "flat") == ("python", str(tmp_path / "flat"))
    binary = load_cifar10_arrays(tmp_path / "both", source="binary")
    check_arrays(binary, *make_arrays(seed=5))
    with pytest.raises(ValueError, match="source='pickle' is not one of"):
        load_cifar10_arrays(tmp_path / "both", source="pickle")


class RunsCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("victim", ["data_batch_2", "batches.meta"])
def test_malicious_pickle_is_refused_without_running_it(tmp_path, victim):
    train, test = make_arrays()
    write_python_batches(tmp_path, train, test)
    marker = tmp_path / "pwned"
    payload = {b"data": train[0][0], b"labels": RunsCommand(marker)}
    with open(tmp_path / victim, "wb") as f:
        f.write(pickle.dumps(payload, protocol=2))
    with pytest.raises(UnsafePickleError) as info:
        load_cifar10_arrays(tmp_path)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert str(tmp_path / victim) in message and "system" in message and "refused" in message
    assert not marker.exists()


def test_codecs_encode_is_admitted_only_for_latin1_bytes(tmp_path):
    from tf_sparse.data.safe_pickle import loads_plain_pickle

    assert loads_plain_pickle(pickle.dumps({b"k": b"\x00\xff"}, protocol=2)) == {b"k": b"\x00\xff"}
    rot13 = b"\x80\x02c_codecs\nencode\nq\x00X\x03\x00\x00\x00abcq\x01X\x05\x00\x00\x00rot13q\x02\x86q\x03Rq\x04."
    with pytest.raises(UnsafePickleError, match="only \\(str, 'latin1'\\)"):
        loads_plain_pickle(rot13)


def test_truncated_pickle_names_the_file(tmp_path):
    train, test = make_arrays()
    write_python_batches(tmp_path, train, test)
    path = tmp_path / "data_batch_4"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ValueError, match="truncated or corrupt") as info:
        load_cifar10_arrays(tmp_path)
    assert str(path) in str(info.value)


def test_wrong_batch_content_is_a_clear_error(tmp_path):
    train, test = make_arrays()
    write_python_batches(tmp_path, train, test)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 1000), np.uint8), b"labels": [0, 1]}, f, protocol=2)
    with pytest.raises(ValueError, match=r"uint8 array of shape \(2, 1000\); expected uint8 of shape \(N, 3072\)"):
        load_cifar10_arrays(tmp_path)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, f, protocol=2)
    with pytest.raises(ValueError, match="label 10; accepted labels are 0-9"):
        load_cifar10_arrays(tmp_path)


def test_truncated_binary_batch_names_the_file(tmp_path):
    train, test = make_arrays()
    write_binary_batches(tmp_path, train, test)
    path = tmp_path / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match="not a positive multiple of the 3073-byte record") as info:
        load_cifar10_arrays(tmp_path)
    assert str(path) in str(info.value)


def test_missing_files_name_expected_files_and_remedy(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError) as info:
        load_cifar10_arrays(tmp_path / "empty")
    message = str(info.value)
    for expected in ("cifar-10-batches-py", "data_batch_1", "data_batch_5", "test_batch",
                     "cifar-10-batches-bin", "data_batch_1.bin", "test_batch.bin", "tar xzf",
                     "tfds", str(tmp_path / "empty")):
        assert expected in message, (expected, message)


def test_partial_python_batches_name_the_missing_file(tmp_path):
    train, test = make_arrays()
    write_python_batches(tmp_path / "cifar-10-batches-py", train, test)
    os.remove(tmp_path / "cifar-10-batches-py" / "data_batch_3")
    with pytest.raises(DataNotFoundError, match="lacks data_batch_3"):
        load_cifar10_arrays(tmp_path)


def reflect_pad(image, pad=4):
    return np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")


def test_augmentation_is_a_reflect_padded_crop_with_optional_flip():
    images = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    labels = tf.range(16)
    out, out_labels = augment_cifar10(tf.constant(images), labels, tf.constant([3, 4], tf.int64))
    out = out.numpy()
    assert out.shape == images.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out_labels, np.arange(16))
    offsets_seen, flips_seen = set(), set()
    for image, result in zip(images, out):
        padded = reflect_pad(image)
        matches = [(dy, dx, flip) for dy in range(9) for dx in range(9) for flip in (False, True)
                   if np.array_equal(result, (padded[dy:dy + 32, dx:dx + 32][:, ::-1] if flip
                                              else padded[dy:dy + 32, dx:dx + 32]))]
        assert matches, "output is not a crop of the reflect-padded image"
        offsets_seen.add(matches[0][:2])
        flips_seen.add(matches[0][2])
    assert len(offsets_seen) > 4 and flips_seen == {False, True}
    again, _ = augment_cifar10(tf.constant(images), labels, tf.constant([3, 4], tf.int64))
    np.testing.assert_array_equal(again.numpy(), out)
    other, _ = augment_cifar10(tf.constant(images), labels, tf.constant([3, 5], tf.int64))
    assert not np.array_equal(other.numpy(), out)


def test_normalisation_uses_the_papers_mean_and_std():
    images = tf.constant(np.array([[[[0, 128, 255]]]], np.uint8))
    out, _ = normalize_cifar10(images, tf.constant([0]))
    expected = (np.array([0, 128, 255], np.float32) / 255.0 - MEAN) / STD
    np.testing.assert_allclose(out.numpy()[0, 0, 0], expected, rtol=1e-6)


def test_datasets_normalise_test_images_exactly_and_augment_training(tmp_path):
    train, test = make_arrays()
    write_python_batches(tmp_path / "cifar-10-batches-py", train, test)
    train_ds, val_ds, test_ds, info = cifar10_datasets(tmp_path, batch_size=4, seed=1)
    assert val_ds is None
    assert info["steps_per_epoch"] == 3 and info["input_shape"] == (32, 32, 3)
    assert info["num_examples"] == {"train": 15, "validation": 0, "test": 4}
    images, labels = next(iter(test_ds))
    expected = (as_images(test[0]).astype(np.float32) / 255.0 - MEAN) / STD
    np.testing.assert_allclose(images.numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(labels.numpy(), test[1])
    low, high = (0 - MEAN) / STD, (1 - MEAN) / STD
    run_a = [(x.numpy(), y.numpy()) for x, y in train_ds]
    for x, y in run_a:
        assert x.shape == (4, 32, 32, 3) and x.dtype == np.float32
        assert np.all(x >= low.min() - 1e-5) and np.all(x <= high.max() + 1e-5)
    run_b = [(x.numpy(), y.numpy()) for x, y in
             cifar10_datasets(tmp_path, batch_size=4, seed=1)[0]]
    for (xa, ya), (xb, yb) in zip(run_a, run_b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    plain = cifar10_datasets(tmp_path, batch_size=15, seed=1, augment=False)[0]
    x, y = next(iter(plain))
    train_images = as_images(np.concatenate([d for d, _ in train]))
    train_labels = np.array(sum([lab for _, lab in train], []))
    order = [int(np.flatnonzero([np.allclose(x[i], (img / 255.0 - MEAN) / STD, atol=1e-5)
                                 for img in train_images])[0]) for i in range(15)]
    np.testing.assert_array_equal(y.numpy(), train_labels[order])


def test_tfds_source_reads_without_downloading(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=6):
        (x_train, y_train), (x_test, y_test) = load_cifar10_arrays(tmp_path, source="tfds")
    assert x_train.shape == (6, 32, 32, 3) and x_train.dtype == np.uint8
    assert y_test.shape == (6,) and y_test.max() < 10
    with pytest.raises(DataNotFoundError, match="download=False"):
        load_cifar10_arrays(tmp_path, source="tfds")
