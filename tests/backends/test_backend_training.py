"""Sparse training on the Keras backend this process runs on.

Run on TensorFlow by the normal suite and on JAX and PyTorch by
tests/test_backends.py (`KERAS_BACKEND=jax python -m pytest tests/backends`):
masks hold after every optimizer step, every mask update keeps exact counts,
the same seed gives the same masks, `.keras` files round-trip and resume a
run, and TensorFlow-only features name the backend.
"""

import os

import keras
import numpy as np
import pytest

import backend_testlib as lib
import sm_update_script
import tf_sparse as tfs
from tf_sparse import backend
from tf_sparse import distribute
from tf_sparse.algorithms import magnitude

BATCH = 16
STEPS_PER_EPOCH = 6      # 96 examples / 16
EPOCHS = 2
TOTAL = EPOCHS * STEPS_PER_EPOCH


def test_runs_on_the_backend_it_was_started_with():
    assert backend.name() == os.environ.get("KERAS_BACKEND", "tensorflow")


def test_keep_active_zeroes_pruned_entries_to_positive_zero_bit_for_bit():
    weight = np.float32([-1.5, 2.0, np.nan, -np.inf, -0.0, 3.0, np.nan, 0.0])
    mask = np.float32([0, 1, 0, 0, 1, 0, 1, 1])
    got = keras.ops.convert_to_numpy(tfs.masking.keep_active(weight, mask))
    want = np.where(mask > 0, weight, np.float32(0))
    # Pruned entries are +0.0 (no -0.0, no NaN); kept ones keep their bits.
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    assert got.dtype == np.float32


OPTIMIZERS = {
    "sgd": lambda: keras.optimizers.SGD(0.1),
    "momentum": lambda: keras.optimizers.SGD(0.1, momentum=0.9),
    "nesterov": lambda: keras.optimizers.SGD(0.1, momentum=0.9,
                                             nesterov=True),
    "adam": lambda: keras.optimizers.Adam(0.01),
    "adamw": lambda: keras.optimizers.AdamW(0.01, weight_decay=0.1),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_pruned_weights_are_zero_after_every_step(name):
    model = lib.compiled(OPTIMIZERS[name]())
    before = lib.masks(model)
    start = lib.weights(model)
    log = lib.StepLog(model)
    model.fit(*lib.data(), batch_size=BATCH, epochs=1, shuffle=False,
              verbose=0, callbacks=[
                  tfs.callbacks.MaskUpdate(tfs.algorithms.Static()), log])
    assert len(log.pruned_nonzero) == STEPS_PER_EPOCH
    assert log.pruned_nonzero == [0] * STEPS_PER_EPOCH
    # Static: the masks never change (8x32 at 80% keeps 51, ...).
    assert set(log.counts.values()) == {(51, 102, 10)}
    for old, new in zip(before, lib.masks(model)):
        np.testing.assert_array_equal(old, new)
    # The model did train.
    assert any(not np.array_equal(a, b)
               for a, b in zip(start, lib.weights(model)))


def _algorithm(name, seed=0):
    if name == "set":
        return tfs.algorithms.SET(total_steps=TOTAL, every=3, seed=seed)
    if name == "sparse_momentum":
        return tfs.algorithms.SparseMomentum(total_steps=TOTAL, every=3,
                                             seed=seed)
    if name == "rigl":
        return tfs.algorithms.RigL(total_steps=TOTAL, every=3, end=1.0,
                                   seed=seed)
    if name == "gmp":
        return tfs.algorithms.GMP(0.9, begin=3, end=9, frequency=3,
                                  total_steps=TOTAL)
    if name == "acdc":
        return tfs.algorithms.ACDC(0.9, warmup=3, phase_length=3,
                                   end_sparse=3, total_steps=TOTAL)
    raise ValueError(name)


def _run(name, seed=0, epochs=EPOCHS, optimizer=None, log_dir=None):
    sparsity = 0.0 if name in ("gmp", "acdc") else 0.8
    model = lib.compiled(optimizer or keras.optimizers.SGD(0.1, momentum=0.9),
                         sparsity=sparsity)
    algorithm = _algorithm(name, seed)
    log = lib.StepLog(model)
    callbacks = [tfs.callbacks.MaskUpdate(algorithm), log]
    if log_dir is not None:
        callbacks += [tfs.callbacks.SparsitySummaries(log_dir),
                      tfs.callbacks.MaskUpdateSummaries(log_dir, algorithm)]
    model.fit(*lib.data(), batch_size=BATCH, epochs=epochs, shuffle=False,
              verbose=0, callbacks=callbacks)
    return model, algorithm, log


@pytest.mark.parametrize("name", ["set", "rigl", "sparse_momentum"])
def test_prune_and_grow_keeps_exact_counts_after_every_update(name,
                                                             tmp_path):
    start = lib.masks(lib.compiled(keras.optimizers.SGD(0.1)))
    model, algorithm, log = _run(name, log_dir=str(tmp_path))
    assert log.pruned_nonzero == [0] * TOTAL
    totals = {sum(c) for c in log.counts.values()}
    assert totals == {163}                      # 51 + 102 + 10, every step
    if name != "sparse_momentum":               # regrown in place
        assert set(log.counts.values()) == {(51, 102, 10)}
    history = algorithm.update_history()
    # Updates after steps 3, 6, 9 (RigL's window includes the last, 12).
    expected = [3, 6, 9] + ([12] if name == "rigl" else [])
    assert [int(h["step"]) for h in history] == expected
    assert all(h["nonzeros"] == 163 for h in history)
    assert sum(h["dropped"] for h in history) > 0
    moved = sum(int(np.sum(a != b)) for a, b in zip(start, lib.masks(model)))
    assert moved > 0
    # TensorBoard: density at each epoch end, each update's counts.
    tags = lib.summary_steps(str(tmp_path))
    assert tags["sparsity/density"] == [6, 12]
    assert tags["mask_update/dropped"] == expected


@pytest.mark.parametrize("name", ["static", "set", "rigl"])
def test_mask_updates_do_not_retrace_the_compiled_step(name, monkeypatch):
    # JAX's compiled step takes the masks as inputs
    # (`masking.masks_as_inputs`): it is traced once per fit, however many
    # updates change the masks, and the new masks hold after every step.
    # (TensorFlow updates inside its step; PyTorch's step is not traced.)
    if backend.name() != "jax":
        pytest.skip("masks as step inputs are JAX's")
    model = lib.compiled(keras.optimizers.SGD(0.1, momentum=0.9))
    traces = []
    keras_step = type(model).train_step

    def counting_step(self, *args):
        traces.append(len(traces))
        return keras_step(self, *args)

    monkeypatch.setattr(type(model), "train_step", counting_step)
    algorithm = (tfs.algorithms.Static() if name == "static"
                 else _algorithm(name))
    log = lib.StepLog(model)
    model.fit(*lib.data(), batch_size=BATCH, epochs=EPOCHS, shuffle=False,
              verbose=0, callbacks=[tfs.callbacks.MaskUpdate(algorithm),
                                    log])
    assert log.pruned_nonzero == [0] * TOTAL
    if name != "static":
        assert len(algorithm.update_history()) >= 3
    assert len(traces) == 1
    # After fit the model trains with Keras's own step again.
    assert "train_step" not in vars(model)


def test_a_fit_stopped_by_an_exception_leaves_the_model_trainable():
    # The update's train step is the model's until `train_end`; an
    # exception skips that, and later fits (with or without the callback,
    # after a new compile) still train and keep the masks.
    model = lib.compiled(keras.optimizers.SGD(0.1, momentum=0.9))

    class Interrupt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(*lib.data(), batch_size=BATCH, epochs=1, shuffle=False,
                  verbose=0, callbacks=[tfs.callbacks.MaskUpdate(
                      _algorithm("set")), Interrupt()])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.
                  SparseCategoricalCrossentropy(from_logits=True))
    for callbacks in ([], [tfs.callbacks.MaskUpdate(_algorithm("set"))]):
        log = lib.StepLog(model)
        model.fit(*lib.data(), batch_size=BATCH, epochs=1, shuffle=False,
                  verbose=0, callbacks=callbacks + [log])
        assert log.pruned_nonzero == [0] * STEPS_PER_EPOCH
        assert {sum(c) for c in log.counts.values()} == {163}


def test_sparse_momentum_reads_adamw_moments():
    # m / (sqrt(v) + epsilon) from AdamW's own slot variables.
    model, algorithm, log = _run("sparse_momentum", epochs=1,
                                 optimizer=keras.optimizers.AdamW(0.01))
    assert log.pruned_nonzero == [0] * STEPS_PER_EPOCH
    assert {sum(c) for c in log.counts.values()} == {163}
    assert algorithm.momentum_from == "optimizer"
    history = algorithm.update_history()
    assert [h["step"] for h in history] == [3, 6]
    assert all(h["dropped"] > 0 for h in history)


def test_gmp_reaches_each_scheduled_count_after_every_update():
    model, algorithm, log = _run("gmp")
    assert log.pruned_nonzero == [0] * TOTAL
    assert algorithm.update_steps() == [3, 6, 9]
    sizes = [8 * 32, 32 * 16, 16 * 3]
    for step in algorithm.update_steps():
        if step == 0:
            continue
        target = algorithm.target(step)
        assert log.counts[step] == tuple(
            magnitude.kept_count_py(target, n) for n in sizes), step
    assert log.counts[TOTAL] == (26, 51, 5)     # 90%: floor(0.1 n + 0.5)


def test_acdc_alternates_with_exact_counts():
    model, algorithm, log = _run("acdc")
    assert log.pruned_nonzero == [0] * TOTAL
    # A global ranking: 10% of all 816 masked weights, floor(81.6 + 0.5).
    # Dense warm-up (steps 1-2), compressed after step 3, dense after step
    # 6, compressed again from step 9 to the end.
    totals = [sum(log.counts[s]) for s in sorted(log.counts)]
    assert totals == [816] * 2 + [82] * 3 + [816] * 3 + [82] * 4


def test_same_seed_gives_the_same_masks():
    # SET grows at random: the seed decides where.
    first = lib.masks(_run("set", seed=3, epochs=1)[0])
    second = lib.masks(_run("set", seed=3, epochs=1)[0])
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    other = lib.masks(_run("set", seed=4, epochs=1)[0])
    assert any(not np.array_equal(a, b) for a, b in zip(first, other))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_rigl_skips_the_optimizer_step_of_an_update(optimizer):
    opt = (keras.optimizers.SGD(0.1, momentum=0.9) if optimizer == "sgd"
           else keras.optimizers.Adam(0.01))
    model = lib.compiled(opt)
    algorithm = tfs.algorithms.RigL(total_steps=8, every=4, end=1.0)
    x, y = lib.data()
    seen = {}

    class Before(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 3:
                lib.sync(model)
                seen["weights"] = lib.weights(model)
                seen["slots"] = [np.array(keras.ops.convert_to_numpy(v))
                                 for v in model.optimizer.variables[2:]]

    model.fit(x[:64], y[:64], batch_size=BATCH, epochs=1, shuffle=False,
              verbose=0, callbacks=[Before(), tfs.callbacks.MaskUpdate(
                  algorithm)])
    lib.sync(model)
    # Step 4 was an update: weights kept by the new masks are as before
    # the step; dropped ones are 0; grown ones start at 0.
    new_masks = lib.masks(model)
    for i, mw in enumerate(tfs.masked_weights(model)):
        w = keras.ops.convert_to_numpy(mw.variable)
        old = seen["weights"][2 * i]
        np.testing.assert_array_equal(w, np.where(new_masks[i] > 0, old, 0))
    assert algorithm.update_history()[-1]["dropped"] > 0


def test_keras_file_round_trip(tmp_path):
    model, _, _ = _run("set", epochs=1)
    path = str(tmp_path / "sparse.keras")
    tfs.save_model(model, path)
    loaded = tfs.load_model(path)
    for a, b in zip(lib.masks(model), lib.masks(loaded)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(lib.weights(model), lib.weights(loaded)):
        np.testing.assert_array_equal(a, b)
    assert int(keras.ops.convert_to_numpy(loaded.optimizer.iterations)) == (
        STEPS_PER_EPOCH)
    x, y = lib.data()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x[:8])),
                               keras.ops.convert_to_numpy(model(x[:8])),
                               rtol=1e-6, atol=1e-6)
    # It trains on with its masks enforced.
    log = lib.StepLog(loaded)
    loaded.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[log])
    assert log.pruned_nonzero == [0] * STEPS_PER_EPOCH
    assert "total" in tfs.summary(loaded)
    plain = tfs.strip(loaded)
    assert not tfs.is_sparse(plain)
    for a, b in zip(lib.weights(loaded), lib.weights(plain)):
        np.testing.assert_array_equal(a, b)


def test_resume_from_a_keras_file_ends_where_the_whole_run_ends(tmp_path):
    whole, _, _ = _run("set", epochs=2)
    half, _, _ = _run("set", epochs=1)
    path = str(tmp_path / "half.keras")
    tfs.save_model(half, path)
    resumed = tfs.load_model(path)
    resumed.fit(*lib.data(), batch_size=BATCH, initial_epoch=1, epochs=2,
                shuffle=False, verbose=0,
                callbacks=[tfs.callbacks.MaskUpdate(_algorithm("set"))])
    for a, b in zip(lib.masks(whole), lib.masks(resumed)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(lib.weights(whole), lib.weights(resumed)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_snip_keeps_the_exact_budget():
    from tf_sparse.algorithms import snip
    model = lib.mlp()
    x, y = lib.data()
    masks = snip.snip_masks(
        model, (x[:32], y[:32]),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True), 0.8)
    assert sum(int(m.sum()) for m in masks.values()) == 163
    _, scores = snip.sensitivities(
        model, (x[:32], y[:32]),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    flat = np.concatenate([s.reshape(-1) for s in scores])
    kept = np.concatenate([m.reshape(-1) for m in masks.values()]) > 0
    assert flat[kept].min() >= flat[~kept].max()


needs_other_backend = pytest.mark.skipif(
    backend.is_tensorflow(), reason="checks the errors of the JAX and "
    "PyTorch backends")


@needs_other_backend
def test_tensorflow_only_features_name_the_backend(tmp_path):
    named = f"needs the tensorflow backend of Keras.*'{backend.name()}'"
    with pytest.raises(backend.UnsupportedBackendError, match=named):
        tfs.sparsify(lib.mlp(), sparsity=0.5, compute="sparse")
    model = lib.compiled(keras.optimizers.SGD(0.1))
    with pytest.raises(backend.UnsupportedBackendError,
                       match=named + ".*tfs.save_model"):
        tfs.checkpoints.TrainingCheckpoint(str(tmp_path / "ck"), model)
    with pytest.raises(backend.UnsupportedBackendError,
                       match="tf.distribute strategy 'mirrored' " + named):
        distribute.create_strategy("mirrored")
    from tf_sparse import sparse_inference
    with pytest.raises(backend.UnsupportedBackendError,
                       match="CSR inference .tf.sparse kernels. " + named):
        sparse_inference.to_sparse_inference(model)


@needs_other_backend
def test_savedmodel_export_on_jax_or_a_clear_error(tmp_path):
    model = lib.compiled(keras.optimizers.SGD(0.1))
    x = lib.data()[0][:4]
    path = str(tmp_path / "saved")
    if backend.name() == "jax":                 # Keras exports through jax2tf
        result = tfs.export.export_saved_model(model, path, x)
        assert result.max_abs_diff <= 1e-5
        return
    with pytest.raises(backend.UnsupportedBackendError,
                       match="SavedModel and LiteRT export needs one of the "
                       f"tensorflow, jax backends.*'{backend.name()}'"):
        tfs.export.export_saved_model(model, path, x)


@needs_other_backend
def test_gradient_ema_is_refused_with_the_reason():
    model = lib.compiled(keras.optimizers.SGD(0.1))      # no momentum
    algorithm = tfs.algorithms.SparseMomentum(total_steps=24, every=4)
    with pytest.raises(backend.UnsupportedBackendError,
                       match="moving average.*SGD with momentum"):
        model.fit(*lib.data(), batch_size=BATCH, epochs=1, verbose=0,
                  callbacks=[tfs.callbacks.MaskUpdate(algorithm)])


@needs_other_backend
def test_tape_gradients_are_refused_with_the_alternative():
    model = lib.compiled(keras.optimizers.SGD(0.1, momentum=0.9))
    algorithm = tfs.algorithms.RigL(total_steps=24, every=4,
                                    gradient_source="tape")
    with pytest.raises(backend.UnsupportedBackendError,
                       match="gradient_source='tape'.*gradient_source="
                       "'optimizer' .the default."):
        tfs.training.attach(model, algorithm)


@pytest.mark.skipif(backend.name() != "jax",
                    reason="PyTorch refuses steps_per_execution > 1 itself; "
                    "TensorFlow updates inside the execution")
def test_updates_between_steps_need_one_step_per_execution():
    model = tfs.sparsify(lib.mlp(), sparsity=0.8)
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True), steps_per_execution=2)
    with pytest.raises(ValueError, match="steps_per_execution=1"):
        model.fit(*lib.data(), batch_size=BATCH, epochs=1, verbose=0,
                  callbacks=[tfs.callbacks.MaskUpdate(_algorithm("set"))])


def test_one_sparse_momentum_and_one_rigl_update(tmp_path):
    """The updates tests/test_backends.py compares across backends (it sets
    TF_SPARSE_SM_OUT to collect the file)."""
    path = os.environ.get("TF_SPARSE_SM_OUT") or str(tmp_path / "sm.npz")
    sm_update_script.main(path)
    result = np.load(path)
    assert result["update_steps"].tolist() == [2]
    assert result["dropped"].tolist() == [12]
    assert [int(result[f"mask{i}"].sum()) for i in range(3)] == [37, 29, 15]
    assert result["rigl_grown"].tolist() == [5]
    assert [int(result[f"rigl_mask{i}"].sum()) for i in range(3)] == [
        41, 33, 7]                              # in place: as sparsified


def test_step_counters_use_the_backends_integer_type(recwarn):
    # JAX without x64 has no int64 (it truncates with a warning on every
    # call): steps are int32 there, int64 elsewhere; GMP's counters follow.
    from tf_sparse import schedules
    want = "int32" if backend.name() == "jax" else "int64"
    assert schedules.evaluation.step_dtype() == want
    model, algorithm, log = _run("gmp", epochs=1)
    assert algorithm.last_update.dtype == want
    assert int(keras.ops.convert_to_numpy(algorithm.last_update)) == 6
    assert not [w for w in recwarn.list if "int64" in str(w.message)]
