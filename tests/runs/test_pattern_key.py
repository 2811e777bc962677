"""The engine's `pattern` key: checked before anything is written, passed
to sparsify and to SNIP's initial masks; the masks of a finished run follow
it with exact counts; tools/train.py takes --config.pattern."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tf_sparse import masking
from tf_sparse import patterns
from tf_sparse import runs
from tf_sparse.runs import config as config_lib
from tf_sparse.runs import restore
from runs_testlib import tiny_data
from fashion_data import needs_fashion_mnist

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def config(**changes):
    c = runs.default_config("fashion_mnist")
    c.update(dict(epochs=1, steps_per_epoch=3, sparsity=0.5,
                  eval_every_epochs=0, rescale_init=False))
    for key, value in changes.items():
        c[key] = value
    return c


def test_default_is_unstructured():
    assert runs.default_config("fashion_mnist").pattern == "unstructured"


@pytest.mark.parametrize("value,message", [
    ("2-4", r"pattern='2-4' is not accepted: Unknown sparsity pattern "
            r"'2-4'; accepted: \"unstructured\", \"N:M\""),
    ("4:2", r"pattern='4:2' is not accepted: .*N must be smaller than M"),
    ("block:0x4", r"pattern='block:0x4' is not accepted: .*must be at "
                  "least 1"),
])
def test_a_bad_pattern_names_the_key_the_value_and_what_is_accepted(
        value, message):
    with pytest.raises(ValueError, match=message):
        config_lib.check(config(pattern=value))


@pytest.mark.parametrize("algorithm", ["static", "gmp"])
def test_n_m_with_another_sparsity_is_refused(algorithm):
    with pytest.raises(ValueError,
                       match=r"pattern='2:4' with sparsity=0.9: .*1 - 2/4 "
                             r"= 0.5\. Pass sparsity=0.5"):
        config_lib.check(config(pattern="2:4", sparsity=0.9,
                                algorithm=algorithm))


def test_a_refused_pattern_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="pattern='3:2' is not accepted"):
        runs.run(config(pattern="3:2"), str(tmp_path / "run"),
                 data=tiny_data(), verbose=0)
    assert not os.path.exists(tmp_path / "run" / "run.json")


def follows(model, spec, density):
    weights = masking.masked_weights(model)
    assert weights
    for mw in weights:
        assert mw.pattern == spec, mw.path
        mask = keras.ops.convert_to_numpy(mw.mask)
        layout = patterns.layout_of(spec, mw.layer, mw.name, mw.shape)
        assert layout.misfit(mask) is None, mw.path
        # Whole units: N:M keeps N per group; other patterns whole groups
        # (e.g. 469 of fc2's 1875 4x4 blocks at density 0.25).
        units = int(np.floor(density * layout.units + 0.5))
        assert int(mask.sum()) == layout.full_count(units), mw.path
        w = keras.ops.convert_to_numpy(mw.variable)
        assert np.all(w[mask == 0] == 0)


@pytest.mark.parametrize("algorithm,spec,sparsity", [
    ("static", "2:4", 0.5),
    ("snip", "2:4", 0.5),
    ("snip", "channel", 0.5),
    ("gmp", "2:4", 0.5),
    ("static", "block:4x4", 0.75),
    ("rigl", "2:4", 0.5),
    ("sparse_momentum", "channel", 0.5),
])
def test_a_run_trains_with_masks_in_the_pattern(tmp_path, algorithm, spec,
                                                sparsity):
    kwargs = {}
    if algorithm == "gmp":
        kwargs = dict(algorithm_kwargs={"begin": 0, "end": 2, "frequency": 1})
    if algorithm in ("rigl", "sparse_momentum"):
        kwargs = dict(algorithm_params={"update_every": 1})
    workdir = str(tmp_path / "run")
    results = runs.run(config(algorithm=algorithm, pattern=spec,
                              sparsity=sparsity, **kwargs), workdir,
                       data=tiny_data(), verbose=0)
    assert results["steps"] == 3
    model, stored = restore.load_model(workdir)
    assert stored["pattern"] == spec
    follows(model, spec, 1.0 - sparsity)


@needs_fashion_mnist
def test_train_binary_takes_the_pattern(tmp_path):
    workdir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "train.py"),
         f"--config={os.path.join(ROOT, 'configs', 'fashion_mnist', 'lenet300_static.py')}",
         f"--workdir={workdir}", "--verbose=0", "--config.pattern=2:4",
         "--config.sparsity=0.5", "--config.epochs=1",
         "--config.steps_per_epoch=2", "--config.eval_every_epochs=0",
         ],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    model, stored = restore.load_model(str(workdir))
    assert stored["pattern"] == "2:4"
    follows(model, "2:4", 0.5)
    bad = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "train.py"),
         f"--config={os.path.join(ROOT, 'configs', 'fashion_mnist', 'lenet300_static.py')}",
         f"--workdir={tmp_path / 'bad'}", "--verbose=0",
         "--config.pattern=5:4"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "pattern='5:4' is not accepted" in bad.stderr


def test_sr_ste_needs_an_n_m_pattern():
    with pytest.raises(ValueError, match=r"algorithm='sr_ste' trains N:M "
                       r"masks, but pattern='unstructured'; set pattern"):
        config_lib.check(config(algorithm="sr_ste"))
