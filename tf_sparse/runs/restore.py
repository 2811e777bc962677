"""The trained network of a workdir, for export and measurement tools.

`load_model(workdir)` rebuilds the network a run trained (from run.json,
with the engine's model factory) and restores its weights and masks from
the latest checkpoint (tf.train's, or the `.keras` file of a run trained on
JAX or PyTorch, `runs/keras_checkpoint.py`); `check_batch` gives a batch to
check exports on.

Example:

    model, config = load_model("runs/sm")
    x, described = check_batch(model, config["dataset"])
"""

import logging
import os

import numpy as np
import tensorflow as tf

from tf_sparse import checkpoints
from tf_sparse import masking
from tf_sparse.runs import algorithm as algorithm_lib
from tf_sparse.runs import config as config_lib
from tf_sparse.runs import data as data_lib
from tf_sparse.runs import keras_checkpoint
from tf_sparse.runs import model as model_lib
from tf_sparse.runs import workdir as workdir_lib

# Input shape and classes of the data sets a workdir's run.json may name.
DATASET_SHAPES = {
    "fashion_mnist": ((28, 28, 1), 10),
    "mnist": ((28, 28, 1), 10),
    "cifar10": ((32, 32, 3), 10),
    "cifar100": ((32, 32, 3), 100),
    "imagenet": ((224, 224, 3), 1000),
}


class RestoreError(ValueError):
    """A workdir's network cannot be rebuilt or restored."""


class _Shapes:
    """What the model factory needs to know about the data."""

    def __init__(self, input_shape, num_classes):
        self.input_shape = tuple(input_shape)
        self.num_classes = int(num_classes)


def _config(stored):
    config = config_lib.default_config()
    with config.unlocked():
        for key, value in stored.items():
            if key in config:
                config[key] = tuple(value) if isinstance(value, list) else (
                    value)
        config.init_weights = ""   # the checkpoint holds the weights
    return config


def load_model(workdir, checkpoint=None):
    """`(model, config dict)`: the network of a workdir at its latest
    checkpoint (or `checkpoint`), weights and masks restored."""
    record = workdir_lib.Workdir(workdir).record()
    if record is None:
        raise RestoreError(f"{workdir} holds no run.json; is it a workdir "
                           "of tools/train.py (or another training binary)?")
    raw = record["config"]
    config = _config(raw)
    dataset = raw.get("dataset")
    if dataset not in DATASET_SHAPES:
        raise RestoreError(
            f"Unknown input shape for dataset {dataset!r}; known: "
            f"{', '.join(DATASET_SHAPES)}.")
    shape, classes = DATASET_SHAPES[dataset]
    if raw.get("image_size"):
        shape = (raw["image_size"], raw["image_size"], shape[-1])
    model = model_lib.build(config, _Shapes(shape, raw.get("num_classes")
                                            or classes))
    if config.algorithm != "dense":
        model = model_lib.sparsify(
            config, model, gradual=algorithm_lib.is_gradual(config))
    path = checkpoint
    folder = os.path.join(workdir, "checkpoints")
    if path is None:
        path = next(iter(keras_checkpoint.numbered(folder)), None)
    if path is not None and path.endswith(keras_checkpoint.SUFFIX):
        try:
            keras_checkpoint.restore_network(model, path)
        except checkpoints.CheckpointError as error:
            raise RestoreError(f"{error} (the model of {workdir}/run.json)") \
                from error
        return model, raw
    if path is None:
        path, problem = checkpoints.read_index(folder)
        if problem is not None:
            raise RestoreError(
                f"{problem}; give a checkpoint of {folder} explicitly, or "
                "resume the run once (its binary repairs the folder with "
                "--config.on_bad_checkpoint=previous).")
    if path is None:
        raise RestoreError(f"{workdir}/checkpoints holds no checkpoint yet.")
    root = tf.train.Checkpoint(model=model)
    try:
        # Only the network is restored: the checkpoint's optimizer and
        # progress are not compared.
        checkpoints.check_compatible(root, path, model, compare_extra=())
        status = root.restore(path).expect_partial()
        status.assert_existing_objects_matched()
    except checkpoints.CheckpointError as error:
        raise RestoreError(f"{error} (the model of {workdir}/run.json)") \
            from error
    except (tf.errors.DataLossError, tf.errors.NotFoundError,
            tf.errors.OutOfRangeError, IndexError, EOFError) as error:
        raise RestoreError(f"Checkpoint {path} is damaged or truncated "
                           f"({error}).") from error
    except (AssertionError, ValueError, tf.errors.OpError) as error:
        raise RestoreError(f"Checkpoint {path} does not match the model of "
                           f"{workdir}/run.json: {str(error)[:300]}") from error
    masking.apply_masks(model)
    return model, raw


def check_batch(model, dataset=None, data_dir="", n=64):
    """(batch, description) for checking exports of `model`.

    The first `n` test images of `dataset` (scaled to [0, 1], reshaped to
    the model's input) when they can be read; random uniform [0, 1) inputs
    otherwise, which the description says.
    """
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    if dataset:
        try:
            _, (x_test, _) = data_lib.arrays(dataset, data_dir or None)
            x = x_test[:n].astype(np.float32) / 255.0
            if int(np.prod(x.shape[1:])) == int(np.prod(shape)):
                return (x.reshape((len(x),) + shape),
                        f"{len(x)} test images of {dataset}")
        except (ValueError, OSError) as error:
            logging.getLogger(__name__).warning(
                "No test data (%s); checking on random inputs.", error)
    rng = np.random.default_rng(0)
    return (rng.random((n,) + shape).astype(np.float32),
            f"{n} random uniform [0, 1) inputs (no test data)")
