"""Load small tfds data sets (MNIST, CIFAR-10) into numpy arrays without downloading.

tfds is imported only when called (the import takes a while). `download=False`
makes a missing data set fail in under a second; offline, `download=True` would
retry for minutes.

Example:

    >>> from tf_sparse.data.tfds_arrays import load_tfds_arrays
    >>> (x_tr, y_tr), (x_te, y_te) = load_tfds_arrays(   # doctest: +SKIP
    ...     "cifar10", ["train", "test"], data_dir=None, how_to_get="...")
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from tf_sparse.data.errors import DataNotFoundError

_CHUNK = 4096


def load_tfds_arrays(name: str, splits: Sequence[str], *, data_dir: Optional[str],
                     how_to_get: str, download: bool = False):
    """Returns `[(images, labels), ...]` (uint8 images, int64 labels), one pair per split.

    Raises:
      DataNotFoundError: if tfds has no prepared `name` in `data_dir` (tfds's
        default directory when None), with `how_to_get` in the message.
    """
    import tensorflow_datasets as tfds  # slow import; only on this path

    try:
        datasets = tfds.load(name, split=list(splits), data_dir=data_dir, as_supervised=True,
                             download=download)
    except (AssertionError, FileNotFoundError) as err:
        raise DataNotFoundError(
            f"tfds has no prepared {name!r} in {data_dir or 'its default data directory'} "
            f"(download={download}: {err}). To get it: {how_to_get}") from err
    arrays = []
    for ds in datasets:
        # Batches of a few thousand, not batch_size=-1: same result, bounded memory
        # while reading, and it also works under tfds.testing.mock_data.
        images, labels = [], []
        for image_batch, label_batch in tfds.as_numpy(ds.batch(_CHUNK)):
            images.append(np.asarray(image_batch, np.uint8))
            labels.append(np.asarray(label_batch, np.int64))
        arrays.append((np.concatenate(images), np.concatenate(labels)))
    return arrays
