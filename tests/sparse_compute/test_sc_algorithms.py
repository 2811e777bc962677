"""SET, RigL and sparse momentum on layers that compute sparse: exact
counts after every update (per layer where the algorithm keeps them per
layer), weights and slots moved with the structure, and the same decisions
as the masked algorithm where they are defined the same way (magnitude
drop; gradient growth on the same batch)."""

import keras
import numpy as np
import pytest

import tf_sparse as tfs
from tf_sparse.algorithms import sparse_form

STEPS = 16          # 4 epochs of 4 batches
SPARSITY = 0.8


def mlp(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((12,))
    x = keras.layers.Dense(24, activation="relu", name="fc1")(inputs)
    x = keras.layers.Dense(16, activation="relu", name="fc2")(x)
    outputs = keras.layers.Dense(3, name="out")(x)
    return keras.Model(inputs, outputs, name="mlp")


def einsum_mlp(seed=0):
    """The MLP with EinsumDense layers: an attention-style projection
    ("abc,cde->abde", bias "de") and a plain "ab,bc->ac" output."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((12,))
    x = keras.layers.Reshape((2, 6), name="tokens")(inputs)
    x = keras.layers.EinsumDense("abc,cde->abde", output_shape=(2, 2, 6),
                                 bias_axes="de", activation="relu",
                                 name="fc1")(x)                 # 6x2x6
    x = keras.layers.Flatten(name="flat")(x)                   # 24
    x = keras.layers.Dense(16, activation="relu", name="fc2")(x)
    outputs = keras.layers.EinsumDense("ab,bc->ac", output_shape=3,
                                       bias_axes="c", name="out")(x)
    return keras.Model(inputs, outputs, name="einsum_mlp")


MODELS = {"mlp": mlp, "einsum": einsum_mlp}


def data(n=48):
    rng = np.random.default_rng(2)
    return (rng.normal(size=(n, 12)).astype("float32"),
            rng.integers(0, 3, size=(n,)).astype("int32"))


def make(compute, room=1.0, name="mlp"):
    model = MODELS[name]()
    tfs.sparsify(model, SPARSITY, seed=4)
    if compute == "sparse":
        tfs.sparse_compute.to_sparse_compute(model, room=room)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True))
    return model


def masks(model):
    """{layer: 0/1 mask of its kernel} for either form."""
    holders = tfs.sparse_compute.sparse_kernels(model)
    if holders:
        return {path: h.mask() for path, h in holders}
    return {mw.layer_path: mw.mask.numpy() for mw in
            tfs.masking.masked_weights(model)}


def counts(model):
    return {path: int(m.sum()) for path, m in masks(model).items()}


class Record(keras.callbacks.Callback):
    """The masks after every batch."""

    def __init__(self):
        super().__init__()
        self.masks = []

    def on_train_batch_end(self, batch, logs=None):
        self.masks.append(masks(self.model))


def train(model, algorithm, epochs=4):
    x, y = data()
    record = Record()
    history = model.fit(x, y, batch_size=12, epochs=epochs, shuffle=False,
                        verbose=0, callbacks=[
                            tfs.callbacks.MaskUpdate(algorithm), record])
    return history.history["loss"], record.masks


ALGORITHMS = {
    "set": lambda: tfs.algorithms.SET(total_steps=STEPS, every=4,
                                      drop_fraction=0.3,
                                      regrow_dropped="never", seed=1),
    "rigl": lambda: tfs.algorithms.RigL(total_steps=STEPS, every=4,
                                        end=1.0, drop_fraction=0.3),
    "sparse_momentum": lambda: tfs.algorithms.SparseMomentum(
        total_steps=STEPS, every=4, prune_rate=0.3, growth="gradient",
        grown_slots="zero", skip_gradient_step=True),
    # (The masked form's default grown_slots="keep" gives a grown weight the
    # momentum its pruned position gathered; the sparse form has none there
    # and always starts grown weights with fresh slots. And the sparse form
    # recomputes the gradient after the step; skipping the step on update
    # iterations, as RigL does, makes it the gradient the masked form
    # captures.)
}


def _changed(history):
    return sum(int(np.any(a[k] != b[k])) for a, b in zip(history,
                                                         history[1:])
               for k in a)


@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize("name", ["set", "rigl"])
def test_per_layer_counts_stay_exact_through_every_update(name, model_name):
    model = make("sparse", name=model_name)
    start = counts(model)
    # 20% of 288 (12x24) or 72 (6x2x6), 384 (24x16) and 48 (16x3), as
    # tfs.sparsify rounds them.
    assert start == {"fc1": {"mlp": 57, "einsum": 14}[model_name],
                     "fc2": 77, "out": 10}
    assert [h.kind for _, h in tfs.sparse_compute.sparse_kernels(model)] \
        == {"mlp": ["dense"] * 3,
            "einsum": ["einsum", "dense", "einsum"]}[model_name]
    _, history = train(model, ALGORITHMS[name]())
    assert all(counts_of == start for counts_of in (
        {k: int(m.sum()) for k, m in h.items()} for h in history))
    assert _changed(history) >= 3       # the structure did move
    step, dropped, grown = tfs.training.attached_algorithm(
        model).last_update()
    # SET skips the last step; RigL's cosine drop fraction is 0 at its end.
    assert (step, dropped == grown, dropped > 0) == {
        "set": (12, True, True), "rigl": (16, True, False)}[name]
    # Dense weights and slots of the values stay one entry per weight.
    for _, holder in tfs.sparse_compute.sparse_kernels(model):
        assert holder.capacity == holder.nonzeros()


def test_set_drops_the_same_weights_as_the_masked_set():
    """Drop by magnitude: with regrow_dropped="never" the weights kept
    through the first update are the same in both forms (growth draws
    other random positions)."""
    masked, sparse = make("masked"), make("sparse")
    _, hm = train(masked, ALGORITHMS["set"](), epochs=1)
    _, hs = train(sparse, ALGORITHMS["set"](), epochs=1)
    before_m, before_s = hm[2], hs[2]          # step 3, before the update
    after_m, after_s = hm[3], hs[3]            # step 4, after it
    for k in before_m:
        np.testing.assert_array_equal(before_s[k], before_m[k])
        kept_m = before_m[k] * after_m[k]
        kept_s = before_s[k] * after_s[k]
        np.testing.assert_array_equal(kept_s, kept_m)
        assert int(after_s[k].sum()) == int(after_m[k].sum())
        assert np.any(after_s[k] != before_s[k])


@pytest.mark.parametrize("name,model_name", [
    ("rigl", "mlp"), ("sparse_momentum", "mlp"), ("rigl", "einsum")])
def test_gradient_growth_equals_the_masked_algorithm(name, model_name):
    """RigL (and sparse momentum growing by the gradient) on the same
    weights and batch make the same drop and grow decisions as on the
    masked model: equal masks after every update and equal losses (also
    for EinsumDense layers, whose dense gradient is formed on the plan's
    [K, N] matrix and the masks compared in the kernel's shape)."""
    # room=5: every layer can grow as far as the masked one does.
    masked = make("masked", name=model_name)
    sparse = make("sparse", room=5.0, name=model_name)
    losses_m, hm = train(masked, ALGORITHMS[name]())
    losses_s, hs = train(sparse, ALGORITHMS[name]())
    assert len(hm) == len(hs) == STEPS
    for m, s in zip(hm, hs):
        for k in m:
            np.testing.assert_array_equal(s[k], m[k])
    assert _changed(hm) >= 3
    np.testing.assert_allclose(losses_s, losses_m, rtol=1e-5)


def test_sparse_momentum_moves_weights_between_layers_within_capacity():
    model = make("sparse", room=2.0)
    start = counts(model)
    _, history = train(model, ALGORITHMS["sparse_momentum"]())
    total = sum(start.values())
    assert all(sum(int(m.sum()) for m in h.values()) == total
               for h in history)
    capacity = {path: h.capacity for path, h in
                tfs.sparse_compute.sparse_kernels(model)}
    assert all(int(m.sum()) <= capacity[k] for h in history
               for k, m in h.items())
    assert any({k: int(m.sum()) for k, m in h.items()} != start
               for h in history)                  # redistributed
    # The output layer (10 of 48 weights, capacity 20) would grow past its
    # capacity (the masked model's reaches 23): it stops at 20, the rest
    # goes to the other layers.
    assert max(int(h["out"].sum()) for h in history) == capacity["out"] == 20


def test_algorithms_without_a_sparse_form_are_refused():
    model = make("sparse")
    with pytest.raises(ValueError, match="growth='momentum'.*cannot run on "
                       "layers that compute sparse"):
        tfs.training.attach(model, tfs.algorithms.SparseMomentum(
            total_steps=STEPS, every=4))
    with pytest.raises(ValueError, match="only grow_init='zeros'"):
        tfs.training.attach(model, tfs.algorithms.SET(
            total_steps=STEPS, every=4, grow_init="random_normal"))
    gmp = tfs.algorithms.GMP(0.9, total_steps=STEPS, frequency=4)
    with pytest.raises(ValueError, match="GMP changes masks of dense layers "
                       "and has no sparse-form update"):
        tfs.training.attach(model, gmp)


def test_gradient_growth_in_chunks_of_a_few_units_equals_one_chunk():
    """RigL's dense gradient formed a few output units at a time (48
    entries: 4, 2 and 3 units of fc1, fc2, out; each chunk keeps its best
    candidates) grows exactly the weights one whole-layer chunk grows."""
    histories = []
    for chunk in (48, sparse_form.CHUNK_ENTRIES):
        model = make("sparse")
        update = sparse_form.SparseFormUpdate(ALGORITHMS["rigl"](),
                                              chunk_entries=chunk)
        _, history = train(model, update, epochs=1)   # update at step 4
        histories.append(history)
    assert _changed(histories[0]) >= 1
    for a, b in zip(*histories):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
