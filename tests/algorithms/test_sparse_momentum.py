"""Sparse momentum, step by step (papers.md A.1), worked by hand; and one
update against an independent NumPy implementation on random tensors."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sparse as tfs
from tf_sparse.algorithms import redistribution

import dst_testlib as lib


def constant_sm(**kwargs):
    kwargs.setdefault("decay", "constant")
    kwargs.setdefault("prune_rate", 0.5)
    return tfs.algorithms.SparseMomentum(total_steps=10, every=5, **kwargs)


def case_a(**kwargs):
    """Two 4x5/5x4 layers, first 10 flat positions active; |w| = 1..10 on
    active positions; momentum 1.0 (l0) and 3.0 (l1) on active positions,
    small distinct values elsewhere."""
    shapes = [(4, 5), (5, 4)]
    mask = np.r_[np.ones(10), np.zeros(10)]
    signs = np.where(np.arange(20) % 2 == 0, 1.0, -1.0)
    kernel = signs * np.r_[np.arange(1, 11), np.arange(1, 11)]
    model = lib.chain_model(shapes, [mask, mask], [kernel, kernel])
    mom0 = np.r_[-np.ones(10), 0.1 * np.arange(1, 11)]
    mom1 = np.r_[3.0 * np.ones(10), -0.05 * np.arange(1, 11)]
    lib.set_slot(model, "l0", "momentums", mom0)
    lib.set_slot(model, "l1", "momentums", mom1)
    alg = constant_sm(**kwargs)
    return model, alg


def test_shares_prune_regrowth_and_growth_order_worked_by_hand():
    model, alg = case_a()
    before = lib.weights_of(model)
    lib.run_update(model, alg, 5)
    s = alg.summary_values()
    # Mean |momentum| over active weights: 1 and 3 -> shares 1/4, 3/4.
    np.testing.assert_allclose([s["layers"][p]["share"] for p in
                                ("l0/kernel", "l1/kernel")], [0.25, 0.75])
    # Prune ceil(0.5 * 10) = 5 per layer; regrowth of R = 10 by share:
    # 2.5 / 7.5 -> 3 / 7 (equal remainders: the lower layer index first).
    assert [s["layers"][p]["dropped"] for p in ("l0/kernel", "l1/kernel")] \
        == [5, 5]
    assert [s["layers"][p]["grown"] for p in ("l0/kernel", "l1/kernel")] \
        == [3, 7]
    m0, m1 = lib.masks_of(model)
    # l0: pruned positions 0..4 (|w| 1..5). Candidates are every zero after
    # pruning; |m| = 1.0 at 0..4 and at 19: the three largest, ties to the
    # lower index, are 0, 1, 2 (regrown, so they keep their values).
    assert np.flatnonzero(m0).tolist() == [0, 1, 2, 5, 6, 7, 8, 9]
    # l1: the pruned 0..4 have |m| = 3 > every other zero: regrown first,
    # then 19 and 18 (|m| 0.5, 0.45).
    assert np.flatnonzero(m1).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
                                           18, 19]
    after = lib.weights_of(model)
    # Regrown weights keep their values; new weights start at 0; dropped
    # weights are 0; momentum is not reset (reference v1.0).
    np.testing.assert_array_equal(after[0][[0, 1, 2]], before[0][[0, 1, 2]])
    assert np.all(after[0][[3, 4]] == 0)
    np.testing.assert_array_equal(after[1][:10], before[1][:10])
    assert np.all(after[1][[18, 19]] == 0)
    np.testing.assert_allclose(
        lib.slot(model, "l1", "momentums").numpy().reshape(-1)[18:],
        [-0.45, -0.5], rtol=1e-6)
    assert s["regrown"] == 3 + 5
    assert s["nonzeros"] == 20
    # Churn: new weights (2 in l1) over the 20 active before.
    assert s["churn"] == pytest.approx(2 / 20)


def test_disjoint_drop_and_grow_when_regrowth_is_off():
    model, alg = case_a(regrow_dropped="never")
    lib.run_update(model, alg, 5)
    m0, m1 = lib.masks_of(model)
    # Only the 10 originally inactive positions compete: largest |m| first.
    assert np.flatnonzero(m0).tolist() == [5, 6, 7, 8, 9, 17, 18, 19]
    assert np.flatnonzero(m1).tolist() == [5, 6, 7, 8, 9] + list(range(13, 20))
    assert alg.summary_values()["regrown"] == 0


def test_disjoint_update_of_a_dense_model_drops_only_what_can_regrow():
    """Density 0.8 with regrow_dropped="never": p * n = 16 drops but only 8
    free positions to grow into, so each layer drops its 4 smallest weights
    (shared by the drop counts) and grows into all 4 of its free positions;
    the budget holds exactly."""
    shapes = [(4, 5), (5, 4)]
    mask = np.r_[np.ones(16), np.zeros(4)]
    kernel = np.r_[np.arange(1, 17), np.zeros(4)]
    model = lib.chain_model(shapes, [mask, mask], [kernel, kernel])
    lib.set_slot(model, "l0", "momentums", np.r_[np.ones(16), np.ones(4)])
    lib.set_slot(model, "l1", "momentums", np.r_[3 * np.ones(16), np.ones(4)])
    alg = constant_sm(regrow_dropped="never")
    lib.run_update(model, alg, 5)
    for m in lib.masks_of(model):
        assert np.flatnonzero(m).tolist() == list(range(4, 20))
    values = alg.summary_values()
    assert values["nonzeros"] == 32 and values["regrown"] == 0
    assert values["dropped"] == values["grown"] == 8


def test_prune_rate_cap_for_dense_high_momentum_layers():
    shapes = [(4, 5), (5, 4)]
    m0 = np.r_[np.ones(18), np.zeros(2)]          # 90% dense
    m1 = np.r_[np.ones(4), np.zeros(16)]          # 20% dense
    k = np.arange(1, 21, dtype=float)
    model = lib.chain_model(shapes, [m0, m1], [k, k])
    lib.set_slot(model, "l0", "momentums", 2.0 * np.ones(20))
    lib.set_slot(model, "l1", "momentums", np.ones(20))
    alg = constant_sm()
    lib.run_update(model, alg, 5)
    s = alg.summary_values()["layers"]
    # l0: zeros/size = 0.1 < 0.2 and share 2/3 > 1/2: p = min(0.5, 0.1).
    assert s["l0/kernel"]["rate"] == pytest.approx(0.1)
    assert s["l1/kernel"]["rate"] == pytest.approx(0.5)
    # r = ceil(0.1 * 18) = 2 and ceil(0.5 * 4) = 2; R = 4 shared 2/3, 1/3:
    # 2.67 / 1.33 -> 3 / 1 (l0's cap floor(0.99 * (2 + 2)) = 3 holds).
    assert (s["l0/kernel"]["dropped"], s["l1/kernel"]["dropped"]) == (2, 2)
    assert (s["l0/kernel"]["grown"], s["l1/kernel"]["grown"]) == (3, 1)
    assert [m.sum() for m in lib.masks_of(model)] == [19, 3]


def test_no_prune_rate_cap_when_share_is_small():
    shapes = [(4, 5), (5, 4)]
    m0 = np.r_[np.ones(18), np.zeros(2)]
    m1 = np.r_[np.ones(4), np.zeros(16)]
    k = np.arange(1, 21, dtype=float)
    model = lib.chain_model(shapes, [m0, m1], [k, k])
    lib.set_slot(model, "l0", "momentums", np.ones(20))
    lib.set_slot(model, "l1", "momentums", 2.0 * np.ones(20))
    alg = constant_sm()
    lib.run_update(model, alg, 5)
    s = alg.summary_values()["layers"]
    assert s["l0/kernel"]["rate"] == pytest.approx(0.5)
    assert s["l0/kernel"]["dropped"] == 9     # ceil(0.5 * 18)


def test_regrowth_cap_spills_over_equally_to_other_layers():
    # l0 takes 20/22 of the momentum but can hold only floor(0.99 * 18) = 17
    # of R = 24 regrown weights; the other 7 go equally to l1 and l2 (3.5
    # each), and the tie in remainders goes to the lower index.
    shapes = [(4, 5), (5, 8), (8, 5)]
    masks = [np.r_[np.ones(10), np.zeros(10)],
             np.r_[np.ones(10), np.zeros(30)],
             np.r_[np.ones(10), np.zeros(30)]]
    kernels = [np.arange(1, 21), np.arange(1, 41), np.arange(1, 41)]
    model = lib.chain_model(shapes, masks, kernels)
    lib.set_slot(model, "l0", "momentums", 20.0 * np.ones(20))
    lib.set_slot(model, "l1", "momentums", np.ones(40))
    lib.set_slot(model, "l2", "momentums", np.ones(40))
    alg = constant_sm(prune_rate=0.8)
    lib.run_update(model, alg, 5)
    s = alg.summary_values()["layers"]
    assert [s[f"l{i}/kernel"]["dropped"] for i in range(3)] == [8, 8, 8]
    assert [s[f"l{i}/kernel"]["grown"] for i in range(3)] == [17, 4, 3]
    assert [m.sum() for m in lib.masks_of(model)] == [19, 6, 5]


def test_water_fill_and_rounding_by_hand():
    f64 = lambda v: tf.constant(v, tf.float64)  # noqa: E731
    # Nothing capped: unchanged.
    np.testing.assert_allclose(
        redistribution.water_fill(f64([6.0, 3.0, 1.0]), f64([10.0] * 3), 10.0),
        [6, 3, 1])
    # One capped layer: excess 4 split equally.
    np.testing.assert_allclose(
        redistribution.water_fill(f64([6.0, 3.0, 1.0]), f64([2.0, 10.0, 10.0]), 10.0),
        [2, 5, 3])
    # Spreading caps a second layer: [2, 4, 4].
    np.testing.assert_allclose(
        redistribution.water_fill(f64([6.0, 3.0, 1.0]), f64([2.0, 4.0, 10.0]), 10.0),
        [2, 4, 4])
    real = redistribution.water_fill(f64([5.5, 2.5, 2.0]), f64([3.0, 10.0, 10.0]), 10.0)
    np.testing.assert_allclose(real, [3, 3.75, 3.25])
    rounded = redistribution.round_to_total(real, f64([3.0, 10.0, 10.0]), f64(10.0))
    np.testing.assert_array_equal(rounded, [3, 4, 3])


def reference_spill_loop(share, removed, caps):
    """The reference's loop (papers.md A.1 step 4), without its ceil: cap,
    then add the mean residual to every layer, until nothing is left over."""
    regrowth = share * removed
    residual = math.inf
    mean_residual = 0.0
    assigned = None
    for _ in range(100000):
        if residual <= 1e-12:
            break
        residual = 0.0
        new = np.empty_like(regrowth)
        for i in range(len(share)):
            value = (regrowth[i] if assigned is None else assigned[i])
            value += mean_residual
            if value > caps[i]:
                new[i] = caps[i]
                residual += value - caps[i]
            else:
                new[i] = value
        assigned = new
        mean_residual = residual / len(share)
    return assigned


@pytest.mark.parametrize("seed", range(5))
def test_water_fill_is_the_fixed_point_of_the_reference_loop(seed):
    rng = np.random.default_rng(seed)
    n = 6
    share = rng.random(n) ** 3
    share /= share.sum()
    removed = float(rng.integers(50, 500))
    caps = np.floor(rng.random(n) * removed * 0.6) + 1
    if caps.sum() < removed:
        caps *= removed / caps.sum() * 1.2
        caps = np.floor(caps)
    ours = redistribution.water_fill(tf.constant(share * removed), tf.constant(caps),
                         removed).numpy()
    np.testing.assert_allclose(ours, reference_spill_loop(share, removed,
                                                          caps), atol=1e-6)
    assert ours.sum() == pytest.approx(removed)


# --------------------------------------------------------------------------
# Independent NumPy implementation of one update (papers.md A.1).
# --------------------------------------------------------------------------


def numpy_sparse_momentum(weights, masks, momenta, p, *, max_fill=0.99,
                          dense=0.8, regrow="keep"):
    """New masks after one sparse-momentum update (float64 statistics)."""
    L = len(weights)
    n = np.array([m.sum() for m in masks], np.float64)
    size = np.array([m.size for m in masks], np.float64)
    z = size - n
    mean_mom = np.array([np.abs(mo[m]).astype(np.float64).sum() / max(k, 1)
                         for mo, m, k in zip(momenta, masks, n)])
    share = mean_mom / mean_mom.sum()
    rate = np.full(L, p)
    for i in range(L):
        if z[i] / size[i] < 1 - dense and share[i] > 1.0 / L:
            rate[i] = min(p, z[i] / size[i])
    r = np.ceil(rate * n)
    pruned = []
    for w, m, k in zip(weights, masks, r):
        idx = np.flatnonzero(m)
        order = idx[np.argsort(np.abs(w[idx]), kind="stable")]
        after = m.copy()
        after[order[:int(k)]] = False
        pruned.append(after)
    removed = r.sum()
    free = z + r if regrow != "never" else z
    caps = np.floor(max_fill * free)
    if caps.sum() < removed:
        caps = free
    real = reference_spill_loop(share, removed, caps)
    floors = np.minimum(np.floor(real), caps)
    extra = int(round(removed - floors.sum()))
    rem = np.where(floors < caps, real - floors, -1.0)
    for i in np.argsort(-rem, kind="stable")[:extra]:
        floors[i] += 1
    grow = floors
    new_masks = []
    for mo, m, after, g in zip(momenta, masks, pruned, grow):
        candidates = ~after if regrow != "never" else ~m
        idx = np.flatnonzero(candidates)
        order = idx[np.argsort(-np.abs(mo[idx]), kind="stable")]
        new = after.copy()
        new[order[:int(g)]] = True
        new_masks.append(new)
    return new_masks, r, grow


@pytest.mark.parametrize("optimizer,seed,regrow", [
    ("sgd", 0, "keep"), ("sgd", 1, "keep"), ("sgd", 2, "never"),
    ("adam", 3, "keep"), ("sgd", 4, "keep")])
def test_one_update_matches_an_independent_numpy_implementation(
        optimizer, seed, regrow):
    rng = np.random.default_rng(seed)
    shapes = [(12, 20), (20, 16), (16, 4)]
    densities = [0.3, 0.05, 0.85]
    masks = [rng.random(a * b) < d for (a, b), d in zip(shapes, densities)]
    kernels = [rng.normal(size=a * b) for a, b in shapes]
    opt = (keras.optimizers.SGD(0.1, momentum=0.9) if optimizer == "sgd"
           else keras.optimizers.Adam(1e-3))
    model = lib.chain_model(shapes, masks, kernels, optimizer=opt)
    momenta = []
    for i, (a, b) in enumerate(shapes):
        # The small last layer gets large momentum: its regrowth is capped.
        scale = 30.0 if i == 2 else 1.0
        m = (rng.normal(size=a * b) * scale).astype(np.float32)
        if optimizer == "sgd":
            lib.set_slot(model, f"l{i}", "momentums", m)
            momenta.append(m)
        else:
            v = (rng.random(a * b) ** 2).astype(np.float32)
            lib.set_slot(model, f"l{i}", "_momentums", m)
            lib.set_slot(model, f"l{i}", "_velocities", v)
            momenta.append(m / (np.sqrt(v) + np.float32(opt.epsilon)))
    alg = tfs.algorithms.SparseMomentum(total_steps=1000, every=100,
                                        regrow_dropped=regrow)
    step = 300
    p = alg.drop_fraction(step)      # Python float64 path of the schedule
    assert p == pytest.approx(0.005 + 0.495 * 0.5 * (1 + math.cos(0.3 * math.pi)))
    weights = [w.astype(np.float32) * m for w, m in zip(kernels, masks)]
    expected, r, g = numpy_sparse_momentum(weights, masks, momenta, p,
                                           regrow=regrow)
    lib.run_update(model, alg, step)
    got = lib.masks_of(model)
    s = alg.summary_values()["layers"]
    assert [s[f"l{i}/kernel"]["dropped"] for i in range(3)] == r.tolist()
    assert [s[f"l{i}/kernel"]["grown"] for i in range(3)] == g.tolist()
    for i, (e, o) in enumerate(zip(expected, got)):
        assert np.array_equal(e, o), f"layer {i}"
    assert sum(m.sum() for m in got) == sum(m.sum() for m in masks)


def test_sort_and_radix_selection_give_the_same_update():
    results = []
    for method in ("radix", "sort"):
        model, alg = case_a(selection_method=method, jit_selection=False)
        lib.run_update(model, alg, 5)
        results.append(lib.masks_of(model))
    for a, b in zip(*results):
        assert np.array_equal(a, b)
