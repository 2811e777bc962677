"""Pruning arithmetic and thresholds on hand-made tensors (pure NumPy)."""

import re

import numpy as np
import pytest

from tf_sparse.lottery import config as config_lib
from tf_sparse.lottery import pruning

LENET = {"fc1/kernel": 784 * 300, "fc2/kernel": 300 * 100,
         "fc3/kernel": 100 * 10}


def test_prune_count_is_exact_ceil_of_the_fraction():
    assert pruning.prune_count(5, 0.2) == 1        # 0.2 * 5 is 1.0000000000000002
    assert pruning.prune_count(10, 0.3) == 3       # 0.3 * 10 is 3.0000000000000004
    assert pruning.prune_count(101, 0.2) == 21
    assert pruning.prune_count(1, 0.2) == 1
    assert pruning.prune_count(0, 0.2) == 0
    assert pruning.prune_count(100, 0) == 0


def test_remaining_weights_follow_point_eight_to_the_level_with_floor_rounding():
    pools = pruning.make_pools(list(LENET), 0.2, exclude=["fc3"])
    plan = pruning.plan_levels(LENET, pools, 15)
    start = 784 * 300 + 300 * 100
    remaining = start
    for level in range(16):
        assert plan[level][0] == remaining
        # floor rounding: never above 0.8^L, and below it by less than 5
        # (the sum of 0.8^i), whatever L.
        assert remaining <= 0.8 ** level * start + 1e-6
        assert remaining > 0.8 ** level * start - 5
        remaining = remaining * 4 // 5
    assert plan[15][0] == 9329
    density = (plan[15][0] + 1000) / sum(LENET.values())
    assert density == pytest.approx(0.038802, abs=1e-6)
    assert pruning.levels_for_density(LENET, pools, 0.03881) == 15
    assert pruning.levels_for_density(LENET, pools, 0.0388) == 16


def test_layerwise_plan_with_the_output_layer_at_half_rate():
    pools = pruning.make_pools(list(LENET), 0.2, strategy="layerwise",
                               layer_rates="fc3:0.1")
    assert [p.paths for p in pools] == [("fc1/kernel",), ("fc2/kernel",),
                                        ("fc3/kernel",)]
    assert [p.rate for p in pools] == [0.2, 0.2, 0.1]
    plan = pruning.plan_levels(LENET, pools, 2)
    assert plan[1] == {0: 188160, 1: 24000, 2: 900}
    assert plan[2] == {0: 150528, 1: 19200, 2: 810}


def hand_made():
    weights = {"a/kernel": np.array([[0.1, -0.2], [0.3, -0.4], [0.5, 0.05]],
                                    np.float32),
               "b/kernel": np.array([1.0, -2.0, 3.0, -4.0], np.float32)}
    masks = {p: np.ones_like(w) for p, w in weights.items()}
    return weights, masks


def test_global_threshold_is_one_magnitude_across_layers():
    weights, masks = hand_made()
    pools = pruning.make_pools(list(weights), 0.4)        # 4 of 10 go
    new = pruning.prune(weights, masks, pools)
    # The 4 smallest |w| of all 10 are 0.05, 0.1, 0.2, 0.3, all in layer a;
    # layer b keeps everything (layer-wise pruning would take 2 of b's).
    np.testing.assert_array_equal(new["a/kernel"], [[0, 0], [0, 1], [1, 0]])
    np.testing.assert_array_equal(new["b/kernel"], [1, 1, 1, 1])


def test_layerwise_threshold_is_per_layer():
    weights, masks = hand_made()
    pools = pruning.make_pools(list(weights), 0.4, strategy="layerwise")
    new = pruning.prune(weights, masks, pools)
    # a: ceil(0.4 * 6) = 3 smallest |w|: 0.05, 0.1, 0.2. b: ceil(1.6) = 2.
    np.testing.assert_array_equal(new["a/kernel"], [[0, 0], [1, 1], [1, 0]])
    np.testing.assert_array_equal(new["b/kernel"], [0, 0, 1, 1])


def test_pruning_counts_only_remaining_weights_and_never_revives():
    weights, masks = hand_made()
    masks["b/kernel"] = np.array([1, 1, 0, 0], np.float32)  # 3 and -4 pruned
    pools = pruning.make_pools(["b/kernel"], 0.5)
    new = pruning.prune(weights, masks, pools)
    np.testing.assert_array_equal(new["b/kernel"], [0, 1, 0, 0])


def test_ties_go_to_the_earlier_layer_then_the_lower_index():
    weights = {"x/kernel": np.array([1.0, 1.0, 2.0], np.float32),
               "y/kernel": np.array([1.0, 2.0], np.float32)}
    masks = {p: np.ones_like(w) for p, w in weights.items()}
    new = pruning.prune(weights, masks, pruning.make_pools(list(weights), 0.4))
    np.testing.assert_array_equal(new["x/kernel"], [0, 0, 1])
    np.testing.assert_array_equal(new["y/kernel"], [1, 1])


def test_excluded_and_own_rate_layers():
    weights, masks = hand_made()
    pools = pruning.make_pools(list(weights), 0.5, exclude=["b"])
    new = pruning.prune(weights, masks, pools)
    assert new["b/kernel"].sum() == 4 and new["a/kernel"].sum() == 3
    pools = pruning.make_pools(list(weights), 0.5, layer_rates={"b": 0.25})
    new = pruning.prune(weights, masks, pools)
    np.testing.assert_array_equal(new["b/kernel"], [0, 1, 1, 1])
    assert new["a/kernel"].sum() == 3


@pytest.mark.parametrize("bad", [0, 0.0, 1, 1.0, -0.2, 1.5, float("nan"),
                                 True, "0.2"])
def test_prune_fraction_outside_zero_one_is_refused_by_value(bad):
    with pytest.raises(pruning.PruningError, match=re.escape(repr(bad))):
        pruning.make_pools(["a/kernel"], bad)


def test_unknown_layer_names_and_bad_rates_are_refused():
    with pytest.raises(pruning.PruningError, match="'fc9'"):
        pruning.make_pools(list(LENET), 0.2, exclude=["fc9"])
    with pytest.raises(pruning.PruningError, match="1.5"):
        pruning.make_pools(list(LENET), 0.2, layer_rates="fc3:1.5")
    with pytest.raises(pruning.PruningError, match="no weight to prune"):
        pruning.make_pools(list(LENET), 0.2, exclude=["fc*"])


def test_levels_that_would_prune_everything_are_refused_before_training():
    sizes = {"a/kernel": 6, "b/kernel": 100}
    pools = pruning.make_pools(list(sizes), 0.5, strategy="layerwise")
    pruning.plan_levels(sizes, pools, 2)                  # 6 -> 3 -> 1
    with pytest.raises(pruning.PruningError,
                       match=r"levels=3 would prune everything: at level 3 "
                             r"no weight of a/kernel"):
        pruning.plan_levels(sizes, pools, 3)


def test_global_pruning_that_empties_a_layer_is_refused():
    weights = {"a/kernel": np.array([0.01, 0.02], np.float32),
               "b/kernel": np.arange(1, 9, dtype=np.float32)}
    masks = {p: np.ones_like(w) for p, w in weights.items()}
    with pytest.raises(pruning.PruningError, match="every remaining weight "
                                                   "of a/kernel"):
        pruning.prune(weights, masks, pruning.make_pools(list(weights), 0.2))


def test_random_masks_keep_every_layers_count_exactly():
    rng = np.random.default_rng(0)
    imp = {"a/kernel": (rng.random((30, 20)) < 0.13).astype(np.float32),
           "b/kernel": (rng.random((7, 5, 3)) < 0.5).astype(np.float32),
           "c/kernel": np.ones((10,), np.float32)}
    rand = pruning.random_masks_like(imp, seed=3, salt=1)
    for p in imp:
        assert rand[p].shape == imp[p].shape
        assert rand[p].sum() == imp[p].sum()
        assert set(np.unique(rand[p])) <= {0.0, 1.0}
    assert not np.array_equal(rand["a/kernel"], imp["a/kernel"])
    again = pruning.random_masks_like(imp, seed=3, salt=1)
    assert all(np.array_equal(rand[p], again[p]) for p in imp)


def test_rewind_points_in_steps_epochs_and_fractions():
    resolve = config_lib.resolve_point
    assert resolve(500, 10000, 100, "rewind") == 500
    assert resolve("500", 10000, 100, "rewind") == 500
    assert resolve("500it", 10000, 100, "rewind") == 500
    assert resolve("2ep", 10000, 100, "rewind") == 200
    assert resolve("0.5ep", 10000, 75, "rewind") == 38          # 37.5 half up
    assert resolve("0.05", 10000, 100, "rewind") == 500
    assert resolve(0.145, 100, 10, "rewind") == 15             # exact decimal
    for bad in ("abc", "1.5it", -3, "2.5"):
        with pytest.raises(config_lib.ConfigError, match=re.escape(repr(bad))):
            resolve(bad, 10000, 100, "rewind")


def test_rewind_beyond_training_names_the_value():
    config = config_lib.default_config()
    config.epochs = 2
    config.rewind = "3ep"
    with pytest.raises(config_lib.ConfigError,
                       match=r"rewind='3ep' resolves to step 300, which is "
                             r"beyond training: a run of 2 epochs has 200"):
        config_lib.resolve(config, steps_per_epoch=100)
    config.rewind = "200"
    with pytest.raises(config_lib.ConfigError, match="step 200"):
        config_lib.resolve(config, steps_per_epoch=100)
    config.rewind = "199"
    assert config_lib.resolve(config, 100).rewind == 199

