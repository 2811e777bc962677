"""Which Keras backend runs, and the few backend-specific steps tf-sparse needs.

Keras 3 picks its backend once, from `KERAS_BACKEND` (or
`~/.keras/keras.json`), before `keras` is first imported. Masks, their
enforcement (`masking.MaskConstraint`, applied by every Keras optimizer),
`sparsify`, `summary`, `strip` and `.keras` save/load work on the
TensorFlow, JAX and PyTorch backends. Mask updates run inside TensorFlow's
compiled train step on the TensorFlow backend and eagerly between steps on
the others (`tf_sparse.training`); the run engine behind `tools/train.py`
runs on all three (`tf_sparse.runs.eager`). Features built on TensorFlow itself
(tf.distribute strategies, SavedModel and LiteRT export, CSR inference,
`compute="sparse"`, tfds pipelines, `tools/train_cifar10.py` and
`train_imagenet.py`) call `require_tensorflow`, which raises one `UnsupportedBackendError` naming
the backend and the alternative.

Example:

    from tf_sparse import backend
    backend.name()                                   # "jax"
    backend.require_tensorflow("tf.train checkpoints",
                               "Save a .keras file with tfs.save_model.")
    grads = backend.gradients(model, [kernel], (x, y), loss)
"""

import keras
import numpy as np

BACKENDS = ("tensorflow", "jax", "torch")


class UnsupportedBackendError(RuntimeError):
    """A TensorFlow-only feature was used under another Keras backend."""


def name():
    """The Keras backend in use: "tensorflow", "jax", "torch" (or another
    name Keras accepts, e.g. "numpy")."""
    return keras.backend.backend()


def is_tensorflow():
    """True on the TensorFlow backend."""
    return name() == "tensorflow"


def check_name(value):
    """`value` if it is one of `BACKENDS`, else a ValueError naming it."""
    if value not in BACKENDS:
        raise ValueError(
            f"Unknown Keras backend {value!r}; accepted: "
            f"{', '.join(BACKENDS)}.")
    return value


def require(feature, backends, alternative=None):
    """Raises `UnsupportedBackendError` unless Keras runs on one of
    `backends`.

    Args:
      feature: what needs them, e.g. "SavedModel export".
      backends: the backend names it works on.
      alternative: what to do instead under this backend (a sentence);
        default: run it on the first of `backends` in a new process.
    """
    if name() in backends:
        return
    where = (f"the {backends[0]} backend of Keras" if len(backends) == 1
             else f"one of the {', '.join(backends)} backends of Keras")
    message = (
        f"{feature} needs {where}; this process runs Keras on {name()!r} "
        "(KERAS_BACKEND, fixed when keras is first imported).")
    message += " " + (alternative or (
        f"Run it with KERAS_BACKEND={backends[0]} in a new process."))
    raise UnsupportedBackendError(message)


def require_tensorflow(feature, alternative=None):
    """Raises `UnsupportedBackendError` unless Keras runs on TensorFlow.

    Args:
      feature: what needs TensorFlow, e.g. "tf.train checkpoints".
      alternative: what to do instead under this backend (a sentence).
    """
    require(feature, ("tensorflow",), alternative)


def inference(model):
    """A function from a batch of inputs (arrays or tf.data's tensors) to
    `model`'s inference-mode outputs, with the variables' values at the
    time of each call: a `tf.function` on TensorFlow, Keras's compiled
    `predict_on_batch` (NumPy in, NumPy out) elsewhere.

    >>> forward = inference(model)
    >>> probabilities = keras.ops.convert_to_numpy(forward(x))
    """
    if is_tensorflow():
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        return tf.function(lambda x: model(x, training=False),
                           reduce_retracing=True)
    return lambda x: model.predict_on_batch(
        keras.ops.convert_to_numpy(x) if not isinstance(x, np.ndarray)
        else x)


def stateless_random(kind, shape, key, counter, dtype="float32"):
    """Random values that depend only on `key` (two ints, e.g. (seed,
    layer)) and `counter` (an int or integer tensor, e.g. a step): the same
    arguments give the same values on every call and every replica.

    `kind` is "uniform" ([0, 1)) or "normal". TensorFlow draws with its
    stateless RNG (`stateless_fold_in` of the counter into the key, inside
    a compiled step too); JAX and PyTorch with `keras.random` seeded by a
    32-bit mix of key and counter (eager updates, where the counter is a
    value). The backends' generators differ, so the draws do too; each is
    reproducible.

    >>> stateless_random("uniform", [3], (0, 1), 7)       # doctest: +SKIP
    """
    if kind not in ("uniform", "normal"):
        raise ValueError(f"Unknown random kind {kind!r}; accepted: "
                         "uniform, normal.")
    if is_tensorflow():
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        seed = tf.random.experimental.stateless_fold_in(
            tf.constant([int(key[0]), int(key[1])], tf.int64),
            tf.cast(counter, tf.int64))
        draw = (tf.random.stateless_uniform if kind == "uniform"
                else tf.random.stateless_normal)
        return draw(shape, seed=seed, dtype=dtype)
    words = [int(key[0]) % 2**32, int(key[1]) % 2**32,
             int(keras.ops.convert_to_numpy(counter)) % 2**32]
    seed = int(np.random.SeedSequence(words).generate_state(1)[0])
    draw = (keras.random.uniform if kind == "uniform"
            else keras.random.normal)
    return draw(shape, seed=seed, dtype=dtype)


def cond(pred, true_fn, false_fn):
    """`true_fn()` if `pred` else `false_fn()`, for code that assigns
    variables: `keras.ops.cond` on TensorFlow (a `tf.cond` inside the
    compiled step), a Python `if` on the value elsewhere (eager updates;
    JAX's `lax.cond` would trace both branches).

    >>> cond(step > 0, lambda: counter.assign_add(1), lambda: None)
    """
    if is_tensorflow():
        def run(fn):
            def branch():
                fn()
                return keras.ops.convert_to_tensor(True)
            return branch
        return keras.ops.cond(pred, run(true_fn), run(false_fn))
    if bool(keras.ops.convert_to_numpy(pred)):
        return true_fn()
    return false_fn()


def check_equal(value, expected, message):
    """Fails when two integer tensors differ: an assertion op inside
    TensorFlow's compiled step (it runs with the step), a `ValueError` at
    once on the other backends (their updates run eagerly).

    >>> check_equal(keras.ops.sum(counts), total, "counts drifted")
    """
    if is_tensorflow():
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        tf.debugging.assert_equal(value, expected, message=message)
        return
    got = keras.ops.convert_to_numpy(value)
    want = keras.ops.convert_to_numpy(expected)
    if not np.array_equal(got, want):
        raise ValueError(f"{message}: {got} != {want}.")


def _loss_value(loss, y, y_pred, sample_weight):
    if sample_weight is None:
        value = loss(y, y_pred)
    else:
        value = loss(y, y_pred, sample_weight=sample_weight)
    return keras.ops.mean(value)


def gradients(model, variables, data, loss=None, training=True):
    """Dense gradients of a loss on one batch w.r.t. `variables`, as NumPy.

    Computed with the backend's own autodiff (tf.GradientTape, jax.grad,
    torch.autograd) at the variables' current values. Non-trainable state
    the forward pass changes (batch-norm statistics, seed generators) is
    restored afterwards, so calling this changes nothing.

    Args:
      model: a built Keras model.
      variables: trainable `keras.Variable`s of `model`.
      data: `(x, y)` or `(x, y, sample_weight)`.
      loss: a Keras loss or `loss(y_true, y_pred)`; None uses the compiled
        loss (`model.compute_loss`, regularisation included; metrics are
        not updated).
      training: the forward pass's training flag.

    Returns:
      A list of float arrays, one per variable (zeros where the loss does
      not depend on it).
    """
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    if isinstance(loss, str):
        loss = keras.losses.get(loss)

    def loss_of(y_pred):
        if loss is None:
            return model.compute_loss(x=x, y=y, y_pred=y_pred,
                                      sample_weight=sample_weight,
                                      training=False)
        return _loss_value(loss, y, y_pred, sample_weight)

    if name() not in _BACKEND_GRADIENTS:
        raise UnsupportedBackendError(
            f"Gradients are computed on the {', '.join(BACKENDS)} backends; "
            f"this process runs Keras on {name()!r}.")
    saved = [keras.ops.convert_to_numpy(v)
             for v in model.non_trainable_variables]
    try:
        grads = _BACKEND_GRADIENTS[name()](model, list(variables), x, loss_of,
                                           training)
    finally:
        for variable, old in zip(model.non_trainable_variables, saved):
            variable.assign(old)
    return [np.zeros(tuple(v.shape), keras.backend.standardize_dtype(v.dtype))
            if g is None else np.asarray(g) for g, v in zip(grads, variables)]


def _tensorflow_gradients(model, variables, x, loss_of, training):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    with tf.GradientTape() as tape:
        value = loss_of(model(x, training=training))
    grads = tape.gradient(value, variables)
    return [None if g is None else tf.convert_to_tensor(g).numpy()
            for g in grads]


def _jax_gradients(model, variables, x, loss_of, training):
    import jax  # pylint: disable=import-outside-toplevel
    wanted = {id(v) for v in variables}
    fixed = [(v, v.value) for v in model.variables if id(v) not in wanted]

    def value(values):
        mapping = list(zip(variables, values)) + fixed
        with keras.StatelessScope(state_mapping=mapping):
            return loss_of(model(x, training=training))

    grads = jax.grad(value)([v.value for v in variables])
    return [np.asarray(g) for g in grads]


def _torch_gradients(model, variables, x, loss_of, training):
    import torch  # pylint: disable=import-outside-toplevel
    with torch.enable_grad():
        value = loss_of(model(x, training=training))
        tensors = [v.value for v in variables]
        grads = torch.autograd.grad(value, tensors, allow_unused=True)
    return [None if g is None else g.detach().cpu().numpy() for g in grads]


_BACKEND_GRADIENTS = {
    "tensorflow": _tensorflow_gradients,
    "jax": _jax_gradients,
    "torch": _torch_gradients,
}
