"""Exact per-layer counts for every distribution, and the rounding rule."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tf_sparse import distributions

SHAPES = st.lists(
    st.one_of(
        st.tuples(st.integers(1, 300), st.integers(1, 300)),
        st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 64),
                  st.integers(1, 64))),
    min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(shapes=SHAPES, density=st.floats(0.001, 1.0),
       distribution=st.sampled_from(distributions.DISTRIBUTIONS))
def test_counts_sum_to_budget_and_stay_within_layers(shapes, density,
                                                     distribution):
    counts = distributions.layer_counts(shapes, density, distribution)
    sizes = [int(np.prod(s)) for s in shapes]
    assert sum(counts) == math.floor(density * sum(sizes) + 0.5)
    assert all(0 <= c <= n for c, n in zip(counts, sizes))


@settings(max_examples=100, deadline=None)
@given(shapes=SHAPES, density=st.floats(0.01, 0.99))
def test_uniform_gives_each_layer_floor_or_ceil_of_its_share(shapes, density):
    counts = distributions.layer_counts(shapes, density, "uniform")
    for c, s in zip(counts, shapes):
        target = density * int(np.prod(s))
        assert math.floor(target) <= c <= math.ceil(target)


def test_lenet300_uniform_at_five_percent():
    shapes = [(784, 300), (300, 100), (100, 10)]
    assert distributions.layer_counts(shapes, 0.05) == [11760, 1500, 50]


def test_largest_remainder_hands_leftovers_to_largest_fractions():
    # Targets 2.6, 1.3, 1.1 -> floors 2,1,1 (4); budget 5 -> the 0.6 one.
    assert distributions.largest_remainder([2.6, 1.3, 1.1], [10, 10, 10],
                                           5) == [3, 1, 1]
    # Ties go to the earlier layer.
    assert distributions.largest_remainder([1.5, 1.5], [5, 5], 3) == [2, 1]


def test_erk_densities_follow_sum_over_product():
    shapes = [(3, 3, 16, 32), (3, 3, 32, 32), (512, 10)]
    dens = distributions.layer_densities(shapes, 0.2, "erk")
    raw = [sum(s) / np.prod(s) for s in shapes]
    # Same scale factor for every non-dense layer.
    ratios = [d / r for d, r in zip(dens, raw) if d < 1.0]
    assert np.allclose(ratios, ratios[0])
    sizes = [np.prod(s) for s in shapes]
    assert np.isclose(np.dot(dens, sizes), 0.2 * sum(sizes))


def test_er_uses_the_last_two_dimensions_only():
    dens = distributions.layer_densities([(3, 3, 8, 8), (5, 5, 8, 8)], 0.5,
                                         "er")
    # Same channel counts -> same density, whatever the kernel size.
    assert dens[0] == pytest.approx(dens[1])


def test_capacity_check_makes_overfull_layers_dense_and_resolves():
    # A tiny first layer would get density > 1 under ERK at 50%.
    shapes = [(3, 3, 3, 16), (3, 3, 16, 16), (64, 10)]
    dens = distributions.layer_densities(shapes, 0.5, "erk")
    assert max(dens) == 1.0
    assert all(d <= 1.0 for d in dens)
    sizes = [np.prod(s) for s in shapes]
    assert np.isclose(np.dot(dens, sizes), 0.5 * sum(sizes))
    counts = distributions.layer_counts(shapes, 0.5, "erk")
    full = [i for i, d in enumerate(dens) if d == 1.0]
    for i in full:
        assert counts[i] == sizes[i]


@pytest.mark.parametrize("density", [0.0, -0.1, 1.5])
def test_density_outside_range_is_refused(density):
    with pytest.raises(ValueError, match="density"):
        distributions.layer_densities([(4, 4)], density)


def test_unknown_distribution_is_named():
    with pytest.raises(ValueError, match="'gaussian'.*uniform, er, erk"):
        distributions.layer_counts([(4, 4)], 0.5, "gaussian")
