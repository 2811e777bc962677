"""Evaluating a schedule at a step: the Python path and the tensor path.

``schedule(step)`` accepts

* a Python (or NumPy) int: everything is computed in Python (float64) and
  Python ``float`` / ``bool`` values are returned;
* an integer tensor or variable (e.g. ``optimizer.iterations``) of any
  shape: the result is computed elementwise with ``keras.ops`` in float32,
  with no Python branching on tensor values, so it traces once inside
  ``tf.function`` (also ``jit_compile=True``/XLA) and does not retrace per
  step.

A family's ``__call__`` picks the path with `is_python_step`, reads the
step with `python_step` or `step_tensor`, and builds its value from the
shared shapes below, which take either a Python number or a tensor.

Example:

    >>> from tf_sparse.schedules.evaluation import half_cosine, progress, step_tensor
    >>> progress(250, 0, 1000), half_cosine(progress(250, 0, 500))
    (0.25, 0.5)
    >>> float(progress(step_tensor(250), 0, 1000))
    0.25
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from tf_sparse.schedules.steps import is_integer


def is_python_step(step) -> bool:
    """True if ``step`` takes the Python (float64) path: a Python/NumPy int."""
    return is_integer(step)


def python_step(step) -> int:
    """A Python-path step as an int, checked to be >= 0."""
    if step < 0:
        raise ValueError(
            f"step={step!r} is negative: step counts completed optimizer "
            "steps and must be >= 0."
        )
    return int(step)


def step_tensor(step):
    """Any tensor-path step (int tensor, variable, array) as an int64 tensor
    (int32 under JAX without x64, which has no int64: `step_dtype`)."""
    if isinstance(step, (bool, float)):
        raise TypeError(
            f"step={step!r} is not accepted: pass a Python int or an integer "
            "tensor/variable such as optimizer.iterations."
        )
    t = ops.convert_to_tensor(step)
    dtype = keras.backend.standardize_dtype(t.dtype)
    if dtype == "bool":
        raise TypeError("step must be an integer tensor, got a bool tensor.")
    if "float" in dtype:
        t = ops.floor(t)
    return ops.cast(t, step_dtype())


def step_dtype():
    """The integer dtype of tensor steps: "int64", or "int32" under JAX
    without x64 (there int64 is not available: JAX truncates it to int32
    with a warning on every call).

    >>> step_dtype()
    'int64'    # on TensorFlow and PyTorch
    """
    if keras.backend.backend() == "jax":
        import jax  # pylint: disable=import-outside-toplevel
        if not jax.config.jax_enable_x64:
            return "int32"
    return "int64"


def as_float32(x):
    """``x`` cast to a float32 tensor."""
    return ops.cast(x, "float32")


def progress(step, begin: int, end: int):
    """``clip((step - begin) / (end - begin), 0, 1)``.

    A Python int ``step`` gives a Python float; an int64 tensor gives float32
    in the operation order of tfmot's ``PolynomialDecay``.
    """
    if isinstance(step, int):
        return min(1.0, max(0.0, (step - begin) / (end - begin)))
    ratio = ops.divide(as_float32(ops.subtract(step, begin)),
                       np.float32(end - begin))
    return ops.minimum(np.float32(1.0), ops.maximum(np.float32(0.0), ratio))


def half_cosine(p):
    """``0.5 * (1 + cos(pi * p))``: 1 at ``p = 0`` down to 0 at ``p = 1``.

    A Python float ``p`` gives a Python float, a tensor a float32 tensor.
    """
    if isinstance(p, float):
        return 0.5 * (1.0 + math.cos(math.pi * p))
    return ops.multiply(
        np.float32(0.5),
        ops.add(np.float32(1.0), ops.cos(ops.multiply(np.float32(math.pi), p))),
    )
