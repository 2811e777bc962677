"""The paper's ablations and the semantics options, one eager update each."""

import keras
import numpy as np
import pytest

import tf_sparse as tfs

import dst_testlib as lib

SHAPES = [(10, 12), (12, 8), (8, 3)]


def random_model(seed=0, optimizer=None):
    rng = np.random.default_rng(seed)
    masks = [rng.random(a * b) < d for (a, b), d in
             zip(SHAPES, (0.2, 0.3, 0.6))]
    kernels = [rng.normal(size=a * b) for a, b in SHAPES]
    model = lib.chain_model(SHAPES, masks, kernels, optimizer=optimizer)
    for i, (a, b) in enumerate(SHAPES):
        lib.set_slot(model, f"l{i}", "momentums", rng.normal(size=a * b))
    return model


def sm(**kwargs):
    return tfs.algorithms.SparseMomentum(total_steps=100, every=10,
                                         **kwargs)


@pytest.mark.parametrize("mode", ["momentum", "magnitude", "nonzero",
                                  "size", "none"])
def test_redistribution_modes(mode):
    model = random_model()
    before = lib.masks_of(model)
    weights = lib.weights_of(model)
    momenta = [lib.slot(model, f"l{i}", "momentums").numpy().reshape(-1)
               for i in range(3)]
    alg = sm(redistribution=mode)
    lib.run_update(model, alg, 10)
    s = alg.summary_values()
    after = lib.masks_of(model)
    assert sum(a.sum() for a in after) == sum(b.sum() for b in before)
    share = np.array([s["layers"][f"l{i}/kernel"]["share"] for i in range(3)])
    n = np.array([b.sum() for b in before], float)
    if mode == "none":
        # Each layer regrows what it pruned: densities unchanged.
        assert [a.sum() for a in after] == [b.sum() for b in before]
        return
    stat = {
        "momentum": [np.abs(m[b]).mean() for m, b in zip(momenta, before)],
        "magnitude": [np.abs(w[b]).mean() for w, b in zip(weights, before)],
        "nonzero": n,
        "size": [a * b for a, b in SHAPES],
    }[mode]
    np.testing.assert_allclose(share, np.array(stat) / np.sum(stat),
                               rtol=1e-5)


def test_random_growth_is_exact_seeded_and_keyed_by_step():
    def run(seed, step):
        model = random_model()
        alg = sm(growth="random", seed=seed, regrow_dropped="never")
        lib.run_update(model, alg, step)
        return lib.masks_of(model), alg.summary_values()

    a, sa = run(1, 10)
    b, _ = run(1, 10)
    c, _ = run(2, 10)
    d, _ = run(1, 20)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert not all(np.array_equal(x, y) for x, y in zip(a, d))
    before = lib.masks_of(random_model())
    for i, (new, old) in enumerate(zip(a, before)):
        # Exactly g_l new positions, none of them just dropped.
        layer = sa["layers"][f"l{i}/kernel"]
        assert int(np.sum(new & ~old)) == layer["grown"]
        assert int(np.sum(old & ~new)) == layer["dropped"]


def test_gradient_growth_uses_the_largest_gradient_among_zeros():
    model = random_model()
    alg = sm(growth="gradient", regrow_dropped="never")
    tfs.training.attach(model, alg)
    rng = np.random.default_rng(7)
    grads = []
    for i, var in alg.tap.captured.items():
        g = rng.normal(size=var.shape).astype(np.float32)
        var.assign(g)
        grads.append(g.reshape(-1))
    before = lib.masks_of(model)
    lib.run_update(model, alg, 10)
    for g, old, new in zip(grads, before, lib.masks_of(model)):
        grown = np.flatnonzero(new & ~old)
        if grown.size == 0:
            continue
        candidates = np.flatnonzero(~old)
        top = candidates[np.argsort(-np.abs(g[candidates]),
                                    kind="stable")[:grown.size]]
        assert sorted(top.tolist()) == grown.tolist()


def test_slot_options_and_grow_init():
    model = random_model()
    alg = sm(grown_slots="zero", dropped_slots="zero",
             grow_init="random_normal", regrow_dropped="never", seed=4)
    before = lib.masks_of(model)
    lib.run_update(model, alg, 10)
    for i, (old, new) in enumerate(zip(before, lib.masks_of(model))):
        mom = lib.slot(model, f"l{i}", "momentums").numpy().reshape(-1)
        changed = old != new
        assert changed.any()
        assert np.all(mom[changed] == 0)
        assert np.all(mom[old & new] != 0)
        w = lib.weights_of(model)[i]
        assert np.all(w[new & ~old] != 0)      # random normal start
        assert np.all(w[old & ~new] == 0)


def test_reinit_regrown_weights():
    keep = random_model()
    reinit = random_model()
    a_keep = sm(regrow_dropped="keep")
    a_re = sm(regrow_dropped="reinit", grown_slots="zero")
    w_before = lib.weights_of(keep)
    lib.run_update(keep, a_keep, 10)
    lib.run_update(reinit, a_re, 10)
    assert a_keep.summary_values()["regrown"] > 0
    for i in range(3):
        m_keep = lib.masks_of(keep)[i]
        assert np.array_equal(m_keep, lib.masks_of(reinit)[i])
        wk, wr = lib.weights_of(keep)[i], lib.weights_of(reinit)[i]
        kept = m_keep & (w_before[i] != 0)
        regrown = kept & (wk != wr)
        # Regrown weights: kept value with "keep", 0 with "reinit".
        assert np.all(wr[regrown] == 0)
        assert np.all(wk[kept] == w_before[i][kept])


def test_set_and_rigl_update_in_place_with_their_slot_defaults():
    for alg in (tfs.algorithms.SET(total_steps=100, steps_per_epoch=10),
                tfs.algorithms.RigL(total_steps=100, every=10)):
        model = random_model()
        before = lib.masks_of(model)
        if isinstance(alg, tfs.algorithms.RigL):
            tfs.training.attach(model, alg)
            for var in alg.tap.captured.values():
                var.assign(np.random.default_rng(0).normal(
                    size=var.shape).astype(np.float32))
        lib.run_update(model, alg, 10)
        s = alg.summary_values()
        for i, (old, new) in enumerate(zip(before, lib.masks_of(model))):
            layer = s["layers"][f"l{i}/kernel"]
            assert new.sum() == old.sum()
            # floor(rate * n) dropped (rigl's int(n * f)).
            rate = alg.drop_fraction(10)
            assert layer["dropped"] == int(np.floor(rate * old.sum()))
            entered = new & ~old
            mom = lib.slot(model, f"l{i}", "momentums").numpy().reshape(-1)
            assert np.all(mom[entered] == 0)        # grown slots zeroed


def test_linear_prune_rate_decay_reaches_zero_and_cosine_keeps_the_reference_floor():
    linear = tfs.algorithms.SparseMomentum(total_steps=1000,
                                           steps_per_epoch=100,
                                           decay="linear")
    assert linear.drop_fraction(0) == 0.5 and linear.drop_fraction(1000) == 0.0
    cosine = tfs.algorithms.SparseMomentum(total_steps=1000,
                                           steps_per_epoch=100)
    assert cosine.drop_fraction(1000) == pytest.approx(0.005)
