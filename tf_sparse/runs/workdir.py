"""A run's folder: what it is (run.json), and files written atomically.

    workdir/run.json        kind, Keras backend and config of the run, written
                            when it starts
    workdir/checkpoints/    model, masks, optimizer slots, algorithm state
    workdir/tensorboard/    summaries
    workdir/results.json    what the run measured at the end

`Workdir.check(config, identity)` writes run.json for a new run and, for an
existing one, compares the keys that define what the run is: a difference is
a `RunMismatchError` naming the key and both values, and nothing in the
folder is changed. Folders written before the one-engine redesign (a flat
run.json, or a lottery's lottery.json) are read through `migrate`, which
renames the keys that changed, so such runs resume.

Every JSON file is written to a temporary name and renamed into place, so a
kill leaves the old file or the new one, never half of one; a write that
fails (full disk, read-only folder) is a `WorkdirWriteError` naming the file,
and the file as it was is kept. A damaged JSON file is a `WorkdirError`
naming it and saying what to do.

Example:

    wd = Workdir("runs/sm")
    wd.check(config, identity=("model", "seed"), kind="train")
    wd.write_json("results.json", {"test_accuracy": 0.9})
"""

import errno
import json
import os
import subprocess

from tf_sparse import backend
from tf_sparse import files
from tf_sparse import version
from tf_sparse.runs import config as config_lib

RUN_FILE = "run.json"
LEGACY_LOTTERY_FILE = "lottery.json"
FORMAT = "tf_sparse.run"
VERSION = 2


class WorkdirError(ValueError):
    """A file of a workdir is missing, unreadable or damaged."""


class RunMismatchError(WorkdirError):
    """The workdir holds a run that differs from the requested one."""


class WorkdirWriteError(WorkdirError):
    """A file of a workdir could not be written (full disk, read-only
    folder); the file as it was before is kept. `path`: that file."""

    def __init__(self, message, path=None):
        super().__init__(message)
        self.path = path


def write_error(path, error):
    """The `WorkdirWriteError` for an `OSError` while writing `path`."""
    reason = error.strerror or str(error) if isinstance(error, OSError) \
        else str(error)
    if getattr(error, "errno", None) == errno.ENOSPC:
        fix = "free space on that disk"
    elif getattr(error, "errno", None) in (errno.EACCES, errno.EPERM,
                                           errno.EROFS):
        fix = "make the folder writable"
    else:
        fix = "fix the folder (space, permissions)"
    kept = ("the previous version is kept" if os.path.exists(path) else
            "nothing was written there")
    return WorkdirWriteError(
        f"Cannot write {path}: {reason}; {kept}. {fix.capitalize()} and run "
        "again (the run resumes from its last checkpoint), or use another "
        "--workdir.", path=path)


def write_atomically(path, write, binary=False):
    """Calls `write(file)` on a temporary file next to `path`, then renames
    it to `path` (`tf_sparse.files`): a kill leaves the old file or the new
    one, never half.

    Raises:
      WorkdirWriteError: the folder or the file cannot be written (full
        disk, read-only folder); `path` is left as it was.
    """
    try:
        files.write_atomically(path, write, binary=binary)
    except OSError as error:
        raise write_error(path, error) from error


def write_json(path, value):
    """Writes `value` as JSON to `path` atomically (folders are created);
    `WorkdirWriteError` naming the file if it cannot be written."""
    def write(f):
        json.dump(value, f, indent=2, sort_keys=True, default=str)
        f.write("\n")
    try:
        write_atomically(path, write)
    except OSError as error:
        raise write_error(path, error) from error


# What to do about a damaged file, by name (the default: the last entry).
_ADVICE = {
    RUN_FILE: "It records what the run in this folder is: restore it from "
              "a copy, or use another --workdir (or move this folder away) "
              "to start over",
    LEGACY_LOTTERY_FILE: "It records what the lottery run in this folder "
                         "is: restore it from a copy, or use another "
                         "--workdir to start over",
    "setup.json": "It is rewritten when the run starts: delete it and run "
                  "again",
    "results.json": "It is rewritten when the run ends: delete it and run "
                    "again (the run resumes from its checkpoints)",
    "metrics.json": "It marks a finished level or branch: delete it and run "
                    "again to train that folder again from its checkpoints",
    "diagnostics.json": "Delete it and run again: it is rewritten",
    None: "Delete it to have it written again, or use another --workdir",
}


def damaged_advice(path):
    """What to do about the damaged workdir file `path` (a sentence)."""
    return _ADVICE.get(os.path.basename(str(path)), _ADVICE[None]) + "."


def read_json(path):
    """The JSON value in `path`; `WorkdirError` naming the file and what to
    do otherwise (unreadable, not JSON, cut short)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError as error:
        raise WorkdirError(f"{path} is missing.") from error
    except OSError as error:
        raise WorkdirError(
            f"{path} is unreadable or damaged: it cannot be read "
            f"({error.strerror or error}).") from error
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise WorkdirError(
            f"{path} is unreadable or damaged: it is not valid JSON "
            f"({error}). "
            + damaged_advice(path)) from error


def provenance():
    """What produced a run: tf_sparse's version and git commit (when the
    package is a git checkout), TensorFlow's and Keras's versions."""
    import keras  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    root = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
            text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "tf_sparse"], cwd=root,
            capture_output=True, text=True, timeout=10).stdout.strip()
        commit += "+changes" if dirty else ""
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"tf_sparse": version.__version__, "commit": commit,
            "tensorflow": tf.__version__, "keras": keras.__version__}


def _points_in_unit(values, unit):
    if unit == "epochs":
        return tuple(f"{v:g}ep" for v in values)
    return tuple(int(v) for v in values)


def migrate(stored):
    """A config dict written before the one-engine redesign, in today's keys.

    Renames `lr_decay_at` -> `lr_boundaries`, `lr_factor` ->
    `lr_decay_factor`, `exclude` -> `keep_dense`, `strategy` ->
    `prune_scope`, `eval_every_epoch` (bool) -> `eval_every_epochs`,
    `warmup_epochs` -> `warmup` ("<n>ep"), and the image runner's
    `lr_unit` with `lr_boundaries` / `lr_decay_every` -> points.

    >>> migrate({"lr_decay_at": [0.5], "exclude": ["fc3"]})
    {'lr_boundaries': (0.5,), 'keep_dense': ('fc3',)}
    """
    out = dict(stored)
    simple = {"lr_decay_at": "lr_boundaries", "lr_factor": "lr_decay_factor",
              "exclude": "keep_dense", "strategy": "prune_scope"}
    for old, new in simple.items():
        if old in out:
            out[new] = out.pop(old)
    if "eval_every_epoch" in out:
        out["eval_every_epochs"] = int(bool(out.pop("eval_every_epoch")))
    unit = out.pop("lr_unit", None)
    if unit is not None:
        out["lr_boundaries"] = _points_in_unit(out.get("lr_boundaries", ()),
                                               unit)
        every = float(out.get("lr_decay_every") or 0.0)
        out["lr_decay_every"] = (_points_in_unit([every], unit)[0]
                                 if every else "0")
    if "warmup_epochs" in out:
        epochs = float(out.pop("warmup_epochs"))
        out["warmup"] = f"{epochs:g}ep" if epochs else "0"
    for key in ("lr_boundaries", "keep_dense"):
        if isinstance(out.get(key), list):
            out[key] = tuple(out[key])
    return out


def _comparable(value):
    return config_lib.plain(value)


class Workdir:
    """The folder of one run (see module docstring)."""

    def __init__(self, path):
        self.path = str(path)

    def file(self, *parts):
        return os.path.join(self.path, *parts)

    @property
    def checkpoints(self):
        return self.file("checkpoints")

    @property
    def tensorboard(self):
        return self.file("tensorboard")

    def exists(self, name):
        return os.path.exists(self.file(name))

    def write_json(self, name, value):
        write_json(self.file(name), value)

    def read_json(self, name):
        return read_json(self.file(name))

    def _read_dict(self, name):
        stored = self.read_json(name)
        config = stored.get("config", {}) if isinstance(stored, dict) \
            else None
        if not isinstance(stored, dict) or not isinstance(config, dict):
            path = self.file(name)
            raise WorkdirError(
                f"{path} is damaged: it holds valid JSON but not a run "
                f"record (an object with a config object). "
                + damaged_advice(path))
        return stored

    def record(self):
        """{"kind", "config", ...} of the run in this folder, or None.

        A legacy folder's config comes back migrated (`migrate`).
        """
        if self.exists(RUN_FILE):
            stored = self._read_dict(RUN_FILE)
            if stored.get("format") == FORMAT:
                return stored
            return {"kind": "train", "config": migrate(stored),
                    "legacy": RUN_FILE}
        if self.exists(LEGACY_LOTTERY_FILE):
            stored = self._read_dict(LEGACY_LOTTERY_FILE)
            return {"kind": "lottery",
                    "config": migrate(stored.get("config", {})),
                    "legacy": LEGACY_LOTTERY_FILE,
                    **{k: v for k, v in stored.items() if k != "config"}}
        return None

    def check(self, config, identity, *, kind, extra=None, write=True):
        """Records a new run, or checks this config against the stored one.

        Args:
          config: the run's config.
          identity: names of the keys that define what the run is; a key
            the stored config lacks (a folder from an older version) is not
            compared.
          kind: "train", "recipe", "lottery", ...
          extra: more JSON values to store with a new run.
          write: False checks only (other workers of a multi-worker run).

        Returns:
          The stored record (the new one for a new run).

        Raises:
          RunMismatchError: naming the first differing key and both values.
        """
        current = config_lib.plain(config)
        previous = self.record()
        if previous is not None:
            stored = previous.get("config", {})
            if previous.get("kind", kind) != kind:
                raise RunMismatchError(
                    f"Workdir {self.path} holds a {previous.get('kind')} run, "
                    f"not a {kind} run. Use another --workdir; nothing was "
                    "changed in this one.")
            # Checkpoints are tf.train's on TensorFlow and .keras files
            # elsewhere (runs/eager.py): a run resumes on its own backend.
            # Records older than the key were written on TensorFlow.
            stored_backend = previous.get("backend", "tensorflow")
            if stored_backend != backend.name():
                raise RunMismatchError(
                    f"Workdir {self.path} holds a run trained with "
                    f"backend={stored_backend!r}, but this process runs "
                    f"Keras on {backend.name()!r}; its checkpoints are read "
                    f"on {stored_backend!r} only. Run again with "
                    f"--backend={stored_backend} (KERAS_BACKEND), or use "
                    "another --workdir; nothing was changed in this one.")
            for key in identity:
                if key not in stored:
                    continue
                if _comparable(stored[key]) != current.get(key):
                    raise RunMismatchError(
                        f"Workdir {self.path} holds a run with {key}="
                        f"{stored[key]!r}, but this config has {key}="
                        f"{current.get(key)!r}. Use another --workdir; "
                        "nothing was changed in this one.")
            return previous
        record = {"format": FORMAT, "version": VERSION, "kind": kind,
                  "backend": backend.name(), "config": current,
                  "started_by": provenance(),
                  **(extra or {})}
        if write:
            self.write_json(RUN_FILE, record)
        return record
