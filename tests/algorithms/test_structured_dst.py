"""Prune-and-grow with structured patterns (issue 14): SET, RigL and sparse
momentum drop and grow whole blocks / channels, and N:M groups keep exactly
N after every update; worked examples by hand and a hypothesis sweep over
shapes with a check after every update of a real fit."""

import warnings

import hypothesis
from hypothesis import strategies as st
import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sparse as tfs
from tf_sparse import patterns
from tf_sparse.algorithms import prune_grow
from tf_sparse.algorithms import redistribution

from dst_testlib import run_update


class GrowByGiven(prune_grow.PruneGrow):
    """Drops the lowest |w|, grows the highest of fixed scores (per layer,
    kernel-shaped arrays), so a test can work the update out by hand."""
    name = "grow_by_given"

    def __init__(self, scores, **options):
        self.scores = [np.asarray(s, np.float32) for s in scores]
        super().__init__(cadence=tfs.schedules.UpdateSchedule(
            every=1, total_steps=10), jit_selection=False, **options)

    def grow_score(self, ctx, i):
        return tf.reshape(tf.constant(self.scores[i]), [-1])


def dense_model(shapes, kernels, masks, pattern):
    inputs = keras.Input((shapes[0][0],))
    x = inputs
    for i, (_, units) in enumerate(shapes):
        x = keras.layers.Dense(units, use_bias=False, name=f"l{i}")(x)
    model = keras.Model(inputs, x)
    for i, k in enumerate(kernels):
        model.get_layer(f"l{i}").kernel.assign(np.asarray(k, np.float32))
    tfs.sparsify(model, masks={f"l{i}/kernel": np.asarray(m, np.float32)
                               for i, m in enumerate(masks)},
                 pattern=pattern)
    model.compile(keras.optimizers.SGD(0.1), "mse")
    return model


def mask(model, i=0):
    return model.get_layer(f"l{i}").tf_sparse_masks.masks["kernel"].numpy()


# -- worked by hand -----------------------------------------------------------

def test_n_m_drops_the_weakest_in_the_layer_and_each_group_regrows_its_loss():
    # One output unit, 8 inputs: groups (rows 0-3) and (rows 4-7), 2:4.
    w = np.array([[0.1], [0.2], [0], [0], [5.0], [0], [6.0], [0]])
    m = np.array([[1], [1], [0], [0], [1], [0], [1], [0]])
    score = np.array([[0], [0], [3], [1], [0], [9], [0], [8]])
    model = dense_model([(8, 1)], [w], [m], "2:4")
    alg = GrowByGiven([score], drop_fraction=0.5, regrow_dropped="never")
    run_update(model, alg, 1)
    # 2 of 4 active dropped: 0.1 and 0.2, both in group 0; group 0 regrows
    # 2 of its candidates (rows 2, 3); group 1 is untouched although rows
    # 5 and 7 score higher.
    np.testing.assert_array_equal(mask(model).ravel(), [0, 0, 1, 1, 1, 0, 1, 0])


def test_n_m_keep_mode_can_regrow_a_dropped_weight_in_its_group():
    w = np.array([[0.1], [0.2], [0], [0], [5.0], [0], [6.0], [0]])
    m = np.array([[1], [1], [0], [0], [1], [0], [1], [0]])
    score = np.array([[7], [0], [3], [1], [0], [9], [0], [8]])
    model = dense_model([(8, 1)], [w], [m], "2:4")
    alg = GrowByGiven([score], drop_fraction=0.5, regrow_dropped="keep")
    run_update(model, alg, 1)
    np.testing.assert_array_equal(mask(model).ravel(), [1, 0, 1, 0, 1, 0, 1, 0])
    # The regrown weight kept its value ("keep": it never left).
    assert model.get_layer("l0").kernel.numpy()[0, 0] == np.float32(0.1)


def test_n_m_never_mode_drops_at_most_the_free_entries_of_a_group():
    # 1:4 with one group of 4 per column, 2 columns; drop rate 1.0 would
    # drop both active weights; each group has 3 free entries, so both can
    # go. With 3:4 a group has 1 free entry: only its weakest is eligible.
    w = np.array([[0.1, 4.0], [0.2, 5.0], [0.3, 6.0], [0, 0]])
    m = np.array([[1, 1], [1, 1], [1, 1], [0, 0]])
    score = np.array([[0, 0], [0, 0], [0, 0], [1, 1]])
    model = dense_model([(4, 2)], [w], [m], "3:4")
    alg = GrowByGiven([score], drop_fraction=0.4, regrow_dropped="never")
    run_update(model, alg, 1)
    # ceil(0.4 * 6) = 3 requested; eligible: the weakest of each group
    # (0.1 and 4.0) -> 2 dropped, each group regrows its row 3.
    np.testing.assert_array_equal(mask(model), [[0, 0], [1, 1], [1, 1], [1, 1]])


def test_blocks_are_dropped_and_grown_whole_by_summed_scores():
    # 4x4 kernel, block:2x2 -> 4 blocks (TL, TR, BL, BR); TL and BR active.
    w = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 3, 3], [0, 0, 3, -3.]])
    m = (w != 0).astype(np.float32)
    score = np.zeros((4, 4))
    score[0:2, 2:4] = [[1, 1], [1, 1]]       # TR sums to 4
    score[2:4, 0:2] = [[5, 0], [0, 0]]       # BL sums to 5
    model = dense_model([(4, 4)], [w], [m], "block:2x2")
    alg = GrowByGiven([score], drop_fraction=0.5, regrow_dropped="never")
    run_update(model, alg, 1)
    # 1 of 2 active blocks dropped: TL (|w| sum 4 < 12); BL grown (5 > 4).
    np.testing.assert_array_equal(
        mask(model), [[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]])
    assert alg.summary_values()["dropped"] == 4


def test_channels_are_dropped_and_grown_whole():
    w = np.array([[1, 0, 2, 0], [1, 0, 2, 0], [1, 0, 2, 0.]])
    m = (w != 0).astype(np.float32)
    score = np.array([[0, 1, 0, 9], [0, 1, 0, 0], [0, 1, 0, 0.]])
    model = dense_model([(3, 4)], [w], [m], "channel")
    alg = GrowByGiven([score], drop_fraction=0.5, regrow_dropped="never")
    run_update(model, alg, 1)
    # Unit 0 (|w| sum 3) goes, unit 3 (score sum 9 > 3) comes.
    np.testing.assert_array_equal(mask(model), [[0, 0, 1, 1]] * 3)


def test_can_move_only_between_layers_counted_alike():
    def layout(spec, shape):
        return patterns.parse(spec).layout(shape, tfs.registry.KernelAxes(
            (0,), (1,), 0))
    assert redistribution.can_move(None)
    assert redistribution.can_move([layout("block:2x2", (4, 8)),
                                    layout("block:2x2", (8, 4))])
    assert not redistribution.can_move([layout("2:4", (4, 8))])
    assert not redistribution.can_move([layout("channel", (4, 8)),
                                        layout("channel", (8, 4))])
    assert redistribution.can_move([layout("channel", (4, 8)),
                                    layout("channel", (4, 2))])


def test_attach_refuses_masks_that_break_their_pattern():
    model = dense_model([(4, 2)], [np.ones((4, 2))], [np.ones((4, 2))],
                        "2:4")
    holder = model.get_layer("l0").tf_sparse_masks
    holder.masks["kernel"].assign(np.array([[1, 1], [1, 0], [0, 0], [0, 0]],
                                           np.float32))
    alg = GrowByGiven([np.zeros((4, 2))], drop_fraction=0.5)
    with pytest.raises(ValueError, match=r"the mask of l0/kernel does not "
                       r"follow its pattern '2:4': its groups of 4 hold 1, 2"):
        alg.attach(model)


# -- every update of a real fit ---------------------------------------------

class CheckPatternEveryUpdate(keras.callbacks.Callback):
    """After every batch with a mask update: the masks follow the pattern
    (N:M: exactly the starting count in every group; others: whole
    groups), counts are exact (per layer where nothing moves, in total
    always), pruned weights are 0. Counts the updates that changed masks."""

    def __init__(self, algorithm, spec, moves):
        super().__init__()
        self.algorithm, self.spec, self.moves = algorithm, spec, moves
        self.updates = self.changed = self.seen = 0

    def check(self):
        counts = []
        for mw in tfs.masked_weights(self.model):
            m = mw.mask.numpy()
            layout = patterns.layout_of(self.spec, mw.layer, mw.name, mw.shape)
            assert layout.misfit(m) is None, (mw.path, layout.misfit(m))
            grouped = keras.ops.convert_to_numpy(layout.groups(m))
            ones = grouped.sum(axis=1)
            if layout.keep is not None:
                assert np.all(ones == layout.keep), mw.path
            else:
                assert set(ones.tolist()) <= {0, layout.group_size}
            assert np.all(mw.variable.numpy()[m == 0] == 0.0)
            counts.append(m.copy())
        return counts

    def on_train_begin(self, logs=None):
        self.start = self.previous = self.check()

    def on_train_batch_end(self, batch, logs=None):
        n = int(self.algorithm.state.num_updates.numpy())
        if n == self.seen:
            return
        self.seen = n
        self.updates += 1
        now = self.check()
        if not self.moves:
            for old, new in zip(self.start, now):
                assert old.sum() == new.sum()
        assert sum(m.sum() for m in now) == sum(m.sum() for m in self.start)
        if any(np.any(a != b) for a, b in zip(self.previous, now)):
            self.changed += 1
        self.previous = now


def build(widths, conv, seed):
    keras.utils.set_random_seed(seed)
    if conv:
        inputs = keras.Input((6, 6, widths[0]))
        x = keras.layers.Conv2D(widths[1], 3, name="c1")(inputs)
        x = keras.layers.Conv2D(widths[2], 3, name="c2")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
    else:
        inputs = keras.Input((widths[0],))
        x = keras.layers.Dense(widths[1], activation="relu", name="d1")(inputs)
        x = keras.layers.Dense(widths[2], activation="relu", name="d2")(x)
    model = keras.Model(inputs, keras.layers.Dense(4, name="out")(x))
    return model, inputs.shape[1:]


ALGORITHMS = {
    "set": lambda: tfs.algorithms.SET(total_steps=8, every=2,
                                      drop_fraction=0.5),
    "rigl": lambda: tfs.algorithms.RigL(total_steps=8, every=2, end=1.0,
                                        drop_fraction=0.5),
    "sparse_momentum": lambda: tfs.algorithms.SparseMomentum(
        total_steps=8, every=2, prune_rate=0.5),
    "sparse_momentum_never": lambda: tfs.algorithms.SparseMomentum(
        total_steps=8, every=2, prune_rate=0.5, regrow_dropped="never"),
}


@hypothesis.settings(max_examples=12, deadline=None, derandomize=True,
                     suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(
    widths=st.tuples(st.sampled_from([4, 8, 12]), st.sampled_from([8, 16]),
                     st.sampled_from([8, 12, 16])),
    conv=st.booleans(),
    spec=st.sampled_from(["2:4", "1:4", "block:2x2", "block:4x1",
                          "channel"]),
    name=st.sampled_from(sorted(ALGORITHMS)),
    seed=st.integers(0, 3))
def test_every_update_of_every_algorithm_follows_the_pattern(
        widths, conv, spec, name, seed):
    model, shape = build(widths, conv, seed)
    fixed = patterns.parse(spec).fixed_sparsity
    with _quiet():
        tfs.sparsify(model, sparsity=fixed if fixed is not None else 0.5,
                     pattern=spec, seed=seed)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "mse")
    algorithm = ALGORITHMS[name]()
    weights = tfs.masked_weights(model)
    layouts = [patterns.layout_of(spec, mw.layer, mw.name, mw.shape)
               for mw in weights]
    moves = name.startswith("sparse_momentum") and redistribution.can_move(
        layouts)
    check = CheckPatternEveryUpdate(algorithm, spec, moves)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(32,) + tuple(shape)).astype("float32")
    y = rng.normal(size=(32, 4)).astype("float32")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0,
              callbacks=[tfs.callbacks.MaskUpdate(algorithm), check])
    assert check.updates >= 3
    assert check.changed >= 1


def _quiet():
    """Layers a pattern does not fit are left dense with a warning."""
    return warnings.catch_warnings(action="ignore")


def test_sparse_momentum_moves_whole_blocks_between_layers():
    keras.utils.set_random_seed(1)
    model, shape = build((8, 16, 16), False, 1)
    with _quiet():
        tfs.sparsify(model, sparsity=0.5, pattern="block:4x4", seed=1)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "mse")
    algorithm = tfs.algorithms.SparseMomentum(total_steps=8, every=2,
                                              prune_rate=0.5)
    check = CheckPatternEveryUpdate(algorithm, "block:4x4", moves=True)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 8)).astype("float32")
    y = rng.normal(size=(32, 4)).astype("float32") * 5
    model.fit(x, y, batch_size=4, epochs=1, verbose=0,
              callbacks=[tfs.callbacks.MaskUpdate(algorithm), check])
    history = algorithm.update_history()
    assert len(history) == 3
    moved = [u for u in history
             if any(layer["dropped"] != layer["grown"]
                    for layer in u["layers"].values())]
    assert moved, history
    for update in history:
        for layer in update["layers"].values():
            assert layer["dropped"] % 16 == 0 and layer["grown"] % 16 == 0


def test_sparse_momentum_n_m_layers_keep_their_counts():
    model, shape = build((8, 16, 16), False, 2)
    with _quiet():
        tfs.sparsify(model, pattern="2:4", seed=2)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "mse")
    algorithm = tfs.algorithms.SparseMomentum(total_steps=8, every=2,
                                              prune_rate=0.5)
    check = CheckPatternEveryUpdate(algorithm, "2:4", moves=False)
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(32, 8)).astype("float32"),
              rng.normal(size=(32, 4)).astype("float32"), batch_size=4,
              epochs=1, verbose=0,
              callbacks=[tfs.callbacks.MaskUpdate(algorithm), check])
    assert check.updates == 3 and check.changed >= 1
