"""Workdirs that never trap the user: damaged files are named with what to
do, a full disk or a read-only folder loses nothing already written, a
damaged checkpoint never restarts a run from step 0, interrupted saves leave
nothing behind and a resumed run writes no checkpoint twice."""

import errno
import glob
import json
import os

import pytest

from tf_sparse import checkpoints
from tf_sparse import runs
from tf_sparse.runs import workdir as workdir_lib


def small_config(**changes):
    """Static sparse LeNet-300-100 on synthetic 8x8 images: 4 steps an
    epoch, 2 epochs."""
    config = runs.default_config("cifar10")
    config.update({**dict(
        model="lenet300_100", synthetic_data=True, image_size=8,
        batch_size=8, eval_batch_size=8, eval_steps=1, epochs=2,
        steps_per_epoch=4, eval_every_epochs=0, log_every_steps=0,
        validation_fraction=0.0, sparsity=0.9), **changes})
    return config


def snapshot(folder):
    """{relative path: bytes} of every file below `folder`."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, folder)] = f.read()
    return found


def checkpoint_files(workdir):
    return snapshot(os.path.join(workdir, "checkpoints"))


# --- damaged JSON files -------------------------------------------------------


@pytest.mark.parametrize("name, advice", [
    ("run.json", "It records what the run in this folder is: restore it "
                 "from a copy, or use another --workdir"),
    ("results.json", "It is rewritten when the run ends: delete it and run "
                     "again"),
    ("setup.json", "It is rewritten when the run starts: delete it and run "
                   "again"),
    ("metrics.json", "It marks a finished level or branch: delete it"),
])
def test_a_damaged_json_file_is_named_with_what_to_do(tmp_path, name,
                                                      advice):
    path = str(tmp_path / name)
    with open(path, "w") as f:
        f.write('{"config": {"model": "lenet')      # cut short
    with pytest.raises(workdir_lib.WorkdirError) as error:
        workdir_lib.read_json(path)
    message = str(error.value)
    assert message.startswith(f"{path} is unreadable or damaged: it is not "
                              "valid JSON (")
    assert advice in message


def test_bytes_that_are_not_text_are_named(tmp_path):
    path = str(tmp_path / "results.json")
    with open(path, "wb") as f:
        f.write(b"\xff\xfe\x00garbage")
    with pytest.raises(workdir_lib.WorkdirError, match="results.json is "
                       "unreadable or damaged: it is not valid JSON"):
        workdir_lib.read_json(path)


@pytest.mark.parametrize("content", ["[]", '"run"', '{"config": 3}'])
def test_a_run_json_that_is_not_a_record_is_named(tmp_path, content):
    (tmp_path / "run.json").write_text(content)
    with pytest.raises(workdir_lib.WorkdirError,
                       match="run.json is damaged: it holds valid JSON but "
                             "not a run record"):
        workdir_lib.Workdir(str(tmp_path)).record()


def test_a_run_with_a_damaged_run_json_changes_nothing(tmp_path):
    workdir = str(tmp_path)
    (tmp_path / "run.json").write_text("{\"format\": ")
    before = snapshot(workdir)
    with pytest.raises(workdir_lib.WorkdirError, match="run.json is "
                       "unreadable or damaged"):
        runs.run(small_config(), workdir, verbose=0)
    assert snapshot(workdir) == before


# --- full disk, read-only folder -------------------------------------------------


def disk_full(monkeypatch, only=None):
    """Makes the workdir's atomic writer fail as on a full disk (for files
    named `only`, or all); returns the paths it refused."""
    refused = []
    original = workdir_lib.write_atomically

    def write_atomically(path, write, binary=False):
        if only is None or os.path.basename(path) == only:
            refused.append(path)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return original(path, write, binary=binary)

    monkeypatch.setattr(workdir_lib, "write_atomically", write_atomically)
    return refused


def test_a_full_disk_on_a_new_run_names_run_json(tmp_path, monkeypatch):
    workdir = str(tmp_path / "run")
    disk_full(monkeypatch)
    with pytest.raises(workdir_lib.WorkdirWriteError) as error:
        runs.run(small_config(), workdir, verbose=0)
    path = os.path.join(workdir, "run.json")
    assert str(error.value).startswith(
        f"Cannot write {path}: No space left on device; nothing was written "
        "there. Free space on that disk and run again")
    assert error.value.path == path
    assert not os.path.exists(path)


def test_a_full_disk_at_the_end_keeps_what_was_written(tmp_path,
                                                      monkeypatch):
    workdir = str(tmp_path)
    runs.run(small_config(epochs=1), workdir, verbose=0)
    before = snapshot(workdir)
    refused = disk_full(monkeypatch, only="results.json")
    with pytest.raises(workdir_lib.WorkdirWriteError,
                       match=r"results.json: No space left on device; the "
                             r"previous version is kept"):
        runs.run(small_config(epochs=2), workdir, verbose=0)
    assert refused == [os.path.join(workdir, "results.json")]
    after = snapshot(workdir)
    for name in ("run.json", "results.json"):
        assert after[name] == before[name]
    # training went on and checkpointed: the next start finds it finished
    assert max(checkpoints.numbered(os.path.join(workdir, "checkpoints"))
               ).endswith("ckpt-8")
    monkeypatch.undo()
    results = runs.run(small_config(epochs=2), workdir, verbose=0)
    assert results["finished"] and results["steps_run"] == 0


def test_a_read_only_workdir_loses_nothing(tmp_path, monkeypatch):
    """chmod where it holds (not root); the patched writer where root may
    write anyway."""
    workdir = str(tmp_path / "run")
    runs.run(small_config(epochs=1), workdir, verbose=0)
    before = snapshot(workdir)
    os.chmod(workdir, 0o555)
    try:
        probe = os.path.join(workdir, "probe")
        try:
            open(probe, "w").close()
            os.remove(probe)
            read_only = False
        except OSError:
            read_only = True
        if not read_only:      # root: chmod does not stop writes
            monkeypatch.setattr(
                workdir_lib, "write_atomically",
                lambda path, *a, **k: (_ for _ in ()).throw(
                    OSError(errno.EACCES, "Permission denied", path)))
        with pytest.raises(workdir_lib.WorkdirWriteError) as error:
            runs.run(small_config(epochs=2), workdir, verbose=0)
        assert "Permission denied" in str(error.value)
        assert "Make the folder writable" in str(error.value)
        assert os.path.join(workdir, "setup.json") in str(error.value)
    finally:
        os.chmod(workdir, 0o755)
    assert snapshot(workdir) == before


def test_a_checkpoint_that_cannot_be_written_keeps_the_earlier_ones(
        tmp_path, monkeypatch):
    import tensorflow as tf
    workdir = str(tmp_path)
    runs.run(small_config(epochs=1), workdir, verbose=0)
    before = checkpoint_files(workdir)
    original = tf.train.CheckpointManager.save

    def full(self, checkpoint_number=None, **kwargs):
        if checkpoint_number > 4:
            raise tf.errors.ResourceExhaustedError(
                None, None, "No space left on device")
        return original(self, checkpoint_number=checkpoint_number, **kwargs)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", full)
    with pytest.raises(checkpoints.CheckpointWriteError,
                       match=r"Could not write checkpoint .*ckpt-8 \(No "
                             r"space left on device\)\. The checkpoints "
                             r"written before are kept \(ckpt-4\)"):
        runs.run(small_config(epochs=2), workdir, verbose=0)
    assert checkpoint_files(workdir) == before


# --- damaged checkpoints in a run -------------------------------------------------


def test_a_garbage_index_never_restarts_the_run_from_zero(tmp_path):
    workdir = str(tmp_path)
    runs.run(small_config(epochs=1, keep_checkpoints=2,
                          checkpoint_every_steps=2), workdir, verbose=0)
    index = os.path.join(workdir, "checkpoints", "checkpoint")
    with open(index, "w") as f:
        f.write("not an index\n")
    before = checkpoint_files(workdir)
    with pytest.raises(checkpoints.CheckpointCorruptError,
                       match="index file .*checkpoint is damaged.*"
                             "--config.on_bad_checkpoint=previous"):
        runs.run(small_config(epochs=2), workdir, verbose=0)
    assert checkpoint_files(workdir) == before
    results = runs.run(small_config(epochs=2, on_bad_checkpoint="previous"),
                       workdir, verbose=0)
    assert results["steps_run"] == 4 and results["steps"] == 8


def test_a_truncated_checkpoint_falls_back_when_asked(tmp_path):
    workdir = str(tmp_path)
    runs.run(small_config(epochs=1, checkpoint_every_steps=2), workdir,
             verbose=0)
    data = glob.glob(os.path.join(workdir, "checkpoints", "ckpt-4.data-*"))[0]
    with open(data, "r+b") as f:
        f.truncate(100)
    with pytest.raises(checkpoints.CheckpointCorruptError) as error:
        runs.run(small_config(epochs=2), workdir, verbose=0)
    assert data in str(error.value) and "ckpt-2" in str(error.value)
    results = runs.run(small_config(epochs=2, on_bad_checkpoint="previous"),
                       workdir, verbose=0)
    assert results["steps_run"] == 6 and results["steps"] == 8
    assert os.path.exists(data + ".damaged")


# --- interrupted saves, resumed runs ---------------------------------------------


def count_saves(monkeypatch):
    saved = []
    original = checkpoints.TrainingCheckpoint.save

    def save(self, epochs_done, step=None, batches=None):
        saved.append(step)
        return original(self, epochs_done, step=step, batches=batches)

    monkeypatch.setattr(checkpoints.TrainingCheckpoint, "save", save)
    return saved


def test_a_resumed_run_writes_no_checkpoint_twice(tmp_path, monkeypatch):
    """Resumed at step 2 (saved there), it saved again at step 3: the first
    batch after a resume counted as a new multiple of
    checkpoint_every_steps."""
    workdir = str(tmp_path)
    saved = count_saves(monkeypatch)
    runs.run(small_config(checkpoint_every_steps=2, max_steps=2), workdir,
             verbose=0)
    assert saved == [2]
    saved.clear()
    results = runs.run(small_config(checkpoint_every_steps=2), workdir,
                       verbose=0)
    assert results["steps"] == 8 and results["steps_run"] == 6
    assert saved == [4, 6, 8]


def test_the_temporaries_of_a_killed_save_are_removed_on_start(tmp_path):
    workdir = str(tmp_path)
    runs.run(small_config(epochs=1), workdir, verbose=0)
    folder = os.path.join(workdir, "checkpoints")
    temp = os.path.join(folder, "ckpt-6_temp")        # killed mid-save
    os.makedirs(temp)
    with open(os.path.join(temp, "part-00000-of-00001.data-00000-of-00001"),
              "wb") as f:
        f.write(b"\0" * 10)
    mine = os.path.join(workdir, "ckpt-1_temp")       # not in checkpoints/
    os.makedirs(mine)
    results = runs.run(small_config(epochs=2), workdir, verbose=0)
    assert results["steps"] == 8
    assert not os.path.exists(temp) and os.path.isdir(mine)
    assert not [n for n in os.listdir(folder) if "_temp" in n]
    with open(os.path.join(workdir, "results.json")) as f:
        assert json.load(f)["steps"] == 8
