"""Knowledge distillation: the loss by hand, shape errors, any algorithm,
on the Keras backend this process runs on (TensorFlow in the normal suite,
JAX and PyTorch through tests/test_backends.py)."""

import keras
import numpy as np
import pytest

import tf_sparse as tfs
from tf_sparse import distillation


def softmax(z):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_soft_loss_equals_hand_computed_kl_times_t_squared():
    s = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], np.float32)
    t = np.array([[2.0, 1.0, 0.0], [1.0, 1.0, 1.0]], np.float32)
    T = 3.0
    p, q = softmax(t / T), softmax(s / T)
    expected = (p * (np.log(p) - np.log(q))).sum(-1) * T * T
    got = keras.ops.convert_to_numpy(distillation.soft_loss(s, t, T))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # Identical logits: zero soft loss.
    assert float(np.max(np.abs(keras.ops.convert_to_numpy(
        distillation.soft_loss(s, s, T))))) < 1e-6


def test_kd_loss_mixes_hard_and_soft():
    s = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], np.float32)
    t = np.array([[2.0, 1.0, 0.0], [1.0, 1.0, 1.0]], np.float32)
    y = np.array([1, 2])
    hard = -np.log(softmax(s)[np.arange(2), y]).mean()
    p, q = softmax(t / 2.0), softmax(s / 2.0)
    soft = ((p * (np.log(p) - np.log(q))).sum(-1) * 4.0).mean()
    got = float(distillation.kd_loss(y, s, t, temperature=2.0, alpha=0.3))
    assert got == pytest.approx(0.7 * hard + 0.3 * soft, rel=1e-5)


def small(classes=3, name=None, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8,))
    x = keras.layers.Dense(16, activation="relu", name="fc1")(inputs)
    return keras.Model(inputs, keras.layers.Dense(classes, name="out")(x),
                       name=name)


def test_train_loss_is_the_mix_and_evaluation_the_hard_loss():
    student, teacher = small(name="student"), small(name="teacher", seed=1)
    distiller = distillation.Distiller(student, teacher, temperature=2.0,
                                       alpha=0.25)
    distiller.compile(keras.optimizers.SGD(0.0),
                      keras.losses.SparseCategoricalCrossentropy(
                          from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 8)).astype("float32")
    y = rng.integers(0, 3, size=16)
    s = keras.ops.convert_to_numpy(student(x))
    t = keras.ops.convert_to_numpy(teacher(x))
    hard = -np.log(softmax(s)[np.arange(16), y]).mean()
    p, q = softmax(t / 2.0), softmax(s / 2.0)
    soft = ((p * (np.log(p) - np.log(q))).sum(-1) * 4.0).mean()
    history = distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert history.history["loss"][0] == pytest.approx(
        0.75 * hard + 0.25 * soft, rel=1e-4)
    assert distiller.evaluate(x, y, verbose=0) == pytest.approx(hard,
                                                                rel=1e-4)
    assert not teacher.trainable
    assert distiller.trainable_variables == student.trainable_variables


def test_teacher_output_shape_must_match():
    with pytest.raises(ValueError, match=r"teacher outputs shape \(None, 5\) "
                       r"but the student outputs \(None, 3\)"):
        distillation.Distiller(small(3), small(5))


def test_shape_mismatch_of_a_subclassed_teacher_is_caught_at_the_first_batch():
    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(4)

        def call(self, x):
            return self.dense(x)

    distiller = distillation.Distiller(small(3), Sub())
    distiller.compile("sgd", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    with pytest.raises(ValueError, match="teacher outputs shape .*4.* but the "
                       "student outputs .*3"):
        distiller.fit(np.zeros((4, 8), "float32"), np.zeros(4), verbose=0)


def test_bad_temperature_and_alpha():
    with pytest.raises(ValueError, match="temperature=0"):
        distillation.Distiller(small(), small(), temperature=0)
    with pytest.raises(ValueError, match="alpha=1.5"):
        distillation.Distiller(small(), small(), alpha=1.5)


@pytest.mark.parametrize("name", ["static", "gmp", "acdc"])
def test_works_with_any_algorithm(name):
    student = tfs.sparsify(small(name="student"),
                           sparsity=0.0 if name != "static" else 0.5)
    kwargs = {"static": {},
              "gmp": dict(final_sparsity=0.75, begin=0, end=4, frequency=2,
                          total_steps=8),
              "acdc": dict(sparsity=0.75, warmup=2, phase_length=2,
                           end_sparse=2, total_steps=8)}[name]
    algorithm = tfs.algorithms.get(name, **kwargs)
    distiller = distillation.Distiller(student, small(name="teacher", seed=3))
    distiller.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                      keras.losses.SparseCategoricalCrossentropy(
                          from_logits=True))
    rng = np.random.default_rng(0)
    distiller.fit(rng.normal(size=(64, 8)).astype("float32"),
                  rng.integers(0, 3, 64), batch_size=8, verbose=0,
                  callbacks=[tfs.callbacks.MaskUpdate(algorithm)])
    weights = tfs.masked_weights(student)
    total = sum(mw.size for mw in weights)
    kept = sum(mw.nonzeros() for mw in weights)
    assert kept == round((0.5 if name == "static" else 0.25) * total)
    for mw in weights:
        value = keras.ops.convert_to_numpy(mw.variable)
        assert np.all(value[keras.ops.convert_to_numpy(mw.mask) == 0] == 0.0)
    if name == "acdc":   # the co-trained dense model is the student's
        assert len(algorithm.dense_weights()) == len(student.weights)
