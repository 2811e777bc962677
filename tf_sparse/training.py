"""The one place where masks meet the Keras training step.

Masks are enforced by the optimizer (see `tf_sparse.masking`) on every
backend. On the TensorFlow backend this module adds the algorithm's hook to
the model's own `train_step`, so that mask updates run inside the compiled
train function right after the optimizer step, at exact steps, for any
model class and with the user's own optimizer, loss and `fit`.

On the JAX and PyTorch backends the train step is the backend's own (a
jitted pure function of the model state under JAX), so `attach` only
attaches the algorithm, and `EagerUpdates` (driven by
`tfs.callbacks.MaskUpdate`) runs each due update eagerly between two train
steps, then rebuilds the train function so the next step reads the new
masks (JAX traces variables outside its state, such as masks, as
constants).

Example:

    tfs.training.attach(model, tfs.algorithms.Static())
    model.fit(...)      # or use the tfs.callbacks.MaskUpdate callback
"""

import typing

import keras
import numpy as np

from tf_sparse import backend
from tf_sparse import masking
from tf_sparse import sparse_compute
from tf_sparse.algorithms import base
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
    if not backend.is_tensorflow():
        _attach_eager(model, algorithm)
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


def _attach_eager(model, algorithm):
    """`attach` under JAX / PyTorch: the algorithm only (no train-step hook;
    `EagerUpdates` runs its updates)."""
    if (getattr(algorithm, "needs_gradient", False)
            and getattr(algorithm, "gradient_source", None) == "tape"):
        raise backend.UnsupportedBackendError(
            f"{type(algorithm).__name__}(gradient_source='tape') records the "
            "gradient with tf.GradientTape, which sees nothing on the "
            f"{backend.name()!r} backend. Use gradient_source='optimizer' "
            "(the default): here it is the gradient of the update step's "
            "batch at the weights before that step, computed with the "
            "backend's autodiff.")
    previous = getattr(model, _ALGORITHM, None)
    if previous is not None:
        detach(model)
    algorithm.attach(model)
    tap = getattr(algorithm, "tap", None)
    if tap is not None:
        # The tap reads gradients inside TensorFlow's optimizer step; here
        # EagerUpdates computes them itself (see its docstring).
        tap.remove()
        if tap.ema:
            raise backend.UnsupportedBackendError(
                f"{type(algorithm).__name__} keeps a moving average of the "
                "gradients of every step (momentum_source='ema', or an "
                "optimizer without momentum), which tf-sparse reads inside "
                "TensorFlow's train step only; this process runs Keras on "
                f"{backend.name()!r}. Use SGD with momentum, Adam, AdamW or "
                "Nadam (their momentum is read from the optimizer), or the "
                "TensorFlow backend.")
    object.__setattr__(model, _ALGORITHM, algorithm)


def attached_algorithm(model):
    """The algorithm attached to `model`, or None."""
    return getattr(model, _ALGORITHM, None)


def detach(model):
    """Removes the hook; the model trains with its own train_step again."""
    if getattr(model, _BASE_STEP, None) is None:
        if getattr(model, _ALGORITHM, None) is not None:
            object.__delattr__(model, _ALGORITHM)       # eager attach
            model.train_function = None
        return
    for name in (_BASE_STEP, _ALGORITHM, "train_step"):
        object.__delattr__(model, name)
    model.train_function = None


class BatchWithMasks(typing.NamedTuple):
    """A batch and the current mask values, the argument of JAX's compiled
    step while `EagerUpdates` runs (a pytree: JAX traces the masks as
    inputs)."""
    batch: typing.Any
    masks: list


class EagerUpdates:
    """Runs an attached algorithm's mask updates between train steps, for
    the JAX and PyTorch backends (`tfs.callbacks.MaskUpdate` drives it).

    After optimizer step `s`, when `algorithm.should_update(s)`, it runs
    `algorithm.eager_update(s, batch)`: the model's state is synchronised
    into its variables first (`jax_state_sync` under JAX). Under JAX the
    masks are inputs of the compiled step (`masking.masks_as_inputs`), so
    the next step reads the new masks without a new trace; on PyTorch the
    train function is rebuilt after the update.
    Steps are counted in Python from `optimizer.iterations` at the start of
    `fit` (no device read on other steps), which needs one step per
    execution (`steps_per_execution=1`).

    Algorithms that read the optimizer's gradient tap (RigL; sparse
    momentum with `growth="gradient"`) get the same signal as in
    TensorFlow's step: the dense gradient of the update step's batch (kept
    by a thin wrapper around the train function) at the weights before that
    step (kept at the step's start), computed with the backend's autodiff
    (`backend.gradients`, training mode; non-trainable state restored). With
    `skip_gradient_step` the weights and optimizer slots are put back to
    their values before the step (the step counter still advances; unlike
    TensorFlow's tap, decoupled weight decay is skipped with the step).

    Example:

        updates = EagerUpdates(model, algorithm)   # after training.attach
        updates.train_begin()
        ... updates.batch_begin(); <train step>; updates.batch_end() ...
        updates.train_end()
    """

    def __init__(self, model, algorithm):
        self.model = model
        self.algorithm = algorithm
        self.step = None
        self.batch = None
        self._before = None
        tap = getattr(algorithm, "tap", None)
        self._capture = tap is not None and bool(tap.captured)
        self._skip = bool(getattr(algorithm, "skip_gradient_step", False))
        # An algorithm that never updates (static, SNIP) costs nothing.
        self._static = (type(algorithm).should_update
                        is base.MaskAlgorithm.should_update)

    def _optimizer(self):
        return getattr(self.model, "optimizer", None)

    def _sync(self):
        if hasattr(self.model, "jax_state_sync"):
            self.model.jax_state_sync()

    def train_begin(self):
        """At the start of `fit`: reads the step, checks the execution size,
        installs the train function (rebuilt even for a static algorithm:
        masks changed between two `fit` calls must not stay traced in)."""
        if self._static:
            self.rebuild_train_function()
            return
        if int(getattr(self.model, "steps_per_execution", 1) or 1) != 1:
            raise ValueError(
                f"{type(self.algorithm).__name__} on the {backend.name()!r} "
                "backend updates masks between executions of the train "
                "function, so it needs steps_per_execution=1 in "
                f"compile(); got {self.model.steps_per_execution}.")
        self._sync()
        optimizer = self._optimizer()
        self.step = 0 if optimizer is None else int(
            keras.ops.convert_to_numpy(optimizer.iterations))
        self.rebuild_train_function()

    def rebuild_train_function(self):
        """A new train function that reads the current masks; wrapped to
        keep the batch when the algorithm needs the update step's gradient.

        Under JAX the masks are arguments of the compiled step
        (`masking.masks_as_inputs`): it is built once per `fit` and new
        masks need no new trace. On PyTorch it is rebuilt after each update.
        """
        model = self.model
        if backend.name() == "jax":
            self._jax_masks_as_inputs()
            return
        model.make_train_function(force=True)
        if not self._capture:
            return
        inner = model.train_function
        keeper = self

        def train_function(data):
            keeper.batch = data[0]
            return inner(data)

        model.train_function = train_function

    def _jax_masks_as_inputs(self):
        """JAX: a train step that takes the mask values with each batch and
        enforces them inside `masking.masks_as_inputs`, so the compiled step
        reads them as inputs rather than tracing them in as constants.

        The model's `train_step` is replaced by an instance attribute until
        `train_end`; Keras's own `make_train_function` compiles it (with
        `jit_compile`) and feeds it one batch per call
        (`steps_per_execution=1`).
        """
        model = self.model
        variables = [mw.mask for mw in masking.masked_weights(model)]
        class_step = type(model).train_step

        def train_step(state, data):
            # A batch that comes without masks (a train function Keras
            # built after a `fit` that ended without `train_end`, e.g. on an
            # exception) runs Keras's own step.
            if not isinstance(data, BatchWithMasks):
                return class_step(model, state, data)
            with masking.masks_as_inputs(variables, data.masks):
                return class_step(model, state, data.batch)

        model.train_step = train_step
        model.make_train_function(force=True)
        inner = model.train_function
        keeper = self if self._capture else None

        def train_function(state, iterator):
            batch = next(iterator)
            if keeper is not None:
                keeper.batch = batch
            masks = [v.value for v in variables]
            return inner(state, iter([BatchWithMasks(batch, masks)]))

        model.train_function = train_function

    def train_end(self):
        """At the end of `fit`: gives the model back Keras's own train step
        (under JAX) and drops the wrapped train function, so a later `fit`
        without this callback builds its own."""
        if vars(self.model).pop("train_step", None) is not None:
            self.model.train_function = None

    def _due(self, step):
        return bool(self.algorithm.should_update(step))

    def _trainable_and_slots(self):
        optimizer = self._optimizer()
        variables = list(self.model.trainable_variables)
        if optimizer is not None and (self._skip or self._capture):
            variables += [v for v in optimizer.variables
                          if v is not optimizer.iterations]
        return variables

    def batch_begin(self):
        """Before a train step: keeps the weights (and slots) the step
        starts from when the update after it needs them."""
        if self._static or self.step is None:
            return
        if (self._skip or self._capture) and self._due(self.step + 1):
            self._sync()
            self._before = [(v, np.array(keras.ops.convert_to_numpy(v)))
                            for v in self._trainable_and_slots()]

    def batch_end(self):
        """After a train step: runs the update due at this step."""
        if self._static or self.step is None:
            return
        self.step += 1
        if not self._due(self.step):
            return
        self._sync()
        if self._capture:
            self._capture_gradients()
        if self._skip and self._before is not None:
            for variable, value in self._before:
                variable.assign(value)
        self._before = None
        self.algorithm.eager_update(self.step, self.batch)
        self.batch = None
        if backend.name() != "jax":   # under JAX the masks are step inputs
            self.rebuild_train_function()

    def _capture_gradients(self):
        if self.batch is None or self._before is None:
            raise RuntimeError(
                f"{type(self.algorithm).__name__}: the batch or the weights "
                f"of update step {self.step} were not kept; "
                "EagerUpdates.train_begin must run before fit's first step.")
        trainable = {id(v) for v in self.model.trainable_variables}
        after = []
        for variable, value in self._before:
            if id(variable) in trainable:
                after.append((variable, keras.ops.convert_to_numpy(variable)))
                variable.assign(value)
        masked = [mw.variable for mw in self.algorithm.weights]
        grads = backend.gradients(self.model, masked, self.batch,
                                  training=True)
        for variable, value in after:
            variable.assign(value)
        tap = self.algorithm.tap
        for i, grad in enumerate(grads):
            captured = tap.captured[i]
            captured.assign(grad.astype(
                keras.backend.standardize_dtype(captured.dtype)))
