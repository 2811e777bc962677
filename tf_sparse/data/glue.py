"""GLUE SST-2 from tfds, tokenised for the BERT-style encoder.

`load_sst2` reads the prepared tfds data set ``glue/sst2`` with
``download=False``: without the data it fails at once with a
`DataNotFoundError` that says how to get it (offline, a download would retry
for minutes). `text_classification_datasets` turns sentences and labels into
padded token-id pipelines with a `keras.layers.TextVectorization` adapted on
the training sentences (id 0 is padding, 1 out-of-vocabulary), shuffled per
(seed, epoch) like every pipeline of `tf_sparse.data`. It takes plain Python
or NumPy sentences, so tests and users without GLUE can feed any small text
data set.

SST-2's test split has no labels; `sst2_datasets` evaluates on the official
validation split (872 sentences), as GLUE dev results do.

Example:

    >>> from tf_sparse.data import glue
    >>> train, val, info = glue.sst2_datasets(batch_size=32, seed=0)  # doctest: +SKIP
    >>> info["vocab_size"], info["sequence_length"]                   # doctest: +SKIP
    (20000, 64)
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tf_sparse.data import pipelines
from tf_sparse.data.errors import DataNotFoundError

TFDS_NAME = "glue/sst2"
HOW_TO_GET = (
    "on a machine with internet run `python -c \"import tensorflow_datasets "
    "as tfds; tfds.load('glue/sst2', data_dir='DIR')\"` and copy DIR here, "
    "then pass data_dir=DIR (or put it in tfds's default ~/tensorflow_datasets).")


def load_sst2(data_dir=None, splits=("train", "validation")):
    """SST-2 as `{split: (sentences, labels)}` numpy arrays (str, int32).

    Raises:
      DataNotFoundError: when tfds has no prepared glue/sst2 in `data_dir`
        (or its default directory); nothing is downloaded.
    """
    import tensorflow_datasets as tfds  # slow import; only on this path

    try:
        datasets = tfds.load(TFDS_NAME, split=list(splits), data_dir=data_dir,
                             download=False)
    except (AssertionError, FileNotFoundError, ValueError) as err:
        raise DataNotFoundError(
            f"tfds has no prepared {TFDS_NAME!r} in "
            f"{data_dir or 'its default data directory'} (download=False: "
            f"{str(err)[:300]}). To get it: {HOW_TO_GET}") from err
    result = {}
    for split, ds in zip(splits, datasets):
        sentences, labels = [], []
        for batch in tfds.as_numpy(ds.batch(4096)):
            sentences.extend(s.decode("utf-8") for s in batch["sentence"])
            labels.append(np.asarray(batch["label"], np.int32))
        result[split] = (np.asarray(sentences, dtype=object),
                         np.concatenate(labels) if labels else
                         np.zeros([0], np.int32))
    return result


def make_vectorizer(sentences, vocab_size=20000, sequence_length=64):
    """A `TextVectorization` (lower-case, punctuation stripped, int ids,
    padded/truncated to `sequence_length`) adapted on `sentences`."""
    import keras

    if vocab_size < 3:
        raise ValueError(f"vocab_size={vocab_size} must be >= 3 (padding, "
                         "out-of-vocabulary and at least one word).")
    if sequence_length < 1:
        raise ValueError(f"sequence_length={sequence_length} must be >= 1.")
    layer = keras.layers.TextVectorization(
        max_tokens=vocab_size, output_mode="int",
        output_sequence_length=sequence_length)
    layer.adapt(tf.constant(np.asarray(sentences, dtype=object).astype(str)))
    return layer


def tokenize(vectorizer, sentences, batch_size=4096):
    """Token ids (int32 array [n, sequence_length]) of `sentences`."""
    sentences = np.asarray(sentences, dtype=object).astype(str)
    pieces = [np.asarray(vectorizer(tf.constant(sentences[i:i + batch_size])),
                         np.int32)
              for i in range(0, len(sentences), batch_size)]
    if not pieces:
        raise ValueError("tokenize: no sentences.")
    return np.concatenate(pieces)


def text_classification_datasets(train, evaluation, *, batch_size, seed,
                                 vocab_size=20000, sequence_length=64,
                                 vectorizer=None, repeat=False):
    """Token-id pipelines for `(sentences, labels)` pairs.

    Args:
      train, evaluation: `(sentences, labels)`; sentences are strings.
      batch_size, seed: as `tf_sparse.data.pipelines.from_arrays`.
      vocab_size, sequence_length: of the vectorizer adapted on the training
        sentences (ignored when `vectorizer` is given).
      repeat: training pipeline repeats forever (epochs by seed).

    Returns:
      `(train_ds, eval_ds, info)`: datasets of `(int32 ids [batch, length],
      int32 labels)`; `info` has the vocabulary size, sequence length, number
      of classes, example counts, steps per epoch and the vectorizer.
    """
    x_train, y_train = train
    x_eval, y_eval = evaluation
    if vectorizer is None:
        vectorizer = make_vectorizer(x_train, vocab_size, sequence_length)
    ids_train = tokenize(vectorizer, x_train)
    ids_eval = tokenize(vectorizer, x_eval)
    y_train = np.asarray(y_train, np.int32)
    y_eval = np.asarray(y_eval, np.int32)
    train_ds = pipelines.from_arrays(ids_train, y_train, batch_size,
                                     training=True, seed=seed, repeat=repeat)
    eval_ds = pipelines.from_arrays(ids_eval, y_eval, batch_size,
                                    training=False)
    info = {"vocab_size": int(vectorizer.vocabulary_size()),
            "sequence_length": int(ids_train.shape[1]),
            "num_classes": int(max(y_train.max(), y_eval.max())) + 1,
            "num_train_examples": int(len(y_train)),
            "num_eval_examples": int(len(y_eval)),
            "steps_per_epoch": len(y_train) // batch_size,
            "vectorizer": vectorizer,
            "arrays": {"train": (ids_train, y_train),
                       "eval": (ids_eval, y_eval)}}
    return train_ds, eval_ds, info


def sst2_datasets(data_dir=None, *, batch_size=32, seed=0, vocab_size=20000,
                  sequence_length=64, repeat=False):
    """SST-2 train and validation pipelines (see
    `text_classification_datasets`); fails fast without the data."""
    data = load_sst2(data_dir)
    return text_classification_datasets(
        data["train"], data["validation"], batch_size=batch_size, seed=seed,
        vocab_size=vocab_size, sequence_length=sequence_length, repeat=repeat)
