"""Tests for tf_sparse.schedules (pure schedule arithmetic; < 30 s on CPU)."""

import dataclasses
import doctest
import importlib.util
import json
import math
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from tf_sparse import schedules as S

FAST = settings(max_examples=40, deadline=None)


def values(out):
    """Python-int results as a tuple of floats (bools become 0/1)."""
    if isinstance(out, tuple):
        return tuple(float(x) for x in out)
    return (float(out),)


# ---------------------------------------------------------------------------
# resolve_step
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,total,expected",
    [
        (250, 1000, 250),
        (0, None, 0),
        (0.0, 7, 0),
        (1.0, 7, 7),
        (0.5, 5, 3),  # 2.5 -> 3: half up, not to even (round() gives 2)
        (0.5, 7, 4),  # 3.5 -> 4
        (0.3, 5, 2),  # 1.5 -> 2
        (0.1, 5, 1),  # 0.5 -> 1 (round() gives 0)
        (0.29, 5, 1),  # 1.45 -> 1
        (0.145, 100, 15),  # exact decimal 14.5 -> 15 (0.145 * 100 == 14.499...)
        (30 / 90, 9000, 3000),
        (80 / 90, 9000, 8000),
        (np.int64(12), 100, 12),
        (np.float64(0.25), 10, 3),
    ],
)
def test_resolve_step_closed_form(value, total, expected):
    got = S.resolve_step(value, total)
    assert got == expected and type(got) is int


@FAST
@given(st.integers(0, 1000), st.integers(1, 10**6))
def test_resolve_step_is_nearest_step_half_up(k, total):
    fraction = k / 1000
    step = S.resolve_step(fraction, total)
    exact = k * total / 1000
    assert step - 0.5 <= exact < step + 0.5 or math.isclose(exact, step - 0.5)
    if (k * total) % 1000 == 0:
        assert step == k * total // 1000


@FAST
@given(st.integers(0, 1000), st.integers(1, 5000), st.integers(2, 4))
def test_resolve_step_scales_when_exact(k, total, mult):
    """A fraction landing on a whole step at T lands on mult times it at mult*T."""
    total = total * 1000  # k/1000 of a multiple of 1000 is a whole step
    f = k / 1000
    assert S.resolve_step(f, mult * total) == mult * S.resolve_step(f, total)


# ---------------------------------------------------------------------------
# 1. decays
# ---------------------------------------------------------------------------


def test_cosine_decay_sparse_momentum_values():
    rate = S.CosineDecay(0.5, 0.005, total_steps=1000)
    assert rate(0) == pytest.approx(0.5, abs=1e-15)
    assert rate(250) == pytest.approx(0.42750892834367, abs=1e-12)  # 0.005+0.495*(1+cos(pi/4))/2
    assert rate(500) == pytest.approx(0.2525, abs=1e-15)
    assert rate(1000) == pytest.approx(0.005, abs=1e-15)
    assert rate(1500) == pytest.approx(0.005, abs=1e-15)  # clamped (PyTorch would rise again)
    assert type(rate(3)) is float


def test_cosine_decay_matches_cosine_annealing_closed_form():
    """PyTorch CosineAnnealingLR(T_max, eta_min) closed form, per step."""
    T, eta0, eta_min = 390 * 3, 0.5, 0.005
    rate = S.CosineDecay(eta0, eta_min, total_steps=T)
    for t in range(T + 1):
        expected = eta_min + (eta0 - eta_min) * (1 + math.cos(math.pi * t / T)) / 2
        assert rate(t) == pytest.approx(expected, abs=1e-14)


def test_cosine_decay_window():
    rate = S.CosineDecay(0.4, 0.1, begin=0.2, end=0.6, total_steps=1000)
    assert rate(0) == rate(200) == pytest.approx(0.4)
    assert rate(400) == pytest.approx(0.25)
    assert rate(600) == rate(999) == pytest.approx(0.1)


def test_linear_decay_values():
    rate = S.LinearDecay(0.5, 0.1, begin=0.2, end=0.6, total_steps=1000)
    assert rate(0) == rate(200) == pytest.approx(0.5)
    assert rate(300) == pytest.approx(0.4)
    assert rate(400) == pytest.approx(0.3)
    assert rate(600) == rate(1000) == pytest.approx(0.1)


def test_rigl_cosine_drop_fraction():
    drop = S.rigl_cosine_drop_fraction(0.3, end=0.75, total_steps=1000)
    assert isinstance(drop, S.CosineDecay)
    assert drop(0) == pytest.approx(0.3)
    assert drop(375) == pytest.approx(0.15)
    assert drop(250) == pytest.approx(0.3 * 0.5 * (1 + math.cos(math.pi / 3)))  # 0.225
    assert drop(750) == pytest.approx(0.0, abs=1e-16)
    assert drop(1000) == pytest.approx(0.0, abs=1e-16)


def test_constant_decay():
    assert S.ConstantDecay(0.3)(0) == S.ConstantDecay(0.3)(10**9) == 0.3


# ---------------------------------------------------------------------------
# 2. update cadence
# ---------------------------------------------------------------------------


def test_update_schedule_window():
    u = S.UpdateSchedule(every=100, begin=0.1, end=0.5, total_steps=1000)
    assert u.update_steps() == [100, 200, 300, 400]
    inclusive = dataclasses.replace(u, skip_last=False)
    assert inclusive.update_steps() == [100, 200, 300, 400, 500]
    assert [s for s in range(1001) if u(s)] == u.update_steps()
    assert [s for s in range(1001) if inclusive(s)] == inclusive.update_steps()


def test_update_schedule_fractional_every():
    u = S.UpdateSchedule(every=0.25, total_steps=1000)
    assert u.every_steps == 250
    assert u.update_steps() == [0, 250, 500, 750]  # 1000 skipped: nothing trains after it


@pytest.mark.parametrize("spe,epochs,extra", [(50, 10, 0), (7, 3, 0), (50, 10, 20), (1, 5, 0)])
def test_every_epoch_except_the_last(spe, epochs, extra):
    total = spe * epochs + extra  # extra: a partial last epoch
    u = S.UpdateSchedule.every_epoch(spe, total)
    full_epochs = total // spe
    last_k = full_epochs - 1 if extra == 0 else full_epochs
    expected = [k * spe for k in range(1, last_k + 1)]
    assert u.update_steps() == expected
    assert [s for s in range(total + 1) if u.should_update(s)] == expected
    tensor = np.asarray(u.should_update(tf.range(total + 1, dtype=tf.int64)))
    assert list(np.flatnonzero(tensor)) == expected
    if extra == 0:
        assert len(expected) == epochs - 1 and not u(0) and not u(total)
        assert S.UpdateSchedule.every_epoch(spe, total, skip_last=False).update_steps() == (
            expected + [total]
        )


def test_sparse_momentum_prune_rate_at_epoch_updates():
    spe, epochs = 100, 10
    T = spe * epochs
    cadence = S.UpdateSchedule.every_epoch(spe, T)
    rate = S.CosineDecay(0.5, 0.005, total_steps=T)
    got = [rate(s) for s in cadence.update_steps()]
    want = [0.005 + 0.495 * (1 + math.cos(math.pi * k / epochs)) / 2 for k in range(1, epochs)]
    assert got == pytest.approx(want, abs=1e-14)


# ---------------------------------------------------------------------------
# 3. GMP targets
# ---------------------------------------------------------------------------


def tfmot_polynomial_reference(step, initial, final, begin, end, power, frequency):
    """tfmot PolynomialDecay.__call__ rewritten in plain Python (float64)."""
    in_range = step >= begin and (step <= end or end < 0)
    turn = (step - begin) % frequency == 0
    p = min(1.0, max(0.0, (step - begin) / (end - begin)))
    return in_range and turn, (initial - final) * (1 - p) ** power + final


def tfmot_polynomial_float32(steps, initial, final, begin, end, power):
    """tfmot's float32 operation order, in NumPy."""
    p = np.minimum(
        np.float32(1),
        np.maximum(np.float32(0), (steps - begin).astype(np.float32) / np.float32(end - begin)),
    )
    decay = np.power(np.float32(1) - p, np.float32(power))
    return np.float32(initial - final) * decay + np.float32(final)


def test_polynomial_sparsity_closed_form():
    gmp = S.PolynomialSparsity(0.0, 0.8, begin=0, end=100, frequency=10)
    assert gmp(0) == (True, 0.0)
    assert gmp(25)[1] == pytest.approx(0.4625)  # 0.8 - 0.8 * 0.75**3
    assert gmp(50) == (True, pytest.approx(0.7))  # 0.8 - 0.8 * 0.5**3
    assert gmp(55)[0] is False
    assert gmp(100) == (True, pytest.approx(0.8))
    assert gmp(110) == (False, pytest.approx(0.8))  # past end: no pruning, final value


@pytest.mark.parametrize(
    "initial,final,begin,end,power,frequency,total",
    [
        (0.0, 0.9, 10, 110, 3, 7, 130),
        (0.2, 0.95, 0, 37, 2, 1, 50),
        (0.5, 0.5, 3, 4, 3, 2, 10),
        (0.05, 0.88, 0.1, 0.5, 3, 0.04, 250),
    ],
)
def test_polynomial_sparsity_equals_tfmot_formula_every_step(
    initial, final, begin, end, power, frequency, total
):
    gmp = S.PolynomialSparsity(initial, final, begin, end, power, frequency, total_steps=total)
    kw = gmp.tfmot_kwargs()
    steps = np.arange(total + 1)
    for s in steps:
        ref = tfmot_polynomial_reference(
            int(s), initial, final, kw["begin_step"], kw["end_step"], power, kw["frequency"]
        )
        assert gmp(int(s)) == ref  # exact: same formula in float64
    flags, sparsity = gmp(tf.constant(steps))
    ref_flags = [tfmot_polynomial_reference(int(s), initial, final, kw["begin_step"],
                                            kw["end_step"], power, kw["frequency"])[0]
                 for s in steps]
    assert list(np.asarray(flags)) == ref_flags
    ref32 = tfmot_polynomial_float32(steps, initial, final, kw["begin_step"], kw["end_step"], power)
    np.testing.assert_allclose(np.asarray(sparsity), ref32, rtol=0, atol=2e-7)


def test_polynomial_sparsity_resolves_fractions_for_tfmot():
    gmp = S.PolynomialSparsity(0.05, 0.88, begin=0.0, end=40 / 90, frequency=0.4 / 90,
                               total_steps=90 * 500)
    assert gmp.tfmot_kwargs() == dict(initial_sparsity=0.05, final_sparsity=0.88, begin_step=0,
                                      end_step=20000, power=3, frequency=200)


def test_constant_sparsity_tfmot_semantics():
    forever = S.ConstantSparsity(0.9, begin=100, frequency=50)
    assert forever.end_step == -1
    assert forever(99) == (False, 0.9)
    assert forever(100) == (True, 0.9)
    assert forever(125) == (False, 0.9)
    assert forever(10**7) == (True, 0.9)  # end=-1: keeps pruning
    bounded = S.ConstantSparsity(0.5, begin=0, end=300, frequency=100)
    assert [s for s in range(1000) if bounded(s)[0]] == [0, 100, 200, 300]  # end inclusive
    same = S.ConstantSparsity(0.5, begin=7, end=7, frequency=3)
    assert [s for s in range(20) if same(s)[0]] == [7]
    short_run = S.ConstantSparsity(0.5, begin=0, total_steps=50)  # frequency 100 > run: allowed
    assert [s for s in range(51) if short_run(s)[0]] == [0]


@pytest.mark.parametrize(
    "inter_func,expected",
    [
        ("linear", 0.5),  # 0.1 + 0.8 * 0.5
        ("cubic", 0.8),  # 0.1 + 0.8 * (1 - 0.5**3)
        ("inverse_cubic", 0.26503957921272),  # 0.1 + 0.8 * (1 - 0.5**(1/3))
    ],
)
def test_interpolated_sparsity_sparseml_curves(inter_func, expected):
    s = S.InterpolatedSparsity(0.1, 0.9, begin=100, end=300, frequency=25, inter_func=inter_func)
    assert s(200) == (True, pytest.approx(expected, abs=1e-12))
    assert s(0) == (False, pytest.approx(0.1))
    assert s(300) == (True, pytest.approx(0.9))
    assert s(301) == (False, pytest.approx(0.9))


@pytest.mark.parametrize("inter_func,power", [("cubic", 3), ("linear", 1)])
def test_interpolated_matches_polynomial(inter_func, power):
    a = S.InterpolatedSparsity(0.05, 0.9, begin=0.1, end=0.7, frequency=3, inter_func=inter_func,
                               total_steps=400)
    b = S.PolynomialSparsity(0.05, 0.9, begin=0.1, end=0.7, frequency=3, power=power,
                             total_steps=400)
    for step in range(401):
        (pa, va), (pb, vb) = a(step), b(step)
        assert pa == pb and va == pytest.approx(vb, abs=1e-12)


# ---------------------------------------------------------------------------
# 4. AC/DC
# ---------------------------------------------------------------------------


def test_acdc_resnet50_timeline():
    """IST-DASLab ResNet-50, 100 epochs: dense 0-10, 5-epoch S/D phases to 75,
    dense 75-85, final sparse 85-100 (10 steps per epoch here)."""
    acdc = S.ACDCSchedule(0.1, 0.05, 0.15, sparsity=0.9, total_steps=1000)
    expected = [(0, 100, False)]
    for k in range(13):  # epochs 10..75: S D S ... S
        expected.append((100 + 50 * k, 150 + 50 * k, k % 2 == 0))
    expected += [(750, 850, False), (850, 1000, True)]
    assert list(acdc.phases()) == expected
    assert acdc.boundaries == tuple(range(100, 751, 50)) + (850,)
    assert [s for s in range(1001) if acdc.is_boundary(s)] == list(acdc.boundaries)
    assert acdc.phase(0) == (0, False) and acdc.phase(99) == (0, False)
    assert acdc.phase(100) == (1, True) and acdc.phase(149) == (1, True)
    assert acdc.phase(150) == (2, False)
    assert acdc.phase(800) == (14, False)
    assert acdc.phase(850) == acdc.phase(999) == acdc.phase(1000) == (15, True)
    assert acdc(850) == (True, 0.9) and acdc(851) == (False, 0.9) and acdc(800) == (False, 0.0)


def test_acdc_merge_tail_and_even_phase_count():
    merged = S.ACDCSchedule(0.1, 0.05, 0.15, tail="merge", total_steps=100)
    assert merged.phases()[-2:] == ((75, 80, False), (80, 100, True))
    assert merged.boundaries[-1] == 80
    # even number of alternating phases: both tails agree, final is preceded by dense
    a = S.ACDCSchedule(10, 5, 10, total_steps=40)
    b = S.ACDCSchedule(10, 5, 10, total_steps=40, tail="merge")
    assert a.phases() == b.phases() == (
        (0, 10, False), (10, 15, True), (15, 20, False), (20, 25, True), (25, 30, False),
        (30, 40, True))


def test_acdc_final_phase_always_sparse_and_edge_cases():
    for warmup, phase, end_sparse, total in [(0, 3, 4, 13), (5, 5, 5, 10), (0, 1, 1, 8),
                                             (2, 2, 2, 12), (0.1, 0.05, 0.15, 20)]:
        for tail in ("dense", "merge"):
            acdc = S.ACDCSchedule(warmup, phase, end_sparse, tail=tail, total_steps=total)
            phases = acdc.phases()
            assert phases[-1][2] is True and phases[-1][1] == total
            assert phases[0][0] == 0
            assert all(p[1] == q[0] and p[2] != q[2] for p, q in zip(phases, phases[1:]))
            assert acdc.phase(total - 1)[1] is True
    no_warmup = S.ACDCSchedule(0, 3, 4, total_steps=13)
    assert no_warmup.phases()[0] == (0, 3, True)
    assert no_warmup.is_boundary(0)  # pruning happens before the first step
    assert not S.ACDCSchedule(5, 5, 5, total_steps=10).is_boundary(0)


def test_acdc_tensor_phase_matches_python():
    acdc = S.ACDCSchedule(0.1, 0.05, 0.15, total_steps=200)

    @tf.function(jit_compile=True)
    def phase(step):
        return acdc.phase(step)

    steps = np.arange(0, 230)
    index, sparse = phase(tf.constant(steps))
    assert list(zip(np.asarray(index).tolist(), np.asarray(sparse).tolist())) == [
        acdc.phase(int(s)) for s in steps
    ]


# ---------------------------------------------------------------------------
# 5. learning rates
# ---------------------------------------------------------------------------


def test_step_decay_lr_30_60_80_of_90():
    lr = S.StepDecayLR(0.1, total_steps=90 * 100)  # default boundaries 30/60/80 of 90
    assert lr.resolved_steps()["boundaries"] == (3000, 6000, 8000)
    assert lr(0) == lr(2999) == 0.1
    assert lr(3000) == pytest.approx(0.01) and lr(5999) == pytest.approx(0.01)
    assert lr(6000) == pytest.approx(0.001)
    assert lr(8000) == pytest.approx(0.0001) and lr(9000) == pytest.approx(0.0001)


def test_step_decay_lr_with_warmup():
    lr = S.StepDecayLR(0.4, boundaries=(0.5,), warmup=0.05, warmup_start_lr=0.04,
                       total_steps=1000)
    assert lr(0) == pytest.approx(0.04)
    assert lr(25) == pytest.approx(0.22)
    assert lr(50) == pytest.approx(0.4)
    assert lr(500) == pytest.approx(0.04)


def test_warmup_cosine_lr():
    lr = S.WarmupCosineLR(0.4, warmup=0.05, total_steps=1000)
    assert lr(0) == 0.0
    assert lr(25) == pytest.approx(0.2)
    assert lr(50) == pytest.approx(0.4)
    assert lr(525) == pytest.approx(0.2)  # half-way through the cosine
    assert lr(1000) == pytest.approx(0.0, abs=1e-16)
    assert lr(2000) == pytest.approx(0.0, abs=1e-16)
    floor = S.WarmupCosineLR(1.0, final_lr=0.1, total_steps=100)
    assert floor(0) == 1.0 and floor(50) == pytest.approx(0.55) and floor(100) == pytest.approx(0.1)


def test_warmup_constant_lr():
    lr = S.WarmupConstantLR(0.1, warmup=100)
    assert [lr(0), lr(50), lr(100), lr(10**6)] == pytest.approx([0.0, 0.05, 0.1, 0.1])
    assert S.WarmupConstantLR(0.1)(0) == 0.1


LR_SCHEDULES = [
    S.StepDecayLR(0.1, boundaries=(0.25, 0.5), warmup=7, total_steps=100),
    S.WarmupCosineLR(0.2, final_lr=0.01, warmup=0.1, warmup_start_lr=0.02, total_steps=100),
    S.WarmupConstantLR(0.05, warmup=0.2, total_steps=100),
]


@pytest.mark.parametrize("lr", LR_SCHEDULES, ids=lambda s: type(s).__name__)
def test_lr_schedule_serialization_round_trip(lr):
    assert isinstance(lr, keras.optimizers.schedules.LearningRateSchedule)
    assert type(lr).from_config(lr.get_config()) == lr
    json_config = json.loads(json.dumps(keras.optimizers.schedules.serialize(lr)))
    assert keras.optimizers.schedules.deserialize(json_config) == lr
    opt = keras.optimizers.SGD(learning_rate=lr, momentum=0.9)
    restored = keras.optimizers.deserialize(json.loads(json.dumps(keras.optimizers.serialize(opt))))
    assert restored._learning_rate == lr


@pytest.mark.parametrize("lr", LR_SCHEDULES, ids=lambda s: type(s).__name__)
def test_lr_schedule_drives_keras_optimizer(lr):
    opt = keras.optimizers.SGD(learning_rate=lr)
    var = keras.Variable(np.zeros(2, "float32"))
    opt.build([var])
    for step in range(12):
        assert float(opt.learning_rate) == pytest.approx(lr(step), rel=1e-6, abs=1e-9)
        opt.apply_gradients([(tf.ones(2), var)])


# ---------------------------------------------------------------------------
# Python ints vs tf.function(jit_compile=True)
# ---------------------------------------------------------------------------

T = 1000
ALL_SCHEDULES = [
    S.ConstantDecay(0.3),
    S.CosineDecay(0.5, 0.005, total_steps=T),
    S.LinearDecay(0.5, 0.1, 0.2, 0.6, total_steps=T),
    S.rigl_cosine_drop_fraction(0.3, end=0.75, total_steps=T),
    S.UpdateSchedule(every=100, begin=0.1, end=0.5, total_steps=T),
    S.UpdateSchedule.every_epoch(60, T),
    S.PolynomialSparsity(0.0, 0.8, 100, 600, frequency=7, total_steps=T),
    S.ConstantSparsity(0.9, 0.25, frequency=50, total_steps=T),
    S.ConstantSparsity(0.9, 10, end=500, frequency=30, total_steps=T),
    S.InterpolatedSparsity(0.1, 0.9, 0, 800, 25, "inverse_cubic", total_steps=T),
    S.InterpolatedSparsity(0.1, 0.9, 0, 800, 25, "cubic", total_steps=T),
    S.ACDCSchedule(0.1, 0.05, 0.15, total_steps=T),
    S.ACDCSchedule(0, 0.1, 0.1, tail="merge", total_steps=T),
    *LR_SCHEDULES,
]
IDS = [f"{i}-{type(s).__name__}" for i, s in enumerate(ALL_SCHEDULES)]


def as_columns(out):
    return [np.asarray(x) for x in (out if isinstance(out, tuple) else (out,))]


@pytest.mark.parametrize("schedule", ALL_SCHEDULES, ids=IDS)
def test_python_and_xla_agree(schedule):
    @tf.function(jit_compile=True)
    def evaluate(step):
        return schedule(step)

    stop = 1.2 * schedule.total_steps if schedule.total_steps else 1200
    steps = np.arange(0, stop, dtype=np.int64)
    xla = as_columns(evaluate(tf.constant(steps)))
    python = [values(schedule(int(s))) for s in steps]
    for col, column in enumerate(xla):
        want = np.array([row[col] for row in python])
        if column.dtype == bool:
            assert column.tolist() == [bool(w) for w in want]
        else:
            assert column.dtype == np.float32
            np.testing.assert_allclose(column, want, rtol=0, atol=2e-6)


@pytest.mark.parametrize("schedule", ALL_SCHEDULES[:13], ids=IDS[:13])
def test_scalar_steps_trace_once(schedule):
    @tf.function(jit_compile=True)
    def evaluate(step):
        return schedule(step)

    iterations = tf.Variable(0, dtype=tf.int64)
    for s in (0, 1, 99, 100, 517, 999):
        out = evaluate(tf.constant(s, tf.int64))
        assert [c.shape for c in as_columns(out)] == [()] * len(as_columns(out))
        np.testing.assert_allclose(
            [float(c) for c in as_columns(out)], values(schedule(s)), atol=2e-6)
        iterations.assign(s)
        evaluate(iterations)
    assert evaluate.experimental_get_tracing_count() == 2  # one tensor + one variable signature


@pytest.mark.parametrize("schedule", ALL_SCHEDULES[:13], ids=IDS[:13])
def test_python_path_returns_python_types(schedule):
    out = schedule(np.int64(123))
    for x in out if isinstance(out, tuple) else (out,):
        assert type(x) in (bool, float)


# ---------------------------------------------------------------------------
# 7. stretching
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", ALL_SCHEDULES, ids=IDS)
@pytest.mark.parametrize("k", [2, 3])
def test_stretch_scales_exactly(schedule, k):
    long = S.stretch(schedule, k)
    assert long.total_steps == (schedule.total_steps and k * schedule.total_steps)
    for s in range(0, (schedule.total_steps or 1000) + 1):
        assert long(k * s) == schedule(s)
    # events (updates, prunes, AC/DC boundaries) only at multiples of k
    if isinstance(schedule(0), tuple) or isinstance(schedule(0), bool):
        for s in range(1, 400):
            if s % k:
                event = long(s)
                assert not (event[0] if isinstance(event, tuple) else event)


def test_fraction_schedules_follow_total_steps():
    """Fractions only: the 2x schedule is the same object built with 2T."""
    one = S.PolynomialSparsity(0.1, 0.9, begin=0.2, end=0.7, frequency=0.01, total_steps=1000)
    two = S.PolynomialSparsity(0.1, 0.9, begin=0.2, end=0.7, frequency=0.01, total_steps=2000)
    assert S.stretch(one, 2) == two
    assert all(two(2 * s) == one(s) for s in range(1001))
    acdc = S.ACDCSchedule(0.1, 0.05, 0.15, total_steps=100)
    assert S.stretch(acdc, 2).phases() == tuple((2 * a, 2 * b, sp) for a, b, sp in acdc.phases())


def test_stretch_keeps_never_and_rounds_half_up():
    cs = S.ConstantSparsity(0.5, begin=3, frequency=5)
    long = S.stretch(cs, 1.5)
    assert (long.begin, long.end, long.frequency) == (5, -1, 8)  # 4.5 -> 5, 7.5 -> 8
    assert S.stretch(S.ConstantDecay(0.2), 2) == S.ConstantDecay(0.2)


@FAST
@given(
    total=st.integers(10, 300),
    a=st.floats(0, 1),
    b=st.floats(0, 1),
    frequency=st.integers(1, 40),
    initial=st.floats(0, 0.5),
    extra=st.floats(0, 0.49),
    k=st.integers(2, 4),
)
def test_stretch_property_gmp(total, a, b, frequency, initial, extra, k):
    begin, end = sorted((int(a * total), int(b * total)))
    end = max(end, begin + 1)
    if end > total:
        begin, end = total - 1, total
    gmp = S.PolynomialSparsity(initial, initial + extra, begin, end, frequency=frequency,
                               total_steps=total)
    long = S.stretch(gmp, k)
    for s in range(total + 1):
        assert long(k * s) == gmp(s)
        assert not long(k * s + 1)[0]


# ---------------------------------------------------------------------------
# 6. validation
# ---------------------------------------------------------------------------

BAD = {
    "fraction above 1": (lambda: S.resolve_step(1.5, 100), r"1\.5.*\[0, 1\]"),
    "negative fraction": (lambda: S.resolve_step(-0.1, 100), r"-0\.1"),
    "negative int": (lambda: S.resolve_step(-3, 100), r"-3.*>= 0"),
    "nan": (lambda: S.resolve_step(float("nan"), 100), r"nan"),
    "fraction without total": (lambda: S.CosineDecay(0.5, end=0.5), r"0\.5.*total_steps"),
    "int past the end": (lambda: S.LinearDecay(0.5, 0.1, 0, 2000, total_steps=1000),
                         r"2000.*total_steps=1000"),
    "bad total": (lambda: S.CosineDecay(0.5, total_steps=0), r"total_steps=0"),
    "final sparsity below initial": (
        lambda: S.PolynomialSparsity(0.5, 0.3, 0, 100), r"final=0\.3.*below.*initial=0\.5"),
    "interp final below initial": (
        lambda: S.InterpolatedSparsity(0.5, 0.3, 0, 100), r"final=0\.3.*below"),
    "sparsity 1": (lambda: S.PolynomialSparsity(0.0, 1.0, 0, 100), r"final=1\.0.*\[0, 1\)"),
    "sparsity negative": (lambda: S.PolynomialSparsity(-0.1, 0.5, 0, 100), r"-0\.1.*\[0, 1\)"),
    "constant sparsity 1": (lambda: S.ConstantSparsity(1.0, 0), r"target=1\.0.*\[0, 1\)"),
    "window ends before begin": (
        lambda: S.PolynomialSparsity(0.0, 0.5, 0.6, 0.2, total_steps=1000),
        r"ends before it begins.*begin=0\.6 \(step 600\).*end=0\.2 \(step 200\)"),
    "window empty": (lambda: S.PolynomialSparsity(0.0, 0.5, 10, 10), r"ends before it begins"),
    "decay window": (lambda: S.CosineDecay(0.5, begin=50, end=10), r"ends before it begins"),
    "update window": (lambda: S.UpdateSchedule(every=1, begin=50, end=10),
                      r"ends before it begins"),
    "constant window": (lambda: S.ConstantSparsity(0.5, begin=50, end=10),
                        r"ends before it begins"),
    "frequency 0": (lambda: S.PolynomialSparsity(0.0, 0.5, 0, 100, frequency=0),
                    r"frequency=0.*>= 1 step"),
    "frequency negative": (lambda: S.ConstantSparsity(0.5, 0, frequency=-5), r"-5"),
    "frequency fraction rounds to 0": (
        lambda: S.ConstantSparsity(0.5, 0, frequency=0.001, total_steps=100),
        r"frequency=0\.001 resolves to 0 steps"),
    "every 0": (lambda: S.UpdateSchedule(every=0, end=10), r"every=0"),
    "prune rate 0": (lambda: S.ConstantDecay(0.0), r"value=0\.0.*\(0, 1\)"),
    "prune rate 1": (lambda: S.CosineDecay(1.0, total_steps=10), r"initial=1\.0.*\(0, 1\)"),
    "prune rate above 1": (lambda: S.LinearDecay(1.5, total_steps=10), r"1\.5.*\(0, 1\)"),
    "decay final above initial": (lambda: S.CosineDecay(0.2, 0.3, total_steps=10),
                                  r"final=0\.3.*above"),
    "rigl drop fraction": (lambda: S.rigl_cosine_drop_fraction(1.2, total_steps=10), r"1\.2"),
    "power": (lambda: S.PolynomialSparsity(0.0, 0.5, 0, 100, power=0), r"power=0"),
    "inter_func": (lambda: S.InterpolatedSparsity(0.0, 0.5, 0, 100, inter_func="quadratic"),
                   r"quadratic.*linear.*cubic.*inverse_cubic"),
    "acdc does not fit": (lambda: S.ACDCSchedule(0.1, 0.07, 0.15, total_steps=100),
                          r"don't fit.*phase_length=0\.07 \(7 steps\).*remainder 75"),
    "acdc overfull": (lambda: S.ACDCSchedule(0.6, 0.05, 0.5, total_steps=100), r"don't fit"),
    "acdc no final phase": (lambda: S.ACDCSchedule(10, 5, 0, total_steps=20), r"end_sparse=0"),
    "acdc zero phase": (lambda: S.ACDCSchedule(10, 0, 5, total_steps=20), r"phase_length=0"),
    "acdc no total": (lambda: S.ACDCSchedule(10, 5, 5), r"total_steps"),
    "acdc sparsity": (lambda: S.ACDCSchedule(10, 5, 5, sparsity=1.0, total_steps=20),
                      r"sparsity=1\.0"),
    "acdc tail": (lambda: S.ACDCSchedule(10, 5, 5, tail="sparse", total_steps=20), r"tail"),
    "lr boundaries": (lambda: S.StepDecayLR(0.1, boundaries=(0.5, 0.2), total_steps=100),
                      r"must not decrease"),
    "lr negative": (lambda: S.WarmupConstantLR(-0.1), r"lr=-0\.1"),
    "lr factor": (lambda: S.StepDecayLR(0.1, factor=0.0, total_steps=100), r"factor=0\.0"),
    "cosine lr warmup too long": (lambda: S.WarmupCosineLR(0.1, warmup=1.0, total_steps=100),
                                  r"warmup=1\.0"),
    "cosine lr final above peak": (lambda: S.WarmupCosineLR(0.1, 0.2, total_steps=100),
                                   r"final_lr=0\.2"),
    "stretch multiplier": (lambda: S.stretch(S.ConstantDecay(0.1), 0), r"multiplier=0"),
    "negative step": (lambda: S.CosineDecay(0.5, total_steps=10)(-1), r"step=-1"),
    "every_epoch": (lambda: S.UpdateSchedule.every_epoch(0, 100), r"steps_per_epoch=0"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_raises_value_error(case):
    make, pattern = BAD[case]
    with pytest.raises(ValueError, match=pattern):
        make()


@pytest.mark.parametrize("bad", ["0.1", True, None, [3]])
def test_non_numeric_step_values_raise_type_error(bad):
    with pytest.raises(TypeError, match="step value"):
        S.resolve_step(bad, 100)


def test_float_step_is_rejected_at_call():
    with pytest.raises(TypeError, match="step=2.0"):
        S.CosineDecay(0.5, total_steps=10)(2.0)


def test_schedules_are_frozen_and_hashable():
    gmp = S.PolynomialSparsity(0.0, 0.5, 0, 100)
    with pytest.raises(dataclasses.FrozenInstanceError):
        gmp.final = 0.9
    assert hash(gmp) == hash(S.PolynomialSparsity(0.0, 0.5, 0, 100))
    assert S.PolynomialSparsity.from_config(gmp.get_config()) == gmp


def test_docstring_examples():
    result = doctest.testmod(
        S, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        extraglobs={"keras": keras})
    assert result.attempted > 20 and result.failed == 0


# ---------------------------------------------------------------------------
# tfmot, in a subprocess (it sets TF_USE_LEGACY_KERAS when imported)
# ---------------------------------------------------------------------------

TFMOT_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot

    cases = json.loads(sys.argv[1])
    out = []
    for case in cases:
        cls = getattr(tfmot.sparsity.keras, case["class"])
        schedule = cls(**case["kwargs"])
        flags, sparsity = schedule(tf.constant(case["steps"], tf.int64))
        sparsity = tf.broadcast_to(sparsity, tf.shape(flags))
        out.append([np.asarray(flags).tolist(), np.asarray(sparsity, np.float64).tolist()])
    print(json.dumps(out))
    """
)


@pytest.mark.skipif(
    importlib.util.find_spec("tensorflow_model_optimization") is None,
    reason="tensorflow-model-optimization is not installed",
)
def test_agrees_with_tfmot_in_subprocess():
    ours = [
        S.PolynomialSparsity(0.0, 0.9, 10, 110, frequency=7, total_steps=130),
        S.PolynomialSparsity(0.05, 0.88, begin=0.1, end=0.5, power=2, frequency=0.04,
                             total_steps=250),
        S.ConstantSparsity(0.75, begin=5, frequency=4, total_steps=100),
        S.ConstantSparsity(0.5, begin=0.1, end=0.6, frequency=9, total_steps=100),
    ]
    cases = []
    for sched in ours:
        name = "PolynomialDecay" if isinstance(sched, S.PolynomialSparsity) else "ConstantSparsity"
        steps = list(range(1, sched.total_steps + 11))  # tfmot is never called with step 0
        cases.append({"class": name, "kwargs": sched.tfmot_kwargs(), "steps": steps})
    proc = subprocess.run(
        [sys.executable, "-c", TFMOT_SCRIPT, json.dumps(cases)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    theirs = json.loads(proc.stdout.strip().splitlines()[-1])
    for sched, case, (flags, sparsity) in zip(ours, cases, theirs):
        steps = np.asarray(case["steps"])
        our_flags, our_sparsity = sched(tf.constant(steps))
        assert np.asarray(our_flags).tolist() == flags
        np.testing.assert_allclose(np.asarray(our_sparsity), sparsity, rtol=0, atol=1e-7)
        for s, f, v in zip(case["steps"], flags, sparsity):
            assert sched(s)[0] == f and sched(s)[1] == pytest.approx(v, abs=1e-6)


def test_step_boundaries_on_the_same_step_of_a_short_run_each_decay():
    lr = S.StepDecayLR(0.1, boundaries=(0.5, 0.75), total_steps=3)
    assert lr.resolved_steps()["boundaries"] == (2, 2)
    assert lr(1) == 0.1 and lr(2) == pytest.approx(0.001)
    assert float(lr(keras.ops.convert_to_tensor(2))) == pytest.approx(0.001)
