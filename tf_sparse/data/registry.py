"""One entry point for every data set: `get_datasets(name, **kwargs)` -> DatasetBundle.

Example:

    >>> from tf_sparse.data import get_datasets
    >>> bundle = get_datasets("fashion_mnist", batch_size=100, seed=0,  # doctest: +SKIP
    ...                       validation_fraction=0.1)
    >>> bundle.input_shape, bundle.num_classes, bundle.steps_per_epoch  # doctest: +SKIP
    ((28, 28, 1), 10, 540)
    >>> model.fit(bundle.train, epochs=2, validation_data=bundle.validation)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class DatasetBundle:
    """The pipelines of one data set and what a training loop needs to know about them.

    Attributes:
      train: batches of (images, int32 labels), shuffled (and augmented where the
        data set's papers do), one epoch per iteration unless built with repeat=True.
      validation: held-out part of the training set, evaluated like `test`; None
        when no validation fraction was asked for.
      test: the evaluation split (ImageNet: the official validation split).
      num_classes: number of labels.
      input_shape: shape of one image, without the batch dimension.
      steps_per_epoch: batches in one training epoch.
      num_train_examples: examples in the training pipeline (after any split).
      info: everything else the loader reported (example counts per split,
        class names, batch size, seed).
    """
    train: tf.data.Dataset
    validation: Optional[tf.data.Dataset]
    test: tf.data.Dataset
    num_classes: int
    input_shape: tuple
    steps_per_epoch: int
    num_train_examples: int
    info: dict = dataclasses.field(default_factory=dict)


def _loaders() -> dict[str, Callable[..., Any]]:
    from tf_sparse.data.cifar10 import cifar10_datasets
    from tf_sparse.data.imagenet import imagenet_datasets
    from tf_sparse.data.mnist import mnist_datasets
    from tf_sparse.data.pipelines import fashion_mnist_datasets

    return {
        "fashion_mnist": fashion_mnist_datasets,
        "mnist": mnist_datasets,
        "cifar10": cifar10_datasets,
        "imagenet": imagenet_datasets,
    }


DATASET_NAMES = ("fashion_mnist", "mnist", "cifar10", "imagenet")


def get_datasets(name: str, **kwargs) -> DatasetBundle:
    """Builds the named data set's pipelines; `kwargs` go to its loader.

    Names: "fashion_mnist" (`fashion_mnist_datasets`), "mnist"
    (`mnist_datasets`), "cifar10" (`cifar10_datasets`), "imagenet"
    (`imagenet_datasets`). Case and "-" versus "_" do not matter.

    Raises:
      ValueError: naming `name` and the accepted names, if it is unknown.
      DataNotFoundError: from the loader, if the data is not on this machine.
    """
    key = name.strip().lower().replace("-", "_") if isinstance(name, str) else name
    loaders = _loaders()
    if key not in loaders:
        raise ValueError(
            f"unknown data set {name!r}; accepted names are {', '.join(map(repr, DATASET_NAMES))}")
    train, validation, test, info = loaders[key](**kwargs)
    return DatasetBundle(
        train=train, validation=validation, test=test, num_classes=info["num_classes"],
        input_shape=tuple(info["input_shape"]), steps_per_epoch=info["steps_per_epoch"],
        num_train_examples=info["num_examples"]["train"], info=info)
