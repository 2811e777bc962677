"""Data order continues from any step: train(seed, s) is train(seed, 0) from s on."""

import numpy as np

from tf_sparse.data import cifar10
from tf_sparse.lottery import data as data_lib


def batches(ds, n):
    return [(x.numpy(), y.numpy()) for x, y in ds.take(n)]


def test_batches_from_step_s_are_the_uninterrupted_batches_from_s():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, size=(50, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, size=(50,)).astype(np.uint8)
    data = data_lib.ArrayData(
        x, y, x[:10], y[:10], batch_size=8, num_classes=10,
        preprocess=cifar10.normalize_cifar10, augment=cifar10.augment_cifar10)
    assert data.steps_per_epoch == 6
    straight = batches(data.train(seed=3, start_step=0), 16)
    for start in (4, 6, 11):                 # mid-epoch, boundary, 2nd epoch
        resumed = batches(data.train(seed=3, start_step=start), 16 - start)
        for (xa, ya), (xb, yb) in zip(straight[start:], resumed):
            assert xa.tobytes() == xb.tobytes() and np.array_equal(ya, yb)
    other = batches(data.train(seed=4, start_step=0), 6)
    assert not np.array_equal(other[0][1], straight[0][1])
    # Every epoch visits every (full-batch) example once.
    first_epoch = np.concatenate([b[1] for b in straight[:6]])
    assert len(first_epoch) == 48
