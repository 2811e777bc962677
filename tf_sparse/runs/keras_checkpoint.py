"""A run's checkpoints as `.keras` files, for the JAX and PyTorch backends.

`tf_sparse.checkpoints.TrainingCheckpoint` is built on tf.train, which sees
no JAX or PyTorch variable. Under those backends the runner saves each
checkpoint as one `.keras` file instead, `checkpoints/ckpt-<batches>.keras`:

- the model, its masks and its optimizer's state (`tfs.save_model`; the
  file loads with `tfs.load_model` like any other);
- `tf_sparse/run_state.json`: the batches trained and the epochs done;
- `tf_sparse/algorithm_state.npz`: the values of the algorithm's state
  (`checkpoint_items()`: tf.Variables and keras.Variables, in a fixed
  order), so a prune-and-grow or GMP run resumes with its counters.

A file is written under a temporary name and renamed when complete, so a
run killed during a save leaves the previous checkpoints intact. `restore`
puts the newest file's values back into the session's own model (weights
and optimizer variables by Keras's `load_weights`, masks and algorithm
state by assignment), so the model stays compiled and attached.

Example:

    ckpt = KerasCheckpoint("runs/sm/checkpoints", model, algorithm)
    ckpt.restore()                       # ckpt.batches: where to go on
    ...
    ckpt.save(epochs_done=2, batches=1100)
"""

import collections.abc
import io
import json
import os
import re
import zipfile

import keras
import numpy as np
import tensorflow as tf

from tf_sparse import checkpoints
from tf_sparse import masking
from tf_sparse import saving

PREFIX = "ckpt"
SUFFIX = ".keras"
_STATE = "tf_sparse/run_state.json"
_ALGORITHM = "tf_sparse/algorithm_state.npz"
_FORMAT = 1
_NUMBERED = re.compile(rf"^{PREFIX}-(\d+){re.escape(SUFFIX)}$")
_TEMPORARY = ".partial"


def numbered(directory):
    """The `.keras` checkpoints in `directory`, newest (most batches)
    first."""
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        match = _NUMBERED.match(name)
        if match:
            found.append((int(match.group(1)), os.path.join(directory, name)))
    return [path for _, path in sorted(found, reverse=True)]


def state_variables(algorithm):
    """`[(name, variable)]` of an algorithm's checkpointed state: every
    tf.Variable or keras.Variable reachable from `checkpoint_items()`
    (through tf.Modules, lists and dicts), in a fixed order.

    >>> state_variables(None)
    []
    """
    items = algorithm.checkpoint_items() if algorithm is not None else {}
    found, seen = [], set()

    def walk(name, obj):
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, (tf.Variable, keras.Variable)):
            found.append((name, obj))
        elif isinstance(obj, collections.abc.Mapping):
            for key in sorted(obj, key=str):
                walk(f"{name}/{key}", obj[key])
        elif isinstance(obj, collections.abc.Sequence) and not isinstance(
                obj, str):
            for i, value in enumerate(obj):
                walk(f"{name}/{i}", value)
        elif isinstance(obj, tf.Module):
            for key in sorted(vars(obj)):
                if not key.startswith("_"):
                    walk(f"{name}/{key}", vars(obj)[key])

    for key in sorted(items):
        walk(key, items[key])
    return found


def restore_network(model, path):
    """Puts the weights and masks of checkpoint `path` into `model` (and
    its optimizer's state when it has one built), without the run's
    progress or algorithm state.

    Raises:
      CheckpointMismatchError: the file belongs to another model.
      CheckpointCorruptError: the file is damaged.
    """
    try:
        masks = saving.read_masks(path) if masking.is_sparse(model) else {}
    except saving.NoMasksError:
        masks = None
    except saving.SavedModelError as error:
        raise checkpoints.CheckpointCorruptError(str(error),
                                                 path=path) from error
    mine = {mw.path: mw for mw in masking.masked_weights(model)}
    if masks is None or set(masks) != set(mine):
        raise checkpoints.CheckpointMismatchError(
            f"Checkpoint {path} has masks for "
            f"{sorted(masks or {}) or 'no weight'}; this model masks "
            f"{sorted(mine) or 'no weight'}.", path=path)
    try:
        model.load_weights(path)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise checkpoints.CheckpointCorruptError(
            f"Checkpoint {path} is damaged or was cut short ({error}).",
            path=path) from error
    except ValueError as error:
        raise checkpoints.CheckpointMismatchError(
            f"Checkpoint {path} does not match model {model.name!r}: "
            f"{str(error)[:300]}", path=path) from error
    for name, value in masks.items():
        mask = mine[name].mask
        mask.assign(value.astype(keras.backend.standardize_dtype(
            mask.dtype)))


class KerasCheckpoint:
    """Saves and restores a run's state as `.keras` files (module docstring).

    The interface the runner uses of `TrainingCheckpoint`: `restore`,
    `save`, `latest`, `restored_from`, `skipped`, `batches`, `directory`.

    Args:
      directory: the checkpoint folder.
      model: the compiled model (its optimizer is saved with it).
      algorithm: the mask-update algorithm whose state is saved, or None.
      max_to_keep: checkpoints kept.
      on_bad_checkpoint: "error" (a damaged newest file is a
        `CheckpointCorruptError` naming it) or "previous" (the newest file
        that reads back is restored; the damaged ones are renamed
        `*.damaged`).
    """

    def __init__(self, directory, model, algorithm=None, max_to_keep=2,
                 on_bad_checkpoint="error"):
        if on_bad_checkpoint not in checkpoints.ON_BAD_CHECKPOINT:
            raise ValueError(
                f"on_bad_checkpoint={on_bad_checkpoint!r} is not accepted; "
                f"accepted: {', '.join(checkpoints.ON_BAD_CHECKPOINT)}.")
        self.directory = str(directory)
        self.model = model
        self.algorithm = algorithm
        self.max_to_keep = max(int(max_to_keep), 1)
        self.on_bad_checkpoint = on_bad_checkpoint
        self.restored_from = None
        self.skipped = []
        self.batches = 0
        self.epoch = 0

    @property
    def latest(self):
        """The newest checkpoint file, or None."""
        found = numbered(self.directory)
        return found[0] if found else None

    def remove_temporaries(self):
        """Removes files of saves that were killed; returns their paths."""
        removed = []
        if os.path.isdir(self.directory):
            for name in os.listdir(self.directory):
                if name.endswith(_TEMPORARY + SUFFIX):
                    path = os.path.join(self.directory, name)
                    os.remove(path)
                    removed.append(path)
        return removed

    def _sync(self):
        # Under JAX the training state lives outside the variables during
        # `fit`; this copies it back (no-op elsewhere).
        if hasattr(self.model, "jax_state_sync"):
            self.model.jax_state_sync()

    def _build_optimizer(self):
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)

    def save(self, epochs_done, step=None, batches=None):
        """Writes `ckpt-<batches>.keras` (numbered by `step` when no
        `batches` is given); returns its path.

        Raises:
          CheckpointWriteError: the file could not be written (full disk,
            read-only folder); the checkpoints written before are kept.
        """
        self._sync()
        self._build_optimizer()
        batches = int(batches if batches is not None else (
            step if step is not None else epochs_done))
        path = os.path.join(self.directory, f"{PREFIX}-{batches}{SUFFIX}")
        temporary = path[:-len(SUFFIX)] + _TEMPORARY + SUFFIX
        values = {name: np.asarray(keras.ops.convert_to_numpy(variable))
                  for name, variable in state_variables(self.algorithm)}
        buffer = io.BytesIO()
        np.savez(buffer, **{str(i): v for i, v in enumerate(values.values())})
        state = {"format_version": _FORMAT, "batches": batches,
                 "epochs_done": int(epochs_done),
                 "algorithm_state": list(values)}
        try:
            os.makedirs(self.directory, exist_ok=True)
            saving.save_model(self.model, temporary)
            with zipfile.ZipFile(temporary, "a") as archive:
                archive.writestr(_STATE, json.dumps(state))
                archive.writestr(_ALGORITHM, buffer.getvalue())
            os.replace(temporary, path)
        except OSError as error:
            if os.path.exists(temporary):
                os.remove(temporary)
            kept = numbered(self.directory)
            raise checkpoints.CheckpointWriteError(
                f"Could not write checkpoint {path} ({error}). The "
                f"checkpoints written before are kept "
                f"({', '.join(kept) if kept else 'none yet'}); free space or "
                f"make {self.directory} writable, then run again to resume "
                "from the last one.", path=path) from error
        for old in numbered(self.directory)[self.max_to_keep:]:
            os.remove(old)
        self.batches, self.epoch = batches, int(epochs_done)
        return path

    def restore(self, repair=True):
        """Restores the newest checkpoint that reads back; returns the
        epochs done (0 when the folder holds none).

        Raises:
          CheckpointMismatchError: the file belongs to another model.
          CheckpointCorruptError: the newest file is damaged (with
            "error"), or none reads back (with "previous").
        """
        self.restored_from = None
        self.skipped = []
        candidates = numbered(self.directory)
        for i, path in enumerate(candidates):
            try:
                self._restore_from(path)
            except checkpoints.CheckpointCorruptError as error:
                older = candidates[i + 1:]
                if self.on_bad_checkpoint == "error":
                    advice = (
                        f" To resume from the newest earlier checkpoint "
                        f"that reads back ({', '.join(older)}) instead, run "
                        "again with --config.on_bad_checkpoint=previous; "
                        "the damaged file is then renamed *.damaged." if older
                        else " The folder holds no older checkpoint; use "
                        "another --workdir to start over.")
                    raise checkpoints.CheckpointCorruptError(
                        str(error) + advice, path=path) from error
                self.skipped.append(path)
                if repair:
                    os.replace(path, path + checkpoints.DAMAGED_SUFFIX)
                continue
            self.restored_from = path
            return self.epoch
        if self.skipped:
            raise checkpoints.CheckpointCorruptError(
                f"No checkpoint in {self.directory} reads back (damaged: "
                f"{', '.join(self.skipped)}). Use another --workdir to start "
                "over.", path=self.directory)
        return 0

    def _read_state(self, path):
        try:
            with zipfile.ZipFile(path) as archive:
                state = json.loads(archive.read(_STATE))
                with np.load(io.BytesIO(archive.read(_ALGORITHM)),
                             allow_pickle=False) as data:
                    values = [data[str(i)] for i in
                              range(len(state["algorithm_state"]))]
        except (zipfile.BadZipFile, KeyError, ValueError, OSError,
                EOFError) as error:
            raise checkpoints.CheckpointCorruptError(
                f"Checkpoint {path} is damaged or was cut short ({error}).",
                path=path) from error
        return state, values

    def _restore_from(self, path):
        state, values = self._read_state(path)
        names = [name for name, _ in state_variables(self.algorithm)]
        if names != state["algorithm_state"]:
            raise checkpoints.CheckpointMismatchError(
                f"Checkpoint {path} holds the state of another algorithm "
                f"({', '.join(state['algorithm_state']) or 'none'}; this "
                f"run's: {', '.join(names) or 'none'}).", path=path)
        self._build_optimizer()
        restore_network(self.model, path)
        for (_, variable), value in zip(state_variables(self.algorithm),
                                        values):
            variable.assign(value)
        self.batches = int(state["batches"])
        self.epoch = int(state["epochs_done"])
