"""ImageNet (ILSVRC-2012) input pipelines from TFRecord shards or tfds.

Two sources:

* "tfrecord": a directory of shards named `train-00000-of-01024` ...
  `validation-00127-of-00128`, as written by the TF/TPU reference conversion
  script. Each record is a `tf.train.Example` with `image/encoded` (JPEG bytes)
  and `image/class/label` (int64). That script writes labels 1-1000 (0 was
  kept for "background"), so the default `label_offset=-1` maps them to 0-999.
  Pass `label_offset=0` for shards that already hold 0-based labels.
* "tfds": tensorflow-datasets' `imagenet2012` prepared in `data_dir`, read with
  `download=False` (tfds cannot download ImageNet anyway); labels are 0-based.

`source="auto"` uses the TFRecord shards when `data_dir` has any, else tfds.

Preprocessing follows the ResNet reference of the TF/TPU models (used by RigL
and the sparse ImageNet baselines):

* training: a random crop with area 8%-100% of the image and aspect ratio
  3/4-4/3 (`sample_distorted_bounding_box`, 10 attempts, falling back to the
  evaluation crop when no attempt fits), decoded straight from the JPEG with
  `decode_and_crop_jpeg`, resized to `image_size` (bicubic), flipped
  horizontally at random;
* evaluation: the central crop of side `image_size / (image_size + 32)` of the
  shorter side, resized to `image_size`;
* both: per-channel normalisation by ImageNet's mean (0.485, 0.456, 0.406) and
  std (0.229, 0.224, 0.225) of the [0, 1] scale; float32 or bfloat16 output.

Randomness is stateless and keyed by (seed, epoch, position), so a seed fixes
the augmentation; shard order is a stateless shuffle per epoch.

A record that is not a valid example fails iteration with an
InvalidArgumentError naming the shard (missing feature, bytes that are not JPEG,
a label outside 0-999 after the offset). A damaged shard fails with TF's
DataLossError ("corrupted record at N"); `verify_tfrecord_files` names the file.

Example:

    >>> from tf_sparse.data.imagenet import imagenet_datasets
    >>> train, _, val, info = imagenet_datasets("/data/imagenet", 256)  # doctest: +SKIP
    >>> info["steps_per_epoch"], info["input_shape"]  # doctest: +SKIP
    (5004, (224, 224, 3))
"""

from __future__ import annotations

import os
import re
from typing import Optional, Sequence

import tensorflow as tf

from tf_sparse.data.errors import DataNotFoundError
from tf_sparse.data.pipelines import AUTOTUNE, epoch_numbers, epoch_seed, steps_per_epoch

NUM_CLASSES = 1000
IMAGE_SIZE = 224
CROP_PADDING = 32
MEAN_RGB = (0.485 * 255, 0.456 * 255, 0.406 * 255)
STDDEV_RGB = (0.229 * 255, 0.224 * 255, 0.225 * 255)
AREA_RANGE = (0.08, 1.0)
ASPECT_RATIO_RANGE = (3.0 / 4.0, 4.0 / 3.0)
MIN_OBJECT_COVERED = 0.1
MAX_ATTEMPTS = 10

SPLITS = ("train", "validation")
SOURCES = ("auto", "tfrecord", "tfds")
TFDS_NAME = "imagenet2012"
# Examples in the full splits; used when all standard shards are present.
STANDARD_NUM_EXAMPLES = {"train": 1281167, "validation": 50000}
STANDARD_NUM_SHARDS = {"train": 1024, "validation": 128}
TFRECORD_LABEL_OFFSET = -1

IMAGE_FEATURE = "image/encoded"
LABEL_FEATURE = "image/class/label"
_SHARD_NAME = re.compile(r"^(?P<split>train|validation)-(?P<index>\d+)-of-(?P<total>\d+)$")
_JPEG_MAGIC = b"\xff\xd8"

HOW_TO_GET = (
    "ImageNet cannot be downloaded automatically. Download ILSVRC2012_img_train.tar and "
    "ILSVRC2012_img_val.tar from image-net.org (after registering) and either convert "
    "them to TFRecord shards train-00000-of-01024 ... validation-00127-of-00128 with the "
    "TF/TPU models' imagenet_to_gcs.py script, or put the tars in "
    "DATA_DIR/downloads/manual and run `tfds.builder('imagenet2012', "
    "data_dir=DATA_DIR).download_and_prepare()`.")


# --- finding and checking shards -------------------------------------------------------

def find_tfrecord_shards(data_dir: str | os.PathLike, split: str, *,
                         require_all: bool = True) -> list[str]:
    """Returns the sorted paths of `split`'s shards (`{split}-NNNNN-of-MMMMM`) in `data_dir`.

    With `require_all`, every shard the names announce (`-of-MMMMM`) must be
    present; a partial copy raises DataNotFoundError naming the missing shards.
    Returns [] when there is no shard of `split` at all.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not one of {SPLITS}")
    data_dir = os.path.expanduser(os.fspath(data_dir))
    if not os.path.isdir(data_dir):
        return []
    found = {}
    for name in os.listdir(data_dir):
        match = _SHARD_NAME.match(name)
        if match and match["split"] == split:
            found[name] = (int(match["index"]), int(match["total"]))
    if not found:
        return []
    totals = {total for _, total in found.values()}
    if len(totals) > 1:
        raise ValueError(
            f"{data_dir}: the {split} shards disagree on their count (-of- {sorted(totals)}); "
            "mixing shards of two conversions?")
    total = totals.pop()
    if require_all:
        present = {index for index, _ in found.values()}
        missing = [i for i in range(total) if i not in present]
        if missing:
            width = len(next(iter(found)).split("-")[1])
            names = [f"{split}-{i:0{width}d}-of-{total:0{width}d}" for i in missing[:5]]
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise DataNotFoundError(
                f"{data_dir} holds {len(found)} of the {total} {split} shards; missing "
                f"{', '.join(names)}{more}. Pass require_all=False to use a partial set.")
    return [os.path.join(data_dir, name) for name in sorted(found)]


def verify_tfrecord_files(paths: Sequence[str]) -> int:
    """Reads every record of every file, checking the CRCs; returns the record count.

    Raises:
      ValueError: naming the file and the record index of the first damaged or
        truncated record.
    """
    count = 0
    for path in paths:
        index = 0
        try:
            for _ in tf.data.TFRecordDataset(path):
                index += 1
        except (tf.errors.DataLossError, tf.errors.OutOfRangeError) as err:
            raise ValueError(
                f"{path}: record {index} is damaged or truncated ({err.message.strip()}); "
                "copy or convert this shard again") from err
        count += index
    return count


def count_tfrecords(paths: Sequence[str]) -> int:
    """Returns the number of records in `paths` (reads them all; checks CRCs)."""
    return verify_tfrecord_files(paths)


# --- preprocessing of one example -----------------------------------------------------

def _center_crop_window(image_shape: tf.Tensor, image_size: int) -> tf.Tensor:
    """Returns [y, x, h, w] of the padded central crop of an image of `image_shape`."""
    height, width = image_shape[0], image_shape[1]
    crop = tf.cast(
        (image_size / (image_size + CROP_PADDING))
        * tf.cast(tf.minimum(height, width), tf.float32), tf.int32)
    offset_y = ((height - crop) + 1) // 2
    offset_x = ((width - crop) + 1) // 2
    return tf.stack([offset_y, offset_x, crop, crop])


def _resize(image: tf.Tensor, image_size: int) -> tf.Tensor:
    image = tf.image.resize(image, [image_size, image_size], method="bicubic")
    # Bicubic overshoots at edges; keep the [0, 255] range of the pixels.
    return tf.clip_by_value(image, 0.0, 255.0)


def preprocess_for_eval(image_bytes: tf.Tensor, image_size: int = IMAGE_SIZE) -> tf.Tensor:
    """Decodes the padded central crop of a JPEG, resized: float32 (S, S, 3) in [0, 255]."""
    window = _center_crop_window(tf.image.extract_jpeg_shape(image_bytes), image_size)
    image = tf.image.decode_and_crop_jpeg(image_bytes, window, channels=3)
    return _resize(image, image_size)


def random_crop_window(image_bytes: tf.Tensor, seed: tf.Tensor,
                       image_size: int = IMAGE_SIZE) -> tf.Tensor:
    """Returns the [y, x, h, w] window of the training crop of a JPEG.

    A window with area in `AREA_RANGE` and aspect ratio in `ASPECT_RATIO_RANGE`,
    drawn by `tf.image.stateless_sample_distorted_bounding_box`; when none of
    `MAX_ATTEMPTS` fits (the sampler then returns the whole image), the
    evaluation crop instead, as in the reference.
    """
    shape = tf.image.extract_jpeg_shape(image_bytes)
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=seed,
        min_object_covered=MIN_OBJECT_COVERED, aspect_ratio_range=ASPECT_RATIO_RANGE,
        area_range=AREA_RANGE, max_attempts=MAX_ATTEMPTS, use_image_if_no_bounding_boxes=True)
    window = tf.stack([begin[0], begin[1], size[0], size[1]])
    whole_image = tf.reduce_all(tf.equal(size[:2], shape[:2]))
    return tf.where(whole_image, _center_crop_window(shape, image_size), window)


def preprocess_for_train(image_bytes: tf.Tensor, seed: tf.Tensor,
                         image_size: int = IMAGE_SIZE) -> tf.Tensor:
    """Random-resized crop and random flip of a JPEG: float32 (S, S, 3) in [0, 255].

    `seed` is a shape-[2] int tensor; the same seed gives the same image.
    """
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    window = random_crop_window(image_bytes, crop_seed, image_size)
    image = tf.image.decode_and_crop_jpeg(image_bytes, window, channels=3)
    image = _resize(image, image_size)
    return tf.image.stateless_random_flip_left_right(image, flip_seed)


def normalize_imagenet(image: tf.Tensor, dtype: tf.DType = tf.float32) -> tf.Tensor:
    """Maps a [0, 255] RGB image to `(image - MEAN_RGB) / STDDEV_RGB` in `dtype`."""
    image = (tf.cast(image, tf.float32) - tf.constant(MEAN_RGB)) / tf.constant(STDDEV_RGB)
    return tf.cast(image, dtype)


# --- records: (JPEG bytes, 0-based label, where it came from) -------------------------------

def _checked(image_bytes, label, source, num_classes):
    """Adds assertions naming `source` for non-JPEG bytes and out-of-range labels."""
    is_jpeg = tf.equal(tf.strings.substr(image_bytes, 0, 2), _JPEG_MAGIC)
    label_ok = tf.logical_and(label >= 0, label < num_classes)
    checks = [
        tf.debugging.Assert(is_jpeg, [
            "ImageNet record in", source, f"has {IMAGE_FEATURE} that is not JPEG data "
            "(does not start with FF D8): the shard is corrupt or not an ImageNet shard"]),
        tf.debugging.Assert(label_ok, [
            "ImageNet record in", source, "has label", label,
            f"after label_offset; accepted labels are 0-{num_classes - 1}. TF/TPU-style "
            "shards hold 1-based labels (label_offset=-1); 0-based shards need label_offset=0"]),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(image_bytes), tf.identity(label), source


def _parse_record(serialized, source, label_offset, num_classes):
    features = tf.io.parse_single_example(serialized, {
        IMAGE_FEATURE: tf.io.FixedLenFeature([], tf.string),
        LABEL_FEATURE: tf.io.FixedLenFeature([], tf.int64),
    })
    label = tf.cast(features[LABEL_FEATURE] + label_offset, tf.int32)
    return _checked(features[IMAGE_FEATURE], label, source, num_classes)


def tfrecord_records(files: Sequence[str], *, shuffle_files_seed: Optional[tf.Tensor] = None,
                     label_offset: int = TFRECORD_LABEL_OFFSET, num_classes: int = NUM_CLASSES,
                     cycle_length: int = 16) -> tf.data.Dataset:
    """Reads shards in parallel as a dataset of (JPEG bytes, int32 label, shard path).

    With `shuffle_files_seed` (shape [2]) the shard order is a stateless shuffle.
    The interleave is deterministic: the same files and seed give the same order.
    """
    files_ds = tf.constant(list(files))
    if shuffle_files_seed is not None:
        files_ds = tf.random.experimental.stateless_shuffle(files_ds, seed=shuffle_files_seed)
    ds = tf.data.Dataset.from_tensor_slices(files_ds)
    ds = ds.interleave(
        lambda path: tf.data.TFRecordDataset(path, buffer_size=8 << 20).map(
            lambda record: (record, path)),
        cycle_length=max(1, min(cycle_length, len(files))), block_length=1,
        num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.map(lambda record, path: _parse_record(record, path, label_offset, num_classes),
                  num_parallel_calls=AUTOTUNE, deterministic=True)


def tfds_records(data_dir, split: str, *, shuffle_files: bool = False, seed: int = 0,
                 label_offset: int = 0, num_classes: int = NUM_CLASSES):
    """Reads tfds' `imagenet2012` as (JPEG bytes, int32 label, file name), undecoded.

    Returns `(dataset, num_examples)`. Raises DataNotFoundError at once when tfds
    has no prepared copy in `data_dir` (`download=False`).
    """
    import tensorflow_datasets as tfds  # slow import; only on this path

    try:
        ds, info = tfds.load(
            TFDS_NAME, split=split, data_dir=data_dir, download=False, with_info=True,
            shuffle_files=shuffle_files, decoders={"image": tfds.decode.SkipDecoding()},
            read_config=tfds.ReadConfig(shuffle_seed=seed))
    except (AssertionError, FileNotFoundError) as err:
        raise DataNotFoundError(
            f"ImageNet not found: {data_dir or 'tfds default directory'} holds no TFRecord "
            f"shards ({split}-00000-of-NNNNN ...) and tfds has no prepared {TFDS_NAME} there "
            f"({err}). {HOW_TO_GET}") from err
    ds = ds.map(lambda ex: _checked(ex["image"], tf.cast(ex["label"], tf.int32) + label_offset,
                                    ex["file_name"], num_classes),
                num_parallel_calls=AUTOTUNE, deterministic=True)
    try:
        num_examples = info.splits[split].num_examples
    except KeyError:  # metadata without split sizes (e.g. tfds.testing.mock_data)
        num_examples = int(ds.cardinality())
        if num_examples < 0:
            num_examples = int(ds.reduce(0, lambda count, *_: count + 1))
    return ds, num_examples


# --- the pipelines ----------------------------------------------------------------

def imagenet_dataset(data_dir, split: str, batch_size: int, *, training: bool, seed: int = 0,
                     image_size: int = IMAGE_SIZE, source: str = "auto",
                     label_offset: Optional[int] = None, use_bfloat16: bool = False,
                     shuffle_buffer: int = 10_000, cycle_length: int = 16,
                     drop_remainder: Optional[bool] = None, repeat: bool = False,
                     start_epoch: int = 0, num_examples: Optional[int] = None,
                     require_all_shards: bool = True, num_classes: int = NUM_CLASSES,
                     max_batches_per_epoch: Optional[int] = None):
    """Builds one ImageNet split as batches of (images, int32 labels).

    Args:
      data_dir: directory of TFRecord shards or of tfds' data.
      split: "train" or "validation".
      training: random-resized crop and flip, shuffled; else central crop, in order.
      seed: fixes shard order, shuffle and augmentation.
      source, label_offset: see the module docstring; `label_offset=None` means
        -1 for TFRecord shards and 0 for tfds.
      use_bfloat16: output bfloat16 images instead of float32.
      shuffle_buffer: examples in the shuffle buffer (training).
      drop_remainder: defaults to True when training, False otherwise.
      repeat, start_epoch, max_batches_per_epoch: as in `pipelines.from_arrays`
        (training only): the first epoch played, endless repetition, and
        epochs cut to their first batches (short runs).
      num_examples: examples in the split; found from tfds' metadata, the
        standard counts for a complete standard shard set, or else by counting
        the records (one read of the shards).

    Returns:
      `(dataset, num_examples)`.
    """
    if source not in SOURCES:
        raise ValueError(f"source={source!r} is not one of {', '.join(map(repr, SOURCES))}")
    if drop_remainder is None:
        drop_remainder = bool(training)
    dtype = tf.bfloat16 if use_bfloat16 else tf.float32
    shards = []
    if source in ("auto", "tfrecord") and data_dir:
        shards = find_tfrecord_shards(data_dir, split, require_all=require_all_shards)
    if source == "tfrecord" and not shards:
        raise DataNotFoundError(
            f"No ImageNet TFRecord shards {split}-00000-of-NNNNN ... in {data_dir}. {HOW_TO_GET}")

    if shards:
        offset = TFRECORD_LABEL_OFFSET if label_offset is None else label_offset
        if num_examples is None:
            standard = len(shards) == STANDARD_NUM_SHARDS[split] and require_all_shards
            num_examples = STANDARD_NUM_EXAMPLES[split] if standard else count_tfrecords(shards)

        def records(epoch):
            files_seed = epoch_seed(seed, epoch) if training else None
            return tfrecord_records(shards, shuffle_files_seed=files_seed, label_offset=offset,
                                    num_classes=num_classes, cycle_length=cycle_length)
    else:
        offset = 0 if label_offset is None else label_offset
        tfds_ds, tfds_count = tfds_records(
            os.path.expanduser(os.fspath(data_dir)) if data_dir else None, split,
            shuffle_files=training, seed=seed, label_offset=offset, num_classes=num_classes)
        num_examples = num_examples or tfds_count

        def records(epoch):
            del epoch  # tfds reshuffles its files at each iteration, from `seed`
            return tfds_ds

    def decode_eval(image_bytes, label, source_name):
        del source_name
        return normalize_imagenet(preprocess_for_eval(image_bytes, image_size), dtype), label

    if not training:
        ds = records(0).map(decode_eval, num_parallel_calls=AUTOTUNE, deterministic=True)
        return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(AUTOTUNE), num_examples

    def one_epoch(epoch):
        key = epoch_seed(seed, epoch)
        shuffle_seed = tf.random.stateless_uniform([], key, minval=0, maxval=2**31 - 1,
                                                   dtype=tf.int64)
        augment_key = tf.random.experimental.stateless_fold_in(key, 1)

        def decode_train(position, record):
            image_bytes, label, _ = record
            example_seed = tf.random.experimental.stateless_fold_in(augment_key, position)
            image = preprocess_for_train(image_bytes, example_seed, image_size)
            return normalize_imagenet(image, dtype), label

        # A tensor op seed under a global seed of 0 (keras.utils.
        # set_random_seed(0)) makes tf.data's get_seed compare a tensor in a
        # Python `==`. The order here comes from the op seed alone, so clear
        # the seed of this traced function's graph (not the global one).
        tf.compat.v1.get_default_graph().seed = None
        ds = records(epoch).shuffle(shuffle_buffer, seed=shuffle_seed,
                                    reshuffle_each_iteration=False)
        ds = ds.enumerate().map(decode_train, num_parallel_calls=AUTOTUNE, deterministic=True)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        return ds.take(max_batches_per_epoch) if max_batches_per_epoch else ds

    ds = epoch_numbers(repeat=repeat, start_epoch=start_epoch).flat_map(one_epoch)
    if not repeat:
        batches = steps_per_epoch(num_examples, batch_size, drop_remainder)
        if max_batches_per_epoch:
            batches = min(batches, max_batches_per_epoch)
        ds = ds.apply(tf.data.experimental.assert_cardinality(batches))
    return ds.prefetch(AUTOTUNE), num_examples


def imagenet_datasets(data_dir=None, batch_size: int = 256, image_size: int = IMAGE_SIZE, *,
                      seed: int = 0, eval_batch_size: Optional[int] = None, **kwargs):
    """ImageNet train and validation pipelines, normalised (S, S, 3) images.

    The official validation split is what the papers report as test accuracy,
    so it is returned in the test position; there is no separate validation set.
    Further keyword arguments (`source`, `label_offset`, `use_bfloat16`,
    `shuffle_buffer`, `cycle_length`, `drop_remainder`, `repeat`, `start_epoch`,
    `require_all_shards`, `num_classes`) go to `imagenet_dataset`.

    Returns:
      `(train_ds, None, test_ds, info)`; `info` has `steps_per_epoch`,
      `num_examples` (train, validation, test), `num_classes`, `input_shape`.

    Example:

        >>> train, _, test, info = imagenet_datasets("/data/imagenet", 256,  # doctest: +SKIP
        ...                                          use_bfloat16=True)
    """
    drop_remainder = kwargs.pop("drop_remainder", True)
    train_ds, num_train = imagenet_dataset(
        data_dir, "train", batch_size, training=True, seed=seed, image_size=image_size,
        drop_remainder=drop_remainder, **kwargs)
    eval_kwargs = {k: v for k, v in kwargs.items()
                   if k not in ("shuffle_buffer", "repeat", "start_epoch")}
    test_ds, num_test = imagenet_dataset(
        data_dir, "validation", eval_batch_size or batch_size, training=False, seed=seed,
        image_size=image_size, **eval_kwargs)
    info = {
        "steps_per_epoch": steps_per_epoch(num_train, batch_size, drop_remainder),
        "num_examples": {"train": num_train, "validation": 0, "test": num_test},
        "num_classes": kwargs.get("num_classes", NUM_CLASSES),
        "input_shape": (image_size, image_size, 3),
        "batch_size": batch_size,
        "seed": seed,
    }
    return train_ds, None, test_ds, info

