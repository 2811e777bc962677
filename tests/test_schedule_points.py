"""Tests for tf_sparse.schedules.resolve_point: a config's point in training."""

import re

import numpy as np
import pytest

from tf_sparse import schedules as S

T, SPE = 10_000, 75  # total steps, steps per epoch


@pytest.mark.parametrize(
    "value,expected",
    [
        (500, 500),
        (0, 0),
        (np.int64(12), 12),
        ("500", 500),
        (" 500 ", 500),
        ("0", 0),
        ("500it", 500),
        (12_345, 12_345),  # a step count is not capped at total_steps
    ],
)
def test_steps(value, expected):
    got = S.resolve_point(value, T, SPE)
    assert got == expected and type(got) is int


@pytest.mark.parametrize(
    "value,steps_per_epoch,expected",
    [
        ("2ep", 75, 150),
        ("0ep", 75, 0),
        ("0.5ep", 75, 38),   # 37.5 -> 38: half up
        ("0.5ep", 77, 39),   # 38.5 -> 39 (round() gives 38)
        ("0.145ep", 100, 15),  # exactly 14.5 -> 15 (0.145 * 100 in floats is 14.4999...)
        ("0.29ep", 5, 1),    # 1.45 -> 1
        ("1.5ep", 3, 5),     # 4.5 -> 5
        ("100ep", 390, 39_000),
    ],
)
def test_epochs_round_half_up_exactly(value, steps_per_epoch, expected):
    got = S.resolve_point(value, T, steps_per_epoch)
    assert got == expected and type(got) is int


@pytest.mark.parametrize(
    "value,total,expected",
    [
        (0.05, 10_000, 500),
        ("0.05", 10_000, 500),
        (0.0, 10_000, 0),
        (1.0, 10_000, 10_000),
        ("1.0", 7, 7),
        (0.5, 5, 3),         # 2.5 -> 3, half up
        (0.145, 100, 15),    # exact decimal 14.5 -> 15
        ("0.145", 100, 15),
        (".5", 7, 4),
        (np.float64(0.25), 10, 3),
    ],
)
def test_fractions_resolve_like_resolve_step(value, total, expected):
    got = S.resolve_point(value, total, SPE)
    assert got == expected and type(got) is int
    assert got == S.resolve_step(float(value), total)


@pytest.mark.parametrize(
    "bad",
    ["2 epochs", "2epochs", "3 steps", "2 ep", "abc", "", "-3", "1.5it", "2.5", "0.5e",
     -1, -3, 1.5, -0.1, float("nan"), True, False, None, [3], "ep"],
)
def test_bad_values_raise_value_error_naming_the_value(bad):
    with pytest.raises(ValueError, match=re.escape(f"rewind={bad!r}")):
        S.resolve_point(bad, T, SPE, "rewind")


def test_error_messages_say_what_is_accepted():
    with pytest.raises(ValueError, match=r"'2 epochs' is not understood; write steps \('500' "
                                         r"or '500it'\), epochs \('2ep'\)"):
        S.resolve_point("2 epochs", T, SPE, "warmup")
    with pytest.raises(ValueError, match=r"^step=-1 is negative\.$"):
        S.resolve_point(-1, T, SPE)
    with pytest.raises(ValueError, match=r"step=1\.5: .*fraction of training and must be in "
                                         r"\[0, 1\]"):
        S.resolve_point(1.5, T, SPE)
    with pytest.raises(ValueError, match=r"'1\.5it': a step count must be a whole number"):
        S.resolve_point("1.5it", T, SPE)
    with pytest.raises(ValueError, match=r"^step=True is not a point in training\.$"):
        S.resolve_point(True, T, SPE)


def test_missing_lengths_are_named():
    with pytest.raises(ValueError, match=r"step=0\.05: .*total_steps must be given"):
        S.resolve_point(0.05, None, SPE)
    with pytest.raises(ValueError, match=r"step='2ep' counts epochs, so steps_per_epoch must "
                                         r"be given"):
        S.resolve_point("2ep", T, None)
    assert S.resolve_point("500it", None, None) == 500

