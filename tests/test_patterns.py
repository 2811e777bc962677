"""Structured sparsity (issue 14): N:M, block and channel patterns in
`sparsify`, SNIP and magnitude pruning; exact counts; every bad input named."""

import re
import warnings

import hypothesis
from hypothesis import strategies as st
import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sparse as tfs
from tf_sparse import patterns
from tf_sparse import registry
from tf_sparse.algorithms import magnitude
from tf_sparse.algorithms import snip
from tf_sparse.sparsification import PatternFitWarning

DENSE = registry.KernelAxes((0,), (1,), 0)


def conv_axes(ndim=4):
    return registry.KernelAxes(tuple(range(ndim - 1)), (ndim - 1,), ndim - 2)


def masks_of(model):
    return {mw.path: mw.mask.numpy() for mw in tfs.masked_weights(model)}


def nm_group_counts(mask, m, axis):
    """Ones in every group of m consecutive entries along `axis`."""
    moved = np.moveaxis(mask, axis, -1)
    return moved.reshape(moved.shape[:-1] + (-1, m)).sum(axis=-1)


def block_sums(matrix, r, c):
    rows, cols = matrix.shape
    return matrix.reshape(rows // r, r, cols // c, c).sum(axis=(1, 3))


def conv_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, name="c1")(inputs)
    x = keras.layers.Conv2D(16, 3, name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="fc")(x))


# -- parsing -----------------------------------------------------------------

@pytest.mark.parametrize("spec,kind,text", [
    ("unstructured", "unstructured", "unstructured"),
    (None, "unstructured", "unstructured"),
    ("2:4", "n:m", "2:4"),
    (" 1:8 ", "n:m", "1:8"),
    ("block:4x2", "block", "block:4x2"),
    ("BLOCK:16X1", "block", "block:16x1"),
    ("channel", "channel", "channel"),
])
def test_parse_accepted_specs(spec, kind, text):
    pattern = patterns.parse(spec)
    assert pattern.kind == kind and pattern.spec == text
    assert patterns.parse(pattern) is pattern


def test_fixed_sparsity_of_n_m():
    assert patterns.parse("2:4").fixed_sparsity == 0.5
    assert patterns.parse("1:8").fixed_sparsity == 0.875
    assert patterns.parse("block:2x2").fixed_sparsity is None


@pytest.mark.parametrize("spec,error,match", [
    ("2-4", ValueError, r"Unknown sparsity pattern '2-4'; accepted: "
     r"\"unstructured\", \"N:M\""),
    ("5:4", ValueError, r"'5:4' keeps N=5 of every M=4: N must be smaller"),
    ("4:4", ValueError, r"N must be smaller than M.*N = M is dense"),
    ("0:4", ValueError, r"'0:4': N must be at least 1"),
    ("block:0x4", ValueError, r"'block:0x4': the block's rows R must be at "
     r"least 1"),
    ("block:4", ValueError, r"Unknown sparsity pattern 'block:4'"),
    ("block:1x1", ValueError, r"1x1 blocks, i.e. unstructured"),
    ("channels", ValueError, r"Unknown sparsity pattern 'channels'"),
    (4, TypeError, r"pattern must be a string, got 4 \(int\)"),
    ((2, 4), TypeError, r"got \(2, 4\) \(tuple\)"),
])
def test_parse_errors_name_the_value_and_what_is_accepted(spec, error, match):
    with pytest.raises(error, match=match):
        patterns.parse(spec)


# -- kernel axes --------------------------------------------------------------

@pytest.mark.parametrize("layer,input_shape,name,axes", [
    (keras.layers.Dense(6), (None, 4), "kernel", ((0,), (1,), 0)),
    (keras.layers.Conv2D(6, 3), (None, 8, 8, 4), "kernel",
     ((0, 1, 2), (3,), 2)),
    (keras.layers.Conv1D(6, 3), (None, 8, 4), "kernel", ((0, 1), (2,), 1)),
    (keras.layers.Conv2DTranspose(6, 3), (None, 8, 8, 4), "kernel",
     ((0, 1, 3), (2,), 3)),
    (keras.layers.DepthwiseConv2D(3, depth_multiplier=2), (None, 8, 8, 4),
     "kernel", ((0, 1), (2, 3), None)),
    (keras.layers.SeparableConv2D(6, 3), (None, 8, 8, 4),
     "depthwise_kernel", ((0, 1), (2, 3), None)),
    (keras.layers.SeparableConv2D(6, 3), (None, 8, 8, 4),
     "pointwise_kernel", ((0, 1, 2), (3,), 2)),
    (keras.layers.EinsumDense("abc,cde->abde", output_shape=(5, 2, 4)),
     (None, 5, 16), "kernel", ((0,), (1, 2), 0)),
    (keras.layers.EinsumDense("abcd,cde->abe", output_shape=(5, 8)),
     (None, 5, 2, 4), "kernel", ((0, 1), (2,), 1)),
    (keras.layers.Embedding(50, 8), (None, 3), "embeddings",
     ((0,), (1,), 0)),
], ids=lambda v: type(v).__name__ if isinstance(v, keras.layers.Layer)
    else None)
def test_kernel_axes(layer, input_shape, name, axes):
    layer.build(input_shape)
    shape = tuple(getattr(layer, name).shape)
    assert registry.kernel_axes(layer, name, shape) == registry.KernelAxes(
        *axes)


# -- layouts ----------------------------------------------------------------

@hypothesis.settings(max_examples=40, deadline=None)
@hypothesis.given(
    kh=st.integers(1, 3), groups_in=st.integers(1, 3), m=st.sampled_from(
        [2, 4, 8]), n_frac=st.floats(0, 1), out=st.integers(1, 5),
    seed=st.integers(0, 2 ** 16))
def test_n_m_exact_mask_keeps_n_of_every_m_along_input_channels(
        kh, groups_in, m, n_frac, out, seed):
    n = min(m - 1, max(1, int(n_frac * m)))
    shape = (kh, kh, groups_in * m, out)
    layout = patterns.parse(f"{n}:{m}").layout(shape, conv_axes())
    scores = np.random.default_rng(seed).random(shape)
    count = layout.full_count(n)
    mask = layout.exact_mask(scores, count)
    assert mask.shape == shape and mask.sum() == count
    per_group = nm_group_counts(mask, m, axis=2)
    assert np.all(per_group == n)
    # The kept ones are the n highest scores of each group.
    moved = np.moveaxis(scores, 2, -1).reshape(-1, m)
    kept = np.moveaxis(mask, 2, -1).reshape(-1, m)
    for s, k in zip(moved, kept):
        assert set(np.flatnonzero(k)) == set(np.argsort(-s,
                                                        kind="stable")[:n])
    assert layout.misfit(mask) is None


@hypothesis.settings(max_examples=40, deadline=None)
@hypothesis.given(
    rb=st.integers(1, 4), cb=st.integers(1, 4), r=st.sampled_from([1, 2, 4]),
    c=st.sampled_from([1, 2, 3]), kept_frac=st.floats(0, 1),
    seed=st.integers(0, 2 ** 16))
def test_block_exact_mask_is_whole_blocks_with_the_largest_sums(
        rb, cb, r, c, kept_frac, seed):
    hypothesis.assume((r, c) != (1, 1))
    shape = (rb * r, cb * c)
    layout = patterns.parse(f"block:{r}x{c}").layout(shape, DENSE)
    assert layout.num_groups == rb * cb and layout.group_size == r * c
    scores = np.random.default_rng(seed).random(shape)
    blocks = int(round(kept_frac * rb * cb))
    mask = layout.exact_mask(scores, blocks * r * c)
    sums = block_sums(mask, r, c)
    assert set(np.unique(sums)) <= {0, r * c}
    assert np.count_nonzero(sums) == blocks
    score_sums = block_sums(scores, r, c).ravel()
    expected = np.argsort(-score_sums, kind="stable")[:blocks]
    assert set(np.flatnonzero(sums.ravel())) == set(expected)


@hypothesis.settings(max_examples=30, deadline=None)
@hypothesis.given(shape=st.lists(st.integers(1, 4), min_size=2, max_size=4),
                  spec=st.sampled_from(["channel", "2:4", "block:2x2"]),
                  seed=st.integers(0, 2 ** 16))
def test_groups_and_ungroup_are_inverse(shape, spec, seed):
    shape = tuple(shape)
    pattern = patterns.parse(spec)
    axes = conv_axes(len(shape))
    if spec == "2:4":
        shape = shape[:-2] + (4 * shape[-2], shape[-1])
    if spec == "block:2x2":
        shape = shape[:-1] + (2 * shape[-1],)
        shape = (2 * shape[0],) + shape[1:]
    layout = pattern.layout(shape, axes)
    x = np.random.default_rng(seed).random(shape).astype(np.float32)
    g = keras.ops.convert_to_numpy(layout.groups(x))
    assert g.shape == (layout.num_groups, layout.group_size)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(layout.ungroup(g)), x)


def test_channel_groups_are_output_columns_by_hand():
    layout = patterns.parse("channel").layout((2, 3), DENSE)
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(layout.groups(x)),
        [[0, 3], [1, 4], [2, 5]])
    # Column sums 3, 5, 7: two channels keep columns 1 and 2.
    np.testing.assert_array_equal(layout.exact_mask(x, 4),
                                  [[0, 1, 1], [0, 1, 1]])


def test_exact_mask_refuses_counts_that_are_not_whole_groups():
    layout = patterns.parse("block:2x2").layout((4, 4), DENSE)
    with pytest.raises(ValueError, match="5 weights are not whole groups "
                       "of 4"):
        layout.exact_mask(np.ones((4, 4)), 5)
    nm = patterns.parse("2:4").layout((4, 4), DENSE)
    with pytest.raises(ValueError, match="the same number of weights in each "
                       "of its 4 groups"):
        nm.exact_mask(np.ones((4, 4)), 6)


def test_in_graph_selection_equals_the_host_selection():
    rng = np.random.default_rng(1)
    for spec, shape, units, count in (("2:4", (3, 3, 8, 5), 2, None),
                                      ("block:2x4", (8, 8), 3, 24),
                                      ("channel", (3, 3, 4, 6), 2, 72)):
        layout = patterns.parse(spec).layout(shape, conv_axes(len(shape)))
        scores = rng.random(shape).astype(np.float32)
        count = layout.full_count(units) if count is None else count
        host = layout.exact_mask(scores, count)
        graph = tf.function(lambda s: layout.select(
            s, tf.ones(shape, tf.bool), tf.constant(units)))(scores)
        np.testing.assert_array_equal(graph.numpy().astype(np.float32), host)


def test_misfit_of_masks():
    nm = patterns.parse("2:4").layout((8, 1), DENSE)
    assert nm.misfit(np.array([1, 1, 0, 0, 1, 0, 1, 0])[:, None]) is None
    assert nm.misfit(np.ones((8, 1))) is None          # dense start: 4:4
    assert "hold 1, 3 ones" in nm.misfit(
        np.array([1, 0, 0, 0, 1, 1, 1, 0])[:, None])
    block = patterns.parse("block:2x2").layout((4, 2), DENSE)
    assert "1 of its 2 groups of 4 are partly kept" in block.misfit(
        np.array([[1, 1], [1, 0], [0, 0], [0, 0]]))


# -- sparsify ---------------------------------------------------------------

def test_sparsify_two_four_on_an_mlp(mlp):
    # Inputs 8, 32, 16: all multiples of 4; sparsity defaults to 0.5.
    tfs.sparsify(mlp, pattern="2:4")
    counts = {mw.path: mw.nonzeros() for mw in tfs.masked_weights(mlp)}
    assert counts == {"fc1/kernel": 128, "fc2/kernel": 256, "out/kernel": 24}
    for mw in tfs.masked_weights(mlp):
        assert mw.pattern == "2:4"
        assert np.all(nm_group_counts(mw.mask.numpy(), 4, axis=0) == 2)
        w = mw.variable.numpy()
        assert np.all(w[mw.mask.numpy() == 0] == 0)


def test_n_m_runs_along_input_channels_and_leaves_misfits_dense():
    model = conv_model()
    with pytest.warns(PatternFitWarning,
                      match=r"c1/kernel \(its input size 3 is not a multiple "
                      r"of 4\)"):
        tfs.sparsify(model, sparsity=0.5, pattern="2:4")
    masks = masks_of(model)
    assert list(masks) == ["c2/kernel", "fc/kernel"]
    assert np.all(nm_group_counts(masks["c2/kernel"], 4, axis=2) == 2)
    assert masks["c2/kernel"].sum() == 3 * 3 * 8 * 16 // 2
    text = tfs.summary(model)
    assert "c1/kernel (dense)" in text
    assert ("Layers left dense because pattern '2:4' does not fit them: "
            "c1/kernel (its input size 3 is not a multiple of 4)") in text
    assert re.search(r"c1/kernel \(dense\)\s+Conv2D\s+3x3x3x8\s+-\s", text)
    assert re.search(r"c2/kernel\s+Conv2D\s+3x3x8x16\s+2:4\s+576\s", text)


def test_block_counts_are_exact_whole_blocks(mlp):
    # fc1 8x32: 16 blocks of 4x4, fc2 32x16: 32 blocks, out 16x3 does not
    # fit. Budget: floor(0.25 * 48 + 0.5) = 12 blocks, uniform: 4 and 8.
    with pytest.warns(PatternFitWarning, match="out/kernel"):
        tfs.sparsify(mlp, sparsity=0.75, pattern="block:4x4")
    masks = masks_of(mlp)
    assert list(masks) == ["fc1/kernel", "fc2/kernel"]
    for path, blocks in (("fc1/kernel", 4), ("fc2/kernel", 8)):
        sums = block_sums(masks[path], 4, 4)
        assert set(np.unique(sums)) <= {0, 16}
        assert np.count_nonzero(sums) == blocks


def test_block_with_erk_shares_blocks_by_erk():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64,))
    x = keras.layers.Dense(64, name="a")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(16, name="b")(x))
    tfs.sparsify(model, sparsity=0.9, distribution="erk",
                 pattern="block:4x4")
    masks = masks_of(model)
    # ERK by hand: raw densities 128/4096 and 80/1024; 512 weights kept, so
    # eps = 512 / (128 + 80) and the densities are 0.0769 and 0.1923.
    # In blocks of 16: targets 256 * 0.0769 = 19.69 and 64 * 0.1923 =
    # 12.31; budget floor(0.1 * 320 + 0.5) = 32: floors 19 + 12, the
    # leftover block to the larger fraction (a).
    assert [int(block_sums(masks[p], 4, 4).astype(bool).sum())
            for p in ("a/kernel", "b/kernel")] == [20, 12]


def test_channel_masks_are_whole_output_units(mlp):
    # Channels 32, 16, 3 of sizes 8, 32, 16 at 0.5: targets 16, 8, 1.5,
    # budget floor(25.5 + 0.5) = 26: out gets the leftover -> 16, 8, 2.
    tfs.sparsify(mlp, sparsity=0.5, pattern="channel")
    masks = masks_of(mlp)
    kept = {}
    for path, mask in masks.items():
        columns = mask.sum(axis=0)
        assert set(np.unique(columns)) <= {0, mask.shape[0]}, path
        kept[path] = int(np.count_nonzero(columns))
    assert kept == {"fc1/kernel": 16, "fc2/kernel": 8, "out/kernel": 2}
    assert sum(m.sum() for m in masks.values()) == 16 * 8 + 8 * 32 + 2 * 16


def test_channel_on_a_conv_keeps_whole_filters():
    model = conv_model()
    tfs.sparsify(model, sparsity=0.5, pattern="channel")
    mask = masks_of(model)["c2/kernel"]
    per_filter = mask.reshape(-1, 16).sum(axis=0)
    assert set(np.unique(per_filter)) == {0, 72}
    assert np.count_nonzero(per_filter) == 8


def test_depthwise_is_left_dense_by_n_m_and_masked_by_channel():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(8, 1, name="pw")(x))
    with pytest.warns(PatternFitWarning, match="dw/kernel.*no input-channel"):
        tfs.sparsify(model, pattern="2:4")
    assert list(masks_of(model)) == ["pw/kernel"]
    tfs.unsparsify(model)
    tfs.sparsify(model, sparsity=0.5, pattern="channel")
    dw = masks_of(model)["dw/kernel"]
    per_filter = dw.reshape(9, 8).sum(axis=0)       # (in, multiplier) pairs
    assert set(np.unique(per_filter)) == {0, 9}
    assert np.count_nonzero(per_filter) == 4


def test_attention_output_groups_run_along_head_dim():
    inputs = keras.Input((5, 16))
    outputs = keras.layers.MultiHeadAttention(2, 8, name="mha")(inputs, inputs)
    model = keras.Model(inputs, outputs)
    tfs.sparsify(model, pattern="2:4")
    out = masks_of(model)["mha/attention_output/kernel"]   # (2, 8, 16)
    assert np.all(nm_group_counts(out, 4, axis=1) == 2)
    query = masks_of(model)["mha/query/kernel"]            # (16, 2, 8)
    assert np.all(nm_group_counts(query, 4, axis=0) == 2)


def test_magnitude_init_keeps_the_blocks_with_the_largest_sums(mlp):
    w = np.abs(mlp.get_layer("fc2").kernel.numpy())
    with pytest.warns(PatternFitWarning):
        tfs.sparsify(mlp, sparsity=0.5, pattern="block:4x4",
                     mask_init="magnitude")
    kept = block_sums(masks_of(mlp)["fc2/kernel"], 4, 4).ravel() > 0
    sums = block_sums(w, 4, 4).ravel()
    assert sums[kept].min() >= sums[~kept].max()


def test_same_seed_same_structured_masks():
    def draw(seed):
        model = conv_model()
        tfs.sparsify(model, sparsity=0.5, pattern="channel", seed=seed)
        return masks_of(model)
    a, b, c = draw(1), draw(1), draw(2)
    assert all(np.array_equal(a[p], b[p]) for p in a)
    assert not all(np.array_equal(a[p], c[p]) for p in a)


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(
    widths=st.lists(st.sampled_from([2, 3, 4, 6, 8, 12]), min_size=2,
                    max_size=4),
    spec=st.sampled_from(["2:4", "1:2", "block:2x2", "channel"]),
    sparsity=st.sampled_from([0.3, 0.5, 0.8]),
    distribution=st.sampled_from(["uniform", "erk"]))
def test_sparsify_counts_are_exact_for_every_pattern(widths, spec, sparsity,
                                                     distribution):
    """Over random MLPs: each masked layer follows the pattern; N:M keeps
    exactly N per group; blocks total floor(density * blocks + 0.5) over
    the layers they fit; channels what the plan says."""
    pattern = patterns.parse(spec)
    if pattern.fixed_sparsity is not None:
        sparsity, distribution = pattern.fixed_sparsity, "uniform"
    inputs = keras.Input((widths[0],))
    x = inputs
    for i, width in enumerate(widths[1:]):
        x = keras.layers.Dense(width, name=f"d{i}")(x)
    model = keras.Model(inputs, x)
    targets = tfs.sparsification.find_targets(model)
    fitting = [t for t in targets if t.misfit(pattern) is None]
    hypothesis.assume(fitting)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            tfs.sparsify(model, sparsity=sparsity, distribution=distribution,
                         pattern=spec)
        except ValueError as error:   # a plan that would empty every layer
            assert "Every masked layer would be empty" in str(error)
            hypothesis.reject()
    masked = {mw.path: mw for mw in tfs.masked_weights(model)}
    assert sorted(masked) == sorted(t.path for t in fitting)
    for t in fitting:
        mask = masked[t.path].mask.numpy()
        layout = t.layout(pattern)
        assert layout.misfit(mask) is None
        if pattern.kind == "n:m":
            assert np.all(nm_group_counts(mask, pattern.m, axis=0)
                          == pattern.n)
    if pattern.kind == "block":
        blocks = sum(t.size // 4 for t in fitting)
        kept = sum(mw.nonzeros() for mw in masked.values())
        assert kept == 4 * int(np.floor((1 - sparsity) * blocks + 0.5))


def test_sparsity_zero_records_the_pattern_with_all_ones(mlp):
    tfs.sparsify(mlp, sparsity=0.0, pattern="2:4")
    assert all(mw.pattern == "2:4" and mw.nonzeros() == mw.size
               for mw in tfs.masked_weights(mlp))


def test_per_layer_mapping_with_a_pattern(mlp):
    tfs.sparsify(mlp, sparsity={"fc1": 0.5, "fc2": 0.75},
                 pattern="block:4x4")
    # fc1: 16 blocks at 0.5 -> 8; fc2: 32 blocks at 0.75 -> 8.
    assert {mw.path: mw.nonzeros() for mw in tfs.masked_weights(mlp)} == {
        "fc1/kernel": 128, "fc2/kernel": 128}


def test_given_masks_must_follow_the_pattern(mlp):
    good = np.zeros((8, 32), np.float32)
    good[:2] = 1
    good[4:6] = 1
    bad = good.copy()
    bad[0, 0] = 0
    with pytest.raises(ValueError, match=r"masks\['fc1/kernel'\] does not "
                       "follow pattern '2:4': its groups of 4 hold 1, 2 ones"):
        tfs.sparsify(mlp, masks={"fc1/kernel": bad}, pattern="2:4")
    assert not tfs.is_sparse(mlp)
    tfs.sparsify(mlp, masks={"fc1/kernel": good}, pattern="2:4")
    assert tfs.masked_weights(mlp)[0].pattern == "2:4"


# -- bad input ---------------------------------------------------------------

def test_n_m_with_another_sparsity_is_refused(mlp):
    with pytest.raises(ValueError, match=r"sparsity=0.9 cannot be reached "
                       r"with pattern '2:4': it keeps 2 of every 4 weights, "
                       r"so its sparsity is 1 - 2/4 = 0.5. Pass "
                       r"sparsity=0.5"):
        tfs.sparsify(mlp, sparsity=0.9, pattern="2:4")
    # The six digits the message gives for 1 - 1/3 are accepted.
    patterns.parse("1:3").check_sparsity(0.666667)
    with pytest.raises(ValueError, match=r"= 0.666667"):
        patterns.parse("1:3").check_sparsity(0.6)
    with pytest.raises(ValueError, match=r"sparsity\['fc1'\]=0.75 cannot be "
                       "reached with pattern '1:8'"):
        tfs.sparsify(mlp, sparsity={"fc1": 0.75}, pattern="1:8")
    assert not tfs.is_sparse(mlp)


def test_n_m_with_a_non_uniform_distribution_is_refused(mlp):
    with pytest.raises(ValueError, match=r"'2:4' fixes every layer's "
                       r"sparsity at 0.5, so distribution='erk'.*use "
                       r"distribution='uniform'"):
        tfs.sparsify(mlp, pattern="2:4", distribution="erk")


def test_m_that_divides_no_layer_is_refused(mlp):
    # Inputs 8, 32, 16: none is a multiple of 3.
    with pytest.raises(ValueError, match=r"Pattern '1:3' fits none of the "
                       r"layers to sparsify \(fc1/kernel: its input size 8 "
                       r"is not a multiple of 3;"):
        tfs.sparsify(mlp, pattern="1:3")
    assert not tfs.is_sparse(mlp)


def test_block_that_fits_no_layer_is_refused(mlp):
    with pytest.raises(ValueError, match=r"'block:5x5' fits none.*its 8x32 "
                       r"\(inputs x outputs\) matrix is not made of whole "
                       r"5x5 blocks"):
        tfs.sparsify(mlp, sparsity=0.5, pattern="block:5x5")


def test_malformed_pattern_in_sparsify(mlp):
    with pytest.raises(ValueError, match="Unknown sparsity pattern '2/4'"):
        tfs.sparsify(mlp, sparsity=0.5, pattern="2/4")
    assert not tfs.is_sparse(mlp)


def test_channel_that_empties_a_narrow_layer_warns(mlp):
    # Channels 32, 16, 3 at 0.9 uniform: targets 3.2, 1.6, 0.3; budget
    # floor(5.1 + 0.5) = 5: floors 3, 1, 0 and the leftover to fc2
    # (fraction 0.6), so out keeps none.
    with pytest.warns(tfs.sparsification.EmptyLayerWarning,
                      match=r"out/kernel.*one group in every layer"):
        tfs.sparsify(mlp, sparsity=0.9, pattern="channel")
    assert {mw.path: mw.nonzeros() for mw in tfs.masked_weights(mlp)} == {
        "fc1/kernel": 3 * 8, "fc2/kernel": 2 * 32, "out/kernel": 0}


# -- SNIP -------------------------------------------------------------------

def _snip_scores(model, data):
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    targets, scores = snip.sensitivities(model, data, loss)
    return loss, {t.path: s for t, s in zip(targets, scores)}


def test_snip_n_m_keeps_the_most_sensitive_two_of_four(mlp, small_data):
    loss, scores = _snip_scores(mlp, small_data)
    masks = snip.snip_masks(mlp, small_data, loss, 0.5, pattern="2:4")
    for path, mask in masks.items():
        assert np.all(nm_group_counts(mask, 4, axis=0) == 2)
        s = scores[path]
        for col in range(s.shape[1]):
            for g in range(s.shape[0] // 4):
                chunk = s[4 * g:4 * g + 4, col]
                kept = mask[4 * g:4 * g + 4, col] > 0
                assert chunk[kept].min() >= chunk[~kept].max()
    tfs.sparsify(mlp, masks=masks, pattern="2:4")
    assert all(mw.pattern == "2:4" for mw in tfs.masked_weights(mlp))


def test_snip_blocks_are_ranked_globally_by_summed_sensitivity(
        mlp, small_data):
    loss, scores = _snip_scores(mlp, small_data)
    masks = snip.snip_masks(mlp, small_data, loss, 0.75,
                            pattern="block:4x4", keep_dense=["out"])
    # 48 blocks of 16 at 0.75: 12 blocks kept over fc1 and fc2 together.
    kept, dropped = [], []
    for path, mask in masks.items():
        sums = block_sums(scores[path], 4, 4).ravel()
        on = block_sums(mask, 4, 4).ravel()
        assert set(np.unique(on)) <= {0, 16}
        kept += list(sums[on > 0])
        dropped += list(sums[on == 0])
    assert len(kept) == 12 and min(kept) >= max(dropped)


# -- magnitude pruning: GMP and AC/DC ---------------------------------------

def _gmp_model(pattern):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16,))
    x = keras.layers.Dense(8, name="a")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(4, name="b")(x))
    tfs.sparsify(model, sparsity=0.0, pattern=pattern)
    model.compile(keras.optimizers.SGD(0.01), "mse")
    return model


def test_gmp_prunes_two_four_through_three_four():
    model = _gmp_model("2:4")
    gmp = tfs.algorithms.GMP(0.5, begin=0, end=4, frequency=2,
                             schedule="linear", total_steps=8)
    x = np.random.default_rng(0).normal(size=(32, 16)).astype("float32")
    y = np.zeros((32, 4), "float32")
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append({mw.path: np.unique(nm_group_counts(
                mw.mask.numpy(), 4, axis=0)).tolist()
                for mw in tfs.masked_weights(model)})

    model.fit(x, y, batch_size=4, epochs=1, verbose=0,
              callbacks=[tfs.callbacks.MaskUpdate(gmp), Record()])
    # Targets at steps 0, 2, 4: 0, 0.25, 0.5 -> 4, 3, 2 of every 4
    # (floor(0.75 * 4 + 0.5) = 3).
    assert seen[1] == {"a/kernel": [3], "b/kernel": [3]}
    assert seen[-1] == {"a/kernel": [2], "b/kernel": [2]}
    for mw in tfs.masked_weights(model):
        mask, w = mw.mask.numpy(), np.abs(mw.variable.numpy())
        assert mw.nonzeros() == mw.size // 2
        assert np.all(w[mask == 0] == 0)


def test_magnitude_masks_follow_blocks_layerwise_and_globally():
    model = _gmp_model("block:4x4")
    weights = tfs.masked_weights(model)
    rng = np.random.default_rng(0)
    for mw in weights:
        mw.variable.assign(rng.normal(size=mw.shape).astype("float32"))
    layerwise = magnitude.magnitude_masks(
        weights, [tf.constant(0.5)] * 2, "layerwise", True)
    # a: 16x8 = 8 blocks -> 4; b: 8x4 = 2 blocks -> 1.
    counts = [int(block_sums(m.numpy(), 4, 4).astype(bool).sum())
              for m in layerwise]
    assert counts == [4, 1]
    glob = magnitude.magnitude_masks(weights, tf.constant(0.5), "global",
                                     False)
    sums = np.concatenate([block_sums(np.abs(mw.variable.numpy()), 4,
                                      4).ravel() for mw in weights])
    on = np.concatenate([block_sums(m.numpy(), 4, 4).ravel() > 0
                         for m in glob])
    assert on.sum() == 5 and sums[on].min() >= sums[~on].max()


def test_gmp_refuses_a_final_sparsity_n_m_cannot_reach():
    model = _gmp_model("2:4")
    gmp = tfs.algorithms.GMP(0.9, begin=0, end=4, frequency=2,
                             total_steps=8)
    with pytest.raises(ValueError, match=r"GMP final_sparsity for a/kernel="
                       r"0.9 cannot be reached with pattern '2:4'"):
        gmp.attach(model)


def test_global_ranking_of_channels_of_different_sizes_is_refused():
    model = _gmp_model("channel")
    gmp = tfs.algorithms.GMP(0.5, begin=0, end=4, frequency=2,
                             scope="global", total_steps=8)
    with pytest.raises(ValueError, match=r"groups, which must be of one "
                       r"size; the groups here differ \(a/kernel: 16, "
                       r"b/kernel: 8\). Use scope='layerwise'"):
        gmp.attach(model)


def test_acdc_compresses_to_two_four():
    model = _gmp_model("2:4")
    acdc = tfs.algorithms.ACDC(0.5, warmup=2, phase_length=2, end_sparse=2,
                               total_steps=8)
    x = np.random.default_rng(0).normal(size=(32, 16)).astype("float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, np.zeros((32, 4), "float32"), batch_size=4, epochs=1,
                  verbose=0, callbacks=[tfs.callbacks.MaskUpdate(acdc)])
    for mw in tfs.masked_weights(model):
        assert np.all(nm_group_counts(mw.mask.numpy(), 4, axis=0) == 2)
