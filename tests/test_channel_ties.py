"""Channel algorithms choose whole dependency groups (issue 14): on a
hand-built residual model with a depthwise layer, static (the engine's
start), SNIP (the engine's), GMP, SET and RigL prune every group all or
nothing, so `tfs.shrink` removes them and predicts as the masked model."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sparse as tfs
from tf_sparse import channel_graph
from tf_sparse import patterns
from tf_sparse.runs import model as model_lib


def residual_model(seed=0):
    """a (3x3, 8) -> relu -> b (1x1, 8); add(a, b) -> depthwise 3x3 ->
    e (1x1, 6) -> global pool -> out (4). Tied by hand: channel k of a, b
    (the Add) and of the depthwise kernel (in = out) is one group; e's
    channels are groups of their own; out's are the model output."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((9, 9, 3))
    a = keras.layers.Conv2D(8, 3, name="a")(inputs)
    r = keras.layers.ReLU()(a)
    b = keras.layers.Conv2D(8, 1, name="b")(r)
    s = keras.layers.Add()([a, b])
    d = keras.layers.DepthwiseConv2D(3, name="dw")(s)
    e = keras.layers.Conv2D(6, 1, activation="relu", name="e")(d)
    pooled = keras.layers.GlobalAveragePooling2D()(e)
    return keras.Model(inputs, keras.layers.Dense(4, name="out")(pooled))


def columns(model, layer, name="kernel"):
    """Kept output channels of a masked kernel (bools)."""
    mw = [w for w in tfs.masked_weights(model)
          if w.layer.name == layer and w.name == name][0]
    layout = patterns.layout_of("channel", mw.layer, mw.name, mw.shape)
    return keras.ops.convert_to_numpy(
        layout.groups(mw.mask.numpy())).max(axis=1) > 0


def check_groups_whole_and_shrink(model, x):
    a, b, dw = (columns(model, n) for n in ("a", "b", "dw"))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, dw)
    assert 0 < a.sum() < 8
    small = tfs.shrink(model, x)
    kept = int(a.sum())
    assert small.get_layer("a").kernel.shape[-1] == kept
    assert small.get_layer("b").kernel.shape[-2:] == (kept, kept)
    assert small.get_layer("dw").kernel.shape[-2] == kept
    assert small.get_layer("e").kernel.shape[-2] == kept
    np.testing.assert_allclose(small.predict(x, verbose=0),
                               model.predict(x, verbose=0), atol=1e-5)
    return small


def data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 9, 9, 3)).astype("float32"),
            rng.integers(0, 4, size=n).astype("int32"))


def test_ties_follow_the_dependency_groups_by_hand():
    model = residual_model()
    entries = []
    for name in ("a", "b", "dw", "e", "out"):
        layer = model.get_layer(name)
        kernel = "kernel"
        entries.append((name, kernel, patterns.layout_of(
            "channel", layer, kernel, tuple(getattr(layer, kernel).shape))))
    ties = channel_graph.ChannelTies.of(model, entries)
    a, b, dw, e, out = ties.ids
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, dw)
    assert len(set(a.tolist())) == 8
    # e's channels and out's are tied to nothing else.
    assert len(set(e.tolist()) | set(a.tolist())) == 14
    assert not set(out.tolist()) & (set(a.tolist()) | set(e.tolist()))
    assert sorted(map(sorted, ties.components())) == [[0, 1, 2], [3], [4]]
    # Tied sums by hand: a column's score is the total over a, b and dw.
    sums = [np.arange(8.0), 10 * np.arange(8.0), 100 * np.ones(8),
            np.ones(6), np.ones(4)]
    tied = ties.numpy_tie(sums)
    np.testing.assert_array_equal(tied[0], 11 * np.arange(8.0) + 100)
    np.testing.assert_array_equal(tied[1], tied[0])
    np.testing.assert_array_equal(tied[3], np.ones(6))
    assert ties.equal_counts([3, 4, 4, 2, 4]) == [4, 4, 4, 2, 4]


def test_a_chain_without_ties_has_no_ties():
    inputs = keras.Input((8,))
    h = keras.layers.Dense(8, name="h")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(4, name="o")(h))
    layout = patterns.layout_of("channel", model.get_layer("h"), "kernel",
                                (8, 8))
    assert channel_graph.ChannelTies.of(model, [("h", "kernel", layout)]) \
        is None


def sparsify_channels(model, sparsity):
    with warnings.catch_warnings(action="ignore"):
        return tfs.sparsify(model, sparsity, pattern="channel",
                            keep_dense=["out"])


@pytest.mark.parametrize("mask_init", ["random", "magnitude"])
def test_sparsify_starts_with_whole_groups_and_shrinks(mask_init):
    model = residual_model(4)
    with warnings.catch_warnings(action="ignore"):
        tfs.sparsify(model, 0.5, pattern="channel", keep_dense=["out"],
                     mask_init=mask_init, seed=4)
    check_groups_whole_and_shrink(model, data()[0])
    assert columns(model, "a").sum() == 4 and columns(model, "e").sum() == 3


def test_snip_masks_are_whole_groups_by_summed_sensitivity():
    from tf_sparse.algorithms import snip
    model = residual_model(5)
    x, y = data()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    masks = snip.snip_masks(model, (x, y), loss, 0.5, keep_dense=["out"],
                            pattern="channel")
    _, scores = snip.sensitivities(model, (x, y), loss)
    with warnings.catch_warnings(action="ignore"):
        tfs.sparsify(model, masks=masks, pattern="channel")
    check_groups_whole_and_shrink(model, x)
    # The kept groups are the 4 with the largest sensitivity summed over
    # a's, b's and the depthwise kernel's channel.
    by_name = {t.layer.name: s for t, s in zip(
        tf_sparse_targets(model), scores)}
    total = (by_name["a"].sum(axis=(0, 1, 2)) + by_name["b"].sum(axis=(0, 1, 2))
             + by_name["dw"].sum(axis=(0, 1, 3)))
    expected = np.zeros(8, bool)
    expected[np.argsort(-total, kind="stable")[:4]] = True
    np.testing.assert_array_equal(columns(model, "a"), expected)


def tf_sparse_targets(model):
    from tf_sparse import sparsification
    return sparsification.find_targets(model)


def test_engine_static_start_prunes_whole_groups_and_shrinks():
    from tf_sparse import runs
    config = runs.default_config("fashion_mnist")
    config.update(dict(sparsity=0.5, pattern="channel", keep_dense=("out",),
                       seed=3))
    model = residual_model()
    model = model_lib.sparsify(config, model, gradual=False)
    x, _ = data()
    check_groups_whole_and_shrink(model, x)
    # e keeps exactly half of its 6 channels (its own choice).
    assert columns(model, "e").sum() == 3


def test_engine_snip_start_prunes_whole_groups(tmp_path):
    from tf_sparse import runs
    from tf_sparse.runs import data as data_lib
    x, y = data(40)
    arrays = data_lib.ArrayData(x, y, x[:8], y[:8], batch_size=8,
                                num_classes=4)
    config = runs.default_config("fashion_mnist")
    config.update(dict(sparsity=0.5, pattern="channel", keep_dense=("out",),
                       algorithm="snip", epochs=1, steps_per_epoch=2,
                       eval_every_epochs=0, rescale_init=False))
    runs.run(config, str(tmp_path / "run"), data=arrays,
             model_fn=residual_model, verbose=0)
    # The network of the run, rebuilt with its masks from the checkpoint.
    model = residual_model()
    with warnings.catch_warnings(action="ignore"):
        tfs.sparsify(model, 0.0, pattern="channel", keep_dense=["out"])
    tf.train.Checkpoint(model=model).restore(tf.train.latest_checkpoint(
        str(tmp_path / "run" / "checkpoints"))).expect_partial()
    check_groups_whole_and_shrink(model, x)


def test_gmp_prunes_whole_groups_and_shrinks():
    model = sparsify_channels(residual_model(1), 0.0)
    model.compile(keras.optimizers.SGD(0.05),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    gmp = tfs.algorithms.GMP(0.5, begin=0, end=6, frequency=2, total_steps=8)
    x, y = data()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0,
              callbacks=[tfs.callbacks.MaskUpdate(gmp)])
    check_groups_whole_and_shrink(model, x)
    assert columns(model, "a").sum() == 4 and columns(model, "e").sum() == 3


def test_acdc_compresses_to_whole_groups_and_shrinks():
    model = sparsify_channels(residual_model(6), 0.0)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    acdc = tfs.algorithms.ACDC(0.5, warmup=2, phase_length=2, end_sparse=2,
                               total_steps=8, scope="layerwise")
    x, y = data()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0,
              callbacks=[tfs.callbacks.MaskUpdate(acdc)])
    check_groups_whole_and_shrink(model, x)


@pytest.mark.parametrize("name", ["SET", "RigL", "SparseMomentum"])
def test_prune_and_grow_keeps_groups_whole_and_shrinks(name):
    model = residual_model(2)
    with warnings.catch_warnings(action="ignore"):
        from tf_sparse import runs
        config = runs.default_config("fashion_mnist")
        config.update(dict(sparsity=0.5, pattern="channel",
                           keep_dense=("out",), seed=2))
        model = model_lib.sparsify(config, model, gradual=False)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    kwargs = {"SET": dict(every=2, drop_fraction=0.5),
              "RigL": dict(every=2, end=1.0, drop_fraction=0.5),
              "SparseMomentum": dict(every=2, prune_rate=0.5,
                                     growth="random")}[name]
    algorithm = getattr(tfs.algorithms, name)(total_steps=8, **kwargs)
    start = columns(model, "a")
    x, y = data()
    seen = []

    class Check(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            a, b, dw = (columns(model, n) for n in ("a", "b", "dw"))
            assert np.array_equal(a, b) and np.array_equal(a, dw)
            seen.append(a)

    model.fit(x, y, batch_size=4, epochs=1, verbose=0,
              callbacks=[tfs.callbacks.MaskUpdate(algorithm), Check()])
    assert algorithm.ties is not None
    assert any(not np.array_equal(s, start) for s in seen) or name == "RigL"
    check_groups_whole_and_shrink(model, x)
