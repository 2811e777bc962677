"""Input pipelines for the data sets of the sparse-training papers.

    fashion_mnist   IDX files (Debian package dataset-fashion-mnist)
    mnist           tfds (download=False) or IDX files
    cifar10         python pickle batches (safe unpickler), binary batches, or tfds
    imagenet        TFRecord shards or tfds imagenet2012

Every `*_datasets` function returns `(train, validation or None, test, info)`;
`get_datasets(name, **kwargs)` wraps them in a `DatasetBundle`. Training
pipelines are deterministic for a seed (see `pipelines`).

Example:

    >>> import tf_sparse.data as tsd
    >>> bundle = tsd.get_datasets("fashion_mnist", batch_size=100, seed=0)  # doctest: +SKIP
    >>> model.fit(bundle.train, epochs=10, validation_data=bundle.test)     # doctest: +SKIP
"""

from tf_sparse.data.cifar10 import (augment_cifar10, cifar10_datasets, detect_cifar10_format,
                                    load_cifar10_arrays, normalize_cifar10)
from tf_sparse.data.errors import DataNotFoundError, UnsafePickleError
from tf_sparse.data.fashion_mnist import find_fashion_mnist_dir, load_fashion_mnist
from tf_sparse.data.idx import parse_idx, read_idx
from tf_sparse.data.imagenet import (find_tfrecord_shards, imagenet_dataset, imagenet_datasets,
                                     normalize_imagenet, preprocess_for_eval,
                                     preprocess_for_train, verify_tfrecord_files)
from tf_sparse.data.mnist import load_mnist, mnist_datasets
from tf_sparse.data.pipelines import (epoch_order, fashion_mnist_datasets, from_arrays,
                                      image_classification_datasets, split_validation)
from tf_sparse.data.registry import DATASET_NAMES, DatasetBundle, get_datasets
from tf_sparse.data.safe_pickle import load_plain_pickle

__all__ = [
    "DATASET_NAMES", "DataNotFoundError", "DatasetBundle", "UnsafePickleError",
    "augment_cifar10", "cifar10_datasets", "detect_cifar10_format", "epoch_order",
    "fashion_mnist_datasets", "find_fashion_mnist_dir", "find_tfrecord_shards", "from_arrays",
    "get_datasets", "image_classification_datasets", "imagenet_dataset", "imagenet_datasets",
    "load_cifar10_arrays", "load_fashion_mnist", "load_mnist", "load_plain_pickle",
    "mnist_datasets", "normalize_cifar10", "normalize_imagenet", "parse_idx",
    "preprocess_for_eval", "preprocess_for_train", "read_idx", "split_validation",
    "verify_tfrecord_files",
]
