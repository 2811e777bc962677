"""Linear-interpolation instability: the error barrier between two networks.

Frankle et al. 2020 ("Linear Mode Connectivity and the Lottery Ticket
Hypothesis"): for two trained copies W1, W2 of a network, the error along the
line `E(alpha * W1 + (1 - alpha) * W2)` is evaluated at 30 evenly spaced
alphas in [0, 1], and the instability is the error barrier

    barrier = max_alpha E(alpha) - mean(E(W1), E(W2)),

on classification error (train or test). A network is "stable" when the
barrier is below 2 percentage points (0.02). Every variable is
interpolated, including BatchNorm moving statistics (no re-estimation);
integer variables (seed-generator states) are taken from W1. Two copies under
the same mask interpolate within that mask (pruned entries stay 0).

Example:

    alphas = default_alphas()                         # 30 points
    curve = error_curve(model, w1, w2, {"test": test_ds}, alphas)
    barrier(curve["test"])
"""

import numpy as np

from tf_sparse import backend

N_ALPHAS = 30
STABLE_BELOW = 0.02


def default_alphas(n=N_ALPHAS):
    """`n` evenly spaced values from 0 to 1, both included."""
    if n < 2:
        raise ValueError(f"need at least 2 interpolation points, got {n}.")
    return np.linspace(0.0, 1.0, int(n))


def interpolate(values_1, values_2, alpha):
    """alpha * W1 + (1 - alpha) * W2 for float arrays; W1 for the others."""
    out = []
    for a, b in zip(values_1, values_2):
        a, b = np.asarray(a), np.asarray(b)
        if np.issubdtype(a.dtype, np.floating):
            mixed = alpha * a.astype(np.float64) + (1.0 - alpha) * b.astype(
                np.float64)
            out.append(mixed.astype(a.dtype))
        else:
            out.append(a)
    return out


def classification_error(model, dataset, forward=None):
    """Fraction of examples whose argmax logit is not the label (ties go to
    the lower class index, as in `np.argmax`)."""
    forward = forward or backend.inference(model)
    wrong = total = 0
    for x, y in dataset:
        logits = np.asarray(forward(x))
        labels = np.asarray(y).reshape(-1)
        wrong += int(np.sum(np.argmax(logits, axis=-1) != labels))
        total += labels.shape[0]
    return wrong / total


def error_curve(model, values_1, values_2, datasets, alphas=None):
    """Errors along the line between two sets of model variables.

    Args:
      model: a built Keras model; its variables are overwritten (the caller
        restores them if needed).
      values_1, values_2: lists of arrays in `model.variables` order (W1, W2).
      datasets: {name: tf.data of (x, y) batches}, e.g. train and test.
      alphas: interpolation coefficients (default: 30 from 0 to 1). alpha=1
        is W1, alpha=0 is W2.

    Returns:
      {name: list of errors, one per alpha}.
    """
    alphas = default_alphas() if alphas is None else np.asarray(alphas)
    variables = list(model.variables)
    if len(variables) != len(values_1) or len(values_1) != len(values_2):
        raise ValueError("values do not match the model's variables.")
    forward = backend.inference(model)
    curves = {name: [] for name in datasets}
    for alpha in alphas:
        for v, value in zip(variables, interpolate(values_1, values_2,
                                                    float(alpha))):
            v.assign(value)
        for name, ds in datasets.items():
            curves[name].append(classification_error(model, ds, forward))
    return curves


def barrier(errors):
    """max(errors) - mean of the two end points (the first and last entry)."""
    errors = np.asarray(errors, dtype=np.float64)
    return float(errors.max() - 0.5 * (errors[0] + errors[-1]))
