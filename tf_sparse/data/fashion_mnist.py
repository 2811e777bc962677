"""Load Fashion-MNIST from its four IDX files into numpy arrays.

Directories are searched in this order, and the first one that holds all four
files (gzipped or not) is used:

1. the `data_dir` argument,
2. the environment variable `TF_SPARSE_FASHION_MNIST_DIR`,
3. `/usr/share/datasets/fashion-mnist`, where Debian's package
   `dataset-fashion-mnist` installs them.

Debian recompressed the files, so their checksums differ from upstream's; they
are validated by their IDX headers and lengths instead.

Example:

    >>> from tf_sparse.data import load_fashion_mnist
    >>> (x_train, y_train), (x_test, y_test) = load_fashion_mnist()  # doctest: +SKIP
    >>> x_train.shape, y_train.shape, x_test.shape, x_train.dtype  # doctest: +SKIP
    ((60000, 28, 28), (60000,), (10000, 28, 28), dtype('uint8'))
"""

from __future__ import annotations

import os

import numpy as np

from tf_sparse.data.mnist_format import find_mnist_format_dir, load_mnist_format, search_order

ENV_VAR = "TF_SPARSE_FASHION_MNIST_DIR"
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
NUM_CLASSES = 10
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

HOW_TO_GET = (
    "`apt-get install dataset-fashion-mnist` (installs them in "
    f"{DEBIAN_DIR}), or download the four .gz files from the Fashion-MNIST "
    "project into a directory and pass it as data_dir or set "
    f"${ENV_VAR}; with internet, `tfds.load('fashion_mnist')` also works.")


def find_fashion_mnist_dir(data_dir: str | os.PathLike | None = None) -> str:
    """Returns the first directory, in search order, that holds the four files.

    Raises:
      DataNotFoundError: naming the directories searched, the expected files and
        how to get them.
    """
    return find_mnist_format_dir(
        search_order(data_dir, ENV_VAR,
                     [("Debian package dataset-fashion-mnist", DEBIAN_DIR)]),
        dataset="Fashion-MNIST", how_to_get=HOW_TO_GET)


def load_fashion_mnist(data_dir: str | os.PathLike | None = None
                       ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Returns Fashion-MNIST as `(x_train, y_train), (x_test, y_test)`.

    Images are uint8 arrays (60000, 28, 28) and (10000, 28, 28); labels uint8
    arrays (60000,) and (10000,) with values 0-9 (see `CLASS_NAMES`).

    Raises:
      DataNotFoundError: (a FileNotFoundError) if no searched directory holds
        all four files.
      ValueError: naming the file, if one is corrupt or holds the wrong shape.
    """
    return load_mnist_format(find_fashion_mnist_dir(data_dir))
