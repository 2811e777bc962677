"""The run engine's data: train(seed, s) is train(seed, 0) from step s on,
shortened epochs play the start of each epoch's order, and the fixed
training subset is the same for every call."""

import numpy as np

from tf_sparse.data import cifar10
from tf_sparse.runs import data as data_lib


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


def test_shortened_epochs_play_the_start_of_each_epochs_order():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = (np.arange(40) % 4).astype(np.int32)
    full = data_lib.ArrayData(x, y, x[:8], y[:8], batch_size=4)
    short = data_lib.ArrayData(x, y, x[:8], y[:8], batch_size=4,
                               steps_per_epoch=3)
    assert (full.steps_per_epoch, short.steps_per_epoch) == (10, 3)
    whole = batches(full.train(seed=2, start_step=0), 30)
    played = batches(short.train(seed=2, start_step=0), 9)
    expected = [whole[e * 10 + i] for e in range(3) for i in range(3)]
    for (xa, ya), (xb, yb) in zip(played, expected):
        assert xa.tobytes() == xb.tobytes() and np.array_equal(ya, yb)
    resumed = batches(short.train(seed=2, start_step=4), 5)
    for (xa, _), (xb, _) in zip(resumed, played[4:]):
        assert xa.tobytes() == xb.tobytes()


def test_validation_split_and_the_fixed_training_subset():
    x = np.arange(100, dtype=np.float32)[:, None]
    y = (np.arange(100) % 5).astype(np.int32)
    data = data_lib.ArrayData(x, y, x[:10], y[:10], batch_size=10,
                              validation_fraction=0.2, split_seed=0)
    assert data.num_train == 80 and data.steps_per_epoch == 8
    val_x = np.concatenate([b.numpy() for b, _ in data.validation()])
    train_x = data.x_train[:, 0]
    assert len(val_x) == 20 and not set(val_x[:, 0]) & set(train_x)
    assert data.evaluation() is data.validation()
    a, _ = data.train_eval_arrays(7, seed=3)
    b, _ = data.train_eval_arrays(7, seed=3)
    c, _ = data.train_eval_arrays(7, seed=4)
    assert a.tobytes() == b.tobytes() and a.tobytes() != c.tobytes()
    assert set(a[:, 0]) <= set(train_x)
    subset = np.concatenate([b.numpy() for b, _ in data.train_eval(7, 3)])
    assert subset.tobytes() == a.tobytes()
