"""CIFAR-10 and ImageNet runs on any strategy: what `tools/train_cifar10.py`
and `tools/train_imagenet.py` run.

A run is a config (`default_config("cifar10" | "imagenet")` changed by a file
in configs/cifar10/ or configs/imagenet/), a tf.distribute strategy and a
workdir:

    workdir/run.json        the config the run was started with
    workdir/setup.json      replicas, global/per-replica batch, learning-rate
                            scaling, precision, steps (also printed at start)
    workdir/checkpoints/    model, masks, optimizer slots, algorithm state,
                            epochs and batches done (after every finished
                            epoch and every `checkpoint_every_steps` batches)
    workdir/tensorboard/    loss, accuracy, learning rate, densities, img/s
    workdir/results.json    test metrics and the density report at the end

Started again on the same workdir a run continues after its last finished
epoch; data order and augmentation depend only on (seed, epoch), so the
resumed run sees the batches the uninterrupted run would have seen (as in
`tf_sparse.experiment`, whose workdir identity check this module reuses).

What the config controls, in one place each: the global batch and its
split over replicas, learning-rate scaling with the global batch
(`tf_sparse.distribute.batch_plan`), the papers' learning-rate schedules
(`tf_sparse.schedules`), label smoothing, weight decay (PyTorch-style L2 in
the loss, or decoupled), mixed precision (`precision="auto"`: bfloat16 on
TPU, float16 with dynamic loss scaling on GPU), `steps_per_execution`, and
the mask-update algorithm by registry name (`tf_sparse.algorithms.get`)
with its keyword arguments; `total_steps`, `steps_per_epoch` and `seed` are
passed to algorithms whose constructor takes them, so a new algorithm needs
no change here.

Example:

    from configs.cifar10 import resnet20_dense as cfg
    config = cfg.get_config()
    config.synthetic_data = True; config.max_steps = 2
    results = run(config, "runs/r20", strategy=distribute.create_strategy())
"""

from __future__ import annotations

import fnmatch
import inspect
import json
import math
import os
import shutil
import time

import keras
import numpy as np
import tensorflow as tf

from tf_sparse import algorithms
from tf_sparse import callbacks
from tf_sparse import checkpoints
from tf_sparse import diagnostics
from tf_sparse import distribute
from tf_sparse import experiment
from tf_sparse import models as models_lib
from tf_sparse import schedules
from tf_sparse import sparsification

DATASETS = ("cifar10", "imagenet")
LR_SCHEDULES = ("step", "cosine", "constant")
LR_UNITS = ("epochs", "steps")
OPTIMIZERS = ("sgd", "adam", "adamw")
WEIGHT_DECAY_MODES = ("l2", "decoupled")
# Keys besides experiment.IDENTITY_KEYS that a resumed run may not change.
EXTRA_IDENTITY_KEYS = ("image_size", "num_classes", "algorithm_params", "algorithm_kwargs",
                       "model_kwargs",
                       "synthetic_data", "validation_fraction")
# Errors the binaries report as one message (bad input), without a traceback.
EXPECTED_ERRORS = (ValueError, FileNotFoundError, distribute.TPUNotFoundError,
                   tf.errors.InvalidArgumentError, tf.errors.DataLossError)
# What an image data set provides when no file is read (synthetic data).
DATASET_DEFAULTS = {
    "cifar10": {"image_size": 32, "num_classes": 10, "num_train": 50000, "num_test": 10000},
    "imagenet": {"image_size": 224, "num_classes": 1000, "num_train": 1281167,
                 "num_test": 50000},
}


def default_config(dataset: str = "cifar10"):
    """Every key an image config may set, with its default (a locked ConfigDict).

    "cifar10" starts from sparse momentum's CIFAR-10 reference settings
    (sparse_learning main.py, papers.md A.2): batch 100, Nesterov SGD lr 0.1,
    momentum 0.9, weight decay 5e-4 (PyTorch L2), 100 epochs, lr x0.1 every
    25,000 iterations, 10% of the training set held out for validation, seed
    17. "imagenet" starts from the ResNet-50 recipe of the lottery-ticket
    ImageNet runs (open_lth / Stabilizing the LTH, papers.md B.4): global
    batch 1024, lr 0.1 per 256 images scaled linearly (0.4), 5-epoch linear
    warm-up, x0.1 at epochs 30, 60, 80 of 90, momentum 0.9, weight decay 1e-4.
    Config files state the source of every value they change.
    """
    import ml_collections
    if dataset not in DATASETS:
        raise ValueError(f"dataset={dataset!r}; accepted: {', '.join(DATASETS)}")
    cifar = dataset == "cifar10"
    c = ml_collections.ConfigDict()
    c.model = "resnet20" if cifar else "resnet50"
    c.model_kwargs = ml_collections.ConfigDict()   # e.g. dropout_rate for WRNs
    # Data.
    c.dataset = dataset
    c.data_dir = ""            # "" searches the loader's default places
    c.data_source = "auto"     # cifar10: auto/python/binary/tfds; imagenet: auto/tfrecord/tfds
    c.image_size = 0           # 0: 32 (CIFAR-10) or 224 (ImageNet)
    c.num_classes = 0          # 0: 10 or 1000
    c.augment = True           # CIFAR-10 pad-crop-flip (ImageNet: always random-resized crop)
    c.validation_fraction = 0.1 if cifar else 0.0  # CIFAR-10: training images held out
    c.synthetic_data = False   # random images of the right shape: smoke tests, benchmarks
    c.seed = 17 if cifar else 0
    # Length.
    c.epochs = 100 if cifar else 90
    c.steps_per_epoch = 0      # 0: training examples // global batch
    c.max_steps = 0            # > 0: stop after this many steps (schedules unchanged)
    c.checkpoint_every_steps = 0  # > 0: also checkpoint mid-epoch (a killed run resumes there)
    # Batch and learning rate.
    c.batch_size = 100 if cifar else 1024  # global, over all replicas
    c.per_replica_batch_size = 0  # > 0: global batch = this x replicas
    c.eval_batch_size = 1000
    c.eval_every_epochs = 1    # 0: evaluate only at the end
    c.eval_steps = 0           # 0: the whole evaluation split
    c.optimizer = "sgd"        # sgd / adam / adamw
    c.learning_rate = 0.1      # for lr_reference_batch_size
    c.lr_scaling = "none" if cifar else "linear"  # none / linear / sqrt
    c.lr_reference_batch_size = 0 if cifar else 256  # 0: batch_size (no scaling)
    c.lr_schedule = "step"     # step / cosine / constant
    c.lr_unit = "steps" if cifar else "epochs"  # unit of lr_boundaries, lr_decay_every
    c.lr_boundaries = () if cifar else (30, 60, 80)
    c.lr_decay_every = 25000.0 if cifar else 0.0  # > 0: decay every this many units
    c.lr_decay_factor = 0.1
    c.final_lr = 0.0           # cosine
    c.warmup_epochs = 0.0 if cifar else 5.0  # linear warm-up (any schedule)
    c.warmup_start_lr = 0.0
    c.momentum = 0.9
    c.nesterov = cifar
    c.weight_decay = 5e-4 if cifar else 1e-4
    c.weight_decay_mode = "l2"  # l2: PyTorch-style wd*w in the gradient; decoupled: Keras/AdamW
    c.weight_decay_exclude = ()  # fnmatch patterns on variable paths, e.g. ("*/gamma", "*/beta")
    c.label_smoothing = 0.0
    # Sparsity.
    c.sparsity = 0.95
    c.distribution = "uniform"
    c.keep_dense = ()
    c.rescale_init = False
    c.algorithm = "static"     # a name of tf_sparse.algorithms, or "dense" (no masks)
    # Hyperparameters of algorithms with `from_params` (sparse momentum, SET,
    # RigL, SNIP; the names of tools/train.py configs); None: paper default.
    c.algorithm_params = ml_collections.ConfigDict(dict.fromkeys(algorithms.CONFIG_PARAMS))
    # Constructor arguments of the others (e.g. AC/DC, GMP).
    c.algorithm_kwargs = ml_collections.ConfigDict()
    # Execution.
    c.precision = "auto"       # auto / float32 / mixed_float16 / mixed_bfloat16
    c.steps_per_execution = 1
    c.jit_compile = False
    c.run_eagerly = False      # debugging
    c.sync_batch_norm = True   # batch statistics over all replicas (see docs/design.md)
    c.log_every_steps = 100    # TensorBoard step-level loss; 0: epochs only
    c.lock()
    return c


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


class ImageData:
    """Training and evaluation pipelines of a run, rebuildable per start epoch.

    `train(start_epoch)` is an endless dataset of global batches playing
    epochs `start_epoch, start_epoch + 1, ...` (each from (seed, epoch) only);
    `evaluation()` is the test split (ImageNet: the official validation
    split), every example once; `validation()` the held-out part of the
    training set or None.
    """

    def __init__(self, config, global_batch_size: int):
        self.config = config
        self.batch_size = global_batch_size
        defaults = DATASET_DEFAULTS[config.dataset]
        self.image_size = config.image_size or defaults["image_size"]
        self.num_classes = config.num_classes or defaults["num_classes"]
        self.input_shape = (self.image_size, self.image_size, 3)
        if config.dataset == "cifar10" and self.image_size != 32 and not config.synthetic_data:
            raise ValueError(f"image_size={config.image_size}: CIFAR-10 images are 32x32")
        if config.synthetic_data:
            self._init_synthetic(defaults)
        elif config.dataset == "cifar10":
            self._init_cifar10()
        else:
            self._init_imagenet()

    # -- synthetic -------------------------------------------------------------
    def _init_synthetic(self, defaults):
        from tf_sparse.data import pipelines
        self.source = "synthetic"
        self.num_train = defaults["num_train"]
        self.num_test = self.batch_size
        rng = np.random.default_rng(self.config.seed)
        self._x = rng.integers(0, 256, (self.batch_size,) + self.input_shape, dtype=np.uint8)
        self._y = rng.integers(0, self.num_classes, self.batch_size).astype(np.int32)
        self._pipelines = pipelines

    # -- CIFAR-10 ----------------------------------------------------------------
    def _init_cifar10(self):
        from tf_sparse.data import cifar10, pipelines
        self.source = f"cifar10 ({self.config.data_source})"
        self._train_arrays, self._test_arrays = cifar10.load_cifar10_arrays(
            self.config.data_dir or None, source=self.config.data_source)
        self._cifar10, self._pipelines = cifar10, pipelines
        info = self._cifar_pipelines(0)[3]
        self.num_train = info["num_examples"]["train"]
        self.num_validation = info["num_examples"]["validation"]
        self.num_test = info["num_examples"]["test"]

    def _cifar_pipelines(self, start_epoch):
        c = self.config
        return self._pipelines.image_classification_datasets(
            self._train_arrays, self._test_arrays, batch_size=self.batch_size, seed=c.seed,
            num_classes=self.num_classes, validation_fraction=c.validation_fraction,
            preprocess=self._cifar10.normalize_cifar10,
            augment=self._cifar10.augment_cifar10 if c.augment else None,
            eval_batch_size=c.eval_batch_size, drop_remainder=True, repeat=True,
            start_epoch=start_epoch)

    # -- ImageNet ----------------------------------------------------------------
    def _init_imagenet(self):
        from tf_sparse.data import imagenet
        self._imagenet = imagenet
        self.source = f"imagenet ({self.config.data_source})"
        _, self.num_test = self._imagenet_split("validation", 0)
        _, self.num_train = self._imagenet_split("train", 0)

    def _imagenet_split(self, split, start_epoch, num_examples=None):
        c = self.config
        training = split == "train"
        return self._imagenet.imagenet_dataset(
            c.data_dir or None, split, self.batch_size if training else c.eval_batch_size,
            training=training, seed=c.seed, image_size=self.image_size, source=c.data_source,
            repeat=training, start_epoch=start_epoch, num_examples=num_examples)

    # -- the pipelines ---------------------------------------------------------
    def _normalise_synthetic(self, images, labels):
        return (tf.cast(images, tf.float32) - 127.5) / 64.0, labels

    def train(self, start_epoch: int) -> tf.data.Dataset:
        if self.source == "synthetic":
            return self._pipelines.from_arrays(
                self._x, self._y, self.batch_size, training=True, seed=self.config.seed,
                preprocess=self._normalise_synthetic, repeat=True, start_epoch=start_epoch)
        if self.config.dataset == "cifar10":
            return self._cifar_pipelines(start_epoch)[0]
        return self._imagenet_split("train", start_epoch, self.num_train)[0]

    def evaluation(self) -> tf.data.Dataset:
        if self.source == "synthetic":
            return self._pipelines.from_arrays(
                self._x, self._y, self.config.eval_batch_size, training=False,
                preprocess=self._normalise_synthetic)
        if self.config.dataset == "cifar10":
            return self._cifar_pipelines(0)[2]
        return self._imagenet_split("validation", 0, self.num_test)[0]

    def validation(self):
        if self.source == "synthetic" or self.config.dataset != "cifar10":
            return None
        return self._cifar_pipelines(0)[1]


# --------------------------------------------------------------------------
# Model, loss, optimizer, algorithm
# --------------------------------------------------------------------------


class SparseCategoricalCrossentropyWithSmoothing(keras.losses.Loss):
    """Cross-entropy on integer labels and logits, with label smoothing.

    Keras's SparseCategoricalCrossentropy has no label smoothing; this is
    `CategoricalCrossentropy(label_smoothing=s)` on one-hot labels: targets
    `(1 - s) * onehot + s / num_classes`, as in the papers' ImageNet recipes.
    """

    def __init__(self, num_classes, label_smoothing=0.1,
                 name="sparse_categorical_crossentropy_smoothed", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        labels = keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,))
        onehot = keras.ops.one_hot(labels, self.num_classes, dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            onehot, y_pred, from_logits=True, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "label_smoothing": self.label_smoothing}


def make_loss(config, num_classes):
    if not 0.0 <= config.label_smoothing < 1.0:
        raise ValueError(f"label_smoothing={config.label_smoothing!r} must be in [0, 1)")
    if config.label_smoothing:
        return SparseCategoricalCrossentropyWithSmoothing(num_classes, config.label_smoothing)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def learning_rate_schedule(config, peak_lr, steps_per_epoch, total_steps):
    """The configured schedule (`tf_sparse.schedules`), boundaries resolved to steps."""
    if config.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule={config.lr_schedule!r}; accepted: "
                         f"{', '.join(LR_SCHEDULES)}")
    if config.lr_unit not in LR_UNITS:
        raise ValueError(f"lr_unit={config.lr_unit!r}; accepted: {', '.join(LR_UNITS)}")
    unit = steps_per_epoch if config.lr_unit == "epochs" else 1
    warmup = int(math.floor(config.warmup_epochs * steps_per_epoch + 0.5))
    if warmup >= total_steps:
        warmup = 0 if config.warmup_epochs == 0 else total_steps - 1
    common = dict(warmup=warmup, warmup_start_lr=config.warmup_start_lr)
    if config.lr_schedule == "cosine":
        return schedules.WarmupCosineLR(peak_lr, final_lr=config.final_lr,
                                        total_steps=total_steps, **common)
    if config.lr_schedule == "constant":
        return schedules.WarmupConstantLR(peak_lr, total_steps=total_steps, **common)
    if config.lr_decay_every:
        every = config.lr_decay_every * unit
        boundaries = [int(math.floor(k * every + 0.5))
                      for k in range(1, int(total_steps // every) + 1)]
    else:
        boundaries = [int(math.floor(b * unit + 0.5)) for b in config.lr_boundaries]
    # A shortened run (fewer epochs than the config's) simply never reaches
    # the later boundaries.
    boundaries = [b for b in boundaries if 0 < b < total_steps]
    return schedules.StepDecayLR(peak_lr, boundaries=tuple(boundaries),
                                 factor=config.lr_decay_factor, total_steps=total_steps,
                                 **common)


def _matches(path, patterns):
    return any(fnmatch.fnmatchcase(path, p) for p in patterns)


def make_optimizer(config, model, learning_rate):
    """SGD (momentum, Nesterov), Adam or AdamW; weight decay as configured.

    `weight_decay_mode="l2"` adds `weight_decay/2 * ||w||^2` of every
    trainable variable (except `weight_decay_exclude`) to the loss, i.e.
    `weight_decay * w` in the gradient before momentum, as PyTorch's SGD
    `weight_decay` does in the papers' code. "decoupled" uses the Keras
    optimizer's own `weight_decay` (w -= lr * wd * w, as AdamW).
    """
    name = config.optimizer
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer={name!r}; accepted: {', '.join(OPTIMIZERS)}")
    if config.weight_decay_mode not in WEIGHT_DECAY_MODES:
        raise ValueError(f"weight_decay_mode={config.weight_decay_mode!r}; accepted: "
                         f"{', '.join(WEIGHT_DECAY_MODES)}")
    if config.weight_decay < 0:
        raise ValueError(f"weight_decay={config.weight_decay!r} must be >= 0")
    decoupled = config.weight_decay if config.weight_decay_mode == "decoupled" else None
    if config.weight_decay and config.weight_decay_mode == "l2":
        if name == "adamw":
            raise ValueError("optimizer='adamw' decays weights itself: use "
                             "weight_decay_mode='decoupled'")
        regularizer = keras.regularizers.L2(config.weight_decay / 2.0)
        for variable in model.trainable_variables:
            if not _matches(variable.path, config.weight_decay_exclude):
                variable.regularizer = regularizer
    if name == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate, momentum=config.momentum,
                                         nesterov=config.nesterov, weight_decay=decoupled)
    elif name == "adam":
        optimizer = keras.optimizers.Adam(learning_rate, weight_decay=decoupled)
    else:
        optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=config.weight_decay)
    if decoupled and config.weight_decay_exclude:
        excluded = [v for v in model.trainable_variables
                    if _matches(v.path, config.weight_decay_exclude)]
        optimizer.exclude_from_weight_decay(var_list=excluded)
    return optimizer


def make_algorithm(config, *, steps_per_epoch, total_steps):
    """The configured algorithm by registry name, or None for "dense".

    Algorithms with a `from_params` classmethod (sparse momentum, SET, RigL,
    SNIP) get `config.algorithm_params` through `tf_sparse.algorithms.from_params`,
    as tools/train.py does. Any other registered class gets
    `config.algorithm_kwargs` as constructor arguments, plus `total_steps`,
    `steps_per_epoch` and `seed` when its constructor names them and the
    config does not set them; so a newly registered algorithm needs no change
    here.
    """
    if config.algorithm == "dense":
        if config.sparsity:
            raise ValueError(f"algorithm='dense' trains without masks, but sparsity="
                             f"{config.sparsity}; set sparsity=0.0 or choose an algorithm "
                             f"({', '.join(algorithms.names())})")
        return None
    if config.algorithm not in algorithms.names():
        raise ValueError(f"Unknown algorithm {config.algorithm!r}; accepted: dense, "
                         f"{', '.join(algorithms.names())}.")
    cls = algorithms._REGISTRY[config.algorithm]
    params = {k: v for k, v in config.algorithm_params.to_dict().items() if v is not None}
    kwargs = dict(config.algorithm_kwargs.to_dict())
    if hasattr(cls, "from_params"):
        if kwargs:
            raise ValueError(f"algorithm {config.algorithm!r} is configured by "
                             f"algorithm_params, not algorithm_kwargs={kwargs!r}")
        return algorithms.from_params(config.algorithm, params,
                                      steps_per_epoch=steps_per_epoch,
                                      total_steps=total_steps, seed=config.seed)
    if params:
        raise ValueError(f"algorithm {config.algorithm!r} takes algorithm_kwargs (its "
                         f"constructor arguments), not algorithm_params={params!r}")
    signature = inspect.signature(cls).parameters
    context = {"total_steps": total_steps, "steps_per_epoch": steps_per_epoch,
               "seed": config.seed}
    for key, value in context.items():
        if key in signature and key not in kwargs:
            kwargs[key] = value
    try:
        return algorithms.get(config.algorithm, **kwargs)
    except TypeError as err:
        raise ValueError(f"algorithm {config.algorithm!r} does not accept "
                         f"algorithm_kwargs={kwargs!r}: {err}") from err


def build_model(config, input_shape, num_classes, *, policy, sync_batch_norm,
                init_masks=None):
    """The zoo model in `policy`, sparsified unless the algorithm is "dense";
    `init_masks(dense_model)` may give the masks (SNIP)."""
    keras.utils.set_random_seed(config.seed)
    with distribute.dtype_policy(policy):
        model = models_lib.get_model(config.model, num_classes=num_classes,
                                     input_shape=input_shape, **config.model_kwargs.to_dict())
    if sync_batch_norm:
        for layer in model._flatten_layers():
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = True
    if config.algorithm == "dense":
        return model
    return sparsification.sparsify(
        model, sparsity=config.sparsity, distribution=config.distribution,
        keep_dense=list(config.keep_dense), seed=config.seed,
        rescale_weights=config.rescale_init,
        masks=init_masks(model) if init_masks else None)


# --------------------------------------------------------------------------
# Callbacks of a run
# --------------------------------------------------------------------------


class _Progress(keras.callbacks.Callback):
    """Counts batches, stops at max_steps, measures images per second, and
    saves a checkpoint after every finished epoch and, with `every_steps`,
    whenever the number of batches trained passes a multiple of it (at
    execution granularity). A run stopped by max_steps between two
    checkpoints resumes from the last one.

    Positions are batches, not `optimizer.iterations`: under float16 loss
    scaling a step with overflowing gradients is skipped and does not advance
    the iterations. Checkpoints are numbered by position.
    """

    def __init__(self, *, steps_per_epoch, global_batch, max_steps, save, verbose,
                 every_steps=0):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.global_batch = global_batch
        self.max_steps = max_steps
        self.save = save
        self.verbose = verbose
        self.every_steps = every_steps
        self.steps_run = 0
        # Batches of the current epoch trained before this `fit` (a resumed
        # partial epoch); the runner sets it, the epoch's end clears it.
        self.epoch_offset = 0
        self._epoch = 0
        self._epoch_steps = 0
        self._last_due = None

    def _position(self):
        return self._epoch * self.steps_per_epoch + self.epoch_offset + self._epoch_steps

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_steps = 0
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._epoch_steps = batch + 1
        position = self._position()
        if self.every_steps and position % self.steps_per_epoch:
            due = position // self.every_steps
            if due and due != self._last_due:
                self._last_due = due
                self.save(position // self.steps_per_epoch, position)
        if self.max_steps and self.steps_run + self._epoch_steps >= self.max_steps:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._t0
        self.steps_run += self._epoch_steps
        if logs is not None and seconds > 0:
            logs["images_per_second"] = self._epoch_steps * self.global_batch / seconds
        position = self._position()
        self.epoch_offset = 0
        if position % self.steps_per_epoch == 0:
            self.save(position // self.steps_per_epoch, position)
        elif self.verbose:
            print(f"Stopped after {self.steps_run} steps (max_steps={self.max_steps}), "
                  f"within epoch {epoch + 1}; a restart resumes from the last "
                  "checkpoint.")


def _stopped(progress, config):
    """Whether max_steps ended training in an earlier `fit` of this run."""
    return bool(config.max_steps) and progress.steps_run >= config.max_steps


def prebuild(model, strategy, element_spec):
    """Builds the model's metrics, loss and optimizer from the data's shapes, so
    `fit` and `evaluate` need not.

    Under a distribution strategy Keras 3's `fit` first all-reduces a real
    data batch to build the model (`_maybe_symbolic_build`); with
    MultiWorkerMirroredStrategy that reduce fails ("Attempt to convert a value
    (PerReplica...)", keras-team/keras#20585, tensorflow#72388). Building from
    the dataset's element spec does the same without touching data, and the
    step is then skipped for this model instance.
    """
    with strategy.scope():
        model._symbolic_build(data_batch=element_spec)
    object.__setattr__(model, "_maybe_symbolic_build",
                       lambda iterator=None, data_batch=None: None)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        _rank1_step_logs(model)


def _rank1_step_logs(model):
    """Makes the train and test steps return rank-1 logs.

    With MultiWorkerMirroredStrategy Keras 3 reduces every step output with
    `strategy.reduce("MEAN", value, axis=0)`, which fails on the scalar losses
    and metrics ("Invalid reduction dimension 0 for input with 0
    dimensions"). Shape [1] values reduce to the same mean. Wraps the
    instance's current steps (after `training.attach`), so call it last.
    """
    for name in ("train_step", "test_step"):
        step = getattr(model, name)

        def wrapped(data, _step=step):
            logs = _step(data)
            return {k: tf.reshape(v, [1]) if getattr(v, "shape", None) is not None
                    and v.shape.rank == 0 else v for k, v in logs.items()}

        object.__setattr__(model, name, wrapped)


def _write_json(path, value):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=2, sort_keys=True, default=str)
    os.replace(tmp, path)


def check_workdir(config, workdir, info):
    """experiment.check_workdir plus the image-only identity keys.

    Only the chief checks and writes run.json (other workers of a
    multi-worker run would race it).
    """
    if not info.is_chief:
        return
    path = os.path.join(workdir, "run.json")
    if os.path.exists(path):
        with open(path) as f:
            previous = json.load(f)
        current = experiment._plain(config)
        for key in EXTRA_IDENTITY_KEYS:
            if previous.get(key) != current.get(key):
                raise experiment.RunMismatchError(
                    f"Workdir {workdir} holds a run with {key}={previous.get(key)!r}, but "
                    f"this config has {key}={current.get(key)!r}. Use another --workdir; "
                    "nothing was changed in this one.")
    experiment.check_workdir(config, workdir)


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------


def plan(config, strategy):
    """Replica, batch, precision and step arithmetic of a run, before any data."""
    info = distribute.describe(strategy)
    batch = distribute.batch_plan(
        config.batch_size, info.num_replicas, base_learning_rate=config.learning_rate,
        reference_batch_size=config.lr_reference_batch_size, scaling=config.lr_scaling,
        per_replica_batch_size=config.per_replica_batch_size)
    policy = distribute.resolve_precision(config.precision, info.platform)
    if config.jit_compile and info.num_replicas > 1 and info.platform == "CPU":
        raise ValueError(
            "jit_compile=True with several CPU replicas fails in XLA (resources on another "
            "device); use jit_compile=False with this strategy")
    if config.max_steps < 0 or config.steps_per_epoch < 0 or config.epochs < 1:
        raise ValueError(f"epochs={config.epochs}, steps_per_epoch={config.steps_per_epoch}, "
                         f"max_steps={config.max_steps}: need epochs >= 1 and the others >= 0")
    if config.steps_per_execution < 1:
        raise ValueError(f"steps_per_execution={config.steps_per_execution!r} must be >= 1")
    if config.dataset not in DATASETS:
        raise ValueError(f"dataset={config.dataset!r}; accepted: {', '.join(DATASETS)}")
    if config.eval_batch_size % info.num_replicas:
        raise ValueError(f"eval_batch_size={config.eval_batch_size} is not divisible by the "
                         f"{info.num_replicas} replicas")
    return info, batch, policy


def run(config, workdir, *, strategy=None, verbose=1):
    """Trains (or resumes) the configured run in `workdir`; returns results.

    Only the chief writes run.json, setup.json, TensorBoard logs and
    results.json; every worker takes part in checkpointing (other workers
    write to a temporary directory they delete).
    """
    strategy = strategy or tf.distribute.get_strategy()
    info, batch, policy = plan(config, strategy)
    os.makedirs(workdir, exist_ok=True)
    check_workdir(config, workdir, info)

    data = ImageData(config, batch.global_batch_size)
    steps_per_epoch = data.num_train // batch.global_batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"batch_size={batch.global_batch_size} is larger than the {data.num_train} "
            "training examples")
    if config.steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, config.steps_per_epoch)
    total_steps = steps_per_epoch * config.epochs
    lr = learning_rate_schedule(config, batch.learning_rate, steps_per_epoch, total_steps)
    setup = {
        "replicas": info.as_dict(), "batch": batch.as_dict(), "precision": policy,
        "data": {"source": data.source, "train_examples": data.num_train,
                 "test_examples": data.num_test, "input_shape": list(data.input_shape),
                 "num_classes": data.num_classes},
        "steps_per_epoch": steps_per_epoch, "epochs": config.epochs,
        "total_steps": total_steps, "steps_per_execution": config.steps_per_execution,
        "learning_rate_schedule": lr.get_config(),
        "sync_batch_norm": bool(config.sync_batch_norm and info.num_replicas > 1),
    }
    lines = [info.summary(), batch.summary(),
             f"precision {policy} ({'auto on ' + info.platform if config.precision == 'auto' else 'configured'}); "
             f"data {data.source}: {data.num_train} training images "
             f"{data.input_shape}, {data.num_classes} classes",
             f"{steps_per_epoch} steps per epoch x {config.epochs} epochs = {total_steps} "
             f"steps; steps_per_execution {config.steps_per_execution}; lr schedule "
             f"{config.lr_schedule}"]
    if verbose and info.is_chief:
        print("\n".join(lines), flush=True)
    if info.is_chief:
        _write_json(os.path.join(workdir, "setup.json"), {**setup, "log": lines})

    algorithm = make_algorithm(config, steps_per_epoch=steps_per_epoch,
                               total_steps=total_steps)
    init_masks = None
    if getattr(algorithm, "prunes_at_init", False):
        # SNIP: masks from the run's first batch on the dense initialisation.
        first = next(iter(data.train(0)))

        def init_masks(dense):
            return algorithm.initial_masks(dense, first, make_loss(config, data.num_classes),
                                           config.sparsity, keep_dense=list(config.keep_dense))

    with strategy.scope():
        model = build_model(config, data.input_shape, data.num_classes, policy=policy,
                            sync_batch_norm=setup["sync_batch_norm"], init_masks=init_masks)
        metrics = ["accuracy"]
        if data.num_classes > 10:
            metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(5, name="top5_accuracy"))
        model.compile(optimizer=make_optimizer(config, model, lr),
                      loss=make_loss(config, data.num_classes), metrics=metrics,
                      steps_per_execution=config.steps_per_execution,
                      jit_compile=config.jit_compile, run_eagerly=config.run_eagerly)
        fit_callbacks = []
        if algorithm is not None:
            mask_update = callbacks.MaskUpdate(algorithm)
            mask_update.set_model(model)
            fit_callbacks.append(mask_update)
        ckpt_dir = os.path.join(workdir, "checkpoints")
        ckpt = checkpoints.TrainingCheckpoint(ckpt_dir, model, algorithm)
        ckpt.restore()
        start_epoch, offset = divmod(int(ckpt.batches.numpy()), steps_per_epoch)
    writer_ckpt = ckpt
    if not info.is_chief:
        writer_ckpt = checkpoints.TrainingCheckpoint(
            distribute.worker_directory(ckpt_dir, info), model, algorithm, max_to_keep=1)

    def save(epochs_done, batches):
        writer_ckpt.save(epochs_done, step=batches, batches=batches)
        if writer_ckpt is not ckpt:
            shutil.rmtree(writer_ckpt.directory, ignore_errors=True)

    if verbose and info.is_chief and (start_epoch or offset):
        print(f"Resuming {workdir} at step {start_epoch * steps_per_epoch + offset} "
              f"(epoch {start_epoch + 1}, batch {offset + 1}).", flush=True)

    progress = _Progress(steps_per_epoch=steps_per_epoch,
                         global_batch=batch.global_batch_size, max_steps=config.max_steps,
                         save=save, verbose=verbose and info.is_chief,
                         every_steps=config.checkpoint_every_steps)
    fit_callbacks.append(progress)
    if info.is_chief:
        fit_callbacks.append(callbacks.SparsitySummaries(os.path.join(workdir, "tensorboard")))
        if algorithm is not None:
            fit_callbacks.append(callbacks.MaskUpdateSummaries(
                os.path.join(workdir, "tensorboard"), algorithm))
        if config.log_every_steps:
            fit_callbacks.append(keras.callbacks.TensorBoard(
                os.path.join(workdir, "tensorboard"), update_freq=config.log_every_steps,
                write_graph=False, profile_batch=0))

    evaluation = data.evaluation()
    if config.eval_steps:
        evaluation = evaluation.take(config.eval_steps)
    elif info.platform == "TPU" and data.num_test % config.eval_batch_size:
        # TPUs need full batches: the last partial batch is left out.
        evaluation = evaluation.take(data.num_test // config.eval_batch_size)
    validation = data.validation() or evaluation
    train = data.train(start_epoch)
    if info.strategy != "default":
        prebuild(model, strategy, train.element_spec)
    fit_kwargs = dict(shuffle=False, verbose=verbose if info.is_chief else 0,
                      callbacks=fit_callbacks)
    if config.eval_every_epochs:
        fit_kwargs.update(validation_data=validation, validation_freq=config.eval_every_epochs)
    if offset and start_epoch < config.epochs and not _stopped(progress, config):
        # Killed mid-epoch: finish that epoch from the next unseen batch (the
        # epoch's order is a function of the seed and the epoch).
        progress.epoch_offset = offset
        model.fit(train.skip(offset), epochs=start_epoch + 1, initial_epoch=start_epoch,
                  steps_per_epoch=steps_per_epoch - offset, **fit_kwargs)
        start_epoch += 1
        train = data.train(start_epoch)
    if start_epoch < config.epochs and not _stopped(progress, config):
        model.fit(train, epochs=config.epochs, initial_epoch=start_epoch,
                  steps_per_epoch=steps_per_epoch, **fit_kwargs)
    scores = model.evaluate(evaluation, verbose=0, return_dict=True)
    rep = diagnostics.report(model)
    results = {
        "test_loss": float(scores["loss"]),
        "test_accuracy": float(scores.get("accuracy", float("nan"))),
        **({"test_top5_accuracy": float(scores["top5_accuracy"])}
           if "top5_accuracy" in scores else {}),
        "steps": int(model.optimizer.iterations.numpy()),
        "steps_run": progress.steps_run,
        "epochs": config.epochs,
        "epochs_done": int(ckpt.epoch.numpy()) if writer_ckpt is ckpt else None,
        "setup": setup,
        **rep.as_dict(),
        "summary": diagnostics.summary(model),
    }
    if info.is_chief:
        _write_json(os.path.join(workdir, "results.json"), results)
    return results


def launch(config, workdir, *, dataset, strategy="default", tpu="", cpu_devices=0,
           verbose=1):
    """What the binaries run: device set-up, strategy, then `run`.

    `cpu_devices` > 0 splits the CPU into that many logical devices first
    (to try MirroredStrategy without GPUs). A damaged ImageNet shard is named
    by re-reading the shards when training fails with a DataLossError.
    """
    if config.dataset != dataset:
        raise ValueError(f"config.dataset={config.dataset!r}, but this binary trains on "
                         f"{dataset!r}; use the other binary or another config")
    if cpu_devices:
        distribute.split_cpu(cpu_devices)
    strategy_obj = distribute.create_strategy(strategy, tpu=tpu)
    try:
        return run(config, workdir, strategy=strategy_obj, verbose=verbose)
    except tf.errors.DataLossError as err:
        if config.dataset == "imagenet" and config.data_dir:
            from tf_sparse.data import imagenet
            for split in imagenet.SPLITS:
                imagenet.verify_tfrecord_files(imagenet.find_tfrecord_shards(
                    config.data_dir, split, require_all=False))
        raise


def final_report(results):
    """The text the binaries print at the end."""
    top5 = (f"  top-5: {results['test_top5_accuracy']:.4f}"
            if "test_top5_accuracy" in results else "")
    return (f"{results['summary']}\n"
            f"test accuracy: {results['test_accuracy']:.4f}{top5}  test loss: "
            f"{results['test_loss']:.4f}  density: {results['density']:.4f} "
            f"({results['total_nonzeros']} of {results['total_size']} weights)  "
            f"steps: {results['steps']}")
