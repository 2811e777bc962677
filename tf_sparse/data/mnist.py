"""Load MNIST from tfds (never downloading unless asked) or from its four IDX files.

`load_mnist(data_dir)` reads the four IDX files (`train-images-idx3-ubyte.gz`,
..., the same names as Fashion-MNIST's) when `data_dir` or
`$TF_SPARSE_MNIST_DIR` holds them; otherwise it asks tfds for `mnist` in
`data_dir` (tfds's own default directory when None) with `download=False`, which
fails in under a second when the data is absent (offline, download=True would
retry for minutes). No MNIST package exists in the Debian archive.

Example:

    >>> from tf_sparse.data.mnist import load_mnist, mnist_datasets
    >>> (x_train, y_train), (x_test, y_test) = load_mnist()   # doctest: +SKIP
    >>> x_train.shape, x_train.dtype  # doctest: +SKIP
    ((60000, 28, 28), dtype('uint8'))
"""

from __future__ import annotations

import os

import numpy as np

from tf_sparse.data.mnist_format import MNIST_FORMAT_FILES, load_mnist_format, missing_files
from tf_sparse.data.pipelines import image_classification_datasets, scale_grayscale
from tf_sparse.data.tfds_arrays import load_tfds_arrays

ENV_VAR = "TF_SPARSE_MNIST_DIR"
TFDS_NAME = "mnist"
NUM_CLASSES = 10

HOW_TO_GET = (
    "with internet, run `tfds.builder('mnist', data_dir=DATA_DIR).download_and_prepare()` "
    "once, or put the four MNIST IDX files "
    f"({', '.join(n + '.gz' for n in MNIST_FORMAT_FILES)}) in a directory and pass it "
    f"as data_dir or set ${ENV_VAR}.")


def _load_tfds(data_dir, download: bool):
    idx_note = (f" {data_dir} lacks the IDX files {', '.join(missing_files(data_dir))} too."
                if data_dir else "")
    (x_train, y_train), (x_test, y_test) = load_tfds_arrays(
        TFDS_NAME, ["train", "test"], data_dir=data_dir, download=download,
        how_to_get=HOW_TO_GET + idx_note)
    return ((x_train.reshape(-1, 28, 28), y_train.astype(np.uint8)),
            (x_test.reshape(-1, 28, 28), y_test.astype(np.uint8)))


def load_mnist(data_dir: str | os.PathLike | None = None, *, download: bool = False):
    """Returns MNIST as `(x_train, y_train), (x_test, y_test)` uint8 numpy arrays.

    Images (N, 28, 28), labels (N,) 0-9. `download=True` lets tfds fetch the data
    (needs internet).

    Raises:
      DataNotFoundError: naming the directory looked in and how to get the data.
      ValueError: naming the file, if an IDX file is corrupt.
    """
    directory = os.fspath(data_dir) if data_dir else os.environ.get(ENV_VAR)
    if directory:
        directory = os.path.expanduser(directory)
        if not missing_files(directory):
            return load_mnist_format(directory)
    return _load_tfds(directory, download)


def mnist_datasets(batch_size: int, seed: int, validation_fraction: float = 0.0,
                   data_dir=None, channels_last: bool = True, *, download: bool = False,
                   **kwargs):
    """MNIST as tf.data pipelines of float32 (28, 28, 1) images in [0, 1].

    Same arguments and return value as `pipelines.fashion_mnist_datasets`:
    `(train_ds, val_ds or None, test_ds, info)`.

    Example:

        >>> train, val, test, info = mnist_datasets(100, seed=0,  # doctest: +SKIP
        ...                                         validation_fraction=0.1)
        >>> info["steps_per_epoch"]  # doctest: +SKIP
        540
    """
    train_arrays, test_arrays = load_mnist(data_dir, download=download)
    return image_classification_datasets(
        train_arrays, test_arrays, batch_size=batch_size, seed=seed, num_classes=NUM_CLASSES,
        validation_fraction=validation_fraction, preprocess=scale_grayscale(channels_last),
        **kwargs)
