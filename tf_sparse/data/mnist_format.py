"""Find and read the four IDX files of an MNIST-format data set (MNIST, Fashion-MNIST).

Both data sets ship as the same four files, gzipped or not:

    train-images-idx3-ubyte[.gz]   uint8, N x 28 x 28
    train-labels-idx1-ubyte[.gz]   uint8, N, values 0-9
    t10k-images-idx3-ubyte[.gz]    uint8, M x 28 x 28
    t10k-labels-idx1-ubyte[.gz]    uint8, M, values 0-9

Example:

    >>> from tf_sparse.data.mnist_format import find_mnist_format_dir, load_mnist_format
    >>> directory = find_mnist_format_dir(               # doctest: +SKIP
    ...     [("the data_dir argument", "/data/fashion")], dataset="Fashion-MNIST",
    ...     how_to_get="apt-get install dataset-fashion-mnist")
    >>> (x_train, y_train), (x_test, y_test) = load_mnist_format(directory)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Iterable, Sequence

import numpy as np

from tf_sparse.data.errors import DataNotFoundError
from tf_sparse.data.idx import read_idx

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
MNIST_FORMAT_FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

IMAGE_SIZE = 28
NUM_CLASSES = 10


def idx_file_path(directory: str, base_name: str) -> str | None:
    """Returns the path of `base_name`.gz or `base_name` in `directory`, or None.

    The gzipped file wins when both exist.
    """
    for candidate in (base_name + ".gz", base_name):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    return None


def missing_files(directory: str) -> list[str]:
    """Returns the base names of the four files that `directory` lacks."""
    if not os.path.isdir(directory):
        return list(MNIST_FORMAT_FILES)
    return [name for name in MNIST_FORMAT_FILES if idx_file_path(directory, name) is None]


def find_mnist_format_dir(candidates: Iterable[tuple[str, str | os.PathLike | None]],
                          *, dataset: str, how_to_get: str) -> str:
    """Returns the first candidate directory that holds all four files.

    Args:
      candidates: (where this directory came from, directory) pairs in search
        order; pairs whose directory is None or empty are skipped.
      dataset: the data set's name, for the error message.
      how_to_get: instructions for getting the files, for the error message.

    Raises:
      DataNotFoundError: naming every directory searched, what each one lacked,
        the expected file names and `how_to_get`.
    """
    searched = []
    for origin, directory in candidates:
        if not directory:
            continue
        directory = os.path.expanduser(os.fspath(directory))
        missing = missing_files(directory)
        if not missing:
            return directory
        if not os.path.isdir(directory):
            searched.append(f"  {directory} ({origin}): no such directory")
        else:
            searched.append(f"  {directory} ({origin}): missing {', '.join(missing)}")
    expected = ", ".join(f"{name}.gz" for name in MNIST_FORMAT_FILES)
    raise DataNotFoundError(
        f"{dataset} not found. Searched:\n" + ("\n".join(searched) or "  (no directory given)")
        + f"\nExpected the files {expected} (gzipped or not) in one directory.\n"
        f"To get them: {how_to_get}")


def _check_split(images: np.ndarray, labels: np.ndarray, images_path: str,
                 labels_path: str) -> None:
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(
            f"{images_path!r} holds {images.dtype} of shape {images.shape}; "
            f"expected uint8 images of shape (N, {IMAGE_SIZE}, {IMAGE_SIZE})")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(
            f"{labels_path!r} holds {labels.dtype} of shape {labels.shape}; "
            "expected uint8 labels of shape (N,)")
    if len(images) != len(labels):
        raise ValueError(
            f"{images_path!r} has {len(images)} images but {labels_path!r} has "
            f"{len(labels)} labels; they must match")
    if labels.size and labels.max() >= NUM_CLASSES:
        raise ValueError(
            f"{labels_path!r} has label {int(labels.max())}; accepted labels are "
            f"0-{NUM_CLASSES - 1}")


def load_mnist_format(directory: str | os.PathLike
                      ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Reads the four files of `directory` as `(x_train, y_train), (x_test, y_test)`.

    Images are uint8 arrays (N, 28, 28) and labels uint8 arrays (N,).

    Raises:
      DataNotFoundError: if a file is missing.
      ValueError: naming the file, if a file is corrupt or holds the wrong shape,
        dtype or labels.
    """
    directory = os.fspath(directory)
    missing = missing_files(directory)
    if missing:
        raise DataNotFoundError(
            f"{directory} lacks {', '.join(missing)} (gzipped or not)")
    paths = {name: idx_file_path(directory, name) for name in MNIST_FORMAT_FILES}
    splits = []
    for images_name, labels_name in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
        images = read_idx(paths[images_name])
        labels = read_idx(paths[labels_name])
        _check_split(images, labels, paths[images_name], paths[labels_name])
        splits.append((images, labels))
    return splits[0], splits[1]


def search_order(data_dir: str | os.PathLike | None, env_var: str,
                 defaults: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str | None]]:
    """Builds the (origin, directory) list: `data_dir`, then `$env_var`, then `defaults`."""
    return ([("the data_dir argument", data_dir and os.fspath(data_dir)),
             (f"${env_var}", os.environ.get(env_var))] + list(defaults))
