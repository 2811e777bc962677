"""The GLUE tasks, read from their TSV files on disk or from tfds.

Each task's files are the ones the GLUE benchmark distributes (one folder
per task, `train.tsv` and `dev.tsv`; MNLI has `dev_matched.tsv` and
`dev_mismatched.tsv`): tab-separated, no quoting, a header row naming the
columns, except CoLA's train and dev files, which have none (columns:
source, label, original label, sentence). tfds's `glue/<task>` builder
reads the same files the same way, and its label order is used here, so
both sources give the same label ids:

| task | text columns | label column | labels (id order) |
|---|---|---|---|
| cola | sentence (4th column) | 2nd column | 0 unacceptable, 1 acceptable |
| sst2 | sentence | label | 0 negative, 1 positive |
| mrpc | #1 String, #2 String | Quality | 0 not_equivalent, 1 equivalent |
| qqp | question1, question2 | is_duplicate | 0 not_duplicate, 1 duplicate |
| stsb | sentence1, sentence2 | score | a float in [0, 5] |
| mnli | sentence1, sentence2 | gold_label | entailment, neutral, contradiction |
| qnli | question, sentence | label | entailment, not_entailment |
| rte | sentence1, sentence2 | label | entailment, not_entailment |
| wnli | sentence1, sentence2 | label | 0 not_entailment, 1 entailment |

Rows with a missing field are skipped and counted (QQP's train file has a
few, as tfds also drops them); a label outside the task's classes is an
error naming the file, row and value. tfds is always called with
`download=False`, so a machine without the data fails at once.

Example:

    data = load_glue("rte", "glue_data")          # glue_data/RTE/*.tsv
    premises, hypotheses = data["train"].texts
    data["validation"].labels[:3]                 # array([1, 0, 0], ...)
"""

import csv
import dataclasses
import os
import warnings

import numpy as np

from tf_sparse.data.errors import DataNotFoundError

SOURCES = ("auto", "tsv", "tfds")


@dataclasses.dataclass(frozen=True)
class Task:
    """Where a GLUE task's files are and what their columns mean."""
    folder: str                  # folder name in the GLUE download
    text_columns: tuple          # TSV header names of the text fields
    label_column: str            # TSV header name of the label
    classes: tuple               # label names in id order; () = regression
    tfds_features: tuple         # tfds feature names of the text fields
    dev_files: tuple = (("validation", "dev.tsv"),)
    headerless: dict = dataclasses.field(default_factory=dict)

    @property
    def num_classes(self):
        return len(self.classes)

    @property
    def splits(self):
        return ("train",) + tuple(name for name, _ in self.dev_files)


_BINARY = ("0", "1")
TASKS = {
    "cola": Task("CoLA", ("sentence",), "label", _BINARY, ("sentence",),
                 headerless={"label": 1, "sentence": 3}),
    "sst2": Task("SST-2", ("sentence",), "label", _BINARY, ("sentence",)),
    "mrpc": Task("MRPC", ("#1 String", "#2 String"), "Quality", _BINARY,
                 ("sentence1", "sentence2")),
    "qqp": Task("QQP", ("question1", "question2"), "is_duplicate", _BINARY,
                ("question1", "question2")),
    "stsb": Task("STS-B", ("sentence1", "sentence2"), "score", (),
                 ("sentence1", "sentence2")),
    "mnli": Task("MNLI", ("sentence1", "sentence2"), "gold_label",
                 ("entailment", "neutral", "contradiction"),
                 ("premise", "hypothesis"),
                 dev_files=(("validation_matched", "dev_matched.tsv"),
                            ("validation_mismatched", "dev_mismatched.tsv"))),
    "qnli": Task("QNLI", ("question", "sentence"), "label",
                 ("entailment", "not_entailment"), ("question", "sentence")),
    "rte": Task("RTE", ("sentence1", "sentence2"), "label",
                ("entailment", "not_entailment"), ("sentence1", "sentence2")),
    "wnli": Task("WNLI", ("sentence1", "sentence2"), "label", _BINARY,
                 ("sentence1", "sentence2")),
}


@dataclasses.dataclass(frozen=True)
class Examples:
    """One split: `texts` is a tuple of one or two string arrays (object
    dtype), `labels` int32 class ids (float32 for STS-B); `skipped` rows had
    a missing field."""
    texts: tuple
    labels: np.ndarray
    skipped: int = 0

    def __len__(self):
        return len(self.labels)


def task(name):
    """`(canonical name, Task)`; "glue/rte", "RTE", "sst-2" are accepted."""
    key = str(name).strip().lower()
    key = key[len("glue/"):] if key.startswith("glue/") else key
    key = key.replace("-", "")
    if key not in TASKS:
        raise ValueError(f"Unknown GLUE task {name!r}; accepted: "
                         f"{', '.join(TASKS)}.")
    return key, TASKS[key]


def task_dir(name, data_dir):
    """The folder holding the task's TSV files: `data_dir/<Folder>` (as the
    GLUE download unpacks) or `data_dir` itself; None if neither has
    `train.tsv`."""
    _, spec = task(name)
    if not data_dir:
        return None
    for folder in (os.path.join(data_dir, spec.folder), data_dir):
        if os.path.isfile(os.path.join(folder, "train.tsv")):
            return folder
    return None


def _label_id(spec, value, where):
    if not spec.classes:
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{where}: score {value!r} is not a number."
                             ) from None
    if value in spec.classes:
        return spec.classes.index(value)
    raise ValueError(f"{where}: label {value!r} is not one of "
                     f"{', '.join(spec.classes)}.")


def read_tsv(name, path):
    """One GLUE TSV file as `Examples` (see the module docstring)."""
    key, spec = task(name)
    headerless = key == "cola" and os.path.basename(path) != "test.tsv"
    texts = [[] for _ in spec.text_columns]
    labels, skipped = [], 0
    with open(path, encoding="utf-8-sig", newline="") as f:
        if headerless:
            rows = ({"sentence": r[3] if len(r) > 3 else None,
                     "label": r[1] if len(r) > 1 else None}
                    for r in csv.reader(f, delimiter="\t",
                                        quoting=csv.QUOTE_NONE))
            first_line = 1
        else:
            reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            missing = [c for c in spec.text_columns + (spec.label_column,)
                       if c not in (reader.fieldnames or ())]
            if missing:
                raise ValueError(
                    f"{path}: header {reader.fieldnames!r} lacks the {key} "
                    f"column(s) {missing}; is this the {key} file?")
            rows = reader
            first_line = 2
        for line, row in enumerate(rows, first_line):
            fields = [row.get(c) for c in spec.text_columns + (
                spec.label_column,)]
            if any(v is None for v in fields):
                skipped += 1
                continue
            for column, value in zip(texts, fields):
                column.append(value)
            labels.append(_label_id(spec, fields[-1], f"{path}:{line}"))
    if skipped:
        warnings.warn(f"{path}: {skipped} rows with a missing field skipped.")
    dtype = np.int32 if spec.classes else np.float32
    return Examples(tuple(np.asarray(t, dtype=object) for t in texts),
                    np.asarray(labels, dtype), skipped)


def _from_tsv(key, spec, folder, splits):
    files = {"train": "train.tsv", **dict(spec.dev_files)}
    result = {}
    for split in splits:
        path = os.path.join(folder, files[split])
        if not os.path.isfile(path):
            raise DataNotFoundError(f"GLUE {key}: {path} is missing (split "
                                    f"{split!r}).")
        result[split] = read_tsv(key, path)
    return result


def _from_tfds(key, spec, data_dir, splits):
    import tensorflow_datasets as tfds  # slow import; only on this path
    try:
        datasets = tfds.load(f"glue/{key}", split=list(splits),
                             data_dir=data_dir, download=False)
    except (AssertionError, FileNotFoundError, ValueError) as err:
        raise DataNotFoundError(
            f"tfds has no prepared glue/{key} in "
            f"{data_dir or 'its default data directory'} (download=False: "
            f"{str(err)[:300]}).") from err
    result = {}
    for split, ds in zip(splits, datasets):
        texts = [[] for _ in spec.tfds_features]
        labels = []
        for batch in tfds.as_numpy(ds.batch(4096)):
            for column, feature in zip(texts, spec.tfds_features):
                column.extend(s.decode("utf-8") for s in batch[feature])
            labels.append(np.asarray(batch["label"]))
        dtype = np.int32 if spec.classes else np.float32
        result[split] = Examples(
            tuple(np.asarray(t, dtype=object) for t in texts),
            (np.concatenate(labels) if labels else np.zeros([0])).astype(
                dtype))
    return result


def load_glue(name, data_dir=None, source="auto", splits=None):
    """`{split: Examples}` of a GLUE task.

    Args:
      name: the task ("sst2", "glue/mnli", ...).
      data_dir: the GLUE download (task folders inside) or one task's
        folder; for tfds, its data directory.
      source: "tsv", "tfds", or "auto" (the TSV files if `data_dir` has
        them, else tfds).
      splits: default: "train" and the task's dev split(s) ("validation";
        MNLI "validation_matched" and "validation_mismatched").

    Raises:
      DataNotFoundError: no data where it was looked for (nothing is
        downloaded); the message names the places.
    """
    key, spec = task(name)
    if source not in SOURCES:
        raise ValueError(f"GLUE source {source!r} is not accepted; accepted: "
                         f"{', '.join(SOURCES)}.")
    splits = tuple(splits or spec.splits)
    unknown = [s for s in splits if s not in spec.splits]
    if unknown:
        raise ValueError(f"GLUE {key} has no split(s) {unknown}; accepted: "
                         f"{', '.join(spec.splits)}.")
    folder = task_dir(key, data_dir)
    if source == "tsv" or (source == "auto" and folder):
        if folder is None:
            raise DataNotFoundError(
                f"GLUE {key}: no train.tsv in {data_dir!r} or "
                f"{os.path.join(str(data_dir), spec.folder)!r}. Unpack the "
                "GLUE download there (one folder per task).")
        return _from_tsv(key, spec, folder, splits)
    try:
        return _from_tfds(key, spec, data_dir, splits)
    except DataNotFoundError as err:
        if source == "tfds":
            raise
        raise DataNotFoundError(
            f"GLUE {key}: no TSV files in {data_dir!r} and {err}") from err
