"""AC/DC: phases at exact steps, forced final sparse phase, pruned weights
return at zero, momentum reset of the right slots, drift, both models."""

import keras
import numpy as np
import pytest

import tf_sparse as tfs
from tf_sparse import schedules
from tf_sparse.algorithms import optimizer_state


def mlp(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8,))
    x = keras.layers.Dense(32, activation="relu", name="fc1")(inputs)
    outputs = keras.layers.Dense(3, name="out")(x)
    return tfs.sparsify(keras.Model(inputs, outputs, name="mlp"),
                        sparsity=0.0)


class Recorder(keras.callbacks.Callback):
    """State after every optimizer step (after the mask hook)."""

    def __init__(self, slots=False):
        super().__init__()
        self.rows = []
        self.slots = slots

    def on_train_batch_end(self, batch, logs=None):
        opt = self.model.optimizer
        row = {"step": int(opt.iterations.numpy()),
               "masks": [mw.mask.numpy().copy()
                         for mw in tfs.masked_weights(self.model)],
               "weights": [mw.variable.numpy().copy()
                           for mw in tfs.masked_weights(self.model)]}
        if self.slots:
            row["slots"] = {
                v.path: [s.numpy().copy()
                         for s in optimizer_state.slot_variables(opt, v)]
                for v in self.model.trainable_variables}
        self.rows.append(row)


def train(model, algorithm, steps, optimizer=None, slots=False, batch=8):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(steps * batch, 8)).astype("float32")
    y = rng.integers(0, 3, size=steps * batch).astype("int32")
    model.compile(optimizer or keras.optimizers.SGD(0.1, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rec = Recorder(slots)
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False,
              callbacks=[tfs.callbacks.MaskUpdate(algorithm), rec])
    return rec.rows


def total(masks):
    return int(sum(m.sum() for m in masks))


SIZE = 8 * 32 + 32 * 3   # 352 masked weights


@pytest.mark.parametrize("tail", ["dense", "merge"])
def test_phases_at_exact_steps_and_forced_final_sparse_phase(tail):
    # T=44: warm-up 4, seven 4-step phases (S D S D S D S), final 12.
    algorithm = tfs.algorithms.ACDC(0.75, warmup=4, phase_length=4,
                                    end_sparse=12, total_steps=44, tail=tail)
    phases = algorithm.phases()
    assert phases[0] == (0, 4, False)
    assert phases[-1][2] is True and phases[-1][1] == 44
    if tail == "dense":
        assert phases[-2] == (24, 32, False)   # last alternating phase dense
        assert phases[-1][0] == 32
    else:
        assert phases[-1][0] == 28              # merged into the final phase
    rows = train(mlp(), algorithm, 44)
    sparse_count = round(0.25 * SIZE)
    for row in rows:
        _, is_sparse = algorithm.schedule.phase(row["step"])
        assert total(row["masks"]) == (sparse_count if is_sparse else SIZE), \
            row["step"]
        for mask, weight in zip(row["masks"], row["weights"]):
            assert np.all(weight[mask == 0] == 0.0)
    assert total(rows[-1]["masks"]) == sparse_count   # ends sparse


def test_sparse_phases_use_global_magnitude_top_k():
    model = mlp()
    algorithm = tfs.algorithms.ACDC(0.9, warmup=3, phase_length=3,
                                    end_sparse=3, total_steps=12)
    rows = train(model, algorithm, 12)
    # The dense copy taken at the last compression (step 9) holds the weights
    # the ranking saw: the mask keeps exactly their largest |w|, globally.
    assert int(algorithm.snapshot_step.numpy()) == 9
    by_path = {v.path: d for v, d in zip(model.weights,
                                         algorithm.dense_weights())}
    kernels = np.concatenate([by_path[mw.variable.path].ravel()
                              for mw in tfs.masked_weights(model)])
    masks = np.concatenate([m.ravel() for m in rows[-1]["masks"]])
    assert int(masks.sum()) == round(0.1 * SIZE)
    assert np.abs(kernels[masks == 1]).min() >= np.abs(
        kernels[masks == 0]).max()
    densities = [m.mean() for m in rows[-1]["masks"]]
    assert densities[0] != pytest.approx(densities[1])   # not layer-wise


def test_pruned_weights_return_at_zero_in_dense_phases():
    algorithm = tfs.algorithms.ACDC(0.8, warmup=2, phase_length=2,
                                    end_sparse=2, total_steps=8,
                                    reset_momentum=False)
    assert algorithm.phases() == ((0, 2, False), (2, 4, True),
                                  (4, 6, False), (6, 8, True))
    rows = train(mlp(), algorithm, 8)
    sparse_row = rows[2]          # step 3: inside the sparse phase [2, 4)
    dense_row = rows[3]           # step 4: decompressed by the hook
    next_row = rows[4]            # step 5: one dense update later
    assert dense_row["step"] == 4
    for m_sparse, m_dense, w_dense, w_next in zip(
            sparse_row["masks"], dense_row["masks"], dense_row["weights"],
            next_row["weights"]):
        pruned = m_sparse == 0
        assert np.all(m_dense == 1)
        assert np.all(w_dense[pruned] == 0.0)     # back, at exactly zero
        assert np.count_nonzero(w_next[pruned]) > 0   # and training again


@pytest.mark.parametrize("which", ["sgd", "adam"])
def test_momentum_reset_empties_the_slots_of_masked_weights(which):
    optimizer = (keras.optimizers.SGD(0.05, momentum=0.9) if which == "sgd"
                 else keras.optimizers.Adam(1e-2))
    algorithm = tfs.algorithms.ACDC(0.8, warmup=3, phase_length=3,
                                    end_sparse=3, total_steps=12,
                                    reset_momentum=True)
    model = mlp()
    rows = train(model, algorithm, 12, optimizer=optimizer, slots=True)
    kernels = {mw.variable.path for mw in tfs.masked_weights(model)}
    expected = {"sgd": 1, "adam": 2}[which]
    for row in rows:
        boundary = algorithm.should_update(row["step"])
        for path, slots in row["slots"].items():
            assert len(slots) == expected
            for slot in slots:
                if path in kernels and boundary:
                    assert np.all(slot == 0.0), (row["step"], path)
                else:
                    assert np.any(slot != 0.0), (row["step"], path)


def test_momentum_reset_only_when_decompressing():
    algorithm = tfs.algorithms.ACDC(0.8, warmup=3, phase_length=3,
                                    end_sparse=3, total_steps=12,
                                    reset_momentum="dense")
    rows = train(mlp(), algorithm, 12, slots=True)
    by_step = {r["step"]: r for r in rows}
    assert np.all(by_step[6]["slots"]["fc1/kernel"][0] == 0.0)   # -> dense
    assert np.any(by_step[3]["slots"]["fc1/kernel"][0] != 0.0)   # -> sparse
    assert np.any(by_step[9]["slots"]["fc1/kernel"][0] != 0.0)


def test_mask_drift_is_logged_between_consecutive_sparse_phases():
    algorithm = tfs.algorithms.ACDC(0.7, warmup=2, phase_length=4,
                                    end_sparse=4, total_steps=22)
    assert algorithm.compressions == (2, 10, 18)
    rows = train(mlp(), algorithm, 22, optimizer=keras.optimizers.SGD(0.5))
    by_step = {r["step"]: r for r in rows}
    drift = algorithm.mask_drift()
    assert [d["step"] for d in drift] == list(algorithm.compressions[1:])
    for d, (a, b) in zip(drift, zip(algorithm.compressions,
                                    algorithm.compressions[1:])):
        m0 = np.concatenate([m.ravel() for m in by_step[a]["masks"]])
        m1 = np.concatenate([m.ravel() for m in by_step[b]["masks"]])
        assert d["changed_fraction"] == pytest.approx(np.mean(m0 != m1),
                                                      abs=1e-6)
        assert d["kept_overlap"] == pytest.approx(
            np.sum(m0 * m1) / np.sum(m1), abs=1e-6)


def test_saves_sparse_and_cotrained_dense_model(tmp_path):
    model = mlp()
    algorithm = tfs.algorithms.ACDC(0.8, warmup=2, phase_length=2,
                                    end_sparse=4, total_steps=10)
    train(model, algorithm, 10)
    sparse_path, dense_path = algorithm.save_models(
        str(tmp_path / "sparse.keras"), str(tmp_path / "dense.keras"))
    sparse = tfs.load_model(sparse_path)
    assert sum(mw.nonzeros() for mw in tfs.masked_weights(sparse)) == round(
        0.2 * SIZE)
    dense = keras.models.load_model(dense_path)
    assert not tfs.is_sparse(dense)
    assert np.count_nonzero(dense.get_layer("fc1").kernel.numpy()) > 0.5 * 256
    for value, saved in zip(algorithm.dense_weights(), dense.get_weights()):
        np.testing.assert_array_equal(value, saved)


def test_warmup_zero_prunes_before_the_first_step():
    model = mlp()
    algorithm = tfs.algorithms.ACDC(0.5, warmup=0, phase_length=2,
                                    end_sparse=2, total_steps=6)
    model.compile("sgd", "mse")
    tfs.training.attach(model, algorithm)
    assert sum(mw.nonzeros() for mw in tfs.masked_weights(model)) == SIZE // 2


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="phase lengths don't fit"):
        tfs.algorithms.ACDC(0.9, warmup=10, phase_length=8, end_sparse=20,
                            total_steps=100)
    with pytest.raises(ValueError, match="needs total_steps"):
        tfs.algorithms.ACDC(0.9, warmup=10, phase_length=10, end_sparse=20)
    with pytest.raises(ValueError, match="needs scope='layerwise'"):
        tfs.algorithms.ACDC({"fc1": 0.9}, warmup=2, phase_length=2,
                            end_sparse=2, total_steps=8)
    with pytest.raises(ValueError, match="reset_momentum='always'"):
        tfs.algorithms.ACDC(0.9, warmup=2, phase_length=2, end_sparse=2,
                            total_steps=8, reset_momentum="always")
    with pytest.raises(ValueError, match="no co-trained dense model"):
        model = mlp()
        algorithm = tfs.algorithms.ACDC(0.5, warmup=4, phase_length=2,
                                        end_sparse=2, total_steps=8)
        model.compile("sgd", "mse")
        tfs.training.attach(model, algorithm)
        algorithm.dense_weights()
    schedule = schedules.ACDCSchedule(4, 2, 2, sparsity=0.5, total_steps=8)
    assert tfs.algorithms.ACDC(schedule=schedule).phases() == schedule.phases()
