"""tfs.shrink: removes masked-out channel groups, predictions unchanged."""

import os
import warnings

import keras
import numpy as np
import pytest

import tf_sparse as tfs
from tf_sparse import channel_graph
from tf_sparse import export
from tf_sparse import shrinking

from test_shrink_groups import residual_concat_model


def _x(shape, seed=0, batch=4):
    return np.random.default_rng(seed).normal(
        size=(batch,) + tuple(shape)).astype("float32")


def _randomize(model, seed=1):
    """Nonzero biases and BatchNormalization statistics, so that masked
    channels carry constants."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for name in ("bias", "beta", "moving_mean"):
            variable = getattr(layer, name, None)
            if variable is not None:
                variable.assign(rng.normal(size=variable.shape) * 0.5)
        for name in ("gamma", "moving_variance"):
            variable = getattr(layer, name, None)
            if variable is not None:
                variable.assign(rng.uniform(0.5, 1.5, size=variable.shape))


def _predict(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def _group(groups, creators, channel):
    return next(g for g in groups
                if {m.layer for m in g.creators} == set(creators)
                and g.creators[0].indices == (channel,))


def _numpy(variable):
    return keras.ops.convert_to_numpy(variable).astype(np.float64)


def test_residual_concat_model_loses_the_chosen_channels():
    model = residual_concat_model()
    groups = channel_graph.dependency_groups(model)
    chosen = [_group(groups, "ab", 1), _group(groups, "ab", 3),
              _group(groups, "c", 0)]
    tfs.sparsify(model, masks=channel_graph.group_masks(model, chosen))
    x = _x((6, 6, 2))
    small = tfs.shrink(model, x)
    assert small.get_layer("a").filters == 2
    assert small.get_layer("b").filters == 2
    assert small.get_layer("c").filters == 2
    assert small.get_layer("d").filters == 2
    # By hand: a 3*3*2*2+2, bn 4*2, b 2*2+2, c 2*2+2, d 4*2+2 (was 137).
    assert model.count_params() == 137
    assert small.count_params() == 38 + 8 + 6 + 6 + 10 == 68
    np.testing.assert_allclose(_predict(small, x), _predict(model, x),
                               rtol=1e-5, atol=1e-6)
    assert not tfs.is_sparse(small)
    kept = [0, 2]
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(small.get_layer("b").kernel),
        keras.ops.convert_to_numpy(model.get_layer("b").kernel)[
            :, :, kept][..., kept])


def test_constants_of_pruned_channels_move_into_the_readers_biases():
    model = residual_concat_model()
    _randomize(model)
    groups = channel_graph.dependency_groups(model)
    chosen = [_group(groups, "ab", 1), _group(groups, "c", 0)]
    tfs.sparsify(model, masks=channel_graph.group_masks(model, chosen))
    x = _x((6, 6, 2))
    shrink_plan = shrinking.plan(model)
    assert shrink_plan.kept == ()
    assert shrink_plan.channels == {"a": (4, 3), "b": (4, 3), "c": (3, 2)}
    small = tfs.shrink(model, x)
    np.testing.assert_allclose(_predict(small, x), _predict(model, x),
                               rtol=1e-5, atol=1e-5)
    # By hand: channel 1 of a outputs bias_a[1]; after BN and ReLU that is
    # r; b reads r with its row 1; the add outputs r + bias_b[1]; d reads
    # that (row 1) and c's channel 0, bias_c[0] (row 4 of the concat).
    bn = model.get_layer("bn")
    bias_a = _numpy(model.get_layer("a").bias)
    r = max(0.0, (bias_a[1] - _numpy(bn.moving_mean)[1])
            / np.sqrt(_numpy(bn.moving_variance)[1] + bn.epsilon)
            * _numpy(bn.gamma)[1] + _numpy(bn.beta)[1])
    b = model.get_layer("b")
    d = model.get_layer("d")
    s = r + _numpy(b.bias)[1]
    shift_b = r * _numpy(b.kernel)[0, 0, 1]
    shift_d = (s * _numpy(d.kernel)[0, 0, 1]
               + _numpy(model.get_layer("c").bias)[0]
               * _numpy(d.kernel)[0, 0, 4])
    # The plan sums in float32, the hand values in float64: a shift that is
    # a difference of larger terms (the kernels come from the global seed,
    # so it depends on the tests run before) differs by a few float32 ulps
    # of those terms, not of the result.
    close = dict(rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(shrink_plan.bias_shifts["b"], shift_b, **close)
    np.testing.assert_allclose(shrink_plan.bias_shifts["d"], shift_d, **close)
    np.testing.assert_allclose(
        _numpy(small.get_layer("b").bias),
        (_numpy(b.bias) + shift_b)[[0, 2, 3]], **close)
    np.testing.assert_allclose(_numpy(small.get_layer("d").bias),
                               _numpy(d.bias) + shift_d, **close)


def test_a_reader_without_bias_gets_one_for_the_constant():
    inputs = keras.Input((4,))
    h = keras.layers.Dense(3, name="h")(inputs)
    out = keras.layers.Dense(2, use_bias=False, name="o")(h)
    model = keras.Model(inputs, out)
    model.get_layer("h").bias.assign([0.5, -1.0, 2.0])
    mask = np.ones((4, 3), np.float32)
    mask[:, 2] = 0
    tfs.sparsify(model, masks={"h/kernel": mask})
    x = _x((4,))
    small = tfs.shrink(model, x)
    assert small.get_layer("o").use_bias
    kernel = _numpy(model.get_layer("o").kernel)
    np.testing.assert_allclose(_numpy(small.get_layer("o").bias),
                               2.0 * kernel[2], rtol=1e-6)
    # 4*2+2 (h) + 2*2+2 (o, bias added) instead of 4*3+3 + 3*2.
    assert small.count_params() == 16
    np.testing.assert_allclose(_predict(small, x), _predict(model, x),
                               rtol=1e-5, atol=1e-6)


def _same_padded_reader(bias):
    inputs = keras.Input((5, 5, 2))
    p = keras.layers.Conv2D(3, 1, name="p")(inputs)
    out = keras.layers.Conv2D(2, 3, padding="same", name="q")(p)
    model = keras.Model(inputs, out)
    model.get_layer("p").bias.assign([bias, 0.0, 0.0])
    mask = np.ones((1, 1, 2, 3), np.float32)
    mask[..., 0] = 0
    tfs.sparsify(model, masks={"p/kernel": mask})
    return model


def test_a_constant_into_a_same_padded_conv_is_an_error_or_kept():
    model = _same_padded_reader(0.5)
    with pytest.raises(shrinking.ShrinkError,
                       match=r"(?s)channel 0 of 'p': it carries the constant 0.5 "
                       r".* into 'q' \(Conv2D, kernel \(3, 3\), padding "
                       r"'same'\), which cannot absorb a constant exactly at "
                       r"the borders.*strict=False"):
        tfs.shrink(model)
    x = _x((5, 5, 2))
    with pytest.warns(UserWarning, match="(?s)1 pruned channel groups .*They "
                      "are kept"):
        small = tfs.shrink(model, x, strict=False)
    assert small.get_layer("p").filters == 3
    np.testing.assert_allclose(_predict(small, x), _predict(model, x),
                               rtol=1e-6, atol=1e-6)
    # With a zero bias the channel carries 0 and goes.
    assert tfs.shrink(_same_padded_reader(0.0), x).get_layer(
        "p").filters == 2


def _padded_reader(bias):
    inputs = keras.Input((5, 5, 2))
    p = keras.layers.Conv2D(3, 1, name="p")(inputs)
    p = keras.layers.ZeroPadding2D(1, name="pad")(p)
    out = keras.layers.Conv2D(2, 3, name="q")(p)
    model = keras.Model(inputs, out)
    model.get_layer("p").bias.assign([bias, 0.0, 0.0])
    mask = np.ones((1, 1, 2, 3), np.float32)
    mask[..., 0] = 0
    tfs.sparsify(model, masks={"p/kernel": mask})
    return model


def test_zero_padding_turns_a_constant_into_a_pattern():
    with pytest.raises(shrinking.ShrinkError,
                       match="channel 0 of 'p': the values it passes to 'q' "
                       "change with the input or the position"):
        tfs.shrink(_padded_reader(0.25))
    x = _x((5, 5, 2))
    small = tfs.shrink(_padded_reader(0.0), x)
    assert small.get_layer("p").filters == 2


def _two_branch_add(mask_b):
    inputs = keras.Input((4, 4, 2))
    a = keras.layers.Conv2D(3, 1, name="a")(inputs)
    b = keras.layers.Conv2D(3, 1, name="b")(inputs)
    s = keras.layers.Add(name="add")([a, b])
    out = keras.layers.Conv2D(1, 1, name="head")(s)
    model = keras.Model(inputs, out)
    mask = np.ones((1, 1, 2, 3), np.float32)
    mask[..., 0] = 0
    masks = {"a/kernel": mask}
    if mask_b:
        masks["b/kernel"] = mask
    tfs.sparsify(model, masks=masks)
    return model


def test_a_pruned_channel_tied_to_a_live_one_is_named():
    with pytest.raises(shrinking.ShrinkError,
                       match="channel 0 of 'a': its group also holds output "
                       "channel 0 of 'b', which is not masked out"):
        tfs.shrink(_two_branch_add(mask_b=False))
    small = tfs.shrink(_two_branch_add(mask_b=True))
    assert [small.get_layer(n).filters for n in ("a", "b")] == [2, 2]


@pytest.mark.parametrize("make, message", [
    (lambda x: keras.layers.Lambda(lambda t: t * 2.0, name="lam")(x),
     r"'lam' \(Lambda\), which cannot be shrunk: a Lambda layer runs "
     "arbitrary code"),
    (lambda x: keras.layers.Reshape((6, 8), name="mix")(x),
     r"'mix' \(Reshape\), which cannot be shrunk: it reshapes \(4, 4, 3\) "
     r"to \(6, 8\), which mixes the channels"),
])
def test_a_pruned_channel_reaching_a_layer_that_cannot_shrink(make, message):
    inputs = keras.Input((4, 4, 2))
    x = make(keras.layers.Conv2D(3, 1, name="conv")(inputs))
    out = keras.layers.Dense(2)(keras.layers.Flatten()(x))
    model = keras.Model(inputs, out)
    mask = np.ones((1, 1, 2, 3), np.float32)
    mask[..., 1] = 0
    tfs.sparsify(model, masks={"conv/kernel": mask})
    with pytest.raises(shrinking.ShrinkError,
                       match="channel 1 of 'conv': it cannot be removed: it "
                       "passes through " + message):
        tfs.shrink(model)


def test_pruned_output_units_stay():
    inputs = keras.Input((4,))
    out = keras.layers.Dense(3, name="o")(keras.layers.Dense(5)(inputs))
    model = keras.Model(inputs, out)
    mask = np.ones((5, 3), np.float32)
    mask[:, 1] = 0
    tfs.sparsify(model, masks={"o/kernel": mask})
    with pytest.raises(shrinking.ShrinkError,
                       match=r"channel 1 of 'o': it cannot be removed: it "
                       r"is model output 0 \('o'\)"):
        tfs.shrink(model)


def test_a_model_without_channel_masks_is_a_clear_error(mlp):
    with pytest.raises(shrinking.ShrinkError,
                       match="Model 'mlp' has no masks, so no channel is "
                       "pruned"):
        tfs.shrink(mlp)
    mask = np.ones((8, 32), np.float32)
    mask[::2, ::2] = 0                  # every column keeps some weights
    tfs.sparsify(mlp, masks={"fc1/kernel": mask})
    with pytest.raises(shrinking.ShrinkError,
                       match="has masks but no channel masks"):
        tfs.shrink(mlp)


def test_a_subclassed_model_is_refused():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.fc = keras.layers.Dense(2)

        def call(self, x):
            return self.fc(x)

    model = Net()
    model(np.zeros((1, 3), "float32"))
    tfs.sparsify(model, sparsity=0.5)
    with pytest.raises(shrinking.ShrinkError, match="subclassed Net"):
        tfs.shrink(model)


def test_sequential_models_shrink_to_sequential_models():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)),
                              keras.layers.Dense(8, activation="relu",
                                                 name="h1"),
                              keras.layers.Dense(5, activation="relu",
                                                 name="h2"),
                              keras.layers.Dense(2, name="o")])
    groups = channel_graph.dependency_groups(model)
    chosen = [_group(groups, ["h1"], j) for j in (0, 3, 7)] + [
        _group(groups, ["h2"], 4)]
    tfs.sparsify(model, masks=channel_graph.group_masks(model, chosen))
    x = _x((6,))
    small = tfs.shrink(model, x)
    assert isinstance(small, keras.Sequential)
    assert small.count_params() == (6 * 5 + 5) + (5 * 4 + 4) + (4 * 2 + 2)
    np.testing.assert_allclose(_predict(small, x), _predict(model, x),
                               rtol=1e-5, atol=1e-6)


def zoo_model():
    """Separable (multiplier 2), transposed and depthwise convolutions, a
    shared layer, squeeze-and-excitation, padding, Flatten -> Dense."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, use_bias=False, name="stem")(inputs)
    x = keras.layers.BatchNormalization(name="bn0")(x)
    x = keras.layers.Activation("swish", name="act0")(x)
    e = keras.layers.Conv2D(12, 1, name="expand")(x)
    e = keras.layers.ZeroPadding2D(1, name="pad")(e)
    e = keras.layers.DepthwiseConv2D(3, name="dw")(e)
    s = keras.layers.GlobalAveragePooling2D(name="gap")(e)
    s = keras.layers.Reshape((1, 1, 12), name="rs")(s)
    s = keras.layers.Conv2D(4, 1, activation="swish", name="se_r")(s)
    s = keras.layers.Conv2D(12, 1, activation="sigmoid", name="se_e")(s)
    e = keras.layers.Multiply(name="mul")([e, s])
    p = keras.layers.Conv2D(8, 1, use_bias=False, name="proj")(e)
    p = keras.layers.BatchNormalization(name="bn1")(p)
    x = keras.layers.Add(name="add")([x, p])
    shared = keras.layers.Conv2D(8, 1, name="shared")
    x = shared(shared(x))
    x = keras.layers.SeparableConv2D(6, 3, depth_multiplier=2, name="sep")(x)
    x = keras.layers.Conv2DTranspose(5, 2, strides=2, name="up")(x)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dense(7, activation="relu", name="fc")(x)
    out = keras.layers.Dense(3, name="out")(x)
    return keras.Model(inputs, out, name="zoo")


def expected_params(model, removed):
    """Parameters left when the members of `removed` groups are cut out of
    every weight, worked out from the groups alone."""
    cut = {}
    for group in removed:
        for m in group.members:
            cut.setdefault((m.layer, m.weight, m.axis), set()).update(
                m.indices)
    total = 0
    for layer in model.layers:
        names = {id(getattr(layer, n)): n for n in shrinking.WEIGHT_NAMES
                 if isinstance(getattr(layer, n, None), keras.Variable)}
        for variable in layer.weights:
            shape = list(variable.shape)
            name = names.get(id(variable))
            for axis in range(len(shape)):
                shape[axis] -= len(cut.get((layer.name, name, axis), ()))
            total += int(np.prod(shape))
    return total


def _half_of_each_family(model, groups):
    chosen = []
    for family in channel_graph.families(groups).values():
        norms = channel_graph.group_norms(model, family)
        order = np.argsort(norms, kind="stable")
        chosen += [family[i] for i in order[:len(family) // 2]]
    return chosen


def test_every_supported_layer_kind_shrinks_exactly():
    keras.utils.set_random_seed(0)
    model = zoo_model()
    groups = channel_graph.dependency_groups(model)
    chosen = _half_of_each_family(model, groups)
    tfs.sparsify(model, masks=channel_graph.group_masks(model, chosen))
    x = _x((8, 8, 3))
    small = tfs.shrink(model, x)
    assert small.count_params() == expected_params(model, chosen)
    assert small.count_params() < model.count_params() / 2
    assert {n: small.get_layer(n).filters for n in
            ("stem", "expand", "se_r", "se_e", "proj", "shared", "sep",
             "up")} == {"stem": 4, "expand": 6, "se_r": 2, "se_e": 6,
                        "proj": 4, "shared": 4, "sep": 3, "up": 3}
    assert small.get_layer("rs").target_shape == (1, 1, 6)
    assert small.get_layer("fc").units == 4
    np.testing.assert_allclose(_predict(small, x), _predict(model, x),
                               rtol=1e-5, atol=1e-6)


def test_nonzero_constants_everywhere_stay_exact():
    keras.utils.set_random_seed(0)
    model = zoo_model()
    _randomize(model)
    groups = channel_graph.dependency_groups(model)
    tfs.sparsify(model, masks=channel_graph.group_masks(
        model, _half_of_each_family(model, groups)))
    x = _x((8, 8, 3))
    shrink_plan = shrinking.plan(model)
    # The shared layer cannot take one bias per call for the constants of
    # the residual channels it reads, and a stride-2 transposed convolution
    # puts each kernel tap at other positions; everything else goes.
    kept = {shrinking.describe(k.group): k.reason for k in shrink_plan.kept}
    assert sorted(kept) == [
        "channel 2 of 'sep'", "channel 2 of 'stem'", "channel 3 of 'sep'",
        "channel 4 of 'sep'", "channel 4 of 'stem'", "channel 6 of 'stem'",
        "channel 7 of 'stem'"]
    for where, reason in kept.items():
        if "stem" in where:
            assert reason.endswith("into 'shared', which is called 2 times, "
                                   "so one bias cannot absorb it")
        else:
            assert "into 'up' (Conv2DTranspose, kernel (2, 2), padding " \
                "'valid'), which spreads a constant unevenly" in reason
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        small = tfs.shrink(model, x, strict=False)
    assert small.count_params() < model.count_params()
    np.testing.assert_allclose(_predict(small, x), _predict(model, x),
                               rtol=1e-4, atol=1e-5)


def test_plan_format_lists_layers_and_kept_groups():
    model = _same_padded_reader(0.5)
    text = shrinking.plan(model).format()
    assert text.splitlines()[0] == ("shrink: removes 0 of 7 channel groups; "
                                    "1 pruned groups kept")
    assert "kept channel 0 of 'p'" in text


def test_the_shrunk_model_saves_and_exports(tmp_path):
    keras.utils.set_random_seed(0)
    model = zoo_model()
    groups = channel_graph.dependency_groups(model)
    tfs.sparsify(model, masks=channel_graph.group_masks(
        model, _half_of_each_family(model, groups)))
    x = _x((8, 8, 3), batch=8)
    small = tfs.shrink(model, x)
    results = export.export_all(small, str(tmp_path), x,
                                formats=("keras", "saved_model",
                                         "tflite_dense"))
    assert sorted(results) == ["keras", "saved_model", "tflite_dense"]
    loaded = keras.models.load_model(os.path.join(tmp_path, "model.keras"))
    assert loaded.count_params() == small.count_params()
    np.testing.assert_allclose(_predict(loaded, x), _predict(model, x),
                               rtol=1e-5, atol=1e-6)
    for result in results.values():
        assert result.max_abs_diff <= result.atol + result.rtol * np.abs(
            _predict(small, x)).max()
