"""CIFAR-10 from its python batches, its binary batches or tfds, and its pipelines.

`load_cifar10_arrays(data_dir)` recognises what `data_dir` holds, in this order:

1. python batches: `cifar-10-batches-py/` (or `data_dir` itself) with
   `data_batch_1` ... `data_batch_5`, `test_batch` and optionally `batches.meta`.
   Each batch is a pickled dict with `b"data"` (uint8, N x 3072: 1024 red, then
   1024 green, then 1024 blue values, each a 32x32 image in row-major order) and
   `b"labels"` (a list of N ints). They are read with an unpickler that admits
   only plain data and numpy arrays (see `safe_pickle`).
2. binary batches: `cifar-10-batches-bin/` (or `data_dir` itself) with
   `data_batch_1.bin` ... `data_batch_5.bin` and `test_batch.bin`, each a run of
   3073-byte records: 1 label byte, then the 3072 pixel bytes as above.
3. tfds: `data_dir/cifar10/<version>/` prepared by tensorflow-datasets, loaded with
   `download=False` (with download=True tfds retries for minutes when offline).

Training augmentation follows the papers (sparse momentum, RigL, lottery tickets
on CIFAR-10): 4-pixel reflect padding, a random 32x32 crop and a random
horizontal flip, then per-channel normalisation with mean (0.4914, 0.4822,
0.4465) and std (0.2023, 0.1994, 0.2010) on the [0, 1] scale. Evaluation
normalises only.

Example:

    >>> from tf_sparse.data.cifar10 import cifar10_datasets
    >>> train, val, test, info = cifar10_datasets("~/data", 128, seed=0)  # doctest: +SKIP
    >>> info["steps_per_epoch"], info["input_shape"]  # doctest: +SKIP
    (390, (32, 32, 3))
"""

from __future__ import annotations

import glob
import os
from typing import Optional

import numpy as np
import tensorflow as tf

from tf_sparse.data.errors import DataNotFoundError
from tf_sparse.data.pipelines import image_classification_datasets
from tf_sparse.data.safe_pickle import load_plain_pickle
from tf_sparse.data.tfds_arrays import load_tfds_arrays

ENV_VAR = "TF_SPARSE_CIFAR10_DIR"
NUM_CLASSES = 10
IMAGE_SHAPE = (32, 32, 3)
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck")
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)
PAD_PIXELS = 4

PIXELS_PER_IMAGE = 32 * 32 * 3
RECORD_BYTES = 1 + PIXELS_PER_IMAGE

PYTHON_SUBDIR = "cifar-10-batches-py"
PYTHON_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
PYTHON_TEST_FILE = "test_batch"
PYTHON_META_FILE = "batches.meta"
BINARY_SUBDIR = "cifar-10-batches-bin"
BINARY_TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
BINARY_TEST_FILE = "test_batch.bin"
TFDS_NAME = "cifar10"
SOURCES = ("auto", "python", "binary", "tfds")

HOW_TO_GET = (
    "download cifar-10-python.tar.gz (or cifar-10-binary.tar.gz) from the CIFAR-10 "
    "page of the University of Toronto and extract it in data_dir (`tar xzf`), which "
    f"creates {PYTHON_SUBDIR}/ (or {BINARY_SUBDIR}/); or, with internet, run "
    "`tfds.builder('cifar10', data_dir=DATA_DIR).download_and_prepare()` once. "
    f"data_dir defaults to ${ENV_VAR}, then tfds's data directory "
    "($TFDS_DATA_DIR or ~/tensorflow_datasets).")


# --- reading the files ------------------------------------------------------------

def _pixels_to_images(pixels: np.ndarray) -> np.ndarray:
    """(N, 3072) channel-planar rows -> (N, 32, 32, 3) uint8 images."""
    return pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()


def _check_labels(labels: np.ndarray, path: str) -> np.ndarray:
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        bad = labels[(labels < 0) | (labels >= NUM_CLASSES)][0]
        raise ValueError(f"{path}: label {int(bad)}; accepted labels are 0-{NUM_CLASSES - 1}")
    return labels.astype(np.uint8)


def _field(batch: dict, key: str, path: str):
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    keys = ", ".join(repr(k) for k in batch)
    raise ValueError(f"{path}: the batch dict has no {key!r} entry (keys: {keys})")


def read_python_batch(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Reads one pickled CIFAR-10 batch as (uint8 (N, 32, 32, 3) images, uint8 (N,) labels).

    Raises:
      UnsafePickleError: if the pickle names anything but plain data and arrays.
      ValueError: naming the file, if it is truncated or holds the wrong content.
    """
    with open(path, "rb") as f:
        batch = load_plain_pickle(f, name=path)
    if not isinstance(batch, dict):
        raise ValueError(f"{path}: holds a {type(batch).__name__}; a CIFAR-10 batch is a dict")
    data = _field(batch, "data", path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != PIXELS_PER_IMAGE:
        described = (f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray)
                     else type(data).__name__)
        raise ValueError(f"{path}: 'data' is a {described}; expected uint8 of shape "
                         f"(N, {PIXELS_PER_IMAGE})")
    try:
        labels = np.asarray(_field(batch, "labels", path), dtype=np.int64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: 'labels' is not a list of ints ({err})") from err
    if labels.shape != (len(data),):
        raise ValueError(f"{path}: {len(data)} images but 'labels' has shape {labels.shape}")
    return _pixels_to_images(data), _check_labels(labels, path)


def read_python_label_names(path: str) -> tuple[str, ...]:
    """Reads `batches.meta` (a pickled dict with `label_names`) with the safe unpickler."""
    with open(path, "rb") as f:
        meta = load_plain_pickle(f, name=path)
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: holds a {type(meta).__name__}; batches.meta is a dict")
    names = _field(meta, "label_names", path)
    if not isinstance(names, (list, tuple)) or len(names) != NUM_CLASSES:
        raise ValueError(f"{path}: 'label_names' should list {NUM_CLASSES} names, got {names!r}")
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def read_binary_batch(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Reads one binary CIFAR-10 batch (3073-byte records) as (images, labels).

    Raises:
      ValueError: naming the file, if its length is not a positive multiple of
        3073 bytes or a label byte is not 0-9.
    """
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD_BYTES:
        raise ValueError(
            f"{path}: {raw.size} bytes is not a positive multiple of the {RECORD_BYTES}-byte "
            f"record (1 label byte + {PIXELS_PER_IMAGE} pixel bytes); the file is truncated "
            "or not a CIFAR-10 binary batch")
    records = raw.reshape(-1, RECORD_BYTES)
    return _pixels_to_images(records[:, 1:]), _check_labels(records[:, 0], path)


# --- finding the files -----------------------------------------------------------

def _first_dir_with_any(directories, names) -> Optional[str]:
    for directory in directories:
        if any(os.path.isfile(os.path.join(directory, n)) for n in names):
            return directory
    return None


def _require(directory: str, names, kind: str) -> None:
    missing = [n for n in names if not os.path.isfile(os.path.join(directory, n))]
    if missing:
        raise DataNotFoundError(
            f"{directory} holds CIFAR-10 {kind} batches but lacks {', '.join(missing)}; "
            f"expected {', '.join(names)}. To get them: {HOW_TO_GET}")


def _tfds_prepared(data_dir: str) -> bool:
    return bool(glob.glob(os.path.join(data_dir, TFDS_NAME, "*", "dataset_info.json")))


def _default_dirs(data_dir) -> list[tuple[str, str]]:
    if data_dir:
        return [("the data_dir argument", os.fspath(data_dir))]
    dirs = []
    if os.environ.get(ENV_VAR):
        dirs.append((f"${ENV_VAR}", os.environ[ENV_VAR]))
    dirs.append(("tfds's data directory",
                 os.environ.get("TFDS_DATA_DIR") or os.path.join("~", "tensorflow_datasets")))
    return dirs


def detect_cifar10_format(data_dir: str | os.PathLike,
                          formats: tuple[str, ...] = ("python", "binary", "tfds")) -> tuple[str, str]:
    """Returns `(format, directory)` for what `data_dir` holds.

    `format` is the first of `formats` ("python", "binary", "tfds") found;
    `directory` is where its files are (`data_dir` itself or its
    `cifar-10-batches-py/`/`cifar-10-batches-bin/`; for tfds, `data_dir`).

    Raises:
      DataNotFoundError: naming the files looked for and how to get them, if
        `data_dir` holds none of `formats`, or only part of one.
    """
    data_dir = os.path.expanduser(os.fspath(data_dir))
    layouts = {
        "python": (PYTHON_SUBDIR, PYTHON_TRAIN_FILES + (PYTHON_TEST_FILE,)),
        "binary": (BINARY_SUBDIR, BINARY_TRAIN_FILES + (BINARY_TEST_FILE,)),
    }
    looked_for = []
    for fmt in formats:
        if fmt == "tfds":
            if _tfds_prepared(data_dir):
                return "tfds", data_dir
            looked_for.append(f"a tfds-prepared {os.path.join(data_dir, TFDS_NAME, '<version>')}/")
            continue
        subdir, names = layouts[fmt]
        directory = _first_dir_with_any([os.path.join(data_dir, subdir), data_dir], names)
        if directory:
            _require(directory, names, fmt)
            return fmt, directory
        looked_for.append(f"{subdir}/ (or {data_dir} itself) with {', '.join(names)} "
                          f"({fmt} batches)")
    archives = [n for n in ("cifar-10-python.tar.gz", "cifar-10-binary.tar.gz")
                if os.path.isfile(os.path.join(data_dir, n))]
    hint = (f"{data_dir} holds {', '.join(archives)}: extract it there with `tar xzf`. "
            if archives else "")
    raise DataNotFoundError(
        f"CIFAR-10 not found in {data_dir}. {hint}Looked for " + "; ".join(looked_for)
        + f". To get them: {HOW_TO_GET}")


def _load_tfds_arrays(data_dir: Optional[str]):
    (x_train, y_train), (x_test, y_test) = load_tfds_arrays(
        TFDS_NAME, ["train", "test"], data_dir=data_dir, how_to_get=HOW_TO_GET)
    where = f"tfds {TFDS_NAME} in {data_dir or 'the default directory'}"
    return (x_train, _check_labels(y_train, where)), (x_test, _check_labels(y_test, where))


def load_cifar10_arrays(data_dir: str | os.PathLike | None = None, *, source: str = "auto"):
    """Returns CIFAR-10 as `(x_train, y_train), (x_test, y_test)` numpy arrays.

    Images are uint8 (N, 32, 32, 3) in RGB, labels uint8 (N,) 0-9 (see
    `CLASS_NAMES`); 50000 training and 10000 test images for the full data set.
    `data_dir=None` tries `$TF_SPARSE_CIFAR10_DIR`, then tfds's data directory.

    `source="auto"` recognises the format as described in the module docstring;
    "python", "binary" or "tfds" insists on one ("tfds" asks tfds directly,
    without looking at the disk first, with `download=False`).

    Raises:
      DataNotFoundError: naming the expected files and how to get them.
      UnsafePickleError: if a python batch asks for anything but plain data.
      ValueError: naming the file, if one is truncated or corrupt.

    Example:

        >>> (x_train, y_train), (x_test, y_test) = load_cifar10_arrays("~/data")  # doctest: +SKIP
        >>> x_train.shape, y_test.shape  # doctest: +SKIP
        ((50000, 32, 32, 3), (10000,))
    """
    if source not in SOURCES:
        raise ValueError(f"source={source!r} is not one of {', '.join(map(repr, SOURCES))}")
    if source == "tfds":
        return _load_tfds_arrays(os.path.expanduser(os.fspath(data_dir)) if data_dir else None)
    not_found = []
    for origin, directory in _default_dirs(data_dir):
        try:
            fmt, directory = detect_cifar10_format(
                directory, ("python", "binary", "tfds") if source == "auto" else (source,))
        except DataNotFoundError as err:
            not_found.append((origin, err))
            continue
        if fmt == "tfds":
            return _load_tfds_arrays(directory)
        if fmt == "python":
            meta = os.path.join(directory, PYTHON_META_FILE)
            if os.path.isfile(meta):
                read_python_label_names(meta)  # refuses a malicious meta file too
            read = read_python_batch
            train_files, test_file = PYTHON_TRAIN_FILES, PYTHON_TEST_FILE
        else:
            read = read_binary_batch
            train_files, test_file = BINARY_TRAIN_FILES, BINARY_TEST_FILE
        train = [read(os.path.join(directory, name)) for name in train_files]
        test = read(os.path.join(directory, test_file))
        return ((np.concatenate([b[0] for b in train]), np.concatenate([b[1] for b in train])),
                test)
    if len(not_found) == 1:
        raise not_found[0][1]
    raise DataNotFoundError("CIFAR-10 not found in any directory searched:\n" + "\n".join(
        f"- {origin}: {err}" for origin, err in not_found))


# --- augmentation and normalisation --------------------------------------------------

def augment_cifar10(images: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor):
    """Pads a batch by 4 reflected pixels, crops 32x32 at random and flips at random.

    `images` is a (B, 32, 32, C) batch of any dtype; each example gets its own
    crop offset and flip, drawn by stateless ops from the shape-[2] `seed`, so
    the same seed gives the same result. Values are only moved, never changed.
    """
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    batch = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    padded = tf.pad(images, [[0, 0], [PAD_PIXELS, PAD_PIXELS], [PAD_PIXELS, PAD_PIXELS], [0, 0]],
                    mode="REFLECT")
    offsets = tf.random.stateless_uniform([batch, 2], crop_seed, minval=0,
                                          maxval=2 * PAD_PIXELS + 1, dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(height)[tf.newaxis, :]   # (B, H)
    cols = offsets[:, 1:] + tf.range(width)[tf.newaxis, :]    # (B, W)
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
    cropped = tf.gather(cropped, cols, axis=2, batch_dims=1)
    flip = tf.random.stateless_uniform([batch], flip_seed) < 0.5
    flipped = tf.where(flip[:, tf.newaxis, tf.newaxis, tf.newaxis],
                       tf.reverse(cropped, axis=[2]), cropped)
    return flipped, labels


def normalize_cifar10(images: tf.Tensor, labels: tf.Tensor):
    """Maps uint8 images to float32 `(x / 255 - MEAN) / STD`, per channel."""
    images = tf.cast(images, tf.float32) / 255.0
    return (images - tf.constant(MEAN)) / tf.constant(STD), labels


def cifar10_datasets(data_dir: str | os.PathLike | None = None, batch_size: int = 128,
                     seed: int = 0, *, source: str = "auto", augment: bool = True,
                     validation_fraction: float = 0.0,
                     eval_batch_size: Optional[int] = None, drop_remainder: bool = True,
                     repeat: bool = False, start_epoch: int = 0):
    """CIFAR-10 as normalised float32 (B, 32, 32, 3) tf.data pipelines.

    Args:
      data_dir, source: see `load_cifar10_arrays`.
      batch_size: training batch size (also for evaluation unless `eval_batch_size`).
      seed: fixes data order, augmentation and the validation split.
      augment: pad-crop-flip the training images (the papers' setting).
      validation_fraction: share of the training images held out for validation.
      drop_remainder, repeat, start_epoch: see `pipelines.from_arrays`.

    Returns:
      `(train_ds, val_ds or None, test_ds, info)`; `info` has `steps_per_epoch`,
      `num_examples` (train, validation, test), `num_classes`, `input_shape`,
      `class_names`.
    """
    train_arrays, test_arrays = load_cifar10_arrays(data_dir, source=source)
    train_ds, val_ds, test_ds, info = image_classification_datasets(
        train_arrays, test_arrays, batch_size=batch_size, seed=seed, num_classes=NUM_CLASSES,
        validation_fraction=validation_fraction, preprocess=normalize_cifar10,
        augment=augment_cifar10 if augment else None, eval_batch_size=eval_batch_size,
        drop_remainder=drop_remainder, repeat=repeat, start_epoch=start_epoch)
    info["class_names"] = CLASS_NAMES
    return train_ds, val_ds, test_ds, info
