"""The image runner (behind tools/train_cifar10.py and train_imagenet.py) under
MirroredStrategy on 2 logical CPUs and MultiWorkerMirroredStrategy with two
real worker processes on localhost: after training with in-graph mask updates
every replica holds identical masks, weights and batch-norm statistics, and
the runs agree with one device.

Each run is its own process (tests/binaries/replica_check.py): logical devices
and multi-worker strategies must be set up before TensorFlow starts.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
CHECK = os.path.join(HERE, "replica_check.py")


def _env(**extra):
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **extra)


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _load(out, run):
    with open(os.path.join(out, f"{run}.json")) as f:
        summary = json.load(f)
    return summary, dict(np.load(os.path.join(out, f"{run}.npz")))


def _check_replicas_identical(arrays, replicas):
    mask_keys = [k for k in arrays if k.endswith("|masks")]
    assert mask_keys
    moved = total = initial_total = 0
    for key in mask_keys:
        path = key.split("|")[0]
        masks, weights = arrays[key], arrays[f"{path}|weights"]
        assert masks.shape[0] == weights.shape[0] == replicas, path
        for r in range(1, replicas):
            assert np.array_equal(masks[0], masks[r]), path
            assert np.array_equal(weights[0], weights[r]), path
        assert np.all(weights[0][masks[0] == 0] == 0.0), path
        initial = arrays[f"{path}|initial_mask"]
        total += int(masks[0].sum())
        initial_total += int(initial.sum())
        moved += int((masks[0] != initial).sum())
    assert total == initial_total                        # exact budget kept
    for key in (k for k in arrays if k.endswith("|moving_mean")):
        for r in range(1, replicas):
            assert np.array_equal(arrays[key][0], arrays[key][r]), key
    # The algorithm moved weights (random swap: 3 per layer at steps 2, 4 and
    # 6; sparse momentum: its end-of-epoch update after step 3).
    assert moved > 0
    return moved


def test_mirrored_replicas_agree_with_each_other_and_one_device(tmp_path):
    out = str(tmp_path)
    proc = subprocess.run([sys.executable, CHECK, "mirrored", "test_random_swap", out],
                          capture_output=True, text=True, env=_env(), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    mirrored_summary, mirrored = _load(out, "mirrored")
    single_summary, single = _load(out, "single")
    assert mirrored_summary["replicas"] == 2 and single_summary["replicas"] == 1
    assert mirrored_summary["steps"] == single_summary["steps"] == 6
    _check_replicas_identical(mirrored, 2)
    for key, value in single.items():
        if key.endswith("|masks"):
            assert np.array_equal(mirrored[key][0], value[0]), key
        elif key.endswith("|weights") or key.endswith("|moving_mean"):
            np.testing.assert_allclose(mirrored[key][0], value[0], atol=2e-5, err_msg=key)
    # The reported loss is the true loss (not divided by the replicas).
    assert mirrored_summary["test_loss"] == pytest.approx(single_summary["test_loss"], rel=1e-4)


def test_two_worker_processes_hold_identical_masks_and_weights(tmp_path):
    """Sparse momentum (the real algorithm, in graph, with its compiled exact
    selection) runs its update independently in each worker process."""
    out = str(tmp_path)
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(
            [sys.executable, CHECK, "worker", "sparse_momentum", out],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=_env(TF_CONFIG=tf_config)))
    try:
        results = [p.communicate(timeout=900) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err[-3000:]
    (s0, w0), (s1, w1) = _load(out, "worker0"), _load(out, "worker1")
    assert s0["is_chief"] and not s1["is_chief"]
    assert s0["replicas"] == s1["replicas"] == 2
    assert s0["steps"] == s1["steps"] == 6
    assert s0["test_loss"] == s1["test_loss"]
    # One replica per worker: stack the two workers' copies and compare them.
    both = {key: np.concatenate([w0[key], w1[key]]) if not key.endswith("|initial_mask")
            else w0[key] for key in w0}
    for key in w0:
        if key.endswith("|initial_mask"):
            assert np.array_equal(w0[key], w1[key]), key
    _check_replicas_identical(both, 2)
    # The chief wrote the checkpoints; the other worker cleaned up after itself.
    checkpoints = os.path.join(out, "workdir_worker", "checkpoints")
    assert "checkpoint" in os.listdir(checkpoints)
    assert not [n for n in os.listdir(checkpoints) if n.startswith(".worker")]
