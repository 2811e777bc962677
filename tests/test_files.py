"""tf_sparse.files: a file is written whole or not at all."""

import json
import os

import pytest

from tf_sparse import files
from tf_sparse import undertraining


def test_json_is_written_and_replaced_whole(tmp_path):
    path = str(tmp_path / "sub" / "history.json")
    files.write_json_atomically(path, [{"step": 0}])
    files.write_json_atomically(path, [{"step": 0}, {"step": 5}])
    with open(path) as f:
        assert json.load(f) == [{"step": 0}, {"step": 5}]
    assert sorted(os.listdir(tmp_path / "sub")) == ["history.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = str(tmp_path / "history.json")
    files.write_json_atomically(path, {"old": True})

    def write_half_then_fail(f):
        f.write('{"new": ')
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        files.write_atomically(path, write_half_then_fail)
    with open(path) as f:
        assert json.load(f) == {"old": True}
    assert os.listdir(tmp_path) == ["history.json"]


def test_an_interrupted_write_keeps_the_old_file(tmp_path):
    path = str(tmp_path / "weights.bin")
    files.write_atomically(path, lambda f: f.write(b"old"), binary=True)

    def interrupted(f):
        f.write(b"ne")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        files.write_atomically(path, interrupted, binary=True)
    with open(path, "rb") as f:
        assert f.read() == b"old"
    assert os.listdir(tmp_path) == ["weights.bin"]


def test_undertraining_history_survives_a_failed_save(tmp_path, monkeypatch):
    path = str(tmp_path / "history.json")
    undertraining.save_history([{"step": 1, "train_loss": 0.5}], path)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(json, "dump", full_disk)
    with pytest.raises(OSError):
        undertraining.save_history([{"step": 2}], path)
    monkeypatch.undo()
    assert undertraining.load_history(path) == [{"step": 1, "train_loss": 0.5}]
