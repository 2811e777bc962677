"""Channel dependency groups (tf_sparse.channel_graph), worked out by hand."""

import keras
import numpy as np
import pytest

import tf_sparse as tfs
from tf_sparse import channel_graph


def _members(group):
    return sorted((m.layer, m.weight, m.axis, m.indices, m.role)
                  for m in group.members)


def residual_concat_model():
    """input(6x6x2) -> a(3x3 conv, 4) -> bn -> relu -+-> add -> cat -> d
                                  relu -> b(1x1, 4) -+      c -+
    input -> c(1x1 conv, 3) ------------------------------------+
    """
    inputs = keras.Input((6, 6, 2), name="x")
    a = keras.layers.Conv2D(4, 3, padding="same", name="a")(inputs)
    a = keras.layers.BatchNormalization(name="bn")(a)
    a = keras.layers.ReLU(name="relu")(a)
    b = keras.layers.Conv2D(4, 1, name="b")(a)
    s = keras.layers.Add(name="add")([a, b])
    c = keras.layers.Conv2D(3, 1, name="c")(inputs)
    cat = keras.layers.Concatenate(name="cat")([s, c])
    out = keras.layers.Conv2D(2, 1, name="d")(cat)
    return keras.Model(inputs, out, name="residual_concat")


def test_groups_of_a_residual_concat_model_by_hand():
    groups = channel_graph.dependency_groups(residual_concat_model())
    # 2 input channels, 4 channels of the a/b residual stream, 3 of c,
    # 2 output channels of d.
    assert len(groups) == 11
    assert [g.index for g in groups] == list(range(11))
    for j in range(2):
        assert _members(groups[j]) == sorted([
            ("a", "kernel", 2, (j,), "in"), ("c", "kernel", 2, (j,), "in")])
        assert groups[j].blocked == "it is a channel of model input 'x'"
    bn = ("gamma", "beta", "moving_mean", "moving_variance")
    for j in range(4):
        group = groups[2 + j]
        assert group.blocked is None
        assert _members(group) == sorted(
            [("a", "kernel", 3, (j,), "out"), ("a", "bias", 0, (j,), "channel"),
             ("b", "kernel", 2, (j,), "in"), ("b", "kernel", 3, (j,), "out"),
             ("b", "bias", 0, (j,), "channel"),
             ("d", "kernel", 2, (j,), "in")]
            + [("bn", w, 0, (j,), "channel") for w in bn])
        assert {m.layer for m in group.creators} == {"a", "b"}
    for j in range(3):
        group = groups[6 + j]
        assert group.blocked is None
        # Concatenate puts c's channels after the 4 of the add.
        assert _members(group) == sorted([
            ("c", "kernel", 3, (j,), "out"), ("c", "bias", 0, (j,), "channel"),
            ("d", "kernel", 2, (4 + j,), "in")])
    for j in range(2):
        assert _members(groups[9 + j]) == sorted([
            ("d", "kernel", 3, (j,), "out"), ("d", "bias", 0, (j,), "channel")])
        assert groups[9 + j].blocked == "it is model output 0 ('d')"


def test_flatten_repeats_a_channel_over_the_dense_rows():
    inputs = keras.Input((3, 3, 1))
    x = keras.layers.Conv2D(3, 2, name="conv")(inputs)        # 2x2x3
    x = keras.layers.Flatten(name="flat")(x)                   # 12
    out = keras.layers.Dense(2, name="fc")(x)
    groups = channel_graph.dependency_groups(keras.Model(inputs, out))
    conv_groups = [g for g in groups if "conv" in {m.layer for m in
                                                   g.creators}]
    assert len(conv_groups) == 3
    for j, group in enumerate(conv_groups):
        rows = [m for m in group.members if m.layer == "fc"]
        # Flat index = position * 3 + channel, positions 0..3.
        assert rows == [channel_graph.Member("fc", "kernel", 0,
                                             (j, j + 3, j + 6, j + 9), "in")]


def test_depthwise_multiplier_ties_each_input_to_its_outputs():
    inputs = keras.Input((5, 5, 1))
    x = keras.layers.Conv2D(3, 1, name="pre")(inputs)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(x)
    out = keras.layers.Conv2D(2, 1, name="post")(x)
    groups = channel_graph.dependency_groups(keras.Model(inputs, out))
    group = next(g for g in groups if ("pre", "kernel", 3, (1,), "out") in
                 _members(g))
    assert _members(group) == sorted([
        ("pre", "kernel", 3, (1,), "out"), ("pre", "bias", 0, (1,), "channel"),
        ("dw", "kernel", 2, (1,), "channel"),
        ("dw", "bias", 0, (2, 3), "channel"),
        ("post", "kernel", 2, (2, 3), "in")])
    # Masking the group zeroes pre's output slice and the depthwise slice,
    # not post's input rows.
    model = keras.Model(inputs, out)
    masks = channel_graph.group_masks(model, [group])
    assert sorted(masks) == ["dw/kernel", "pre/kernel"]
    assert masks["dw/kernel"][:, :, 1].sum() == 0
    assert masks["dw/kernel"].sum() == 3 * 3 * 2 * 2
    assert masks["pre/kernel"][..., 1].sum() == 0


def test_squeeze_excitation_multiply_ties_the_gate_to_the_features():
    inputs = keras.Input((4, 4, 2))
    x = keras.layers.Conv2D(3, 1, name="expand")(inputs)
    s = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    s = keras.layers.Reshape((1, 1, 3), name="rs")(s)
    s = keras.layers.Conv2D(2, 1, name="se_r")(s)
    s = keras.layers.Conv2D(3, 1, activation="sigmoid", name="se_e")(s)
    x = keras.layers.Multiply(name="mul")([x, s])
    out = keras.layers.Conv2D(2, 1, name="proj")(x)
    groups = channel_graph.dependency_groups(keras.Model(inputs, out))
    tied = [g for g in groups
            if {m.layer for m in g.creators} == {"expand", "se_e"}]
    assert len(tied) == 3
    assert _members(tied[2]) == sorted([
        ("expand", "kernel", 3, (2,), "out"),
        ("expand", "bias", 0, (2,), "channel"),
        ("se_r", "kernel", 2, (2,), "in"),
        ("se_e", "kernel", 3, (2,), "out"),
        ("se_e", "bias", 0, (2,), "channel"),
        ("proj", "kernel", 2, (2,), "in")])


def test_a_layer_called_twice_ties_its_channels_across_calls():
    inputs = keras.Input((4, 4, 2))
    shared = keras.layers.Conv2D(2, 1, name="shared")
    a = keras.layers.Conv2D(2, 1, name="a")(inputs)
    b = keras.layers.Conv2D(2, 1, name="b")(inputs)
    out = keras.layers.Concatenate()([shared(a), shared(b)])
    out = keras.layers.Conv2D(1, 1, name="head")(out)
    groups = channel_graph.dependency_groups(keras.Model(inputs, out))
    # shared reads a's and b's channel j with one kernel row: tied.
    tied = [g for g in groups if {m.layer for m in g.creators} == {"a", "b"}]
    assert len(tied) == 2
    shared_out = [g for g in groups
                  if {m.layer for m in g.creators} == {"shared"}]
    # Its channel j appears at j and 2 + j of the concatenation.
    assert [m.indices for g in shared_out for m in g.members
            if m.layer == "head"] == [(0, 2), (1, 3)]


@pytest.mark.parametrize("make, layer, reason", [
    (lambda x: keras.layers.Lambda(lambda t: t * 2.0, name="lam")(x), "lam",
     "a Lambda layer runs arbitrary code"),
    (lambda x: keras.layers.Reshape((6, 6), name="mix")(x), "mix",
     "mixes the channels with other axes"),
    (lambda x: keras.layers.LayerNormalization(name="ln")(x), "ln",
     "normalises across channels"),
])
def test_a_layer_that_cannot_be_shrunk_blocks_its_groups(make, layer, reason):
    inputs = keras.Input((3, 3, 2))
    x = keras.layers.Conv2D(4, 1, name="conv")(inputs)
    x = make(x)
    out = keras.layers.Dense(2, name="fc")(keras.layers.Flatten()(x))
    groups = channel_graph.dependency_groups(keras.Model(inputs, out))
    conv = [g for g in groups if {m.layer for m in g.creators} == {"conv"}]
    assert len(conv) == 4
    for group in conv:
        assert f"'{layer}'" in group.blocked and reason in group.blocked


def test_a_broadcast_gate_blocks_its_own_channel_only():
    inputs = keras.Input((4, 4, 2))
    x = keras.layers.Conv2D(3, 1, name="feat")(inputs)
    gate = keras.layers.Conv2D(1, 1, name="gate")(inputs)
    out = keras.layers.Conv2D(2, 1, name="head")(
        keras.layers.Multiply()([x, gate]))
    groups = channel_graph.dependency_groups(keras.Model(inputs, out))
    by_creator = {tuple(sorted({m.layer for m in g.creators})): g
                  for g in groups if g.creators}
    assert "broadcasts it over 3 channels" in by_creator[("gate",)].blocked
    assert by_creator[("feat",)].blocked is None


def test_sequential_models_and_keras_ops_merges():
    model = keras.Sequential([keras.Input((4,)),
                              keras.layers.Dense(5, name="h"),
                              keras.layers.Dense(2, name="o")])
    groups = channel_graph.dependency_groups(model)
    assert [len([g for g in groups if {m.layer for m in g.creators} == {n}])
            for n in ("h", "o")] == [5, 2]
    inputs = keras.Input((3,))
    a = keras.layers.Dense(2, name="a")(inputs)
    b = keras.layers.Dense(2, name="b")(inputs)
    out = keras.layers.Dense(1, name="o")(keras.ops.add(a, b))
    groups = channel_graph.dependency_groups(keras.Model(inputs, out))
    assert sum({m.layer for m in g.creators} == {"a", "b"}
               for g in groups) == 2


def test_a_subclassed_model_is_a_clear_error():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.fc = keras.layers.Dense(2)

        def call(self, x):
            return self.fc(x)

    model = Net()
    model(np.zeros((1, 3), "float32"))
    with pytest.raises(channel_graph.ChannelGraphError,
                       match="subclassed Net.*functional and Sequential"):
        channel_graph.dependency_groups(model)


def test_group_masks_zero_every_creator_slice_of_the_chosen_groups():
    model = residual_concat_model()
    groups = channel_graph.dependency_groups(model)
    masks = channel_graph.group_masks(model, [groups[3]])   # channel 1 of a/b
    assert sorted(masks) == ["a/kernel", "b/kernel"]
    assert masks["a/kernel"][..., 1].sum() == 0
    assert masks["a/kernel"].sum() == 3 * 3 * 2 * 3
    assert masks["b/kernel"][..., 1].sum() == 0
    assert masks["b/kernel"].sum() == 4 * 3
    with pytest.raises(ValueError, match="Group 0 cannot be removed: it is a "
                       "channel of model input 'x'"):
        channel_graph.group_masks(model, [groups[0]])
    tfs.sparsify(model, masks=masks)
    assert np.all(keras.ops.convert_to_numpy(
        model.get_layer("a").kernel)[..., 1] == 0)


def test_families_and_norms_choose_whole_layers():
    model = residual_concat_model()
    groups = channel_graph.dependency_groups(model)
    families = channel_graph.families(groups)
    assert {k: len(v) for k, v in families.items()} == {("a", "b"): 4,
                                                        ("c",): 3}
    norms = channel_graph.group_norms(model, families[("c",)])
    kernel = keras.ops.convert_to_numpy(model.get_layer("c").kernel)
    np.testing.assert_allclose(norms, np.abs(kernel).sum(axis=(0, 1, 2)),
                               rtol=1e-6)
