"""`sparsify` fails cleanly (issue 17): a failed call leaves the model as it
was, a bad registration is named, and a distribution that empties layers
says so."""

import warnings

import keras
import numpy as np
import pytest

import tf_sparse as tfs
from tf_sparse import distributions


def weights_of(model):
    return [np.array(w) for w in model.get_weights()]


def constraints_of(model):
    return [getattr(v, "constraint", None) for v in model.trainable_variables]


# -- (4) a failed sparsify leaves the model exactly as it was ---------------

@pytest.mark.parametrize("bad,match", [
    (np.ones((3, 3)), "shape"),
    (np.full((32, 16), 0.5), "only 0 and 1"),
])
def test_bad_mask_for_second_layer_leaves_the_first_unmasked(mlp, bad, match):
    before = weights_of(mlp)
    constraints = constraints_of(mlp)
    first = np.zeros((8, 32), "float32")
    first[0, :3] = 1
    with pytest.raises(ValueError, match=match):
        tfs.sparsify(mlp, masks={"fc1/kernel": first, "fc2/kernel": bad})
    assert not tfs.is_sparse(mlp)
    for a, b in zip(before, weights_of(mlp)):
        np.testing.assert_array_equal(a, b)
    assert constraints_of(mlp) == constraints
    # A retry with good masks now works (it used to say "already sparse").
    tfs.sparsify(mlp, masks={"fc1/kernel": first})
    assert [mw.nonzeros() for mw in tfs.masked_weights(mlp)] == [3]


def test_failure_while_attaching_rolls_back_the_layers_done(mlp, monkeypatch):
    """Even an error after validation (here: raised by the third attach)
    detaches the masks already attached and restores their weights."""
    from tf_sparse import masking
    before = weights_of(mlp)
    real = masking.attach_masks
    calls = []

    def failing(layer, masks, patterns=None):
        calls.append(layer.name)
        if len(calls) == 3:
            raise RuntimeError("device lost")
        return real(layer, masks, patterns)

    monkeypatch.setattr(masking, "attach_masks", failing)
    with pytest.raises(RuntimeError, match="device lost"):
        tfs.sparsify(mlp, sparsity=0.9)
    assert calls == ["fc1", "fc2", "out"]
    assert not tfs.is_sparse(mlp)
    for a, b in zip(before, weights_of(mlp)):
        np.testing.assert_array_equal(a, b)
    assert all(not isinstance(v.constraint, masking.MaskConstraint)
               for v in mlp.trainable_variables)


def test_bad_masks_for_a_model_left_untouched_with_rescaling(mlp):
    before = weights_of(mlp)
    with pytest.raises(ValueError, match="shape"):
        tfs.sparsify(mlp, sparsity=0.5, rescale_weights=True,
                     masks={"out/kernel": np.ones((2, 2))})
    assert not tfs.is_sparse(mlp)
    for a, b in zip(before, weights_of(mlp)):
        np.testing.assert_array_equal(a, b)


# -- (11) register_prunable checks names; a missing attribute is named -------

class Projection(keras.layers.Layer):
    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], 4), name="w")

    def call(self, x):
        return x @ self.w


def _projection_model(cls):
    inputs = keras.Input((10,))
    return keras.Model(inputs, cls(name="proj")(inputs))


def fresh_class(name):
    """A new Projection subclass, so registrations do not leak between
    tests."""
    return type(name, (Projection,), {})


@pytest.mark.parametrize("names,match", [
    ("w", r"list of attribute names, not the string 'w'; write \['w'\]"),
    ([], "non-empty"),
    ([3], "strings.*3"),
    (["w", "w"], "'w' twice"),
    (["not a name"], "'not a name' of Fresh is not a Python identifier"),
    (["call"], "'call' is a method of Fresh"),
])
def test_register_prunable_refuses_bad_names_at_registration(names, match):
    cls = fresh_class("Fresh")
    with pytest.raises((TypeError, ValueError), match=match):
        tfs.register_prunable(cls, names)
    # Nothing was registered.
    with pytest.raises(ValueError, match="no prunable weights"):
        tfs.sparsify(_projection_model(cls), sparsity=0.5)


def test_missing_registered_attribute_is_named_at_sparsify():
    Missing = fresh_class("Missing")
    tfs.register_prunable(Missing, ["nonexistent"])
    model = _projection_model(Missing)
    with pytest.raises(ValueError) as info:
        tfs.sparsify(model, sparsity=0.5)
    text = str(info.value)
    assert "Missing" in text and "'nonexistent'" in text
    assert "register_prunable(Missing, ['nonexistent'])" in text
    assert "attributes holding variables: w" in text
    assert not tfs.is_sparse(model)


def test_registered_attribute_set_to_none_is_optional():
    class Optional(Projection):
        def build(self, input_shape):
            super().build(input_shape)
            self.extra = None

    tfs.register_prunable(Optional, ["w", "extra"])
    model = _projection_model(Optional)
    tfs.sparsify(model, sparsity=0.5)
    assert [mw.path for mw in tfs.masked_weights(model)] == ["proj/w"]


def test_registered_attribute_that_is_not_a_variable():
    class Scaled(Projection):
        def build(self, input_shape):
            super().build(input_shape)
            self.scale = 2.0

    tfs.register_prunable(Scaled, ["scale"])
    with pytest.raises(TypeError, match="'scale'.*float.*keras.Variable"):
        tfs.sparsify(_projection_model(Scaled), sparsity=0.5)


# -- (12) a distribution that empties layers says so -----------------------

def test_erk_that_empties_every_layer_is_an_error(mlp):
    # 816 weights at density 0.0001: the budget is floor(0.0816 + 0.5) = 0.
    with pytest.raises(ValueError) as info:
        tfs.sparsify(mlp, sparsity=0.9999, distribution="erk")
    text = str(info.value)
    assert "fc1/kernel, fc2/kernel, out/kernel" in text
    assert "0.9999" in text and "erk" in text
    best = distributions.max_sparsity_keeping_every_layer(
        [(8, 32), (32, 16), (16, 3)], "erk")
    assert f"sparsity <= {best}" in text
    assert not tfs.is_sparse(mlp)


def test_erk_that_empties_some_layers_warns_with_the_sparsity_that_keeps_all(
        mlp):
    # Budget floor(0.816 + 0.5) = 1 weight: one layer keeps it, the other
    # two get 0.
    with pytest.warns(tfs.sparsification.EmptyLayerWarning) as record:
        tfs.sparsify(mlp, sparsity=0.999, distribution="erk")
    counts = {mw.path: mw.nonzeros() for mw in tfs.masked_weights(mlp)}
    assert sum(counts.values()) == 1
    emptied = [p for p, n in counts.items() if n == 0]
    text = str(record[0].message)
    assert ", ".join(emptied) in text
    best = distributions.max_sparsity_keeping_every_layer(
        [(8, 32), (32, 16), (16, 3)], "erk")
    assert f"sparsity <= {best}" in text
    # The sparsity named keeps a weight in every layer.
    tfs.unsparsify(mlp)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tfs.sparsify(mlp, sparsity=best, distribution="erk")
    assert min(mw.nonzeros() for mw in tfs.masked_weights(mlp)) >= 1


def test_max_sparsity_keeping_every_layer_is_the_boundary():
    shapes = [(8, 32), (32, 16), (16, 3)]
    for name in distributions.DISTRIBUTIONS:
        best = distributions.max_sparsity_keeping_every_layer(shapes, name)
        assert min(distributions.layer_counts(shapes, 1 - best, name)) >= 1
        # 1e-4 more sparsity empties a layer (the value is the largest
        # on the 4-decimal grid).
        assert min(distributions.layer_counts(
            shapes, 1 - best - 1e-4, name)) == 0
    # By hand: two layers of 100 at uniform density d keep 1 weight each
    # once the budget floor(200 d + 0.5) reaches 2, i.e. d >= 0.0075. In
    # floats 1 - 0.9925 is just below 0.0075, so 0.9924 is the grid value.
    assert distributions.max_sparsity_keeping_every_layer(
        [(10, 10), (10, 10)], "uniform") == 0.9924


def test_per_layer_mapping_that_empties_a_layer_warns(mlp):
    # out: 48 weights at 0.99 -> floor(0.48 + 0.5) = 0.
    with pytest.warns(tfs.sparsification.EmptyLayerWarning,
                      match=r"out/kernel.*sparsity\['out'\] <= 0\.9895"):
        tfs.sparsify(mlp, sparsity={"fc1": 0.5, "out": 0.99})
