"""ImageNet: TFRecord shards with real JPEGs written here, read through the real pipelines."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tf_sparse.data import (DataNotFoundError, find_tfrecord_shards, imagenet_dataset,
                            imagenet_datasets, verify_tfrecord_files)
from tf_sparse.data.imagenet import _center_crop_window, random_crop_window

MEAN = np.array([0.485, 0.456, 0.406]) * 255
STD = np.array([0.229, 0.224, 0.225]) * 255
# Distinct flat colours: after any crop and resize an image keeps its colour.
COLOURS = [(250, 10, 10), (10, 250, 10), (10, 10, 250), (250, 250, 10), (10, 250, 250),
           (250, 10, 250), (128, 128, 128), (30, 60, 90)]


def example(jpeg: bytes, label: int, **extra) -> bytes:
    feature = {"image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg])),
               "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))}
    feature.update(extra)
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def jpeg(image: np.ndarray) -> bytes:
    return tf.io.encode_jpeg(tf.constant(image, tf.uint8), quality=100).numpy()


def write_shards(directory, split, records_per_shard):
    """records_per_shard: list (one per shard) of lists of serialized examples."""
    os.makedirs(directory, exist_ok=True)
    total = len(records_per_shard)
    for index, records in enumerate(records_per_shard):
        path = os.path.join(directory, f"{split}-{index:05d}-of-{total:05d}")
        with tf.io.TFRecordWriter(path) as writer:
            for record in records:
                writer.write(record)


def flat(colour, height, width):
    return np.broadcast_to(np.array(colour, np.uint8), (height, width, 3)).copy()


@pytest.fixture(scope="module")
def colour_dir(tmp_path_factory):
    """train: 2 shards x 4 flat images, label = 1-based colour index; validation: 1 shard."""
    directory = str(tmp_path_factory.mktemp("imagenet_colours"))
    sizes = [(40, 60), (64, 48), (50, 50), (33, 90)]
    shards = [[example(jpeg(flat(COLOURS[s * 4 + i], *sizes[i])), s * 4 + i + 1) for i in range(4)]
              for s in range(2)]
    write_shards(directory, "train", shards)
    write_shards(directory, "validation", [[example(jpeg(flat(COLOURS[i], 48, 64)), i + 1)
                                            for i in range(3)]])
    return directory


@pytest.fixture(scope="module")
def noise_dir(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("imagenet_noise"))
    rng = np.random.default_rng(0)
    shards = [[example(jpeg(rng.integers(0, 256, (56, 72, 3), dtype=np.uint8)), 1 + s * 3 + i)
               for i in range(3)] for s in range(2)]
    write_shards(directory, "train", shards)
    write_shards(directory, "validation", shards[:1])
    return directory


def normalised(colour):
    return (np.array(colour) - MEAN) / STD


def test_eval_pipeline_pairs_images_with_zero_based_labels_in_order(colour_dir):
    ds, count = imagenet_dataset(colour_dir, "validation", 2, training=False, image_size=32)
    assert count == 3
    batches = [(x.numpy(), y.numpy()) for x, y in ds]
    assert [x.shape for x, _ in batches] == [(2, 32, 32, 3), (1, 32, 32, 3)]
    labels = np.concatenate([y for _, y in batches])
    assert labels.tolist() == [0, 1, 2] and labels.dtype == np.int32
    images = np.concatenate([x for x, _ in batches])
    assert images.dtype == np.float32
    for image, label in zip(images, labels):
        np.testing.assert_allclose(image, np.broadcast_to(normalised(COLOURS[label]), image.shape),
                                   atol=3 / 58)  # within ~3 grey levels (JPEG)


def test_eval_crop_is_the_padded_central_crop(tmp_path):
    # 64x64 image, image_size=32: the crop is 32/(32+32) of 64 = the central 32x32 square.
    image = np.zeros((64, 64, 3), np.uint8)
    image[16:48, 16:48] = 200
    write_shards(tmp_path, "validation", [[example(jpeg(image), 5)]])
    window = _center_crop_window(tf.constant([64, 64, 3]), 32).numpy().tolist()
    assert window == [16, 16, 32, 32]
    (x, y), = imagenet_dataset(str(tmp_path), "validation", 1, training=False, image_size=32)[0]
    pixels = x.numpy()[0] * STD + MEAN
    assert y.numpy().tolist() == [4]
    # Only the central square: no black from the frame (JPEG ringing stays small).
    assert pixels[4:-4, 4:-4].min() > 190 and pixels.min() > 150


def test_default_image_size_and_bfloat16(colour_dir):
    ds, _ = imagenet_dataset(colour_dir, "validation", 3, training=False, use_bfloat16=True)
    x, _ = next(iter(ds))
    assert x.shape == (3, 224, 224, 3) and x.dtype == tf.bfloat16


def test_training_keeps_pairs_shapes_and_every_example_once(colour_dir):
    train, _, test, info = imagenet_datasets(colour_dir, 4, image_size=24, seed=3, shuffle_buffer=8)
    assert info["steps_per_epoch"] == 2 and info["num_examples"]["train"] == 8
    assert info["num_examples"]["test"] == 3 and info["input_shape"] == (24, 24, 3)
    assert int(train.cardinality()) == 2
    epochs = []
    for _ in range(2):
        labels = []
        for x, y in train:
            assert x.shape == (4, 24, 24, 3) and x.dtype == tf.float32
            for image, label in zip(x.numpy(), y.numpy()):
                np.testing.assert_allclose(image.mean(axis=(0, 1)), normalised(COLOURS[label]),
                                           atol=3 / 58)
                labels.append(int(label))
        assert sorted(labels) == list(range(8))
        epochs.append(labels)
    assert epochs[0] != epochs[1]  # reshuffled each epoch


def test_training_augmentation_is_deterministic_for_a_seed_and_in_range(noise_dir):
    def run(seed):
        ds, _ = imagenet_dataset(noise_dir, "train", 3, training=True, seed=seed, image_size=40,
                                 shuffle_buffer=4)
        return [(x.numpy(), y.numpy()) for x, y in ds]

    first, again, other = run(7), run(7), run(8)
    for (xa, ya), (xb, yb) in zip(first, again):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert any(not np.array_equal(xa, xo) for (xa, _), (xo, _) in zip(first, other))
    images = np.concatenate([x for x, _ in first])
    low, high = (0 - MEAN) / STD, (255 - MEAN) / STD
    assert np.all(images >= low - 1e-4) and np.all(images <= high + 1e-4)
    assert np.all(np.isfinite(images)) and images.shape == (6, 40, 40, 3)


def test_random_crop_windows_respect_area_and_aspect_ranges(tmp_path):
    image_bytes = tf.constant(jpeg(np.zeros((120, 160, 3), np.uint8)))
    centre = _center_crop_window(tf.constant([120, 160, 3]), 224).numpy().tolist()
    fallbacks = 0
    for s in range(60):
        y, x, h, w = random_crop_window(image_bytes, tf.constant([s, 1]), 224).numpy().tolist()
        assert 0 <= y and 0 <= x and y + h <= 120 and x + w <= 160
        if [y, x, h, w] == centre:
            fallbacks += 1
            continue
        assert 0.08 * 0.9 <= h * w / (120 * 160) <= 1.0
        assert 0.75 * 0.9 <= w / h <= 4 / 3 * 1.1
    assert fallbacks < 30


def test_labels_out_of_range_name_the_shard_and_the_offset(tmp_path):
    write_shards(tmp_path, "validation", [[example(jpeg(flat(COLOURS[0], 8, 8)), 0)]])
    ds, _ = imagenet_dataset(str(tmp_path), "validation", 1, training=False, image_size=8)
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        list(ds)
    message = str(info.value)
    assert "validation-00000-of-00001" in message and "label_offset" in message
    ds0, _ = imagenet_dataset(str(tmp_path), "validation", 1, training=False, image_size=8,
                              label_offset=0)
    assert [y.numpy().tolist() for _, y in ds0] == [[0]]


def test_non_jpeg_bytes_name_the_shard(tmp_path):
    png = tf.io.encode_png(tf.zeros((8, 8, 3), tf.uint8)).numpy()
    write_shards(tmp_path, "validation", [[example(png, 1)]])
    ds, _ = imagenet_dataset(str(tmp_path), "validation", 1, training=False, image_size=8)
    with pytest.raises(tf.errors.InvalidArgumentError, match="not JPEG") as info:
        list(ds)
    assert "validation-00000-of-00001" in str(info.value)


def test_missing_feature_is_named(tmp_path):
    record = tf.train.Example(features=tf.train.Features(feature={
        "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[1]))}))
    write_shards(tmp_path, "validation", [[record.SerializeToString()]])
    ds, _ = imagenet_dataset(str(tmp_path), "validation", 1, training=False, image_size=8,
                             num_examples=1)
    with pytest.raises(tf.errors.InvalidArgumentError, match="image/encoded"):
        list(ds)


def test_damaged_record_fails_and_verify_names_file_and_record(tmp_path):
    records = [example(jpeg(flat(c, 16, 16)), i + 1) for i, c in enumerate(COLOURS[:3])]
    write_shards(tmp_path, "validation", [records])
    path = tmp_path / "validation-00000-of-00001"
    assert verify_tfrecord_files([str(path)]) == 3
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="record 1 is damaged or truncated") as info:
        verify_tfrecord_files([str(path)])
    assert str(path) in str(info.value)
    ds, _ = imagenet_dataset(str(tmp_path), "validation", 1, training=False, image_size=8,
                             num_examples=3)
    with pytest.raises((tf.errors.DataLossError, tf.errors.InvalidArgumentError)):
        list(ds)


def test_partial_shard_sets_are_refused_unless_allowed(tmp_path):
    records = [example(jpeg(flat(COLOURS[0], 8, 8)), 1)]
    write_shards(tmp_path, "train", [records, records, records])
    os.remove(tmp_path / "train-00001-of-00003")
    with pytest.raises(DataNotFoundError, match="2 of the 3 train shards; missing train-00001-of-00003"):
        find_tfrecord_shards(tmp_path, "train")
    assert len(find_tfrecord_shards(tmp_path, "train", require_all=False)) == 2
    assert find_tfrecord_shards(tmp_path, "validation") == []


def test_missing_data_fails_fast_naming_shards_and_remedy(tmp_path):
    with pytest.raises(DataNotFoundError) as info:
        imagenet_dataset(str(tmp_path), "train", 2, training=True, source="tfrecord")
    assert "train-00000-of-NNNNN" in str(info.value) and "imagenet_to_gcs" in str(info.value)
    with pytest.raises(DataNotFoundError) as info:  # auto: no shards, then tfds with download=False
        imagenet_datasets(str(tmp_path), 2)
    message = str(info.value)
    assert "imagenet2012" in message and "train-00000-of-NNNNN" in message
    assert "downloads/manual" in message
    with pytest.raises(ValueError, match="source='gcs' is not one of"):
        imagenet_dataset(str(tmp_path), "train", 2, training=True, source="gcs")


def test_tfds_source_with_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=4):
        train, _, test, info = imagenet_datasets(str(tmp_path), 2, image_size=16, source="tfds",
                                                 shuffle_buffer=4)
        x, y = next(iter(test))
        xt, yt = next(iter(train))
    assert x.shape == (2, 16, 16, 3) and xt.shape == (2, 16, 16, 3)
    assert 0 <= int(tf.reduce_min(y)) and int(tf.reduce_max(yt)) < 1000
    assert info["num_examples"]["train"] > 0


def test_training_pipeline_builds_under_a_global_seed_of_zero(colour_dir):
    import keras
    keras.utils.set_random_seed(0)   # users do this; it sets TF's global seed
    try:
        first, _, _, _ = imagenet_datasets(colour_dir, 4, image_size=24, seed=3,
                                           shuffle_buffer=8)
        again, _, _, _ = imagenet_datasets(colour_dir, 4, image_size=24, seed=3,
                                           shuffle_buffer=8)
        order = [int(v) for _, y in first for v in y.numpy()]
        assert sorted(order) == list(range(8))
        assert order == [int(v) for _, y in again for v in y.numpy()]
    finally:
        tf.random.set_seed(None)
