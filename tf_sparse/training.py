"""The one place where masks meet the Keras training step.

Masks are enforced by the optimizer (see `tf_sparse.masking`); this module
adds the algorithm's hook to the model's own `train_step`, so that mask
updates run inside the compiled train function right after the optimizer
step, at exact steps, for any model class and with the user's own optimizer,
loss and `fit`.

Example:

    tfs.training.attach(model, tfs.algorithms.Static())
    model.fit(...)      # or use the tfs.callbacks.MaskUpdate callback
"""

from tf_sparse import masking
from tf_sparse import sparse_compute
from tf_sparse.algorithms import sparse_form

_BASE_STEP = "_tf_sparse_base_train_step"
_ALGORITHM = "_tf_sparse_algorithm"


def attach(model, algorithm):
    """Runs `algorithm.after_train_step` after every optimizer step of `fit`.

    Idempotent for the same algorithm; attaching another algorithm replaces
    the previous one. The model's compiled train function is reset so the
    next `fit` traces the hook.
    """
    computes_sparse = sparse_compute.is_sparse_compute(model)
    if not (masking.is_sparse(model) or computes_sparse):
        raise ValueError(
            f"Model {model.name!r} has no masks; call tfs.sparsify first.")
    if computes_sparse:
        # Layers holding only their nonzeros: the algorithm's update on
        # that form (`algorithms.sparse_form`).
        algorithm = sparse_form.for_sparse_compute(algorithm)
    if getattr(model, _ALGORITHM, None) is algorithm:
        return
    with model.distribute_strategy.scope():
        algorithm.attach(model)
    base_step = getattr(model, _BASE_STEP, None) or model.train_step

    def train_step(data):
        logs = base_step(data)
        algorithm.after_train_step(model.optimizer.iterations, data)
        return logs

    # Instance attributes: the model's class and its own train_step stay as
    # they are, so subclassed models with a custom train_step work too.
    object.__setattr__(model, _BASE_STEP, base_step)
    object.__setattr__(model, _ALGORITHM, algorithm)
    object.__setattr__(model, "train_step", train_step)
    model.train_function = None


def attached_algorithm(model):
    """The algorithm attached to `model`, or None."""
    return getattr(model, _ALGORITHM, None)


def detach(model):
    """Removes the hook; the model trains with its own train_step again."""
    if getattr(model, _BASE_STEP, None) is None:
        return
    for name in (_BASE_STEP, _ALGORITHM, "train_step"):
        object.__delattr__(model, name)
    model.train_function = None
