"""Structured selection (`tf_sparse.patterns.Layout`'s in-graph methods and
`channel_graph.ChannelTies`' tied sums) on the Keras backend this process
runs on: N:M (2:4, 1:4, highest and lowest, a count per group), block and
channel masks return the backend's boolean tensor of the kernel's shape and
pick bit for bit what a NumPy reference picks (ties to the lower entry or
group), with many ties, signed zeros, infinities, NaNs and partly eligible
groups.

Run on TensorFlow by the normal suite and on JAX and PyTorch by
tests/test_backends.py (`KERAS_BACKEND=jax python -m pytest tests/backends`).
"""

import keras
import numpy as np
import pytest

from tf_sparse import channel_graph
from tf_sparse import patterns
from tf_sparse import registry
from tf_sparse import topk

DENSE = registry.KernelAxes((0,), (1,), 0)
CONV = registry.KernelAxes((0, 1, 2), (3,), 2)

# Two kernel shapes only: JAX compiles each op per shape.
SHAPES = (((16, 6), DENSE), ((3, 3, 8, 6), CONV))

SPECIAL = np.concatenate([
    np.float32([np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 1.0, -1.0]),
    np.uint32([0x7FC00000, 0xFFFFFFFF]).view(np.float32)])  # NaNs


def numpy_groups(layout, x):
    """NumPy twin of `Layout.groups`: (num_groups, group_size)."""
    r, c = layout.block
    x = np.transpose(np.asarray(x), layout.perm).reshape(
        layout.rows // r, r, layout.cols // c, c)
    return x.transpose(0, 2, 1, 3).reshape(layout.num_groups,
                                           layout.group_size)


def numpy_ungroup(layout, g):
    r, c = layout.block
    x = g.reshape(layout.rows // r, layout.cols // c, r, c)
    x = x.transpose(0, 2, 1, 3).reshape(
        tuple(layout.shape[a] for a in layout.perm))
    return np.transpose(x, np.argsort(layout.perm))


def reference_n_m(layout, scores, eligible, units, lowest):
    """Per group, the `units` highest (lowest) eligible scores, ties to the
    lower entry: a plain Python loop over each group's sorted entries."""
    keys = topk.numpy_order_keys(numpy_groups(layout, scores)).reshape(
        layout.num_groups, layout.group_size)
    ok = numpy_groups(layout, eligible)
    units = np.broadcast_to(np.asarray(units).reshape(-1, 1),
                            (layout.num_groups, 1))[:, 0]
    kept = np.zeros(keys.shape, bool)
    for g in range(layout.num_groups):
        ranked = sorted((int(keys[g, j]) if lowest else -int(keys[g, j]), j)
                        for j in range(layout.group_size) if ok[g, j])
        for _, j in ranked[:max(int(units[g]), 0)]:
            kept[g, j] = True
    return numpy_ungroup(layout, kept)


def reference_groups(layout, scores, eligible, units):
    """Whole groups: the `units` eligible groups of highest float64 sum
    (exact here: the scores are small multiples of 1/2), lower group first."""
    sums = numpy_groups(layout, scores).astype(np.float64).sum(axis=1)
    ok = numpy_groups(layout, eligible).all(axis=1)
    kept = topk.numpy_select_top(sums, units, ok)
    return numpy_ungroup(layout, np.repeat(kept[:, None], layout.group_size,
                                           axis=1))


def numpy_of(mask, shape):
    assert keras.ops.is_tensor(mask)
    assert keras.backend.standardize_dtype(mask.dtype) == "bool"
    assert tuple(mask.shape) == tuple(shape)
    return keras.ops.convert_to_numpy(mask)


def tied_scores(rng, shape):
    """Few distinct values (multiples of 1/2) and the special floats."""
    plain = rng.integers(-3, 4, shape).astype(np.float32) * np.float32(0.5)
    special = SPECIAL[rng.integers(0, SPECIAL.size, shape)]
    return np.where(rng.random(shape) < 0.4, special, plain)


@pytest.mark.parametrize("spec", ["2:4", "1:4"])
@pytest.mark.parametrize("lowest", [False, True])
def test_n_m_select_equals_the_numpy_reference(spec, lowest):
    rng = np.random.default_rng(4 + int(lowest))
    for shape, axes in SHAPES:
        layout = patterns.parse(spec).layout(shape, axes)
        for _ in range(3):
            scores = tied_scores(rng, shape)
            eligible = rng.random(shape) < rng.choice([0.5, 0.8, 1.0])
            per_group = rng.integers(-1, 5, (layout.num_groups, 1))
            for units in (layout.keep, 0, 3, per_group):
                given = keras.ops.convert_to_tensor(units, "int32")
                got = numpy_of(layout.select(scores, eligible, given,
                                             lowest=lowest), shape)
                want = reference_n_m(layout, scores, eligible, units, lowest)
                np.testing.assert_array_equal(got, want)
                if units is layout.keep and eligible.all():
                    assert layout.misfit(got.astype(np.float32)) is None


@pytest.mark.parametrize("spec", ["block:2x2", "block:4x1", "channel"])
def test_group_select_equals_the_numpy_reference(spec):
    rng = np.random.default_rng(7)
    for shape, axes in SHAPES:
        layout = patterns.parse(spec).layout(shape, axes)
        for _ in range(3):
            # Finite multiples of 1/2: every group sum is exact in float32,
            # so summation order cannot matter; many sums tie.
            scores = rng.integers(-2, 3, shape).astype(np.float32) / 2
            eligible = rng.random(shape) < rng.choice([0.97, 1.0])
            for units in (0, 1, layout.num_groups // 2, layout.num_groups,
                          layout.num_groups + 3):
                got = numpy_of(layout.select(
                    scores, eligible,
                    keras.ops.convert_to_tensor(units, "int32")), shape)
                want = reference_groups(layout, scores, eligible, units)
                np.testing.assert_array_equal(got, want)
                assert layout.misfit(got.astype(np.float32)) is None
            sums = keras.ops.convert_to_numpy(layout.group_sums(scores))
            np.testing.assert_array_equal(
                sums, numpy_groups(layout, scores).sum(axis=1))


def test_unstructured_layout_selects_like_topk():
    layout = patterns.parse("unstructured").layout((16, 6), DENSE)
    scores = tied_scores(np.random.default_rng(2), (16, 6))
    got = numpy_of(layout.select(scores, np.ones((16, 6), bool), 37),
                   (16, 6))
    want = topk.numpy_select_top(scores, 37).reshape(16, 6)
    np.testing.assert_array_equal(got, want)


def test_lowest_is_refused_for_whole_groups():
    layout = patterns.parse("channel").layout((16, 6), DENSE)
    with pytest.raises(ValueError, match="lowest=True.*N:M"):
        layout.select(np.ones((16, 6), np.float32), np.ones((16, 6), bool),
                      1, lowest=True)


def test_channel_ties_sum_like_numpy_tie():
    # Two channel layouts whose columns share tie ids 0..2; id 3..5 alone.
    dense = patterns.parse("channel").layout((16, 6), DENSE)
    conv = patterns.parse("channel").layout((3, 3, 8, 5), CONV)
    ties = channel_graph.ChannelTies(
        [np.array([0, 1, 2, 3, 4, 5]), None, np.array([2, 1, 0, 6, 7])], 8)
    rng = np.random.default_rng(3)
    scores = [rng.integers(0, 5, (16, 6)).astype(np.float32) / 2,
              rng.random((4, 4)).astype(np.float32),
              rng.integers(0, 5, (3, 3, 8, 5)).astype(np.float32) / 2]
    sums = [numpy_groups(dense, scores[0]).sum(axis=1), None,
            numpy_groups(conv, scores[2]).sum(axis=1)]
    want = ties.numpy_tie(sums)
    got = ties.tie([keras.ops.convert_to_tensor(s) if s is not None else None
                    for s in sums])
    for g, w in zip(got, want):
        if w is None:
            assert g is None
            continue
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(g), w)
    tied = ties.tied_scores(scores, [dense, None, conv])
    assert tied[1] is scores[1]
    for t, layout, w in ((tied[0], dense, want[0]), (tied[2], conv, want[2])):
        t = keras.ops.convert_to_numpy(t)
        assert t.shape == layout.shape
        grouped = numpy_groups(layout, t)
        np.testing.assert_array_equal(grouped[:, 0], w)
        assert not grouped[:, 1:].any()
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(layout.group_sums(t)), w)
