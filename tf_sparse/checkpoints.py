"""Checkpoints of a training run: model, masks, optimizer slots, progress.

Masks are tracked through their layers, so `tf.train.Checkpoint(model=...)`
carries them; this module adds the optimizer, the algorithm's state and the
number of finished epochs, and turns TensorFlow's restore failures into
errors that name the file and say what went wrong:

- `CheckpointMismatchError`: the checkpoint belongs to another model: a
  sparse checkpoint restored into a dense model (its masks would be
  dropped) or the reverse, or the first variable whose shape differs or
  that only one side has;
- `CheckpointCorruptError`: a damaged or missing file (a truncated `.data`
  file, a garbage `checkpoint` index). With `on_bad_checkpoint="previous"`
  the newest checkpoint that reads back is restored instead, and the
  damaged files are renamed `*.damaged` (never deleted);
- `CheckpointWriteError`: a save failed (full disk, read-only folder); the
  checkpoints written before are kept.

A restore never starts from scratch while the folder holds checkpoints: a
folder with `ckpt-N` files but no readable index is an error (or, with
"previous", a restore of the newest readable one). `remove_temporaries`
clears what a kill during a save leaves behind (`ckpt-N_temp/` folders).

Example:

    ckpt = tfs.checkpoints.TrainingCheckpoint("runs/sm/ckpt", model)
    start_epoch = ckpt.restore()          # 0 when the directory is empty
    model.fit(..., initial_epoch=start_epoch,
              callbacks=[tfs.callbacks.SaveCheckpoint(ckpt)])
"""

import collections
import contextlib
import logging
import os
import re

import tensorflow as tf

from tf_sparse import backend
from tf_sparse import masking
from tf_sparse import training

#: What a restore does when the newest checkpoint is damaged.
ON_BAD_CHECKPOINT = ("error", "previous")
INDEX_FILE = "checkpoint"
PREFIX = "ckpt"
DAMAGED_SUFFIX = ".damaged"
# Files and folders a save leaves behind when it is killed: the sharded
# saver's `<prefix>_temp/` folder and the index's atomic-write temporary.
_TEMP_FOLDER = re.compile(rf"^{PREFIX}-\d+_temp$")
_TEMP_INDEX = re.compile(rf"^{INDEX_FILE}\.tmp[0-9a-f]{{32}}$")
_NUMBERED_INDEX = re.compile(rf"^{PREFIX}-(\d+)\.index$")
_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_VALUE = "VARIABLE_VALUE"

_LOG = logging.getLogger(__name__)

# File operations through tf.io.gfile, as TensorFlow's own checkpointing:
# a checkpoint folder may live on any file system TensorFlow reads
# (gs://, ...).
_gfile = tf.io.gfile


def _exists(path):
    try:
        return _gfile.exists(path)
    except tf.errors.OpError:
        return False


def _listdir(directory):
    """Names in `directory` (no trailing slashes); [] if unreadable."""
    try:
        return [n.rstrip("/") for n in _gfile.listdir(directory)]
    except (tf.errors.OpError, OSError):
        return []


def _rmtree(path):
    try:
        _gfile.rmtree(path)
    except (tf.errors.OpError, OSError):
        pass


class CheckpointError(ValueError):
    """A checkpoint cannot be restored or written; the message names the
    file. `path`: that file (or the checkpoint prefix)."""

    def __init__(self, message, path=None):
        super().__init__(message)
        self.path = path


class CheckpointMismatchError(CheckpointError):
    """A checkpoint does not belong to the model it is restored into."""


class CheckpointCorruptError(CheckpointError):
    """A checkpoint file is damaged, truncated or missing."""


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written (full disk, read-only folder)."""


def _check_policy(on_bad_checkpoint):
    if on_bad_checkpoint not in ON_BAD_CHECKPOINT:
        raise ValueError(
            f"on_bad_checkpoint={on_bad_checkpoint!r} is not accepted; "
            f"accepted: {', '.join(ON_BAD_CHECKPOINT)}.")


def numbered(directory):
    """The checkpoint prefixes in `directory` whose `.index` file exists,
    newest (highest number) first."""
    found = []
    for name in _listdir(directory):
        match = _NUMBERED_INDEX.match(name)
        if match:
            found.append((int(match.group(1)), os.path.join(
                directory, name[:-len(".index")])))
    return [path for _, path in sorted(found, reverse=True)]


def _number(prefix):
    match = re.search(r"-(\d+)$", prefix)
    return int(match.group(1)) if match else -1


def remove_temporaries(directory):
    """Removes the temporaries of saves that were killed: `ckpt-N_temp/`
    folders and `checkpoint.tmp<hex>` files, nothing else. Returns the
    removed paths."""
    removed = []
    for name in sorted(_listdir(directory)):
        path = os.path.join(directory, name)
        if _TEMP_FOLDER.match(name) and _gfile.isdir(path):
            _rmtree(path)
        elif _TEMP_INDEX.match(name) and not _gfile.isdir(path):
            with contextlib.suppress(tf.errors.OpError, OSError):
                _gfile.remove(path)
        else:
            continue
        if not _exists(path):
            removed.append(path)
    return removed


@contextlib.contextmanager
def _quiet_tensorflow():
    """TensorFlow logs a warning and carries on for a garbage index file;
    the caller reports it instead."""
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def read_index(directory):
    """`(latest checkpoint prefix or None, problem or None)` from the
    `checkpoint` index file of `directory`.

    A problem is a sentence: the index is unreadable, or missing while the
    folder holds checkpoints, or names a checkpoint whose files are gone.
    """
    index = os.path.join(directory, INDEX_FILE)
    found = numbered(directory)
    if not _exists(index):
        if found:
            return None, (f"the index file {index} is missing, but the "
                          f"folder holds {_names(found)}")
        return None, None
    try:
        with _quiet_tensorflow():
            state = tf.train.get_checkpoint_state(directory)
    except (ValueError, tf.errors.OpError, UnicodeDecodeError) as error:
        state, reason = None, _one_line(error)
    else:
        reason = "it is not a checkpoint index"
    if state is None or not state.model_checkpoint_path:
        return None, f"the index file {index} is damaged ({reason})"
    latest = state.model_checkpoint_path
    if not os.path.isabs(latest):
        latest = os.path.join(directory, latest)
    if not _exists(latest + ".index"):
        return None, (f"the index file {index} names {latest}, whose "
                      f"{latest}.index is missing")
    return latest, None


def _names(prefixes):
    return ", ".join(os.path.basename(p) for p in prefixes)


def _one_line(error):
    text = " ".join(str(error).split())
    return text[:400] + ("..." if len(text) > 400 else "")


def _data_files(prefix):
    folder = os.path.dirname(prefix) or "."
    base = os.path.basename(prefix) + ".data-"
    return sorted(os.path.join(folder, n) for n in _listdir(folder)
                  if n.startswith(base))


def _damaged_data(prefix, error):
    files = _data_files(prefix) or [prefix + ".data-*"]
    return CheckpointCorruptError(
        f"Checkpoint data file {' / '.join(files)} is damaged or truncated "
        f"({_one_line(error)}).", path=files[0])


def _files_of(prefix):
    return [prefix + ".index", *_data_files(prefix)]


# --------------------------------------------------------------------------
# What differs between a checkpoint and the objects it is restored into
# --------------------------------------------------------------------------


def _children(obj):
    try:
        return dict(tf.train.TrackableView.children(obj))
    except Exception:  # pylint: disable=broad-except
        return {}


def _is_variable(obj):
    return hasattr(obj, "shape") and hasattr(obj, "assign")


def _first_variable(obj, path, limit=2000):
    """(path, variable) of the first variable below a live object."""
    queue, seen = collections.deque([(obj, path)]), set()
    while queue and len(seen) < limit:
        current, where = queue.popleft()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if _is_variable(current):
            return where, current
        for name, child in _children(current).items():
            queue.append((child, f"{where}/{name}"))
    return None


def _first_stored(graph, node_id, path):
    """The checkpoint key of the first value below a node of the stored
    object graph."""
    queue, seen = collections.deque([(node_id, path)]), set()
    while queue:
        current, where = queue.popleft()
        if current in seen:
            continue
        seen.add(current)
        node = graph.nodes[current]
        for attr in node.attributes:
            if attr.name == _VALUE:
                return attr.checkpoint_key
        for ref in node.children:
            queue.append((ref.node_id, f"{where}/{ref.local_name}"))
    return None


def _differences(root, graph, shapes, compare_extra):
    """Walks the stored object graph and the live objects side by side,
    as `tf.train.Checkpoint` matches them (by child names).

    Returns (shape differences, stored-only values, live-only variables),
    each a list of tuples in breadth-first order. Stored-only values count
    below the top-level children named in `compare_extra` only (state that
    is created lazily may legitimately be missing yet).
    """
    shape_diffs, stored_only, live_only = [], [], []
    queue = collections.deque([(0, root, "")])
    seen = set()
    while queue:
        node_id, obj, path = queue.popleft()
        if node_id in seen:
            continue
        seen.add(node_id)
        node = graph.nodes[node_id]
        if _is_variable(obj):
            for attr in node.attributes:
                if attr.name == _VALUE and attr.checkpoint_key in shapes:
                    stored = tuple(shapes[attr.checkpoint_key])
                    live = tuple(int(d) for d in obj.shape)
                    if stored != live:
                        shape_diffs.append((path, obj, stored, live))
        live_children = _children(obj)
        stored_names = set()
        for ref in node.children:
            stored_names.add(ref.local_name)
            child_path = f"{path}/{ref.local_name}" if path else ref.local_name
            child = live_children.get(ref.local_name)
            if child is None:
                top = child_path.split("/", 1)[0]
                if top in compare_extra:
                    key = _first_stored(graph, ref.node_id, child_path)
                    if key is not None:
                        stored_only.append((child_path, key))
            else:
                queue.append((ref.node_id, child, child_path))
        for name, child in live_children.items():
            if name not in stored_names:
                child_path = f"{path}/{name}" if path else name
                found = _first_variable(child, child_path)
                if found is not None:
                    live_only.append(found)
    return shape_diffs, stored_only, live_only


def _variable_name(variable, labels):
    label = labels.get(id(variable))
    if label:
        return label
    return getattr(variable, "path", None) or getattr(variable, "name", "?")


def _key_name(key):
    return key.replace("/.ATTRIBUTES/VARIABLE_VALUE", "")


def check_compatible(root, path, model, *, compare_extra=("model",
                                                            "optimizer")):
    """Raises `CheckpointMismatchError` if checkpoint `path` does not
    belong to `root` (a `tf.train.Checkpoint` holding `model`), naming
    what differs; `CheckpointCorruptError` if its index cannot be read.

    Checked, in order: masks on one side only (a sparse checkpoint into a
    dense model, or the reverse), then the first variable whose shape
    differs, then the first value only the checkpoint has (below
    `compare_extra`), then the first variable only the model has.
    """
    from tensorflow.core.protobuf import trackable_object_graph_pb2  # pylint: disable=import-outside-toplevel
    unreadable = (tf.errors.OpError, ValueError, IndexError, EOFError)
    if not _data_files(path):
        raise CheckpointCorruptError(
            f"Checkpoint {path} has no data file ({path}.data-* is "
            "missing).", path=path + ".data-00000-of-00001")
    try:
        reader = tf.train.load_checkpoint(path)
        shapes = reader.get_variable_to_shape_map()
    except unreadable as error:
        raise CheckpointCorruptError(
            f"Checkpoint index {path}.index is damaged or truncated "
            f"({_one_line(error)}).", path=path + ".index") from error
    try:
        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        graph.ParseFromString(reader.get_tensor(_GRAPH_KEY))
    except unreadable + (Exception,) as error:  # protobuf's DecodeError too
        raise _damaged_data(path, error) from error
    stored_masks = sorted(k for k in shapes if f"/{masking.ATTR}/" in k)
    live_masks = masking.masked_weights(model) if model is not None else []
    name = getattr(model, "name", "?")
    if stored_masks and not live_masks:
        raise CheckpointMismatchError(
            f"Checkpoint {path} holds a sparse model ({len(stored_masks)} "
            f"masks, e.g. {_key_name(stored_masks[0])}), but model {name!r} "
            "is dense: restoring it would drop the masks. Sparsify the model "
            "first (tfs.sparsify, the same layers), or restore into the "
            "model that wrote it.", path=path)
    if live_masks and not stored_masks:
        raise CheckpointMismatchError(
            f"Checkpoint {path} holds a dense model (no masks), but model "
            f"{name!r} is sparse ({len(live_masks)} masked weights, e.g. "
            f"{live_masks[0].path}): its masks would not be restored. "
            "Restore it into a dense model (and sparsify afterwards), or "
            "use the checkpoint of the sparse run.", path=path)
    labels = {}
    for mw in live_masks:
        labels[id(mw.mask)] = f"the mask of {mw.path}"
    try:
        shape_diffs, stored_only, live_only = _differences(
            root, graph, shapes, compare_extra)
    except Exception:  # pylint: disable=broad-except
        # The walk relies on how TensorFlow names checkpoint children; if
        # that changes, TensorFlow's own matching still reports mismatches.
        _LOG.debug("checkpoint comparison skipped", exc_info=True)
        return
    if shape_diffs:
        # The model's own weights first, then masks, then optimizer slots.
        weight_ids = {id(v) for v in getattr(model, "weights", [])}
        shape_diffs.sort(key=lambda d: 0 if id(d[1]) in weight_ids else (
            1 if id(d[1]) in labels else 2))
        where, variable, stored, live = shape_diffs[0]
        raise CheckpointMismatchError(
            f"Checkpoint {path} does not match model {name!r}: variable "
            f"{_variable_name(variable, labels)} ({where}) has shape "
            f"{stored} in the checkpoint and {live} in the model "
            f"({len(shape_diffs)} variable(s) differ in shape). It was "
            "written by another model (other layer sizes).", path=path)
    if stored_only:
        where, key = stored_only[0]
        raise CheckpointMismatchError(
            f"Checkpoint {path} does not match model {name!r}: the "
            f"checkpoint holds {_key_name(key)}, which the model does not "
            f"have ({len(stored_only)} such part(s); other layers or "
            "another optimizer).", path=path)
    if live_only:
        where, variable = live_only[0]
        raise CheckpointMismatchError(
            f"Checkpoint {path} does not match model {name!r}: variable "
            f"{_variable_name(variable, labels)} ({where}) is not in the "
            f"checkpoint ({len(live_only)} such part(s); other layers or "
            "another optimizer).", path=path)


# --------------------------------------------------------------------------
# The checkpoint of a training run
# --------------------------------------------------------------------------


class TrainingCheckpoint:
    """A `tf.train.CheckpointManager` over everything a run needs to resume.

    Args:
      directory: the checkpoint folder.
      model: the compiled model (its optimizer is saved with it).
      algorithm: the mask-update algorithm whose state is saved (default:
        the one attached to `model`).
      max_to_keep: checkpoints kept.
      on_bad_checkpoint: "error" (default): a damaged newest checkpoint is
        a `CheckpointCorruptError` naming the file; "previous": restore the
        newest checkpoint that reads back instead, renaming the damaged
        files `*.damaged`.

    After `restore`, `restored_from` is the checkpoint restored (None for
    a fresh start) and `skipped` lists the damaged ones passed over.
    """

    def __init__(self, directory, model, algorithm=None, max_to_keep=2,
                 on_bad_checkpoint="error"):
        backend.require_tensorflow(
            "TrainingCheckpoint (tf.train checkpoints)",
            "To resume under this backend, save a .keras file with "
            "tfs.save_model (weights, masks, optimizer state) and continue "
            "from tfs.load_model with fit(initial_epoch=...).")
        _check_policy(on_bad_checkpoint)
        self.directory = str(directory)
        self.model = model
        self.max_to_keep = max_to_keep
        self.on_bad_checkpoint = on_bad_checkpoint
        self.restored_from = None
        self.skipped = []
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False,
                                 name="epoch")
        # Batches trained, where a runner counts them apart from the
        # optimizer's iterations (float16 loss scaling skips steps).
        self.batches = tf.Variable(0, dtype=tf.int64, trainable=False,
                                   name="batches")
        algorithm = algorithm or training.attached_algorithm(model)
        items = dict(algorithm.checkpoint_items()) if algorithm else {}
        self.checkpoint = tf.train.Checkpoint(
            model=model, optimizer=model.optimizer, epoch=self.epoch,
            batches=self.batches, **items)
        self._manager = None

    @property
    def manager(self):
        if self._manager is None:
            with _quiet_tensorflow():
                try:
                    self._manager = tf.train.CheckpointManager(
                        self.checkpoint, self.directory,
                        max_to_keep=self.max_to_keep)
                except ValueError as error:  # an index TF cannot use
                    raise CheckpointCorruptError(
                        f"The index file "
                        f"{os.path.join(self.directory, INDEX_FILE)} is "
                        f"damaged ({_one_line(error)}).",
                        path=os.path.join(self.directory,
                                          INDEX_FILE)) from error
        return self._manager

    @property
    def latest(self):
        """The newest checkpoint the index names (None if none or if the
        index is unreadable)."""
        return read_index(self.directory)[0]

    def _advice(self, older, which="earlier "):
        if older:
            return (f" To resume from the newest {which}checkpoint that "
                    f"reads back ({_names(older)}) instead, run again with "
                    "--config.on_bad_checkpoint=previous (library: "
                    "on_bad_checkpoint='previous'); the damaged files are "
                    "then renamed *.damaged, not deleted. Or use another "
                    "--workdir to start over.")
        return (" The folder holds no older checkpoint to fall back to; "
                "use another --workdir (or move this folder away) to start "
                "over.")

    def _build_optimizer(self):
        """Slots exist before a save or a restore, so both see the same
        variables whether or not a step was taken."""
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)

    def _restore_from(self, path):
        self._build_optimizer()
        check_compatible(self.checkpoint, path, self.model)
        try:
            status = self.checkpoint.restore(path)
            status.assert_existing_objects_matched()
        except (tf.errors.DataLossError, tf.errors.NotFoundError,
                tf.errors.OutOfRangeError, IndexError, EOFError) as error:
            raise _damaged_data(path, error) from error
        except (AssertionError, ValueError, tf.errors.OpError) as error:
            raise CheckpointMismatchError(
                f"Checkpoint {path} does not match model "
                f"{self.model.name!r} (another model, other layer shapes): "
                f"{_one_line(error)}", path=path) from error

    def restore(self, repair=True):
        """Restores the newest checkpoint; returns the epochs already done
        (0 when the folder holds none).

        With `on_bad_checkpoint="previous"` a damaged checkpoint is passed
        over for the newest one that reads back; `repair` (the default;
        False for a reader that must not write, e.g. a non-chief worker)
        renames the damaged files `*.damaged` and rewrites the index.

        Raises:
          CheckpointMismatchError: the checkpoint belongs to another model.
          CheckpointCorruptError: a damaged file (with "error"), or no
            checkpoint of the folder reads back (with "previous").
        """
        self.restored_from = None
        self.skipped = []
        latest, problem = read_index(self.directory)
        found = numbered(self.directory)
        if latest is None and problem is None:
            return 0
        if latest is not None:
            n = _number(latest)
            candidates = [latest] + [p for p in found
                                     if p != latest and _number(p) < n]
        else:
            candidates = found
        if problem is not None:
            if self.on_bad_checkpoint == "error":
                raise CheckpointCorruptError(
                    f"Checkpoint folder {self.directory}: {problem}."
                    + self._advice(candidates, which=""),
                    path=os.path.join(self.directory, INDEX_FILE))
            _LOG.warning("%s: %s; restoring the newest readable checkpoint.",
                         self.directory, problem)
        errors = []
        for i, path in enumerate(candidates):
            try:
                self._restore_from(path)
            except CheckpointCorruptError as error:
                if self.on_bad_checkpoint == "error":
                    raise CheckpointCorruptError(
                        str(error) + self._advice(candidates[i + 1:]),
                        path=error.path) from error
                _LOG.warning("%s Trying the previous checkpoint.", error)
                errors.append(str(error))
                self.skipped.append(path)
                continue
            self.restored_from = path
            if repair and (self.skipped or problem is not None):
                self._repair(path, candidates[i + 1:],
                             bad_index=problem is not None)
            return int(self.epoch.numpy())
        raise CheckpointCorruptError(
            f"No checkpoint in {self.directory} reads back"
            + (f": {' '.join(errors)}" if errors else
               f" ({problem})") + " Use another --workdir (or move this "
            "folder away) to start over.", path=self.directory)

    def _repair(self, restored, older, bad_index):
        """Renames the damaged checkpoints and a bad index `*.damaged` and
        writes an index naming `restored` and the checkpoints before it."""
        for prefix in self.skipped:
            for name in _files_of(prefix):
                if _exists(name):
                    _gfile.rename(name, name + DAMAGED_SUFFIX, overwrite=True)
        index = os.path.join(self.directory, INDEX_FILE)
        if bad_index and _exists(index):
            _gfile.rename(index, index + DAMAGED_SUFFIX, overwrite=True)
        keep = list(reversed([restored] + older[:max(self.max_to_keep, 1)
                                                 - 1]))
        try:
            from tensorflow.python.checkpoint import checkpoint_management  # pylint: disable=import-outside-toplevel
            checkpoint_management.update_checkpoint_state_internal(
                self.directory, restored, all_model_checkpoint_paths=keep,
                save_relative_paths=True)
        except (ImportError, AttributeError, TypeError):
            tf.compat.v1.train.update_checkpoint_state(
                self.directory, restored, all_model_checkpoint_paths=keep)
        self._manager = None   # re-read the repaired index

    def save(self, epochs_done, step=None, batches=None):
        """Saves everything; numbered by `step` (default: epochs done).

        `batches`: batches trained so far, if the runner counts them (read
        back as `self.batches` after `restore`).

        Raises:
          CheckpointWriteError: the save failed (full disk, read-only
            folder); the checkpoints written before are kept.
        """
        self._build_optimizer()
        self.epoch.assign(epochs_done)
        if batches is not None:
            self.batches.assign(batches)
        number = epochs_done if step is None else step
        try:
            return self.manager.save(checkpoint_number=number)
        except (OSError, tf.errors.OpError) as error:
            target = os.path.join(self.directory, f"{PREFIX}-{number}")
            _rmtree(target + "_temp")
            kept = numbered(self.directory)
            raise CheckpointWriteError(
                f"Could not write checkpoint {target} ({_one_line(error)}). "
                f"The checkpoints written before are kept "
                f"({_names(kept) if kept else 'none yet'}); free space or "
                f"make {self.directory} writable, then run again to resume "
                "from the last one.", path=target) from error
