"""MirroredStrategy on 2 logical CPUs: replicas hold identical masks and
weights after training with in-graph mask updates, and agree with a
single-device run of the same seed.

Logical devices must be configured before TensorFlow starts, so the run
happens in its own process (tests/mirrored_check.py).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(__file__)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_mirrored_replicas_agree_with_each_other_and_one_device(optimizer):
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "mirrored_check.py"), optimizer],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    mirrored, single = result["mirrored"], result["single"]
    assert set(mirrored) == {"fc1/kernel", "out/kernel"}
    for path, entry in mirrored.items():
        assert len(entry["weights"]) == 2
        assert len(set(entry["devices"])) == 2
        w0, w1 = (np.array(w) for w in entry["weights"])
        m0, m1 = (np.array(m) for m in entry["masks"])
        assert np.array_equal(m0, m1), path
        assert np.array_equal(w0, w1), path
        assert np.all(w0[m0 == 0] == 0.0), path
        single_mask = np.array(single[path]["masks"][0])
        assert np.array_equal(m0, single_mask), path
        np.testing.assert_allclose(w0, np.array(single[path]["weights"][0]),
                                   atol=1e-5)
    # The roll algorithm ran: fc1's mask is not its initial random mask count
    # pattern only, it moved (12 steps -> 4 rolls); counts stay exact.
    first = np.array(mirrored["fc1/kernel"]["masks"][0])
    assert first.sum() == 32
