"""IMP runs on a tiny model: rewinding bit for bit, baselines, resume, bad input."""

import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_sparse import checkpoints
from tf_sparse import runs
from tf_sparse.lottery import config as config_lib
from tf_sparse.lottery import imp
from tf_sparse.lottery import pruning
from tf_sparse.lottery import runs as lottery_runs
from tf_sparse.lottery import stability
from tf_sparse.lottery import state as state_lib
from tf_sparse.runs import data as data_lib


def tiny_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 8)).astype("float32")
    y = ((x[:, 0] > 0).astype("int32") + (x[:, 1] > 0)).astype("int32")
    xt = rng.normal(size=(48, 8)).astype("float32")
    yt = ((xt[:, 0] > 0).astype("int32") + (xt[:, 1] > 0)).astype("int32")
    return data_lib.ArrayData(x, y, xt, yt, batch_size=16, eval_batch_size=48)


def tiny_model(hidden=32):
    def build():
        inputs = keras.Input((8,))
        h = keras.layers.Dense(hidden, activation="relu", name="fc1")(inputs)
        h = keras.layers.Dense(16, activation="relu", name="fc2")(h)
        out = keras.layers.Dense(3, name="out")(h)
        return keras.Model(inputs, out, name="tiny")
    return build


def tiny_config(**overrides):
    c = config_lib.default_config()
    c.model = "tiny"
    c.epochs = 2                 # 6 steps per epoch: T = 12
    c.batch_size = 16
    c.optimizer = "sgd"
    c.learning_rate = 0.1
    c.momentum = 0.9
    c.lr_boundaries = (0.5,)
    c.rewind = "4"               # mid-epoch: segments 4-6, 6-12
    c.rewind_optimizer = True
    c.keep_dense = ("out",)
    c.levels = 2
    c.eval_every_epochs = 0
    c.train_eval_examples = 48
    for key, value in overrides.items():
        setattr(c, key, value)
    return c


def run_tiny(workdir, config=None, **kwargs):
    return imp.run(config or tiny_config(), str(workdir), data=tiny_data(),
                   model_fn=tiny_model(), verbose=0, report=False, **kwargs)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One finished run with every baseline, recording each start state."""
    workdir = tmp_path_factory.mktemp("lottery") / "ref"
    starts = []
    original = lottery_runs.Run.start_from

    def spy(self, state, masks, step, *, optimizer_state):
        original(self, state, masks, step, optimizer_state=optimizer_state)
        starts.append({
            "masks": {p: np.array(m) for p, m in masks.items()},
            "step": step,
            "iterations": int(self.optimizer.iterations.numpy()),
            "model": [np.array(v.numpy()) for v in self.model.variables],
            "slots": [np.array(v.numpy()) for v in
                      state_lib.optimizer_slots(self.optimizer)]})

    lottery_runs.Run.start_from = spy
    try:
        results = run_tiny(workdir, tiny_config(
            baselines=("random_prune", "random_reinit", "reset")))
    finally:
        lottery_runs.Run.start_from = original
    return workdir, results, starts


def load_npz(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def test_levels_prune_twenty_percent_of_the_remaining_hidden_weights(reference):
    workdir, results, _ = reference
    hidden = 8 * 32 + 32 * 16                                 # 768, out excluded
    expected = [hidden, hidden - 154, hidden - 154 - 123]     # ceil(0.2 R)
    for level, metrics in enumerate(results["levels"]):
        layers = metrics["layers"]
        assert layers["fc1/kernel"]["nonzeros"] + layers["fc2/kernel"][
            "nonzeros"] == expected[level]
        assert layers["out/kernel"]["nonzeros"] == 48
        assert metrics["nonzeros"] == expected[level] + 48
        for name in ("mask.npz", "final.npz", "metrics.json"):
            assert os.path.exists(os.path.join(workdir, f"level_{level:02d}",
                                               name))
        assert os.listdir(os.path.join(workdir, f"level_{level:02d}",
                                       "tensorboard"))


def test_every_level_starts_from_mask_times_w_k_bit_for_bit(reference):
    workdir, results, starts = reference
    rewind = load_npz(os.path.join(workdir, "rewind", "rewind.npz"))
    manifest = json.loads(bytes(rewind["__manifest__"]).decode())
    assert manifest["step"] == 4 and manifest["kind"] == "rewind"
    paths = [v[0] for v in manifest["variables"]]
    for level in range(3):
        masks = state_lib.load_masks(os.path.join(
            workdir, f"level_{level:02d}", "mask.npz"))
        expected = []
        for i, path in enumerate(paths):
            w = rewind[f"m{i}"]
            if path in masks:
                w = np.where(masks[path] > 0, w, np.float32(0))
            expected.append(w)
        matches = [s for s in starts if s["step"] == 4 and all(
            np.array_equal(s["masks"][p], masks[p]) for p in masks)]
        assert matches, level
        start = matches[0]
        assert start["iterations"] == 4
        for got, want in zip(start["model"], expected):
            assert got.dtype == want.dtype
            assert got.tobytes() == want.tobytes()         # bit for bit, +0.0
        # rewind_optimizer=True: momentum is W_k's momentum too.
        slots = [rewind[f"o{i}"] for i in range(len(manifest["optimizer"]))]
        for got, want in zip(start["slots"], slots):
            assert got.tobytes() == want.tobytes()
        assert results["levels"][level]["start_checksum"] == \
            state_lib.checksum(expected)
        assert results["levels"][level]["start_file"] == os.path.join(
            "rewind", "rewind.npz")


def test_baselines(reference):
    workdir, results, starts = reference
    init = load_npz(os.path.join(workdir, "rewind", "init.npz"))
    for level in (1, 2):
        d = os.path.join(workdir, f"level_{level:02d}")
        imp_masks = state_lib.load_masks(os.path.join(d, "mask.npz"))
        rand = state_lib.load_masks(os.path.join(d, "random_prune",
                                                 "mask.npz"))
        for p in imp_masks:                      # same count in every layer
            assert rand[p].sum() == imp_masks[p].sum()
        assert not np.array_equal(rand["fc1/kernel"], imp_masks["fc1/kernel"])
        for name in ("random_reinit", "reset"):
            same = state_lib.load_masks(os.path.join(d, name, "mask.npz"))
            assert all(np.array_equal(same[p], imp_masks[p])
                       for p in imp_masks)
        reinit = load_npz(os.path.join(d, "random_reinit", "init.npz"))
        assert not np.array_equal(reinit["m0"], init["m0"])
    by_kind = results["baselines"]
    assert [m["start_step"] for m in by_kind["reset"]] == [0, 0]
    assert [m["start_step"] for m in by_kind["random_prune"]] == [4, 4]
    assert [m["start_step"] for m in by_kind["random_reinit"]] == [4, 4]
    # reset starts from mask * W_0 at step 0 with zero momentum.
    resets = [s for s in starts if s["step"] == 0 and any(
        s["masks"][p].min() == 0 for p in s["masks"])]
    assert len(resets) == 2
    for s in resets:
        assert all(not slot.any() for slot in s["slots"])
        assert s["model"][0].tobytes() == np.where(
            s["masks"]["fc1/kernel"] > 0, init["m0"],
            np.float32(0)).tobytes()


def test_restart_skips_finished_levels_and_never_rewrites_the_rewind_point(
        reference, tmp_path, monkeypatch):
    workdir = tmp_path / "copy"
    shutil.copytree(reference[0], workdir)
    rewind = os.path.join(workdir, "rewind", "rewind.npz")
    before = (open(rewind, "rb").read(), os.stat(rewind).st_mtime_ns)
    trained = []
    original = lottery_runs.Run.train

    def counting(self, start, masks, end_step, data_seed, directory, **kw):
        trained.append(os.path.relpath(directory, workdir))
        return original(self, start, masks, end_step, data_seed, directory,
                        **kw)

    monkeypatch.setattr(lottery_runs.Run, "train", counting)
    config = tiny_config(baselines=("random_prune", "random_reinit", "reset"))
    run_tiny(workdir, config)
    assert trained == []
    config.levels = 3
    config.baselines = ("random_prune",)
    results = run_tiny(workdir, config)
    assert trained == ["level_03", os.path.join("level_03", "random_prune")]
    assert results["levels"][3]["nonzeros"] == 768 - 154 - 123 - 99 + 48
    assert (open(rewind, "rb").read(), os.stat(rewind).st_mtime_ns) == before


def _tree(workdir):
    """Every mask, final weight and metric of a run, as comparable values."""
    out = {}
    for root, _, files in os.walk(workdir):
        for name in files:
            rel = os.path.relpath(os.path.join(root, name), workdir)
            if name in ("mask.npz", "final.npz", "init.npz", "rewind.npz"):
                out[rel] = {k: v.tobytes() for k, v in load_npz(
                    os.path.join(root, name)).items()}
            elif name == "metrics.json":
                out[rel] = json.load(open(os.path.join(root, name)))
    return out


def test_interrupted_level_resumes_to_the_uninterrupted_result(tmp_path,
                                                               monkeypatch):
    config = tiny_config(levels=2, baselines=("random_prune",))
    straight = tmp_path / "straight"
    run_tiny(straight, config)

    resumed = tmp_path / "resumed"

    class Interrupt(Exception):
        pass

    save = checkpoints.TrainingCheckpoint.save

    def save_then_stop(self, epochs_done, step=None, batches=None):
        path = save(self, epochs_done, step=step, batches=batches)
        if os.sep + "level_01" + os.sep in self.directory and step == 6:
            raise Interrupt()
        return path

    monkeypatch.setattr(checkpoints.TrainingCheckpoint, "save",
                        save_then_stop)
    with pytest.raises(Interrupt):
        run_tiny(resumed, config)
    level1 = os.path.join(resumed, "level_01")
    assert not os.path.exists(os.path.join(level1, "metrics.json"))
    assert tf.train.latest_checkpoint(
        os.path.join(level1, "checkpoints")).endswith("ckpt-6")
    monkeypatch.setattr(checkpoints.TrainingCheckpoint, "save", save)
    run_tiny(resumed, config)
    assert json.load(open(os.path.join(level1, "timing.json")))["resumed"]
    a, b = _tree(straight), _tree(resumed)
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key] == b[key], key


def test_bad_input_raises_before_anything_is_written(tmp_path):
    workdir = tmp_path / "bad"
    with pytest.raises(config_lib.ConfigError, match="rewind='13'"):
        run_tiny(workdir, tiny_config(rewind="13"))
    with pytest.raises(config_lib.ConfigError, match="rewind='2ep'"):
        run_tiny(workdir, tiny_config(rewind="2ep"))
    with pytest.raises(pruning.PruningError, match="prune_fraction=1.0"):
        run_tiny(workdir, tiny_config(prune_fraction=1.0))
    with pytest.raises(pruning.PruningError, match="prune_fraction=0.0"):
        run_tiny(workdir, tiny_config(prune_fraction=0.0))
    # 768 -> 76 -> 7 -> 0 at 90% per level.
    with pytest.raises(pruning.PruningError,
                       match="levels=3 would prune everything: at level 3"):
        run_tiny(workdir, tiny_config(prune_fraction=0.9, levels=3))
    assert not os.path.exists(workdir)


def test_a_workdir_of_another_run_is_refused_unchanged(reference, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(reference[0], workdir)
    before = _tree(workdir)
    record = open(os.path.join(workdir, "run.json")).read()
    with pytest.raises(runs.RunMismatchError,
                       match="prune_fraction=0.2.*prune_fraction=0.3"):
        run_tiny(workdir, tiny_config(prune_fraction=0.3))
    assert open(os.path.join(workdir, "run.json")).read() == record
    assert _tree(workdir) == before


@pytest.mark.parametrize("damage", ["truncate", "flip", "text", "foreign"])
def test_damaged_or_foreign_rewind_checkpoint_is_a_clear_error(
        reference, tmp_path, damage):
    workdir = tmp_path / "copy"
    shutil.copytree(reference[0], workdir)
    path = os.path.join(workdir, "rewind", "rewind.npz")
    content = open(path, "rb").read()
    if damage == "truncate":
        content = content[: len(content) // 2]
    elif damage == "flip":
        content = bytearray(content)
        middle = len(content) // 2
        content[middle:middle + 16] = bytes(b ^ 0xFF for b in
                                            content[middle:middle + 16])
        content = bytes(content)
    elif damage == "text":
        content = b"not a checkpoint\n"
    if damage == "foreign":
        other = tiny_model(hidden=33)()
        state_lib.save_state(path, other, step=4, kind="rewind",
                             model_name="tiny")
        content = open(path, "rb").read()
        match = "another model"
    else:
        with open(path, "wb") as f:
            f.write(content)
        match = "damaged or not a tf_sparse lottery file"
    with pytest.raises(state_lib.StateError, match=match) as error:
        run_tiny(workdir, tiny_config(
            baselines=("random_prune", "random_reinit", "reset")))
    assert "rewind.npz" in str(error.value)
    assert open(path, "rb").read() == content           # left as it was


def test_stability_needs_a_finished_lottery_workdir(reference, tmp_path):
    config = stability.default_config()
    config.levels = (1, 5)
    with pytest.raises(stability.StabilityInputError,
                       match="not a lottery workdir"):
        stability.run(str(tmp_path / "empty"), config, data=tiny_data(),
                      model_fn=tiny_model(), verbose=0)
    workdir = tmp_path / "copy"
    shutil.copytree(reference[0], workdir)
    with pytest.raises(stability.StabilityInputError,
                       match=r"level_05.mask\.npz.*--config.levels=5"):
        stability.run(str(workdir), config, data=tiny_data(),
                      model_fn=tiny_model(), verbose=0)
    os.remove(os.path.join(workdir, "rewind", "rewind.npz"))
    config.levels = (1,)
    with pytest.raises(stability.StabilityInputError, match="rewind.npz"):
        stability.run(str(workdir), config, data=tiny_data(),
                      model_fn=tiny_model(), verbose=0)
    assert not os.path.exists(os.path.join(workdir, "stability"))


def test_stability_and_instability_on_a_finished_run(reference, tmp_path,
                                                     monkeypatch):
    workdir = tmp_path / "copy"
    shutil.copytree(reference[0], workdir)
    config = stability.default_config()
    config.levels = (0, 2)
    config.alphas = 4
    config.rewind_points = ("0",)
    out = stability.run(str(workdir), config, data=tiny_data(),
                        model_fn=tiny_model(), verbose=0)
    rows = {(r["level"], r["kind"], r["rewind_step"]): r
            for r in out["results"]}
    assert sorted(rows) == [(0, "imp", 0), (0, "imp", 4), (2, "imp", 0),
                            (2, "imp", 4), (2, "random", 0), (2, "random", 4)]
    dense = rows[(0, "imp", 4)]
    assert dense["pruning_l2"] == 0.0          # the dense network is itself
    assert dense["copies"][0]["folder"] == "level_00"     # reused, data u
    sparse = rows[(2, "imp", 4)]
    assert sparse["data_order_l2"] > 0 and sparse["pruning_l2"] > 0
    assert [c["data_seed"] for c in sparse["copies"]] == [0, 1000]
    assert rows[(2, "random", 4)]["copies"][0]["folder"] == os.path.join(
        "level_02", "random_prune")
    for r in out["results"]:
        assert len(r["pairs"][0]["test_errors"]) == 4
        assert -1.0 <= r["test_barrier"] <= 1.0
    assert "pruning_l2" not in rows[(2, "imp", 0)]
    assert os.path.exists(os.path.join(workdir, "stability", "report.md"))
    assert os.path.exists(os.path.join(workdir, "stability", "rewind_0")) is \
        False                                  # k' = 0 is init.npz itself

    def no_training(*args, **kwargs):
        raise AssertionError("a finished stability run trained again")

    monkeypatch.setattr(lottery_runs.Run, "train", no_training)
    again = stability.run(str(workdir), config, data=tiny_data(),
                          model_fn=tiny_model(), verbose=0)
    assert again["results"] == out["results"]
