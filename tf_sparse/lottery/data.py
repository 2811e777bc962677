"""Data for lottery runs: batches from any step on, in an order fixed by a seed.

A lottery level trains from the rewind step k to T with "the data order
continuing from k": the batch at step s is batch `s % steps_per_epoch` of
epoch `s // steps_per_epoch`, and epoch e's order depends only on
(data seed, e) (see `tf_sparse.data.pipelines`). So a level, a resumed level,
and a copy trained with another data seed all get their batches from
`train(seed, start_step)`.

Example:

    data = ArrayData(x_train, y_train, x_test, y_test, batch_size=128,
                     preprocess=pipelines.scale_grayscale())
    ds = data.train(seed=0, start_step=500)   # endless, starts at step 500
"""

import numpy as np

from tf_sparse.data import pipelines


class ArrayData:
    """In-memory arrays (Fashion-MNIST, MNIST, CIFAR-10, synthetic)."""

    def __init__(self, x_train, y_train, x_test, y_test, *, batch_size,
                 preprocess=None, augment=None, eval_batch_size=1000,
                 train_eval_examples=10000, num_classes=None):
        self.x_train, self.y_train = x_train, np.asarray(y_train)
        self.x_test, self.y_test = x_test, np.asarray(y_test)
        self.batch_size = int(batch_size)
        self.preprocess = preprocess
        self.augment = augment
        self.eval_batch_size = int(eval_batch_size)
        self.train_eval_examples = int(train_eval_examples)
        self.steps_per_epoch = len(x_train) // self.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"batch_size={batch_size} is larger than the training set "
                f"({len(x_train)} examples).")
        self.num_classes = int(num_classes or (
            max(int(self.y_train.max()), int(self.y_test.max())) + 1))
        self.input_shape = None
        self._test = None
        self._train_eval = None

    def train(self, seed, start_step):
        """Endless training batches from `start_step` on, data seed `seed`."""
        epoch, skip = divmod(int(start_step), self.steps_per_epoch)
        ds = pipelines.from_arrays(
            self.x_train, self.y_train, self.batch_size, training=True,
            seed=int(seed), preprocess=self.preprocess, augment=self.augment,
            repeat=True, start_epoch=epoch)
        return ds.skip(skip) if skip else ds

    def test(self):
        if self._test is None:
            self._test = pipelines.from_arrays(
                self.x_test, self.y_test, self.eval_batch_size,
                training=False, preprocess=self.preprocess).cache()
        return self._test

    def train_eval(self):
        """The first `train_eval_examples` training examples, unaugmented."""
        if self._train_eval is None:
            n = min(self.train_eval_examples, len(self.x_train))
            self._train_eval = pipelines.from_arrays(
                self.x_train[:n], self.y_train[:n], self.eval_batch_size,
                training=False, preprocess=self.preprocess).cache()
        return self._train_eval

    def element_shape(self):
        return tuple(self.test().element_spec[0].shape[1:])


class ImageNetData:
    """ImageNet from TFRecord shards or tfds (see `tf_sparse.data.imagenet`)."""

    def __init__(self, data_dir, *, batch_size, eval_batch_size=None,
                 train_eval_examples=10000, image_size=224):
        from tf_sparse.data import imagenet
        self._imagenet = imagenet
        self.data_dir = data_dir
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.image_size = image_size
        self.train_eval_examples = int(train_eval_examples)
        _, num_train = imagenet.imagenet_dataset(
            data_dir, "train", self.batch_size, training=True,
            image_size=image_size, repeat=True)
        self.steps_per_epoch = num_train // self.batch_size
        self.num_classes = imagenet.NUM_CLASSES

    def train(self, seed, start_step):
        epoch, skip = divmod(int(start_step), self.steps_per_epoch)
        ds, _ = self._imagenet.imagenet_dataset(
            self.data_dir, "train", self.batch_size, training=True,
            seed=int(seed), image_size=self.image_size, repeat=True,
            start_epoch=epoch)
        return ds.skip(skip) if skip else ds

    def test(self):
        ds, _ = self._imagenet.imagenet_dataset(
            self.data_dir, "validation", self.eval_batch_size, training=False,
            image_size=self.image_size)
        return ds

    def train_eval(self):
        ds, _ = self._imagenet.imagenet_dataset(
            self.data_dir, "train", self.eval_batch_size, training=False,
            image_size=self.image_size)
        return ds.take(-(-self.train_eval_examples // self.eval_batch_size))

    def element_shape(self):
        return (self.image_size, self.image_size, 3)


_ARRAY_CACHE = {}


def make_data(config):
    """The data of a lottery config (arrays are read once per process)."""
    name = config.dataset.strip().lower().replace("-", "_")
    common = dict(batch_size=config.batch_size,
                  eval_batch_size=config.eval_batch_size,
                  train_eval_examples=config.train_eval_examples)
    data_dir = config.data_dir or None
    if name == "imagenet":
        return ImageNetData(data_dir, **common)
    key = (name, data_dir)
    if name in ("fashion_mnist", "mnist"):
        if key not in _ARRAY_CACHE:
            if name == "mnist":
                from tf_sparse.data import mnist
                _ARRAY_CACHE[key] = mnist.load_mnist(data_dir)
            else:
                from tf_sparse.data import fashion_mnist
                _ARRAY_CACHE[key] = fashion_mnist.load_fashion_mnist(data_dir)
        (x, y), (xt, yt) = _ARRAY_CACHE[key]
        return ArrayData(x, y, xt, yt, preprocess=pipelines.scale_grayscale(),
                         num_classes=10, **common)
    if name == "cifar10":
        from tf_sparse.data import cifar10
        if key not in _ARRAY_CACHE:
            _ARRAY_CACHE[key] = cifar10.load_cifar10_arrays(data_dir)
        (x, y), (xt, yt) = _ARRAY_CACHE[key]
        return ArrayData(
            x, y, xt, yt, preprocess=cifar10.normalize_cifar10,
            augment=cifar10.augment_cifar10 if config.augment else None,
            num_classes=10, **common)
    raise ValueError(
        f"Unknown dataset {config.dataset!r} for lottery runs; accepted: "
        "fashion_mnist, mnist, cifar10, imagenet.")
