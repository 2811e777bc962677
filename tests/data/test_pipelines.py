"""from_arrays / split_validation / the registry: order, determinism, completeness."""

import numpy as np
import pytest
import tensorflow as tf

from tf_sparse.data import (DATASET_NAMES, DatasetBundle, epoch_order, from_arrays,
                            get_datasets, split_validation)

N = 23


def arrays(n=N):
    x = np.arange(n, dtype=np.int32) * 10  # image value identifies the example
    y = np.arange(n, dtype=np.int64)
    return x, y


def epoch_labels(ds):
    return [int(v) for _, y in ds for v in y.numpy()]


def test_eval_pipeline_is_in_order_and_complete():
    x, y = arrays()
    ds = from_arrays(x, y, 5, training=False)
    batches = [(a.numpy(), b.numpy()) for a, b in ds]
    assert [len(b) for b, _ in batches] == [5, 5, 5, 5, 3]
    np.testing.assert_array_equal(np.concatenate([b for _, b in batches]), y)
    np.testing.assert_array_equal(np.concatenate([a for a, _ in batches]), x)
    assert batches[0][1].dtype == np.int32
    assert epoch_labels(ds) == list(range(N))  # the same again on a second pass


def test_training_epochs_are_permutations_that_pair_images_with_labels():
    x, y = arrays()
    ds = from_arrays(x, y, 4, training=True, seed=3, drop_remainder=False)
    assert int(ds.cardinality()) == 6
    for _ in range(3):
        batches = [(a.numpy(), b.numpy()) for a, b in ds]
        images = np.concatenate([a for a, _ in batches])
        labels = np.concatenate([b for _, b in batches])
        assert sorted(labels.tolist()) == list(range(N))
        np.testing.assert_array_equal(images, labels * 10)


def test_same_seed_same_epoch_sequence_and_each_epoch_reshuffled():
    x, y = arrays()
    first = from_arrays(x, y, 4, training=True, seed=7)
    second = from_arrays(x, y, 4, training=True, seed=7)
    epochs_a = [epoch_labels(first) for _ in range(3)]
    epochs_b = [epoch_labels(second) for _ in range(3)]
    assert epochs_a == epochs_b
    assert len({tuple(e) for e in epochs_a}) == 3
    assert all(len(e) == 20 for e in epochs_a)  # drop_remainder defaults to True when training
    other_seed = from_arrays(x, y, 4, training=True, seed=8)
    assert epoch_labels(other_seed) != epochs_a[0]


def test_order_is_the_documented_stateless_permutation():
    x, y = arrays()
    ds = from_arrays(x, y, N, training=True, seed=11, start_epoch=4)
    assert epoch_labels(ds) == epoch_order(N, 11, 4).numpy().tolist()
    assert epoch_labels(ds) == epoch_order(N, 11, 5).numpy().tolist()


def test_order_does_not_depend_on_the_global_tf_seed():
    x, y = arrays()
    tf.random.set_seed(1)
    with_global = epoch_labels(from_arrays(x, y, 4, training=True, seed=5))
    tf.random.set_seed(999)
    other_global = epoch_labels(from_arrays(x, y, 4, training=True, seed=5))
    assert with_global == other_global == epoch_order(N, 5, 0).numpy().tolist()[:20]


def test_repeat_plays_the_epochs_back_to_back_from_start_epoch():
    x, y = arrays()
    finite = from_arrays(x, y, 4, training=True, seed=2, start_epoch=1)
    expected = [epoch_labels(finite) for _ in range(3)]
    endless = from_arrays(x, y, 4, training=True, seed=2, repeat=True, start_epoch=1)
    got = [int(v) for _, lab in endless.take(15) for v in lab.numpy()]
    assert got == sum(expected, [])


def test_augment_gets_a_seed_per_batch_and_is_deterministic():
    x, y = arrays()

    def add_noise(images, labels, seed):
        noise = tf.random.stateless_uniform(tf.shape(images), seed, maxval=5, dtype=tf.int32)
        return images + noise, labels

    def run(seed):
        ds = from_arrays(x, y, 4, training=True, seed=seed, augment=add_noise)
        return [(a.numpy(), b.numpy()) for a, b in ds]

    first, again = run(1), run(1)
    for (a1, b1), (a2, b2) in zip(first, again):
        np.testing.assert_array_equal(a1, a2)
        np.testing.assert_array_equal(b1, b2)
        noise = a1 - b1 * 10
        assert noise.min() >= 0 and noise.max() < 5
    all_noise = np.concatenate([a - b * 10 for a, b in first])
    assert len(set(all_noise.tolist())) > 1
    # augment is for training only
    eval_images = np.concatenate([a.numpy() for a, _ in
                                  from_arrays(x, y, 4, training=False, augment=add_noise)])
    np.testing.assert_array_equal(eval_images, x)


def test_preprocess_sees_batches():
    x, y = arrays()
    ds = from_arrays(x, y, 4, training=False,
                     preprocess=lambda images, labels: (tf.cast(images, tf.float32) / 10.0, labels))
    first_images, _ = next(iter(ds))
    assert first_images.dtype == tf.float32
    np.testing.assert_allclose(first_images.numpy(), [0.0, 1.0, 2.0, 3.0])


def test_keras_fit_runs_one_epoch_per_iteration():
    import keras

    x = np.random.default_rng(0).normal(size=(32, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    ds = from_arrays(x, y, 8, training=True, seed=0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(ds, epochs=2, verbose=0, shuffle=False)
    assert len(history.history["loss"]) == 2


def test_argument_errors_name_the_bad_value():
    x, y = arrays()
    with pytest.raises(ValueError, match="int seed"):
        from_arrays(x, y, 4, training=True)
    with pytest.raises(ValueError, match="x has 23 examples but y has 22"):
        from_arrays(x, y[:-1], 4, training=False)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        from_arrays(x, y, 0, training=False)
    with pytest.raises(ValueError, match="batch_size=30 with drop_remainder=True leaves no batch"):
        from_arrays(x, y, 30, training=True, seed=0)


def test_split_validation_is_a_seeded_disjoint_partition():
    x = np.arange(100) * 3
    y = np.arange(100)
    (x_tr, y_tr), (x_val, y_val) = split_validation(x, y, 0.1, seed=4)
    assert len(x_val) == 10 and len(x_tr) == 90
    np.testing.assert_array_equal(x_tr, y_tr * 3)
    np.testing.assert_array_equal(x_val, y_val * 3)
    assert sorted(np.concatenate([y_tr, y_val]).tolist()) == list(range(100))
    assert np.all(np.diff(y_tr) > 0) and np.all(np.diff(y_val) > 0)  # original order kept
    again = split_validation(x, y, 0.1, seed=4)
    np.testing.assert_array_equal(again[1][1], y_val)
    assert split_validation(x, y, 0.1, seed=5)[1][1].tolist() != y_val.tolist()
    (x_all, _), (x_none, _) = split_validation(x, y, 0.0, seed=0)
    assert len(x_all) == 100 and len(x_none) == 0


def test_split_validation_rejects_bad_fractions():
    x, y = arrays()
    for fraction in (-0.1, 1.0, 1.5, "0.1"):
        with pytest.raises(ValueError, match="fraction must be a number in"):
            split_validation(x, y, fraction, seed=0)
    with pytest.raises(ValueError, match="holds out 0"):
        split_validation(x, y, 0.01, seed=0)


def test_registry_rejects_unknown_names_listing_the_accepted_ones():
    with pytest.raises(ValueError) as info:
        get_datasets("svhn")
    message = str(info.value)
    assert "'svhn'" in message
    for name in ("fashion_mnist", "mnist", "cifar10", "imagenet"):
        assert repr(name) in message
    assert DATASET_NAMES == ("fashion_mnist", "mnist", "cifar10", "imagenet")


def test_registry_returns_a_bundle(tmp_path):
    import gzip
    import struct

    rng = np.random.default_rng(0)
    for name, shape in (("train-images-idx3-ubyte", (10, 28, 28)), ("train-labels-idx1-ubyte", (10,)),
                        ("t10k-images-idx3-ubyte", (4, 28, 28)), ("t10k-labels-idx1-ubyte", (4,))):
        array = rng.integers(0, 10, shape, dtype=np.uint8)
        with gzip.open(tmp_path / (name + ".gz"), "wb") as f:
            f.write(struct.pack(">HBB", 0, 8, len(shape)) + struct.pack(f">{len(shape)}I", *shape)
                    + array.tobytes())
    bundle = get_datasets("Fashion-MNIST", batch_size=3, seed=0, validation_fraction=0.2,
                          data_dir=tmp_path)
    assert isinstance(bundle, DatasetBundle)
    assert (bundle.num_classes, bundle.input_shape, bundle.steps_per_epoch,
            bundle.num_train_examples) == (10, (28, 28, 1), 2, 8)
    assert bundle.validation is not None and bundle.info["num_examples"]["test"] == 4
    images, labels = next(iter(bundle.train))
    assert images.shape == (3, 28, 28, 1) and labels.dtype == tf.int32


MIRRORED_SCRIPT = """
import json, os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tf_sparse.data import from_arrays
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():  # built inside the scope: the epoch counter must still work
    ds = from_arrays(np.arange(24, dtype=np.float32), np.arange(24), 8, training=True, seed=4)
distributed = strategy.experimental_distribute_dataset(ds)
epochs = []
for _ in range(2):
    seen = []
    for _, labels in distributed:
        for part in strategy.experimental_local_results(labels):
            seen += part.numpy().tolist()
    epochs.append(seen)
print(json.dumps(epochs))
"""


def test_two_replicas_see_the_single_device_order():
    import json
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT], capture_output=True,
                            text=True, env=env, cwd=root, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    distributed = json.loads(result.stdout.strip().splitlines()[-1])
    single = from_arrays(np.arange(24, dtype=np.float32), np.arange(24), 8, training=True, seed=4)
    assert distributed == [epoch_labels(single) for _ in range(2)]


def test_max_batches_per_epoch_plays_the_start_of_each_epochs_order():
    x = np.arange(40, dtype=np.float32)
    y = np.arange(40) % 10
    full = from_arrays(x, y, 4, training=True, seed=3, repeat=True)
    capped = from_arrays(x, y, 4, training=True, seed=3, repeat=True,
                         max_batches_per_epoch=2)
    full_batches = [b.numpy().tolist() for b, _ in full.take(30)]
    capped_batches = [b.numpy().tolist() for b, _ in capped.take(6)]
    # Epoch e of the capped stream = first 2 batches of epoch e (10 a full
    # epoch).
    expected = [full_batches[e * 10 + i] for e in range(3) for i in range(2)]
    assert capped_batches == expected
    resumed = from_arrays(x, y, 4, training=True, seed=3, repeat=True,
                          start_epoch=1, max_batches_per_epoch=2)
    assert [b.numpy().tolist() for b, _ in resumed.take(4)] == expected[2:]
    with pytest.raises(ValueError, match="max_batches_per_epoch"):
        from_arrays(x, y, 4, training=True, seed=3, max_batches_per_epoch=0)
