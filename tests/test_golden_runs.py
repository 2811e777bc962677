"""Every experiment kind gives its recorded golden values, to the bit.

The values in tests/golden/runs.json were recorded with the four runners the
one-engine redesign (issue 12) replaced; see tests/golden_runs.py for what a
record holds and how it is made. A mismatch means a run now computes
something else: either a regression, or an intentional fix whose commit
re-records the kind and says why.

The comparison is exact, so it needs the same float arithmetic as the
recording machine: a canary of a few kernels is checked first, and on a
machine whose kernels round differently the test is skipped with that
reason instead of failing on every value.
"""

import pytest

import golden_runs

GOLDEN = golden_runs.load()


@pytest.fixture(scope="module")
def same_arithmetic():
    if golden_runs.canary() != GOLDEN["canary"]:
        pytest.skip("this machine's float32 kernels differ from the recording "
                    f"machine's ({GOLDEN['machine']}, TensorFlow "
                    f"{GOLDEN['tensorflow']}): golden values are not comparable")


@pytest.mark.parametrize("kind", sorted(GOLDEN["kinds"]))
def test_kind_matches_its_golden_values(kind, same_arithmetic):
    expected = GOLDEN["kinds"][kind]
    got = golden_runs.record(kind)
    assert got["results"] == expected["results"]
    assert got["trace"] == expected["trace"]
    assert got["masks"] == expected["masks"]
    assert got["weights"] == expected["weights"]


def test_every_kind_has_a_golden_record():
    assert sorted(GOLDEN["kinds"]) == sorted(golden_runs.KINDS)
