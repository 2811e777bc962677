"""Lengths resolved once to steps, and the workdir: identity, migration of
folders from before the one engine, atomic files."""

import json
import os

import pytest

from tf_sparse import runs
from tf_sparse.runs import plan as plan_lib
from tf_sparse.runs import workdir as workdir_lib
from runs_testlib import tiny_data


def config(**changes):
    c = runs.default_config("fashion_mnist")
    c.update(dict(validation_fraction=0.0, lr_decay_every="0"))
    for key, value in changes.items():
        c[key] = value
    return c


def test_plan_counts_epochs_times_the_multiplier_in_steps():
    plan = plan_lib.resolve(config(epochs=3, train_multiplier=2.0), 50)
    assert (plan.epochs, plan.total_steps) == (6, 300)
    assert plan.point("2ep") == 100 and plan.point(0.5) == 150
    assert plan.point("7it") == 7 and plan.stop_step == 300
    with pytest.raises(ValueError, match="3 \\* 1.5 = 4.5 must be a whole"):
        plan_lib.resolve(config(epochs=3, train_multiplier=1.5), 50)
    with pytest.raises(ValueError, match="max_steps=-1"):
        plan_lib.resolve(config(max_steps=-1), 50)
    assert plan_lib.resolve(config(max_steps=40), 50).stop_step == 40


def test_decay_boundaries_and_warmup_in_steps():
    plan = plan_lib.resolve(config(epochs=4), 50)
    every = config(lr_decay_every="1ep")
    assert plan_lib.decay_boundaries(every, plan) == (50, 100, 150)
    listed = config(lr_boundaries=(0.5, "3ep", 400))   # 400: past the end
    assert plan_lib.decay_boundaries(listed, plan) == (100, 150)
    assert plan_lib.warmup_steps(config(warmup="1ep"), plan) == 50
    # A warm-up as long as a shortened run ends one step before its end.
    assert plan_lib.warmup_steps(config(warmup=1.0), plan) == 199


def test_a_new_run_is_recorded_and_another_run_is_refused(tmp_path):
    wd = workdir_lib.Workdir(tmp_path / "run")
    identity = ("model", "seed")
    record = wd.check(config(), identity, kind="train")
    stored = json.load(open(tmp_path / "run" / "run.json"))
    assert stored == json.loads(json.dumps(record))
    assert stored["kind"] == "train" and stored["config"]["seed"] == 17
    assert set(stored["started_by"]) == {"tf_sparse", "commit", "tensorflow",
                                         "keras"}
    wd.check(config(epochs=3), identity, kind="train")   # not identity
    before = open(tmp_path / "run" / "run.json").read()
    with pytest.raises(runs.RunMismatchError,
                       match="seed=17, but this config has seed=3"):
        wd.check(config(seed=3), identity, kind="train")
    with pytest.raises(runs.RunMismatchError, match="holds a train run"):
        wd.check(config(), identity, kind="lottery")
    assert open(tmp_path / "run" / "run.json").read() == before


def test_folders_of_the_old_runners_are_read_with_renamed_keys(tmp_path):
    old = {"model": "resnet50", "lr_unit": "epochs",
           "lr_boundaries": [30, 60], "lr_decay_every": 0.0,
           "warmup_epochs": 5.0}          # the CIFAR-10/ImageNet runner
    os.makedirs(tmp_path / "image")
    json.dump(old, open(tmp_path / "image" / "run.json", "w"))
    record = workdir_lib.Workdir(tmp_path / "image").record()
    assert record["kind"] == "train" and record["legacy"] == "run.json"
    assert record["config"]["lr_boundaries"] == ("30ep", "60ep")
    assert record["config"]["warmup"] == "5ep"
    assert record["config"]["lr_decay_every"] == "0"
    mnist = {"lr_decay_at": [0.5, 0.75], "sparsity": 0.9}   # tools/train.py
    assert workdir_lib.migrate(mnist) == {"lr_boundaries": (0.5, 0.75),
                                          "sparsity": 0.9}
    lottery = {"config": {"exclude": ["fc3"], "strategy": "layerwise",
                          "lr_factor": 0.5, "eval_every_epoch": False},
               "steps": {"total": 100}}
    os.makedirs(tmp_path / "lth")
    json.dump(lottery, open(tmp_path / "lth" / "lottery.json", "w"))
    record = workdir_lib.Workdir(tmp_path / "lth").record()
    assert record["kind"] == "lottery" and record["steps"] == {"total": 100}
    assert record["config"] == {"keep_dense": ("fc3",),
                                "prune_scope": "layerwise",
                                "lr_decay_factor": 0.5,
                                "eval_every_epochs": 0}


def test_a_run_started_before_the_one_engine_resumes(tmp_path):
    """A workdir whose run.json is the old flat config (old key names)
    continues: its checkpoints have the same structure."""
    workdir = str(tmp_path / "run")
    c = config(epochs=1, sparsity=0.9, eval_every_epochs=0)
    first = runs.run(c, workdir, data=tiny_data(), verbose=0)
    assert first["steps"] == 6
    flat = {**c.to_dict(), "lr_decay_at": list(c.lr_boundaries)}
    del flat["lr_boundaries"]
    json.dump(flat, open(os.path.join(workdir, "run.json"), "w"))
    second = runs.run(config(epochs=2, sparsity=0.9, eval_every_epochs=0),
                      workdir, data=tiny_data(), verbose=0)
    assert second["steps"] == 12 and second["steps_run"] == 6
    with pytest.raises(runs.RunMismatchError, match="sparsity"):
        runs.run(config(epochs=2, sparsity=0.8), workdir, data=tiny_data(),
                 verbose=0)


def test_json_is_written_atomically(tmp_path):
    path = str(tmp_path / "results.json")
    workdir_lib.write_json(path, {"a": 1})

    def fail(f):
        f.write('{"half": ')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        workdir_lib.write_atomically(path, fail)
    assert workdir_lib.read_json(path) == {"a": 1}
    assert os.listdir(tmp_path) == ["results.json"]
    open(path, "w").write("{broken")
    with pytest.raises(workdir_lib.WorkdirError, match="results.json is "
                       "unreadable or damaged"):
        workdir_lib.read_json(path)
