"""Where a run's data enters: one object per data set with one interface.

Every data object a run trains on has

- `train(seed, start_step)`: an endless dataset of global batches that
  starts at step `start_step` of the run: the batch at step `s` is batch
  `s % steps_per_epoch` of epoch `s // steps_per_epoch`, and epoch `e`
  plays the first `steps_per_epoch` batches of the order drawn from
  `(seed, e)` (see `tf_sparse.data.pipelines`). So a resumed run, a lottery
  level rewound to step k and a copy with another data order all read from
  here;
- `test()`, `validation()` (None without a held-out split), `evaluation()`
  (the validation split if there is one, else the test set);
- `train_eval_arrays(n, seed)` / `train_eval(n, seed)`: a fixed random
  subset of the training set in evaluation mode (training loss and error
  measured apart from `fit`'s running average);
- `first_batch(seed, batch_size)`: the run's first training batch (SNIP);
- `num_train`, `num_test`, `num_classes`, `input_shape`, `steps_per_epoch`,
  `batch_size`.

`make_data(config, global_batch_size)` builds the configured one:
Fashion-MNIST, MNIST, CIFAR-10 and GLUE token ids are `ArrayData`,
ImageNet is `ImageNetData`, `synthetic_data=True` is `SyntheticData`;
every GLUE classification task (`glue/rte`, TSV files or tfds) is
`ArrayData` of token ids in the model's `text_format`.

Example:

    data = make_data(config, global_batch_size=100)
    batches = data.train(seed=17, start_step=1250)   # resume at step 1250
"""

import numpy as np
import tensorflow as tf

from tf_sparse.data import pipelines

# Arrays read from disk, once per process: {(dataset, data_dir): arrays}.
_ARRAYS = {}

DATASETS = ("fashion_mnist", "mnist", "cifar10", "imagenet", "glue/<task>")
# Shape and classes of synthetic images per data set.
SYNTHETIC = {
    "cifar10": {"image_size": 32, "num_classes": 10, "num_train": 50000},
    "imagenet": {"image_size": 224, "num_classes": 1000,
                 "num_train": 1281167},
}


class Data:
    """What every data object shares (see the module docstring)."""

    def _set_epoch_length(self, steps_per_epoch):
        full = self.num_train // self.batch_size
        if full < 1:
            raise ValueError(
                f"batch_size={self.batch_size} is larger than the training "
                f"set ({self.num_train} examples).")
        self.steps_per_epoch = min(full, steps_per_epoch) if (
            steps_per_epoch) else full

    def first_batch(self, seed, batch_size=None):
        del batch_size  # only in-memory data can re-batch
        return next(iter(self.train(seed, 0)))

    def validation(self):
        return None

    def evaluation(self):
        validation = self.validation()
        return self.test() if validation is None else validation


def _prepared(x, y, preprocess):
    if preprocess is None:
        return np.asarray(x), np.asarray(y)
    px, py = preprocess(tf.constant(x), tf.constant(y))
    return np.asarray(px), np.asarray(py)


class ArrayData(Data):
    """Training and test sets held in memory as arrays.

    Args:
      x_train, y_train, x_test, y_test: arrays (labels integers).
      batch_size: global training batch.
      preprocess: `f(images, labels)` on a batch (scaling, normalisation).
      augment: `f(images, labels, seed)` on a training batch.
      eval_batch_size: batch of evaluation passes.
      validation_fraction: training examples held out for validation,
        chosen by `split_seed` (`pipelines.split_validation`).
      steps_per_epoch: > 0 plays only the first this many batches of every
        epoch's order.
      num_classes: default: the largest label + 1.
    """

    def __init__(self, x_train, y_train, x_test, y_test, *, batch_size,
                 preprocess=None, augment=None, eval_batch_size=1000,
                 validation_fraction=0.0, split_seed=0, steps_per_epoch=0,
                 num_classes=None):
        y_train = np.asarray(y_train)
        y_test = np.asarray(y_test)
        self.x_val = self.y_val = None
        if validation_fraction:
            (x_train, y_train), (self.x_val, self.y_val) = (
                pipelines.split_validation(x_train, y_train,
                                           validation_fraction, split_seed))
        self.x_train, self.y_train = x_train, y_train
        self.x_test, self.y_test = x_test, y_test
        self.num_test = len(x_test)
        self.batch_size = int(batch_size)
        self.preprocess = preprocess
        self.augment = augment
        self.eval_batch_size = int(eval_batch_size)
        self.num_train = len(x_train)
        self._set_epoch_length(steps_per_epoch)
        self.num_classes = int(num_classes or (
            max(int(y_train.max()), int(y_test.max())) + 1))
        self._cache = {}
        self.input_shape = tuple(self.test().element_spec[0].shape[1:])

    def train(self, seed, start_step):
        epoch, offset = divmod(int(start_step), self.steps_per_epoch)
        ds = pipelines.from_arrays(
            self.x_train, self.y_train, self.batch_size, training=True,
            seed=int(seed), preprocess=self.preprocess, augment=self.augment,
            repeat=True, start_epoch=epoch,
            max_batches_per_epoch=self.steps_per_epoch)
        return ds.skip(offset) if offset else ds

    def first_batch(self, seed, batch_size=None):
        ds = pipelines.from_arrays(
            self.x_train, self.y_train, batch_size or self.batch_size,
            training=True, seed=int(seed), preprocess=self.preprocess,
            augment=self.augment)
        return next(iter(ds))

    def _evaluation_set(self, name, x, y):
        if name not in self._cache:
            self._cache[name] = pipelines.from_arrays(
                x, y, self.eval_batch_size, training=False,
                preprocess=self.preprocess).cache()
        return self._cache[name]

    def test(self):
        return self._evaluation_set("test", self.x_test, self.y_test)

    def validation(self):
        if self.x_val is None:
            return None
        return self._evaluation_set("validation", self.x_val, self.y_val)

    def evaluation_arrays(self):
        """The validation split (else the test set), preprocessed arrays."""
        if self.x_val is not None:
            return _prepared(self.x_val, self.y_val, self.preprocess)
        return _prepared(self.x_test, self.y_test, self.preprocess)

    def train_subset(self, n, seed):
        """Indices of the fixed training subset: the first `n` of the
        permutation drawn from `seed + 1`."""
        order = np.random.default_rng(seed + 1).permutation(self.num_train)
        return order[:n]

    def train_eval_arrays(self, n, seed):
        index = self.train_subset(n, seed)
        return _prepared(self.x_train[index], self.y_train[index],
                         self.preprocess)

    def train_eval(self, n, seed):
        key = ("train_eval", n, seed)
        if key not in self._cache:
            index = self.train_subset(n, seed)
            self._cache[key] = pipelines.from_arrays(
                self.x_train[index], self.y_train[index],
                self.eval_batch_size, training=False,
                preprocess=self.preprocess).cache()
        return self._cache[key]


class SyntheticData(Data):
    """One random batch of images of a data set's shape, played as every
    batch (smoke tests and throughput benchmarks; nothing to learn).

    Step `s` plays the batch in the order drawn from `(seed, s)`, so resuming
    works as with real data.
    """

    def __init__(self, dataset, *, batch_size, seed, image_size=0,
                 num_classes=0, eval_batch_size=1000, steps_per_epoch=0):
        spec = SYNTHETIC.get(dataset)
        if spec is None:
            raise ValueError(f"synthetic_data: dataset={dataset!r} has no "
                             f"synthetic form; accepted: {', '.join(SYNTHETIC)}")
        size = image_size or spec["image_size"]
        self.num_classes = num_classes or spec["num_classes"]
        self.input_shape = (size, size, 3)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size)
        self.num_train = spec["num_train"]
        self.num_test = self.batch_size
        self._set_epoch_length(steps_per_epoch)
        rng = np.random.default_rng(seed)
        self._x = rng.integers(0, 256, (self.batch_size,) + self.input_shape,
                               dtype=np.uint8)
        self._y = rng.integers(0, self.num_classes,
                               self.batch_size).astype(np.int32)

    @staticmethod
    def _normalise(images, labels):
        return (tf.cast(images, tf.float32) - 127.5) / 64.0, labels

    def train(self, seed, start_step):
        return pipelines.from_arrays(
            self._x, self._y, self.batch_size, training=True, seed=int(seed),
            preprocess=self._normalise, repeat=True,
            start_epoch=int(start_step))

    def test(self):
        return pipelines.from_arrays(
            self._x, self._y, self.eval_batch_size, training=False,
            preprocess=self._normalise)

    def train_eval(self, n, seed):
        del n, seed
        return self.test()


class ImageNetData(Data):
    """ImageNet from TFRecord shards or tfds (`tf_sparse.data.imagenet`);
    `test()` is the official validation split."""

    def __init__(self, data_dir, *, batch_size, eval_batch_size=None,
                 image_size=0, source="auto", steps_per_epoch=0,
                 num_classes=0):
        from tf_sparse.data import imagenet
        self._imagenet = imagenet
        self.data_dir = data_dir or None
        self.source = source
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.image_size = image_size or imagenet.IMAGE_SIZE
        self.input_shape = (self.image_size, self.image_size, 3)
        self.num_classes = num_classes or imagenet.NUM_CLASSES
        _, self.num_test = self._split("validation", self.eval_batch_size,
                                       training=False)
        _, self.num_train = self._split("train", self.batch_size,
                                        training=True)
        self._set_epoch_length(steps_per_epoch)

    def _split(self, split, batch_size, *, training, **kwargs):
        return self._imagenet.imagenet_dataset(
            self.data_dir, split, batch_size, training=training,
            image_size=self.image_size, source=self.source,
            num_classes=self.num_classes, **kwargs)

    def train(self, seed, start_step):
        epoch, offset = divmod(int(start_step), self.steps_per_epoch)
        ds, _ = self._split("train", self.batch_size, training=True,
                            seed=int(seed), start_epoch=epoch, repeat=True,
                            num_examples=self.num_train,
                            max_batches_per_epoch=self.steps_per_epoch)
        return ds.skip(offset) if offset else ds

    def test(self):
        return self._split("validation", self.eval_batch_size,
                           training=False, num_examples=self.num_test)[0]

    def train_eval(self, n, seed):
        del seed
        ds = self._split("train", self.eval_batch_size, training=False,
                         num_examples=self.num_train)[0]
        return ds.take(-(-n // self.eval_batch_size))


def arrays(dataset, data_dir=None, source="auto"):
    """`(x_train, y_train), (x_test, y_test)` of an array data set
    (fashion_mnist, mnist, cifar10), read from disk once per process."""
    key = (dataset, data_dir, source)
    if key not in _ARRAYS:
        if dataset == "fashion_mnist":
            from tf_sparse.data import fashion_mnist
            _ARRAYS[key] = fashion_mnist.load_fashion_mnist(data_dir)
        elif dataset == "mnist":
            from tf_sparse.data import mnist
            _ARRAYS[key] = mnist.load_mnist(data_dir)
        elif dataset == "cifar10":
            from tf_sparse.data import cifar10
            _ARRAYS[key] = cifar10.load_cifar10_arrays(data_dir,
                                                       source=source)
        else:
            raise ValueError(f"{dataset!r} is not an array data set; "
                             "accepted: fashion_mnist, mnist, cifar10.")
    return _ARRAYS[key]


def text_format(config):
    """How a run's text reaches its model: "packed" (`[n, 3, length]`
    token ids, segment ids, padding mask) for keras-hub models
    (`model="hub:<family>"`, `tf_sparse.models.hub`), "ids" (`[n, length]`
    word ids of a `TextVectorization`) for the zoo's `bert_encoder`."""
    return "packed" if str(config.model).startswith("hub:") else "ids"


def _text_arrays(config):
    """`((x, y), (x_dev, y_dev))` of a GLUE task, tokenised for the model:
    "ids" as the SST-2 runs always were (one sentence per example),
    "packed" with the word vocabulary or the preset's preprocessor."""
    from tf_sparse.data import glue, glue_tasks, text_packing
    task, spec = glue_tasks.task(config.dataset)
    if not spec.classes:
        raise ValueError(f"dataset={config.dataset!r} is a regression task; "
                         "the run engine trains classifiers.")
    fmt = text_format(config)
    tokenizer = config_option(config, "tokenizer")
    key = (task, config.data_dir, config.data_source, fmt, tokenizer,
           config.vocab_size, config.sequence_length)
    if key in _ARRAYS:
        return _ARRAYS[key]
    dev = spec.dev_files[0][0]
    data = glue_tasks.load_glue(task, config.data_dir or None,
                                source=config.data_source,
                                splits=("train", dev))
    train, test = data["train"], data[dev]
    if fmt == "ids":
        if len(train.texts) != 1 or tokenizer:
            raise ValueError(
                f"model={config.model!r} reads one sentence as word ids; "
                f"{task} has {len(train.texts)} text field(s) and tokenizer="
                f"{tokenizer!r}. Use a keras-hub model (model='hub:bert', "
                "...) for sentence pairs and preset tokenizers.")
        vectorizer = glue.make_vectorizer(
            train.texts[0], config.vocab_size, config.sequence_length)
        x, xt = (glue.tokenize(vectorizer, t.texts[0]) for t in (train, test))
    elif tokenizer:
        x, xt = (text_packing.preset_pack(tokenizer, t.texts,
                                          config.sequence_length)
                 for t in (train, test))
    else:
        vocabulary = text_packing.WordVocabulary.build(
            zip(*train.texts), config.vocab_size)
        x, xt = (text_packing.pack_texts(t.texts, config.sequence_length,
                                         vocabulary=vocabulary)
                 for t in (train, test))
    _ARRAYS[key] = ((x, train.labels), (xt, test.labels))
    return _ARRAYS[key]


def config_option(config, name):
    """A text key that older configs (and kinds without it) lack: ''."""
    return config[name] if name in config else ""


def make_data(config, global_batch_size):
    """The data object of `config` (see the module docstring)."""
    name = config.dataset.strip().lower().replace("-", "_")
    common = dict(batch_size=global_batch_size,
                  eval_batch_size=config.eval_batch_size,
                  steps_per_epoch=config.steps_per_epoch)
    if config.synthetic_data:
        return SyntheticData(name, seed=config.seed,
                             image_size=config.image_size,
                             num_classes=config.num_classes, **common)
    data_dir = config.data_dir or None
    if name == "imagenet":
        return ImageNetData(data_dir, image_size=config.image_size,
                            source=config.data_source,
                            num_classes=config.num_classes, **common)
    in_memory = dict(validation_fraction=config.validation_fraction,
                     split_seed=config.seed, **common)
    if name in ("fashion_mnist", "mnist"):
        (x, y), (xt, yt) = arrays(name, data_dir)
        return ArrayData(x, y.astype(np.int32), xt, yt.astype(np.int32),
                         preprocess=pipelines.scale_grayscale(),
                         num_classes=10, **in_memory)
    if name == "cifar10":
        from tf_sparse.data import cifar10
        if config.image_size not in (0, 32):
            raise ValueError(f"image_size={config.image_size}: CIFAR-10 "
                             "images are 32x32")
        (x, y), (xt, yt) = arrays(name, data_dir, config.data_source)
        return ArrayData(
            x, y, xt, yt, preprocess=cifar10.normalize_cifar10,
            augment=cifar10.augment_cifar10 if config.augment else None,
            num_classes=config.num_classes or 10, **in_memory)
    if name.startswith("glue/"):
        from tf_sparse.data import glue_tasks
        (x, y), (xt, yt) = _text_arrays(config)
        return ArrayData(x, np.asarray(y, np.int32), xt,
                         np.asarray(yt, np.int32),
                         num_classes=glue_tasks.task(name)[1].num_classes,
                         **in_memory)
    raise ValueError(f"Unknown dataset {config.dataset!r}; accepted: "
                     f"{', '.join(DATASETS)}.")
