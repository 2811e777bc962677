"""The interface every mask-update algorithm implements.

An algorithm is three decisions (see docs/design.md):
  * when: `should_update(step)`, a schedule over optimizer steps;
  * what to drop: a score over active weights (lowest scores are removed);
  * what to grow: a score over inactive weights (highest scores are added).

`tf_sparse.training.attach` calls `after_train_step(step, data)` at the end
of every train step, inside the compiled train function, so updates happen at
exact steps with `steps_per_execution`, XLA and tf.distribute. On the JAX
and PyTorch backends `tf_sparse.training.EagerUpdates` calls
`eager_update(step, data)` between train steps instead (same `update`).
Keeping pruned weights at zero is not the algorithm's job: the masks'
constraint does that after every optimizer step (`tf_sparse.masking`). `attach` (and the traced
step) pass the model's optimizer through `optimizer_state.prepare`, which
refuses optimizers known to break on sparse models and keeps the masks
through Keras's end-of-fit `finalize_variable_values`.

The hook never sees step 0 (it runs after an optimizer step). An algorithm
with an update due before training (GMP with `begin=0`, AC/DC's first
phase) calls `apply_step_zero(model)` at the end of its `attach`.

Example (a do-nothing algorithm is the static sparse baseline):

    class Static(MaskAlgorithm):
        name = "static"
"""

import contextlib

import keras

from tf_sparse import backend
from tf_sparse import masking
from tf_sparse.algorithms import optimizer_state


def eager_scope():
    """Where an update runs between train steps (JAX, PyTorch, and
    `apply_step_zero`): with 64-bit types under JAX (its float64 counts,
    as on the other backends; JAX has no float64 by default); as it is
    elsewhere."""
    if backend.name() == "jax":
        import jax  # pylint: disable=import-outside-toplevel
        return jax.enable_x64(True)
    return contextlib.nullcontext()


def _step_tensor(step):
    """A Python step as the int64 tensor `update` takes (inside
    `eager_scope`)."""
    return keras.ops.convert_to_tensor(int(step), "int64")


class MaskAlgorithm:
    """Base class: by default the masks never change (static sparsity)."""

    name = "base"

    def __init__(self):
        self.model = None
        self.weights = []

    def attach(self, model):
        """Called once before training; create state variables here.

        Runs under the model's distribution strategy scope.
        """
        self.model = model
        self.weights = masking.masked_weights(model)
        optimizer_state.prepare(getattr(model, "optimizer", None),
                                type(self).__name__)

    def should_update(self, step):
        """Whether to update masks after optimizer step `step` (1-based).

        Returns a Python bool (False means "never", so no update ops are
        traced) or a boolean tensor.
        """
        del step
        return False

    def update(self, step, data):
        """Changes the masks in place (in graph). Only called when due.

        Weights need not be touched: `after_train_step` zeroes the weights of
        dropped positions afterwards.
        """
        raise NotImplementedError

    def after_train_step(self, step, data):
        """Runs `update` when `should_update(step)`; traced in the step."""
        # At trace time: the model may have been compiled after `attach`.
        optimizer_state.prepare(getattr(self.model, "optimizer", None),
                                type(self).__name__)
        due = self.should_update(step)
        if due is False:
            return

        def run():
            self.update(step, data)
            self._zero_inactive_weights()
            return keras.ops.convert_to_tensor(True)

        keras.ops.cond(due, run,
                       lambda: keras.ops.convert_to_tensor(False))

    def eager_update(self, step, data=None):
        """Runs the update due after optimizer step `step` (a Python int)
        eagerly, on the host; True if one ran.

        The path of the JAX and PyTorch backends (`tf_sparse.training`
        drives it between train steps): the same `update` as in TensorFlow's
        train step (its math is `keras.ops`), run eagerly in the backend's
        own ops (`eager_scope`). Dropped weights are zeroed afterwards, as
        in graph.
        """
        optimizer_state.prepare(getattr(self.model, "optimizer", None),
                                type(self).__name__)
        if not bool(self.should_update(int(step))):
            return False
        with eager_scope():
            self.update(_step_tensor(step), data)
            self._zero_inactive_weights()
        return True

    def _zero_inactive_weights(self):
        # Weights follow their new masks at once (dropped ones become 0), so
        # pruned weights are 0 after an update step too.
        for mw in self.weights:
            mw.variable.assign(masking.keep_active(mw.variable, mw.mask))

    def due_at_step_zero(self):
        """Whether `apply_step_zero` updates: by default `should_update(0)`."""
        return bool(self.should_update(0))

    def apply_step_zero(self, model):
        """Runs an update due at step 0 once, eagerly, if `model`'s optimizer
        has not stepped yet (a run resumed from a checkpoint restores masks
        and weights afterwards)."""
        optimizer = getattr(model, "optimizer", None)
        step = 0 if optimizer is None else int(
            keras.ops.convert_to_numpy(optimizer.iterations))
        if step == 0 and self.due_at_step_zero():
            with eager_scope():
                self.update(_step_tensor(0), None)
                self._zero_inactive_weights()

    def checkpoint_items(self):
        """Trackable state to save with the model (dict name -> trackable)."""
        return {}

    def get_config(self):
        return {"name": self.name}
