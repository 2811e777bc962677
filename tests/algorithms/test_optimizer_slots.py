"""Every Keras optimizer with masks: slot resets to each optimizer's own
initial values (`optimizer_state.SLOT_INITIAL_VALUES`), Ftrl/Adagrad after a
reset, Adafactor's NaN on sparse models (`tf_sparse.optimizers.Adafactor`),
EMA weights at the end of `fit`, and a grid of every optimizer x {Static,
SET, RigL, sparse momentum} on a tiny MLP: masked weights exactly zero,
exact counts, finite weights."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sparse as tfs
from tf_sparse import optimizers as tfs_optimizers
from tf_sparse.algorithms import optimizer_state as S

import dst_testlib as lib

K = keras.optimizers

# name -> factory; every Keras 3 optimizer of this version (those it lacks
# are left out), a LossScaleOptimizer and tf_sparse's own. Adafactor is
# tf_sparse's (Keras's is refused with sparse models, see below).
_FACTORIES = {
    "sgd": lambda: K.SGD(0.05, momentum=0.9),
    "adam": lambda: K.Adam(1e-2),
    "adamw": lambda: K.AdamW(1e-2),
    "adamax": lambda: K.Adamax(1e-2),
    "nadam": lambda: K.Nadam(1e-2),
    "rmsprop": lambda: K.RMSprop(1e-2),
    "adagrad": lambda: K.Adagrad(0.05),
    "adadelta": lambda: K.Adadelta(1.0),
    "ftrl": lambda: K.Ftrl(0.1),
    "lion": lambda: K.Lion(1e-3),
    "lamb": lambda: K.Lamb(1e-2),
    "adafactor": lambda: tfs_optimizers.Adafactor(1e-2),
    "muon": lambda: K.Muon(0.02),
    "schedule_free_adamw": lambda: K.ScheduleFreeAdamW(1e-2),
    "loss_scale_adam": lambda: K.LossScaleOptimizer(K.Adam(1e-2)),
    "torch_sgd": lambda: tfs_optimizers.TorchSGD(0.05, momentum=0.9,
                                                 weight_decay=1e-4),
    "coupled_adam": lambda: tfs_optimizers.CoupledAdam(1e-2,
                                                       weight_decay=1e-4),
}
_NEEDS = {"lamb": "Lamb", "muon": "Muon", "lion": "Lion",
          "schedule_free_adamw": "ScheduleFreeAdamW", "adafactor": "Adafactor"}
OPTIMIZERS = {name: make for name, make in _FACTORIES.items()
              if hasattr(K, _NEEDS.get(name, "SGD"))}

# Variants whose slots differ from the defaults.
SLOT_VARIANTS = {
    **OPTIMIZERS,
    "keras_adafactor": lambda: K.Adafactor(),
    "adam_amsgrad": lambda: K.Adam(amsgrad=True),
    "rmsprop_centered_momentum": lambda: K.RMSprop(momentum=0.5,
                                                   centered=True),
    "adagrad_initial_0.3": lambda: K.Adagrad(initial_accumulator_value=0.3),
    "ftrl_initial_0.7": lambda: K.Ftrl(initial_accumulator_value=0.7),
    "loss_scale_ftrl": lambda: K.LossScaleOptimizer(K.Ftrl()),
    "adam_ema_accumulation": lambda: K.Adam(use_ema=True,
                                            gradient_accumulation_steps=2),
}
if not hasattr(K, "Adafactor"):
    del SLOT_VARIANTS["keras_adafactor"]


def two_variables():
    rng = np.random.default_rng(0)
    kernel = keras.Variable(rng.normal(size=(4, 3)).astype("float32"),
                            name="kernel")
    bias = keras.Variable(rng.normal(size=(3,)).astype("float32"),
                          name="bias")
    return [kernel, bias]


def fresh(name):
    """A freshly built optimizer of `name` on two new variables."""
    optimizer = SLOT_VARIANTS[name]()
    variables = two_variables()
    optimizer.build(variables)
    return optimizer, variables


def slot_values(optimizer, variable):
    """{slot attribute: numpy value} of `variable`'s slots (None absent)."""
    owner = S.slot_owner(optimizer, variable)
    lists = S.per_weight_lists(owner)
    index = owner._get_variable_index(variable)
    return {name: (None if lists[name][index] is None
                   else lists[name][index].numpy().copy())
            for name in S.slot_table(owner)}


def expected_initial(initial, variable, slot_value):
    if isinstance(initial, S.Factored):
        initial = initial.initial
    if initial is S.WEIGHT:
        return variable.numpy()
    return np.full(np.shape(slot_value), initial, np.float32)


# ---------------------------------------------------------------------------
# The table against freshly built optimizers.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SLOT_VARIANTS))
def test_the_table_knows_every_slot_and_its_value_in_a_fresh_optimizer(name):
    optimizer, variables = fresh(name)
    owner = S.slot_owner(optimizer, variables[0])
    table = S.slot_table(owner)               # raises for unknown slots
    assert set(S.per_weight_lists(owner)) == set(table)
    for variable in variables:
        for slot, value in slot_values(optimizer, variable).items():
            initial = table[slot]
            if value is None or initial is S.KEEP:
                continue
            if slot == "_model_variables_moving_average":
                # Built at 0; the first update takes the weight (checked
                # below).
                continue
            np.testing.assert_array_equal(
                value, expected_initial(initial, variable, value),
                err_msg=f"{name}: {slot} of {variable.name}")


def test_the_ema_of_weights_starts_at_the_weight():
    variable = keras.Variable(np.array([1.0, -2.0], np.float32))
    optimizer = K.SGD(0.1, use_ema=True)
    optimizer.apply([keras.ops.convert_to_tensor([0.5, 0.5])], [variable])
    np.testing.assert_array_equal(
        optimizer._model_variables_moving_average[0].numpy(),
        variable.numpy())


def test_initial_values_read_the_optimizers_own_settings():
    assert S.initial_value(K.Ftrl(), "_accumulators") == 0.1
    assert S.initial_value(K.Ftrl(initial_accumulator_value=0.5),
                           "_accumulators") == 0.5
    assert S.initial_value(K.Ftrl(), "_linears") == 0.0
    assert S.initial_value(K.Adagrad(initial_accumulator_value=0.25),
                           "_accumulators") == 0.25
    assert S.initial_value(K.LossScaleOptimizer(K.Adagrad()),
                           "_accumulators") == 0.1
    assert S.initial_value(tfs_optimizers.TorchSGD(momentum=0.9),
                           "momentums") == 0.0
    assert S.initial_value(K.Adam(use_ema=True),
                           "_model_variables_moving_average") is S.WEIGHT
    with pytest.raises(ValueError, match="not declared"):
        S.initial_value(K.Adam(), "_nothing")


# ---------------------------------------------------------------------------
# Resets give back the fresh values, where asked and only there.
# ---------------------------------------------------------------------------


def perturb(optimizer, variables, steps=3):
    rng = np.random.default_rng(1)
    for _ in range(steps):
        grads = [keras.ops.convert_to_tensor(
            rng.normal(size=v.shape).astype("float32")) for v in variables]
        optimizer.apply(grads, variables)


@pytest.mark.parametrize("name", sorted(SLOT_VARIANTS))
@pytest.mark.parametrize("partial", [True, False])
def test_reset_slots_restores_each_optimizers_initial_values(name, partial):
    optimizer, variables = fresh(name)
    perturb(optimizer, variables)
    kernel = variables[0]
    before = slot_values(optimizer, kernel)
    table = S.slot_table(S.slot_owner(optimizer, kernel))
    where = np.zeros(kernel.shape, bool)
    where[1, :] = True
    where[0, 2] = True
    S.reset_slots(optimizer, kernel,
                  tf.constant(where.reshape(-1)) if partial else None)
    after = slot_values(optimizer, kernel)
    for slot, initial in table.items():
        old, new = before[slot], after[slot]
        if old is None or initial is S.KEEP:
            if old is not None:
                np.testing.assert_array_equal(new, old)
            continue
        if isinstance(initial, S.Factored):
            # Per-row/column statistics: kept for a partial reset.
            expect = old if partial else expected_initial(initial, kernel,
                                                          old)
            np.testing.assert_array_equal(new, expect, err_msg=slot)
            continue
        init = expected_initial(initial, kernel, old)
        if partial:
            np.testing.assert_array_equal(new[where], init[where],
                                          err_msg=slot)
            np.testing.assert_array_equal(new[~where], old[~where],
                                          err_msg=slot)
        else:
            np.testing.assert_array_equal(new, init, err_msg=slot)


def test_weight_slots_start_from_the_value_given():
    optimizer, variables = fresh("schedule_free_adamw")
    perturb(optimizer, variables)
    kernel = variables[0]
    new_value = np.arange(12, dtype=np.float32).reshape(4, 3)
    S.reset_slots(optimizer, kernel, value=lambda: new_value)
    z = optimizer._momentums[optimizer._get_variable_index(kernel)]
    np.testing.assert_array_equal(z.numpy(), new_value)
    assert np.all(optimizer._velocities[
        optimizer._get_variable_index(kernel)].numpy() == 0)


def test_ftrl_after_a_reset_stays_finite_where_the_gradient_is_zero():
    """Zeroing Ftrl's accumulator made its next step divide 0 by 0."""
    kernel = keras.Variable(np.ones((2, 2), np.float32))
    optimizer = K.Ftrl(0.1)
    optimizer.apply([keras.ops.ones((2, 2))], [kernel])
    S.reset_slots(optimizer, kernel, tf.constant([True, False, False, True]))
    np.testing.assert_allclose(optimizer._accumulators[0].numpy(),
                               [[0.1, 1.1], [1.1, 0.1]], rtol=1e-6)
    optimizer.apply([keras.ops.zeros((2, 2))], [kernel])
    assert np.all(np.isfinite(kernel.numpy()))


def test_adagrad_after_a_reset_takes_a_fresh_sized_step():
    """A zeroed accumulator gave a first step ~1/sqrt(epsilon) times the
    gradient (here ~300x the fresh optimizer's)."""
    g = keras.ops.full((3,), 0.01)
    w_fresh = keras.Variable(np.zeros(3, np.float32))
    K.Adagrad(0.1).apply([g], [w_fresh])
    w = keras.Variable(np.zeros(3, np.float32))
    optimizer = K.Adagrad(0.1)
    optimizer.apply([keras.ops.ones((3,))], [w])
    S.reset_slots(optimizer, w)
    w.assign(np.zeros(3, np.float32))
    optimizer.apply([g], [w])
    np.testing.assert_allclose(w.numpy(), w_fresh.numpy(), rtol=1e-6)


def test_slot_variables_lists_what_a_reset_sets():
    optimizer, variables = fresh("adam_ema_accumulation")
    kernel = variables[0]
    slots = S.slot_variables(optimizer, kernel)
    index = optimizer._get_variable_index(kernel)
    assert {id(s) for s in slots} == {
        id(optimizer._momentums[index]), id(optimizer._velocities[index]),
        id(optimizer._model_variables_moving_average[index])}
    assert S.slot_variables(K.SGD(momentum=0.9), kernel) == []   # unbuilt


# ---------------------------------------------------------------------------
# Optimizers the table does not know.
# ---------------------------------------------------------------------------


class TracesSGD(keras.optimizers.SGD):
    """SGD with an extra per-weight slot the table cannot know."""

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.traces = self.add_optimizer_variables(variables, "trace")


class PlainDescent(keras.optimizers.Optimizer):
    """No slots at all."""

    def update_step(self, gradient, variable, learning_rate):
        self.assign_sub(variable, gradient * learning_rate)


def test_unknown_slots_raise_and_can_be_declared():
    optimizer = TracesSGD(0.1, momentum=0.9)
    kernel = keras.Variable(np.ones((2, 2), np.float32))
    optimizer.build([kernel])
    with pytest.raises(ValueError, match="traces.*register_slots"):
        S.reset_slots(optimizer, kernel)
    with pytest.raises(ValueError, match="traces"):
        S.check_slots(optimizer, "SET")
    saved = dict(S.SLOT_INITIAL_VALUES)
    try:
        S.register_slots(TracesSGD, {"traces": 0.5})
        S.reset_slots(optimizer, kernel)
        np.testing.assert_array_equal(optimizer.traces[0].numpy(),
                                      np.full((2, 2), 0.5))
    finally:
        S.SLOT_INITIAL_VALUES.clear()
        S.SLOT_INITIAL_VALUES.update(saved)
    with pytest.raises(TypeError, match="initial value"):
        S.register_slots(TracesSGD, {"traces": "zeros"})


def test_an_optimizer_without_slots_needs_no_declaration():
    optimizer = PlainDescent(0.1)
    kernel = keras.Variable(np.ones((2, 2), np.float32))
    optimizer.build([kernel])
    S.reset_slots(optimizer, kernel)
    assert S.slot_variables(optimizer, kernel) == []


def test_set_with_undeclared_slots_fails_before_training():
    model = mlp()
    model.compile(TracesSGD(0.05, momentum=0.9), loss())
    with pytest.raises(ValueError, match="traces"):
        model.fit(*data(), batch_size=16, epochs=1, verbose=0,
                  callbacks=[tfs.callbacks.MaskUpdate(make_algorithm("set"))])


def test_multi_optimizer_resets_in_the_sub_optimizer_that_owns_the_weight():
    if not hasattr(K, "MultiOptimizer"):
        pytest.skip("no MultiOptimizer in this Keras")
    first = keras.Variable(np.ones((2, 2), np.float32), name="first")
    second = keras.Variable(np.ones((2, 2), np.float32), name="second")
    ftrl, adam = K.Ftrl(0.1), K.Adam(0.1)
    optimizer = K.MultiOptimizer(
        lambda v: ftrl if v.name == "first" else adam)
    optimizer.build([first, second])
    perturb(optimizer, [first, second])
    S.reset_slots(optimizer, first)
    S.reset_slots(optimizer, second)
    np.testing.assert_allclose(ftrl._accumulators[0].numpy(), 0.1)
    assert np.all(adam._momentums[0].numpy() == 0)
    with pytest.raises(ValueError, match="sub-optimizers"):
        S.GradientTap(optimizer, [])


# ---------------------------------------------------------------------------
# Adafactor.
# ---------------------------------------------------------------------------


def adafactor_reference(w, g, lr=1e-2, eps1=1e-30, eps2=1e-3, clip=1.0):
    """Keras's Adafactor first step in float64 (where nothing underflows)."""
    w, g = w.astype(np.float64), g.astype(np.float64)
    rho = min(lr, 1.0)             # relative_step, step 1
    alpha = max(eps2, np.sqrt(np.mean(w ** 2))) * rho
    sq = g ** 2 + eps1
    r, c = sq.mean(axis=-1), sq.mean(axis=-2)   # beta_2 at step 1 is 0
    v = (r / r.mean())[:, None] * c[None, :]
    u = g / np.sqrt(v)
    u = u / max(1.0, np.sqrt(np.mean(u ** 2)) / clip)
    return w - alpha * u


def test_adafactor_zero_row_meets_zero_column():
    """The exact cause: a zero-gradient row and column (dead units) make
    v = r/mean(r) * c ~ 1e-30 * 1e-30 underflow to 0 in float32; Keras then
    computes 0/0 and the clipping spreads the NaN over the kernel. Ours
    matches the float64 reference."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(5, 4)).astype("float32")
    g = rng.normal(size=(5, 4)).astype("float32")
    g[2, :] = 0.0
    g[:, 1] = 0.0
    keras_w = keras.Variable(w)
    K.Adafactor(1e-2).apply([keras.ops.convert_to_tensor(g)], [keras_w])
    # If this fails, Keras fixed its Adafactor: check_mask_safe can stop
    # refusing it.
    assert np.all(np.isnan(keras_w.numpy()))
    ours = keras.Variable(w)
    tfs_optimizers.Adafactor(1e-2).apply([keras.ops.convert_to_tensor(g)],
                                         [ours])
    np.testing.assert_allclose(ours.numpy(), adafactor_reference(w, g),
                               rtol=1e-5)


def test_adafactor_equals_keras_where_keras_is_finite():
    rng = np.random.default_rng(1)
    a = keras.Variable(rng.normal(size=(6, 5)).astype("float32"))
    b = keras.Variable(a.numpy())
    bias_a = keras.Variable(rng.normal(size=(5,)).astype("float32"))
    bias_b = keras.Variable(bias_a.numpy())
    theirs, ours = K.Adafactor(1e-2), tfs_optimizers.Adafactor(1e-2)
    for _ in range(4):
        g = [keras.ops.convert_to_tensor(
            rng.normal(size=s).astype("float32")) for s in ((6, 5), (5,))]
        theirs.apply(g, [a, bias_a])
        ours.apply(g, [b, bias_b])
    np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(bias_b.numpy(), bias_a.numpy())
    restored = tfs_optimizers.Adafactor.from_config(ours.get_config())
    assert isinstance(restored, tfs_optimizers.Adafactor)
    assert keras.optimizers.deserialize(
        keras.optimizers.serialize(ours)).__class__ is tfs_optimizers.Adafactor


def test_keras_adafactor_is_refused_with_a_sparse_model():
    model = mlp()
    model.compile(K.LossScaleOptimizer(K.Adafactor(1e-2)), loss())
    with pytest.raises(ValueError,
                       match="keras.optimizers.Adafactor.*NaN.*"
                             "tf_sparse.optimizers.Adafactor"):
        tfs.training.attach(model, tfs.algorithms.Static())


def test_keras_adafactor_is_refused_when_compiled_after_attaching():
    model = mlp()
    tfs.training.attach(model, tfs.algorithms.Static())
    model.compile(K.Adafactor(1e-2), loss())
    with pytest.raises(ValueError, match="tf_sparse.optimizers.Adafactor"):
        model.fit(*data(), batch_size=16, epochs=1, verbose=0)


def test_adafactor_trains_a_sparse_model_that_nans_keras():
    """The model of the grid: Keras's Adafactor (no algorithm attached, so
    nothing refuses it) ends with NaN weights; tf_sparse's trains."""
    x, y = data()
    results = {}
    for name, optimizer in (("keras", K.Adafactor(1e-2)),
                            ("tf_sparse", tfs_optimizers.Adafactor(1e-2))):
        model = mlp()
        model.compile(optimizer, loss())
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        results[name] = all(np.all(np.isfinite(v.numpy()))
                            for v in model.trainable_variables)
    assert results == {"keras": False, "tf_sparse": True}


# ---------------------------------------------------------------------------
# EMA of weights: `fit` ends by writing the averages.
# ---------------------------------------------------------------------------


def test_ema_weights_keep_masked_weights_zero_at_the_end_of_fit():
    model = mlp()
    model.compile(K.Adam(1e-2, use_ema=True, ema_overwrite_frequency=3),
                  loss())
    model.fit(*data(), batch_size=16, epochs=2, verbose=0,
              callbacks=[tfs.callbacks.MaskUpdate(make_algorithm("set"))])
    for mw in tfs.masked_weights(model):
        assert np.all(mw.variable.numpy()[mw.mask.numpy() == 0] == 0.0)
        assert np.any(mw.variable.numpy()[mw.mask.numpy() == 1] != 0.0)


# ---------------------------------------------------------------------------
# Nothing of a discarded run stays alive (issue 17: 247 runs in one process).
# ---------------------------------------------------------------------------


def test_a_discarded_model_optimizer_and_algorithm_are_freed():
    """tf-sparse keeps no model, optimizer, algorithm or train function
    alive after a run (the tap, the train-step hook and the finalize hook are
    instance attributes). TensorFlow itself keeps each traced train graph
    (graph-mode custom gradients stay in its global gradient registry) and
    XLA each compiled executable; see docs/design.md."""
    import gc
    import weakref

    model = mlp()
    model.compile(K.Adam(1e-2, use_ema=True), loss())
    algorithm = make_algorithm("rigl")
    model.fit(*data(), batch_size=16, epochs=1, verbose=0,
              callbacks=[tfs.callbacks.MaskUpdate(algorithm)])
    refs = [weakref.ref(o) for o in (model, model.optimizer, algorithm,
                                     algorithm.tap, model.train_function)]
    del model, algorithm
    gc.collect()
    assert [r() is None for r in refs] == [True] * len(refs)


# ---------------------------------------------------------------------------
# AC/DC's reset with optimizers whose slots do not start at zero.
# ---------------------------------------------------------------------------


def test_acdc_resets_ftrl_accumulators_to_their_initial_value():
    model = mlp(sparsity=0.0)
    algorithm = tfs.algorithms.ACDC(0.8, warmup=2, phase_length=2,
                                    end_sparse=2, total_steps=8,
                                    reset_momentum=True)
    seen = []

    class Accumulators(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            opt = self.model.optimizer
            kernel = self.model.get_layer("fc1").kernel
            seen.append((int(opt.iterations.numpy()),
                         opt._accumulators[
                             opt._get_variable_index(kernel)].numpy().copy()))

    model.compile(K.Ftrl(0.1), loss())
    model.fit(*data(n=128), batch_size=16, epochs=1, verbose=0,
              shuffle=False, callbacks=[tfs.callbacks.MaskUpdate(algorithm),
                                        Accumulators()])
    boundaries = [s for s, _ in seen if algorithm.should_update(s)]
    assert boundaries
    for step, accumulator in seen:
        if step in boundaries:
            np.testing.assert_allclose(accumulator, 0.1, rtol=1e-6)
    assert all(np.all(np.isfinite(v.numpy()))
               for v in model.trainable_variables)


# ---------------------------------------------------------------------------
# The grid: every optimizer x {Static, SET, RigL, sparse momentum}.
# ---------------------------------------------------------------------------

STEPS = 8      # 2 epochs of 4 batches of 16
ALGORITHMS = ("static", "set", "rigl", "sparse_momentum")


def mlp(sparsity=0.8, seed=0):
    """LeNet-300-100 in miniature: 20-16-16-10 with random exact-count masks
    at `sparsity`. With sparsity > 0 the first unit of fc1 and of fc2 has no
    inputs left (dead, as some units are in any very sparse run): zero
    gradient in fc1's column 0, fc2's row 0 and column 0."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((20,))
    x = keras.layers.Dense(16, activation="relu", name="fc1")(inputs)
    x = keras.layers.Dense(16, activation="relu", name="fc2")(x)
    model = keras.Model(inputs, keras.layers.Dense(10, name="out")(x))
    if not sparsity:
        return tfs.sparsify(model, sparsity=0.0)
    rng = np.random.default_rng(seed)
    masks = {}
    for name in ("fc1", "fc2", "out"):
        shape = tuple(model.get_layer(name).kernel.shape)
        flat = np.zeros(int(np.prod(shape)), np.float32)
        keep = round((1 - sparsity) * flat.size)
        flat[rng.permutation(flat.size)[:keep]] = 1
        mask = flat.reshape(shape)
        if name != "out":
            mask[:, 0] = 0.0
        masks[f"{name}/kernel"] = mask
    return tfs.sparsify(model, masks=masks)


def data(n=64):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(n, 20)).astype("float32"),
            rng.integers(0, 10, size=n).astype("int32"))


def loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def make_algorithm(name):
    A = tfs.algorithms
    if name == "static":
        return A.Static()
    if name == "set":
        return A.SET(total_steps=STEPS, every=2)
    if name == "rigl":
        return A.RigL(total_steps=STEPS, every=2, end=1.0)
    return A.SparseMomentum(total_steps=STEPS, every=2)


class EveryStep(keras.callbacks.Callback):
    """Masked weights exactly 0 and every weight finite after every step."""

    def on_train_batch_end(self, batch, logs=None):
        for mw in tfs.masked_weights(self.model):
            value = mw.variable.numpy()
            assert np.all(value[mw.mask.numpy() == 0] == 0.0), mw.path
        for v in self.model.trainable_variables:
            assert np.all(np.isfinite(v.numpy())), v.path


def train(optimizer_name, algorithm_name, jit=False, spe=1):
    model = mlp()
    layer_counts = [int(mw.mask.numpy().sum())
                    for mw in tfs.masked_weights(model)]
    algorithm = make_algorithm(algorithm_name)
    model.compile(OPTIMIZERS[optimizer_name](), loss(), jit_compile=jit,
                  steps_per_execution=spe)
    callbacks = [tfs.callbacks.MaskUpdate(algorithm), EveryStep()]
    check = None
    if algorithm_name != "static" and spe == 1:
        # Exact counts after every update (it needs one step per batch end).
        check = lib.CheckEveryUpdate(algorithm)
        callbacks.append(check)
    x, y = data()
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False,
              callbacks=callbacks)
    counts = [int(mw.mask.numpy().sum()) for mw in tfs.masked_weights(model)]
    assert sum(counts) == sum(layer_counts)
    if algorithm_name in ("static", "set", "rigl"):
        assert counts == layer_counts             # in place per layer
    if check is not None:
        assert len(check.records) == len(algorithm.update_steps()) >= 3
        # Masks really moved (the update is not a no-op here).
        assert sum(l["entered"] for r in check.records
                   for l in r["layers"]) > 0
    for mw in tfs.masked_weights(model):
        assert np.all(mw.variable.numpy()[mw.mask.numpy() == 0] == 0.0)
    for v in model.trainable_variables:
        assert np.all(np.isfinite(v.numpy())), v.path
    return model


# Fast by default (~2 s of CPU per case): every optimizer under SET (it
# resets the slots of grown weights at every update), and each other
# algorithm once; --runslow runs the whole grid and the XLA /
# steps_per_execution variants (about 270 fits).
FAST = ([(o, "set") for o in OPTIMIZERS]
        + [("ftrl", "rigl"), ("adagrad", "sparse_momentum"),
           ("adafactor", "static")])
GRID = [pytest.param(o, a, marks=() if (o, a) in FAST else pytest.mark.slow)
        for o in OPTIMIZERS for a in ALGORITHMS]


@pytest.mark.parametrize("optimizer_name,algorithm_name", GRID)
def test_every_optimizer_with_every_algorithm(optimizer_name, algorithm_name):
    train(optimizer_name, algorithm_name)


@pytest.mark.slow
@pytest.mark.parametrize("jit,spe", [(True, 1), (False, 3), (True, 3)])
@pytest.mark.parametrize("optimizer_name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("algorithm_name", ALGORITHMS)
def test_every_optimizer_with_xla_and_steps_per_execution(
        optimizer_name, algorithm_name, jit, spe):
    train(optimizer_name, algorithm_name, jit=jit, spe=spe)
