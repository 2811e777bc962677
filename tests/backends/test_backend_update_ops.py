"""The pieces of a mask update that differ by backend, and the float64
count math, on the backend this process runs (TensorFlow in the normal
suite; JAX and PyTorch through tests/test_backends.py).

`backend.stateless_random`, `backend.cond` and `backend.check_equal` are
the only places an update asks which backend runs; the counts are float64
on every backend (`algorithms.float64`, JAX through `base.eager_scope`'s
x64), rounded as the references' Python floats round.
"""

import math
import types

import keras
import numpy as np
import pytest

import tf_sparse as tfs
from tf_sparse import backend
from tf_sparse.algorithms import base
from tf_sparse.algorithms import float64
from tf_sparse.algorithms import prune_grow
from tf_sparse.algorithms import redistribution


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


@pytest.mark.parametrize("kind", ["uniform", "normal"])
def test_stateless_random_depends_only_on_key_and_counter(kind):
    first = _np(backend.stateless_random(kind, [500], (3, 1), 40))
    again = _np(backend.stateless_random(kind, [500], (3, 1), 40))
    other_step = _np(backend.stateless_random(kind, [500], (3, 1), 41))
    other_layer = _np(backend.stateless_random(kind, [500], (3, 2), 40))
    np.testing.assert_array_equal(first, again)
    assert first.shape == (500,) and first.dtype == np.float32
    assert not np.array_equal(first, other_step)
    assert not np.array_equal(first, other_layer)
    if kind == "uniform":
        assert first.min() >= 0.0 and first.max() < 1.0
    else:
        assert abs(first.mean()) < 0.2 and 0.8 < first.std() < 1.2


def test_stateless_random_takes_a_tensor_counter():
    with base.eager_scope():
        counter = keras.ops.convert_to_tensor(7, "int64")
        np.testing.assert_array_equal(
            _np(backend.stateless_random("uniform", [9], (0, 0), counter)),
            _np(backend.stateless_random("uniform", [9], (0, 0), 7)))


def test_stateless_random_names_an_unknown_kind():
    with pytest.raises(ValueError, match="'gamma'.*uniform, normal"):
        backend.stateless_random("gamma", [3], (0, 0), 1)


@pytest.mark.parametrize("pred", [True, False])
def test_cond_runs_one_branch_and_assigns(pred):
    counter = keras.Variable(0, dtype="int32", trainable=False)
    backend.cond(keras.ops.convert_to_tensor(pred),
                 lambda: counter.assign(counter + 1),
                 lambda: counter.assign(counter - 5))
    assert int(_np(counter)) == (1 if pred else -5)


def test_check_equal_passes_equal_counts_and_names_a_drift():
    backend.check_equal(keras.ops.convert_to_tensor(5),
                        keras.ops.convert_to_tensor(5), "counts drifted")
    with pytest.raises(Exception, match="counts drifted"):
        backend.check_equal(keras.ops.convert_to_tensor(5),
                            keras.ops.convert_to_tensor(6), "counts drifted")


def _reference_round(real, caps, total):
    """Largest remainder in Python floats: floors, then +1 in a stable
    descending order of the remainders among layers below their cap."""
    floors = [min(np.floor(r), c) for r, c in zip(real, caps)]
    extra = int(total - sum(floors))
    remainders = [r - f if f < c else -1.0
                  for r, f, c in zip(real, floors, caps)]
    order = sorted(range(len(real)), key=lambda i: (-remainders[i], i))
    bumped = {i for i in order[:extra] if floors[i] < caps[i]}
    return [f + (1.0 if i in bumped else 0.0) for i, f in enumerate(floors)]


@pytest.mark.parametrize("seed", range(6))
def test_round_to_total_is_largest_remainder_with_ties_to_the_lower_layer(
        seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 9))
    # Quarters make equal remainders common (ties to the lower index).
    real = rng.integers(0, 40, n) + rng.integers(0, 4, n) / 4.0
    caps = real + rng.integers(0, 3, n)
    total = float(np.floor(real.sum()))
    with base.eager_scope():
        got = redistribution.round_to_total(
            keras.ops.convert_to_tensor(real, "float64"),
            keras.ops.convert_to_tensor(caps, "float64"),
            keras.ops.convert_to_tensor(total, "float64"))
        got = _np(got)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, _reference_round(real, caps, total))
    assert got.sum() == total


def test_sparse_momentum_counts_are_float64_on_every_backend():
    model = tfs.sparsify(keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(8), keras.layers.Dense(3)]),
        sparsity=0.5, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss="mse")
    model.fit(np.ones((4, 6), "float32"), np.ones((4, 3), "float32"),
              verbose=0, epochs=1)
    algorithm = tfs.algorithms.SparseMomentum(total_steps=10, every=1,
                                              prune_rate=0.5)
    algorithm.attach(model)
    with base.eager_scope():
        ctx = prune_grow.UpdateContext(
            algorithm, keras.ops.convert_to_tensor(1, "int64"), None)
        drop, grow, share, _ = algorithm.layer_counts(ctx)
        drop, grow, share = _np(drop), _np(grow), _np(share)
    assert drop.dtype == grow.dtype == share.dtype == np.float64
    assert drop.sum() == grow.sum()


def test_float64_floor_ceil_min_max_are_exact_and_stay_float64():
    values = np.array([0.0, 0.5, -0.5, 2.5, -2.5, 3.0, 1 - 1e-16,
                       3.0000000000000004, 2.0 ** 52 + 0.5, -7.25])
    with base.eager_scope():
        x = keras.ops.convert_to_tensor(values, "float64")
        half = keras.ops.convert_to_tensor(0.5, "float64")
        got = {name: _np(fn(x)) for name, fn in (
            ("floor", float64.floor), ("ceil", float64.ceil),
            ("minimum", lambda v: float64.minimum(v, half)),
            ("maximum", lambda v: float64.maximum(half, v)))}
    for name, want in (("floor", np.floor(values)), ("ceil", np.ceil(values)),
                       ("minimum", np.minimum(values, 0.5)),
                       ("maximum", np.maximum(values, 0.5))):
        assert got[name].dtype == np.float64, name
        np.testing.assert_array_equal(got[name], want, err_msg=name)


@pytest.mark.parametrize("rounding, expected", [("ceil", [8.0, 2.0]),
                                                ("floor", [7.0, 1.0])])
def test_drop_counts_round_the_float64_product_as_python_does(rounding,
                                                              expected):
    # 0.14 * 50 is 7.000000000000001 in float64: math.ceil gives 8, as in
    # the references' Python floats; rounded to float32 first it is 7.
    algorithm = tfs.algorithms.SET(total_steps=10, every=1,
                                   drop_fraction=0.14)
    algorithm.drop_rounding = rounding
    with base.eager_scope():
        ctx = types.SimpleNamespace(
            rate=keras.ops.convert_to_tensor(0.14, "float64"),
            n=keras.ops.convert_to_tensor([50.0, 10.0], "float64"))
        got = _np(algorithm.drop_counts(ctx))
    assert got.dtype == np.float64
    round_ = math.ceil if rounding == "ceil" else math.floor
    assert expected == [round_(0.14 * 50), round_(0.14 * 10)]
    np.testing.assert_array_equal(got, expected)
