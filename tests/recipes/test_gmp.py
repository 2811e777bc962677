"""GMP: targets against the closed form (and tfmot), exact counts in graph."""

import math
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sparse as tfs
from tf_sparse import topk
from tf_sparse.algorithms import magnitude


def mlp(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8,))
    x = keras.layers.Dense(32, activation="relu", name="fc1")(inputs)
    x = keras.layers.Dense(16, activation="relu", name="fc2")(x)
    outputs = keras.layers.Dense(3, name="out")(x)
    return tfs.sparsify(keras.Model(inputs, outputs), sparsity=0.0)


def data(n=320, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 8)).astype("float32"),
            rng.integers(0, 3, size=n).astype("int32"))


class Recorder(keras.callbacks.Callback):
    """Masks and weights after every step (the hook has run by then)."""

    def __init__(self):
        super().__init__()
        self.steps = []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append({
            "step": int(self.model.optimizer.iterations.numpy()),
            "masks": [mw.mask.numpy().copy()
                      for mw in tfs.masked_weights(self.model)],
            "weights": [mw.variable.numpy().copy()
                        for mw in tfs.masked_weights(self.model)]})


def train(model, algorithm, steps, batch=8, optimizer=None):
    x, y = data(steps * batch)
    model.compile(optimizer or keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rec = Recorder()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False,
              callbacks=[tfs.callbacks.MaskUpdate(algorithm), rec])
    return rec.steps


def closed_form(step, initial, final, begin, end, power):
    p = min(1.0, max(0.0, (step - begin) / (end - begin)))
    return final + (initial - final) * (1.0 - p) ** power


def kept(sparsity, size):
    return max(1, math.floor((1.0 - sparsity) * size + 0.5))


def test_layerwise_cubic_counts_equal_closed_form_at_every_step():
    model = mlp()
    sizes = [mw.size for mw in tfs.masked_weights(model)]
    algorithm = tfs.algorithms.GMP(0.8, initial_sparsity=0.1, begin=4, end=24,
                                   frequency=5, total_steps=40)
    record = train(model, algorithm, 40)
    last_update = None
    for row in record:
        s = row["step"]
        if 4 <= s <= 24 and (s - 4) % 5 == 0:
            last_update = s
        for mask, size in zip(row["masks"], sizes):
            if last_update is None:
                expected = size          # nothing pruned before begin
            else:
                target = closed_form(last_update, 0.1, 0.8, 4, 24, 3)
                expected = kept(target, size)
            assert int(mask.sum()) == expected, (s, size)
        for mask, weight in zip(row["masks"], row["weights"]):
            assert np.all(weight[mask == 0] == 0.0)
    # The final sparsity is reached exactly.
    assert [int(m.sum()) for m in record[-1]["masks"]] == [
        kept(0.8, n) for n in sizes]
    assert int(algorithm.updates.numpy()) == 5
    assert int(algorithm.last_update.numpy()) == 24


def test_masks_only_shrink_and_drop_the_smallest_active_weights():
    model = mlp()
    algorithm = tfs.algorithms.GMP(0.9, begin=2, end=12, frequency=2,
                                   schedule="linear", total_steps=16)
    record = train(model, algorithm, 16)
    for before, after in zip(record, record[1:]):
        for m0, m1 in zip(before["masks"], after["masks"]):
            assert np.all(m1 <= m0)          # never regrows
    # At an update step every kept weight is at least as large as every
    # weight dropped there (ranking on the weights of that step).
    model2 = mlp()
    algorithm2 = tfs.algorithms.GMP(0.5, begin=0, end=1, frequency=1,
                                    schedule="constant", total_steps=4)
    weights = [mw.variable.numpy() for mw in tfs.masked_weights(model2)]
    model2.compile("sgd", "mse")
    tfs.training.attach(model2, algorithm2)       # prunes at step 0
    for mw, w in zip(tfs.masked_weights(model2), weights):
        mask = mw.mask.numpy()
        assert int(mask.sum()) == kept(0.5, mw.size)
        assert np.abs(w[mask == 1]).min() >= np.abs(w[mask == 0]).max()


def test_global_scope_ranks_across_layers_with_exact_total():
    model = mlp()
    weights = np.concatenate([mw.variable.numpy().ravel()
                              for mw in tfs.masked_weights(model)])
    algorithm = tfs.algorithms.GMP(0.75, begin=0, end=1, frequency=1,
                                   schedule="constant", scope="global",
                                   total_steps=10)
    model.compile("sgd", "mse")
    tfs.training.attach(model, algorithm)
    masks = np.concatenate([mw.mask.numpy().ravel()
                            for mw in tfs.masked_weights(model)])
    assert int(masks.sum()) == kept(0.75, masks.size)
    assert np.abs(weights[masks == 1]).min() >= np.abs(
        weights[masks == 0]).max()
    counts = [mw.nonzeros() for mw in tfs.masked_weights(model)]
    assert len(set(c / mw.size for c, mw in
                   zip(counts, tfs.masked_weights(model)))) > 1


@pytest.mark.parametrize("curve", ["linear", "cubic", "inverse_cubic"])
def test_targets_of_each_curve(curve):
    algorithm = tfs.algorithms.GMP(0.9, initial_sparsity=0.2, begin=0.1,
                                   end=0.6, frequency=10, schedule=curve,
                                   total_steps=1000)
    for step in (0, 100, 150, 250, 400, 600, 1000):
        x = min(1.0, max(0.0, (step - 100) / 500))
        y = {"linear": x, "cubic": 1 - (1 - x) ** 3,
             "inverse_cubic": 1 - (1 - x) ** (1 / 3)}[curve]
        assert algorithm.target(step) == pytest.approx(0.2 + 0.7 * y,
                                                       abs=1e-12)
    assert algorithm.update_steps(1000) == list(range(100, 601, 10))


def test_tfmot_timing_evaluates_the_schedule_one_step_later():
    ours = tfs.algorithms.GMP(0.5, begin=10, end=30, frequency=5,
                              total_steps=40)
    tfmot_like = tfs.algorithms.GMP(0.5, begin=10, end=30, frequency=5,
                                    total_steps=40, tfmot_timing=True)
    assert ours.update_steps(40) == [10, 15, 20, 25, 30]
    assert tfmot_like.update_steps(40) == [9, 14, 19, 24, 29]
    assert tfmot_like.target(14) == ours.target(15)


def test_in_graph_schedule_matches_python_schedule():
    algorithm = tfs.algorithms.GMP(0.87, initial_sparsity=0.05, begin=7,
                                   end=107, frequency=4, total_steps=200)
    steps = tf.range(0, 201, dtype=tf.int64)
    graph = tf.function(lambda s: algorithm.should_update(s))(steps).numpy()
    assert list(np.flatnonzero(graph)) == algorithm.update_steps(200)
    sched = algorithm.schedule(steps)[1].numpy()
    for step in range(0, 201, 9):
        assert sched[step] == pytest.approx(algorithm.target(step), abs=1e-6)


def tfmot_python():
    """A Python that imports tfmot: this one (the `tfmot` extra), else the
    separate .venv-tfmot that benchmarks/step_time.py creates; or None."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    for python in (sys.executable,
                   os.path.join(root, ".venv-tfmot", "bin", "python")):
        if not os.path.exists(python):
            continue
        probe = subprocess.run(
            [python, "-c", "import tensorflow_model_optimization"],
            capture_output=True, text=True)
        if probe.returncode == 0:
            return python
    return None


def test_agrees_with_tfmot_when_installed():
    """tfmot sets TF_USE_LEGACY_KERAS on import, so it runs in a subprocess."""
    python = tfmot_python()
    if python is None:
        pytest.skip("tensorflow-model-optimization is not installed "
                    "(pip install -e .[tfmot])")
    ours = tfs.algorithms.GMP(0.85, initial_sparsity=0.1, begin=0.1, end=0.6,
                              frequency=5, total_steps=300)
    const = tfs.algorithms.GMP(0.7, begin=0.2, frequency=11,
                               schedule="constant", end=-1, total_steps=300)
    script = textwrap.dedent(f"""
        import json
        import tensorflow_model_optimization as tfmot
        s = tfmot.sparsity.keras
        poly = s.PolynomialDecay(**{ours.schedule.tfmot_kwargs()!r})
        const = s.ConstantSparsity(**{const.schedule.tfmot_kwargs()!r})
        out = []
        for step in range(0, 302):
            a, b = poly(step), const(step)
            out.append([bool(a[0]), float(a[1]), bool(b[0]), float(b[1])])
        print(json.dumps(out))
    """)
    result = subprocess.run([python, "-c", script],
                            capture_output=True, text=True, check=True)
    reference = __import__("json").loads(result.stdout.strip().splitlines()[-1])
    tf_ours = tfs.algorithms.GMP(0.85, initial_sparsity=0.1, begin=0.1,
                                 end=0.6, frequency=5, total_steps=300,
                                 tfmot_timing=True)
    for step, (p_prune, p_value, c_prune, c_value) in enumerate(reference):
        # tfmot calls its schedule with iterations + 1: our hook step + 1.
        if step == 0:
            continue
        ours_step = step - 1
        assert tf_ours.should_update(ours_step) == p_prune
        assert tf_ours.target(ours_step) == pytest.approx(p_value, abs=1e-6)
        assert const.schedule(step)[0] == c_prune
        assert const.schedule(step)[1] == pytest.approx(c_value)


def test_magnitude_selection_is_exact_with_ties_to_the_lower_index():
    scores = tf.constant([1.0, 3.0, 3.0, 0.0, 3.0, 2.0])
    every = tf.ones([6], tf.bool)
    keep = topk.select_top(scores, every, tf.constant(2)).numpy()
    assert keep.tolist() == [False, True, True, False, False, False]
    keep = topk.select_top(scores, every, tf.constant(4)).numpy()
    assert keep.tolist() == [False, True, True, False, True, True]
    assert magnitude.kept_count(tf.constant(0.9), 430_500).numpy() == 43_050
    assert magnitude.kept_count_py(0.999999, 10) == 1


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="final=0.2 is below initial=0.5"):
        tfs.algorithms.GMP(0.2, initial_sparsity=0.5, begin=0, end=10)
    with pytest.raises(ValueError, match="ends before it begins"):
        tfs.algorithms.GMP(0.9, begin=0.6, end=0.3, total_steps=100)
    with pytest.raises(ValueError, match="scope='everywhere'"):
        tfs.algorithms.GMP(0.9, end=10, scope="everywhere")
    with pytest.raises(ValueError, match="needs scope='layerwise'"):
        tfs.algorithms.GMP({"fc1": 0.9}, end=10, scope="global")
    with pytest.raises(ValueError, match="schedule 'quartic'"):
        tfs.algorithms.GMP(0.9, end=10, schedule="quartic")
    with pytest.raises(ValueError, match=r"sparsity must be a number in \[0, 1\)"):
        tfs.algorithms.GMP(1.5, end=10)
    with pytest.warns(UserWarning, match="never reached"):
        tfs.algorithms.GMP(0.9, begin=0, end=10, frequency=3)
    model = mlp()
    algorithm = tfs.algorithms.GMP({"fc*": 0.9}, end=10, frequency=5)
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="matches no key for masked weight "
                       "'out/kernel'"):
        tfs.training.attach(model, algorithm)


def test_per_layer_final_sparsity_dict():
    model = mlp()
    algorithm = tfs.algorithms.GMP({"fc1": 0.9, "fc2": 0.5, "out": 0.0},
                                   begin=0, end=6, frequency=3,
                                   schedule="linear", total_steps=12)
    train(model, algorithm, 12)
    counts = {mw.path: mw.nonzeros() for mw in tfs.masked_weights(model)}
    assert counts == {"fc1/kernel": kept(0.9, 256), "fc2/kernel": kept(0.5, 512),
                      "out/kernel": 48}


def test_schedule_object_gives_or_takes_the_final_sparsity():
    from tf_sparse import schedules
    sched = schedules.PolynomialSparsity(0.0, 0.8, begin=0, end=10,
                                         frequency=5)
    assert tfs.algorithms.GMP(schedule=sched).target(10) == pytest.approx(0.8)
    assert tfs.algorithms.GMP(0.6, schedule=sched).target(10) == \
        pytest.approx(0.6)
    model = mlp()
    algorithm = tfs.algorithms.GMP(schedule=sched)
    train(model, algorithm, 10)
    assert [mw.nonzeros() for mw in tfs.masked_weights(model)] == [
        kept(0.8, mw.size) for mw in tfs.masked_weights(model)]
    with pytest.raises(ValueError, match="GMP needs final_sparsity"):
        tfs.algorithms.GMP(end=10)


def test_final_update_reaches_the_target_off_the_grid():
    with pytest.warns(UserWarning, match="final_update=True"):
        plain = tfs.algorithms.GMP(0.9, begin=0, end=10, frequency=4,
                                   total_steps=12)
    assert plain.update_steps() == [0, 4, 8]
    snapped = tfs.algorithms.GMP(0.9, begin=0, end=10, frequency=4,
                                 total_steps=12, final_update=True)
    assert snapped.update_steps() == [0, 4, 8, 10]
    import tensorflow as tf
    graph = [bool(snapped.should_update(tf.constant(s, tf.int64)))
             for s in range(13)]
    assert [s for s, due in enumerate(graph) if due] == [0, 4, 8, 10]
    model = mlp()
    train(model, snapped, 12)
    assert [mw.nonzeros() for mw in tfs.masked_weights(model)] == [
        kept(0.9, mw.size) for mw in tfs.masked_weights(model)]
