"""A distillation teacher whose logits are computed once, not every epoch.

Fine-tuning with distillation runs the teacher's forward pass on every
training batch of every epoch, although its inputs (and so its logits)
repeat each epoch when the data are not augmented. `CachedTeacher` holds the
teacher's inference-mode logits on every training example, keyed by a
64-bit fingerprint of the example as the model receives it
(`tf.fingerprint` of its bytes, after preprocessing). Called on a batch, it
looks the rows up (a sorted-key search) instead of running the network, so
a `tf_sparse.distillation.Distiller` built with it pays a lookup per step.

An input that is not in the cache (augmented data, another data set) is an
error at once (a `tf.debugging.Assert` names the count of rows not
found): a cached teacher never silently gives wrong targets. For the same
reason `build_cache` refuses data with augmentation. The lookup ops have no
XLA kernels: distil with `jit_compile=False` (the default).

`write(teacher_path, data, path)` saves the cache as a `.keras` file (the
class is registered, so `keras.saving.load_model` reads it in safe mode)
with a JSON beside it naming the teacher file and its SHA-256;
`cached(teacher_path, data, path)` reuses the file while it matches the
teacher and rebuilds it otherwise. The recipes use it with
`teacher_cache=True`.

Example:

    cache = cached("workdir/pretrained.keras", data,
                   "workdir/teacher_logits.keras")
    distiller = Distiller(student, keras.saving.load_model(cache))
"""

import hashlib
import json
import os

import keras
import numpy as np
import tensorflow as tf

from tf_sparse import files
from tf_sparse.data import pipelines


def fingerprints(x):
    """int64 fingerprint of each example (row along the first axis)."""
    x = tf.convert_to_tensor(x)
    flat = tf.reshape(x, tf.stack([tf.shape(x)[0], -1]))
    return tf.bitcast(tf.fingerprint(flat), tf.int64)


@keras.saving.register_keras_serializable(package="tf_sparse")
class CachedTeacher(keras.Model):
    """Precomputed logits looked up by input fingerprint.

    Args:
      num_examples: rows of the cache.
      num_classes: logits per row.
    """

    def __init__(self, num_examples, num_classes, **kwargs):
        super().__init__(**kwargs)
        self.num_examples = int(num_examples)
        self.num_classes = int(num_classes)
        self.keys = self.add_weight(
            shape=(self.num_examples,), dtype="int64", initializer="zeros",
            trainable=False, name="keys")
        self.logits = self.add_weight(
            shape=(self.num_examples, self.num_classes), initializer="zeros",
            trainable=False, name="logits")
        self.built = True

    def set_cache(self, keys, logits):
        """Stores `(keys, logits)`; keys are sorted here."""
        keys = np.asarray(keys, np.int64)
        logits = np.asarray(logits, np.float32)
        order = np.argsort(keys, kind="stable")
        self.keys.assign(keys[order])
        self.logits.assign(logits[order])

    def call(self, inputs, training=False):
        del training
        keys = fingerprints(inputs)
        table = self.keys.value
        index = tf.minimum(tf.searchsorted(table, keys),
                           self.num_examples - 1)
        found = tf.equal(tf.gather(table, index), keys)
        check = tf.debugging.Assert(tf.reduce_all(found), [
            "CachedTeacher: inputs not in the cache (the data changed, or "
            "are augmented); rows not found:",
            tf.reduce_sum(tf.cast(tf.logical_not(found), tf.int32))])
        with tf.control_dependencies([check]):
            return tf.gather(self.logits.value, index)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        return {**super().get_config(), "num_examples": self.num_examples,
                "num_classes": self.num_classes}


def training_inputs(data, batch_size=1000):
    """Batches of every training input of `data` as the model receives it
    (preprocessed, in order, no augmentation)."""
    if getattr(data, "augment", None) is not None:
        raise ValueError(
            "The teacher's logits cannot be cached for augmented data: its "
            "inputs change every epoch. Set teacher_cache=False.")
    if not hasattr(data, "x_train"):
        raise ValueError(
            f"The teacher's logits can be cached for in-memory data sets "
            f"only; {type(data).__name__} streams its examples.")
    return pipelines.from_arrays(data.x_train, data.y_train, batch_size,
                                 training=False, preprocess=data.preprocess)


def build_cache(teacher, data, batch_size=1000):
    """A `CachedTeacher` with `teacher`'s inference logits on every
    training input of `data`; duplicate inputs keep their first row."""
    keys, logits = [], []
    for x, _ in training_inputs(data, batch_size):
        keys.append(fingerprints(x).numpy())
        logits.append(keras.ops.convert_to_numpy(teacher(x, training=False)))
    keys = np.concatenate(keys)
    logits = np.concatenate(logits).astype(np.float32)
    keys, first = np.unique(keys, return_index=True)
    model = CachedTeacher(len(keys), logits.shape[1],
                          name="cached_teacher")
    model.set_cache(keys, logits[first])
    return model


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write(teacher_path, data, path, batch_size=1000):
    """Computes the cache of the teacher in `teacher_path` and saves it to
    `path` (.keras) with `path + ".json"` (teacher file, SHA-256, rows)."""
    teacher = keras.saving.load_model(teacher_path, compile=False)
    model = build_cache(teacher, data, batch_size)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    model.save(path)
    record = {"teacher": os.path.abspath(teacher_path),
              "teacher_sha256": sha256(teacher_path),
              "examples": model.num_examples,
              "classes": model.num_classes}
    files.write_json_atomically(path + ".json", record, indent=1)
    return path


def cached(teacher_path, data, path, batch_size=1000):
    """`path` if it holds the cache of this teacher file, else `write`s it
    first; returns `path`."""
    try:
        with open(path + ".json") as f:
            record = json.load(f)
        if (os.path.exists(path)
                and record.get("teacher_sha256") == sha256(teacher_path)):
            return path
    except (OSError, ValueError):
        pass
    return write(teacher_path, data, path, batch_size)
