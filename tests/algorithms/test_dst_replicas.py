"""MirroredStrategy on 2 logical CPUs: after every mask update the replicas
hold identical masks, identical to a single-device run with the same seed
(sparse momentum with the SGD buffer and with the gradient EMA, SET's
random growth, RigL's all-reduced gradient). Logical devices must be set
before TensorFlow starts, so the runs happen in their own process."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.distributed
def test_masks_agree_across_replicas_and_with_one_device():
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "mirrored_dst_check.py")],
        capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result) == {"sparse_momentum", "set", "rigl",
                           "sparse_momentum_ema"}
    for name, runs in result.items():
        mirrored, single = runs["mirrored"], runs["single"]
        assert mirrored["updates"] == single["updates"] >= 3, name
        assert len(mirrored["history"]) == mirrored["updates"], name
        moved = False
        first = None
        for m_entry, s_entry in zip(mirrored["history"], single["history"]):
            for path, replicas in m_entry.items():
                assert len(replicas) == 2
                r0, r1 = (np.array(r) for r in replicas)
                assert np.array_equal(r0, r1), (name, path)
                assert np.array_equal(r0, np.array(s_entry[path][0])), (
                    name, path)
            snapshot = {p: r[0] for p, r in m_entry.items()}
            moved = moved or (first is not None and snapshot != first)
            first = first or snapshot
        total = [sum(np.sum(r[0]) for r in e.values())
                 for e in mirrored["history"]]
        assert len(set(total)) == 1, name           # budget never drifts
        assert moved, name
        for path, replicas in mirrored["weights"].items():
            np.testing.assert_allclose(replicas[0], replicas[1], atol=0)
            np.testing.assert_allclose(replicas[0],
                                       single["weights"][path][0], atol=1e-5)
