"""What mask algorithms read from and write to a Keras 3 optimizer.

* `momentum_kind(optimizer)` / `momentum(optimizer, variable)`: the momentum
  signal sparse momentum ranks by. SGD with momentum: its momentum buffer
  (`optimizer.momentums[i]`). Adam, AdamW, Nadam: the first moment over the
  root of the second, `m / (sqrt(v) + epsilon)`, as the sparse_learning
  reference does for Adam (it uses PyTorch's `exp_avg / (sqrt(exp_avg_sq) +
  1e-8)`; we use the optimizer's own epsilon). Keras's SGD buffer is
  `m <- mu * m - lr * g`, i.e. `-lr` times PyTorch's `buf <- mu * buf + g`:
  the sign and the constant factor change neither the ranking within a layer
  nor the normalised layer shares (a learning rate that changes between
  steps weights older gradients differently, as in any momentum buffer).
* `resolve_momentum_source(optimizer, source, owner)`: "optimizer" when
  `momentum` can read this optimizer (and `source` allows it), else "ema".
* `slot_variables(optimizer, variable)`: every per-weight slot of the
  optimizer for `variable` (momentum, first/second moments, ...), found as
  the optimizer's lists with one variable per trainable variable;
  `zero_slots` sets them to 0 (the slots of dropped or grown weights in a
  prune-and-grow update, all slots of the masked weights at an AC/DC phase
  change).
* `GradientTap`: sees the dense, all-reduced gradient of each masked weight
  inside the optimizer's own update (see its docstring). It keeps an
  exponential moving average of gradients for optimizers without momentum
  and stores the gradient of a mask-update step for RigL's growth.

Example:

    source = resolve_momentum_source(model.optimizer, "auto", "MyAlg")
    m = momentum(model.optimizer, kernel)          # if source == "optimizer"
    zero_slots(model.optimizer, kernel, where=grown_flat)
"""

import keras
import tensorflow as tf

MOMENTUM_SOURCES = ("auto", "optimizer", "ema")


def unwrap(optimizer):
    """The optimizer that owns the slots (inside a LossScaleOptimizer)."""
    while hasattr(optimizer, "inner_optimizer"):
        optimizer = optimizer.inner_optimizer
    return optimizer


def momentum_kind(optimizer):
    """"sgd", "adam" or None: how `momentum` reads this optimizer."""
    if optimizer is None:
        return None
    optimizer = unwrap(optimizer)
    if isinstance(optimizer, keras.optimizers.SGD):
        return "sgd" if optimizer.momentum else None
    # AdamW is an Adam subclass.
    if isinstance(optimizer, (keras.optimizers.Adam, keras.optimizers.Nadam)):
        return "adam"
    return None


def describe(optimizer):
    optimizer = unwrap(optimizer)
    if isinstance(optimizer, keras.optimizers.SGD):
        return f"SGD(momentum={optimizer.momentum})"
    return type(optimizer).__name__


def momentum(optimizer, variable):
    """The momentum signal of `variable` (a tensor of its shape)."""
    optimizer = unwrap(optimizer)
    kind = momentum_kind(optimizer)
    index = optimizer._get_variable_index(variable)  # pylint: disable=protected-access
    if kind == "sgd":
        return tf.convert_to_tensor(optimizer.momentums[index])
    if kind == "adam":
        m = tf.convert_to_tensor(optimizer._momentums[index])  # pylint: disable=protected-access
        v = tf.convert_to_tensor(optimizer._velocities[index])  # pylint: disable=protected-access
        return m / (tf.sqrt(v) + tf.cast(optimizer.epsilon, m.dtype))
    raise ValueError(
        f"Cannot read momentum from {describe(optimizer)}; readable: SGD "
        "with momentum > 0, Adam, AdamW, Nadam.")


def resolve_momentum_source(optimizer, source, owner):
    """"optimizer" or "ema": where `owner` reads momentum from.

    `source` is one of `MOMENTUM_SOURCES`: "auto" reads the optimizer when
    `momentum` can (else a gradient EMA), "ema" always uses the EMA, and
    "optimizer" raises for an optimizer `momentum` cannot read.
    """
    kind = momentum_kind(optimizer)
    if source == "optimizer" and kind is None:
        raise ValueError(
            f"{owner}(momentum_source='optimizer') cannot read "
            f"momentum from {describe(optimizer)}; "
            "readable: SGD with momentum > 0, Adam, AdamW, Nadam. "
            "Pass momentum_source='ema' (or 'auto') to let tf-sparse "
            "keep an exponential moving average of the gradients "
            "instead.")
    return "ema" if source == "ema" or kind is None else "optimizer"


def slot_variables(optimizer, variable):
    """The optimizer's per-weight slot variables of `variable` (same shape).

    Lists on the optimizer holding one variable per trainable variable
    (SGD `momentums`, Adam `_momentums`/`_velocities`/`_velocity_hats`,
    RMSprop, Adagrad, Lion, ...); factored slots of another shape are left
    out. Empty before the optimizer is built.
    """
    optimizer = unwrap(optimizer)
    if not getattr(optimizer, "built", False):
        return []
    trainable = getattr(optimizer, "_trainable_variables", [])
    index = optimizer._get_variable_index(variable)  # pylint: disable=protected-access
    slots = []
    for name in sorted(vars(optimizer)):
        value = vars(optimizer)[name]
        if not isinstance(value, (list, tuple)) or len(value) != len(trainable):
            continue
        if not value or not all(isinstance(v, keras.Variable) for v in value):
            continue
        if any(v is t for v, t in zip(value, trainable)):
            continue
        slot = value[index]
        if tuple(slot.shape) == tuple(variable.shape):
            slots.append(slot)
    return slots


def zero_slots(optimizer, variable, where=None):
    """Sets the optimizer slots of `variable` to 0 (usable in graph).

    `where`: a flat bool tensor over `variable`'s entries; only those slot
    entries are zeroed. None zeroes the whole slots.
    """
    for slot in slot_variables(optimizer, variable):
        if where is None:
            slot.assign(tf.zeros_like(slot))
            continue
        flat = tf.reshape(tf.convert_to_tensor(slot), [-1])
        slot.assign(tf.reshape(tf.where(where, tf.zeros_like(flat), flat),
                               slot.shape))


class GradientTap:
    """Sees each masked weight's gradient inside the optimizer's update.

    Why here: under MirroredStrategy the only all-reduced gradient is the
    one the optimizer applies; an all-reduce inside the `tf.cond` of a mask
    update is refused (`merge_call` inside control flow), and a second
    forward/backward pass every step would double the cost. The tap wraps the
    optimizer instance's `update_step` (every Keras 3 optimizer calls it once
    per variable with the reduced, unscaled gradient, on one device or per
    replica under tf.distribute), so it costs nothing on steps where it has
    nothing to do.

    Three uses, each optional:
      * `ema`: per masked weight an exponential moving average
        `e <- beta * e + (1 - beta) * g` of the dense gradient, updated every
        step (sparse momentum for optimizers without momentum; the paper's
        `M <- alpha M + (1 - alpha) g`).
      * `capture`: the gradient of the step at which `due(step)` is true is
        stored, so a mask update right after that step sees the dense
        gradient of that batch at the weights it was computed at (RigL's
        grow score; sparse momentum's "gradient" growth ablation).
      * `skip_due`: at a step where `skip_due(step)` is true the optimizer's
        update of *every* variable is not applied (weights and slots stay as
        they were; the gradient is still observed), as RigL's Algorithm 1
        and google-research/rigl do on mask-update iterations. The step
        counter still advances, and decoupled weight decay (the optimizer's
        `weight_decay`, applied by Keras outside `update_step`) still
        applies; an L2 term in the loss is skipped with the step.
    """

    def __init__(self, optimizer, weights, *, ema_beta=None, capture_due=None,
                 skip_due=None):
        self.optimizer = unwrap(optimizer)
        self.ema_beta = ema_beta
        self.capture_due = capture_due
        self.skip_due = skip_due
        self.ema = {}
        self.captured = {}
        self._by_key = {}
        for i, mw in enumerate(weights):
            key = self.optimizer._var_key(mw.variable)  # pylint: disable=protected-access
            self._by_key[key] = i
            if ema_beta is not None:
                self.ema[i] = tf.Variable(
                    tf.zeros(mw.shape, mw.variable.dtype), trainable=False,
                    name=f"tfs_grad_ema_{i}")
            if capture_due is not None:
                self.captured[i] = tf.Variable(
                    tf.zeros(mw.shape, mw.variable.dtype), trainable=False,
                    name=f"tfs_grad_{i}")
        self._install()

    def _install(self):
        optimizer = self.optimizer
        previous = getattr(optimizer, "_tf_sparse_tap", None)
        original = (previous.original if previous is not None
                    else optimizer.update_step)
        self.original = original
        tap = self

        def update_step(gradient, variable, learning_rate):
            tap._observe(gradient, variable)  # pylint: disable=protected-access
            if tap.skip_due is None:
                return original(gradient, variable, learning_rate)
            # The step being applied is iterations + 1 (1-based after it).
            skip = tap.skip_due(optimizer.iterations + 1)

            def apply():
                original(gradient, variable, learning_rate)
                return tf.constant(True)

            return tf.cond(skip, lambda: tf.constant(False), apply)

        object.__setattr__(optimizer, "update_step", update_step)
        object.__setattr__(optimizer, "_tf_sparse_tap", self)

    def remove(self):
        if getattr(self.optimizer, "_tf_sparse_tap", None) is self:
            object.__setattr__(self.optimizer, "update_step", self.original)
            object.__delattr__(self.optimizer, "_tf_sparse_tap")

    def _observe(self, gradient, variable):
        index = self._by_key.get(self.optimizer._var_key(variable))  # pylint: disable=protected-access
        if index is None or gradient is None:
            return
        if isinstance(gradient, tf.IndexedSlices):
            gradient = tf.convert_to_tensor(gradient)
        if index in self.ema:
            ema = self.ema[index]
            beta = tf.cast(self.ema_beta, ema.dtype)
            ema.assign(beta * ema + (1.0 - beta) * tf.cast(gradient, ema.dtype))
        if index in self.captured:
            store = self.captured[index]
            # The step being applied is iterations + 1 (1-based after it).
            due = self.capture_due(self.optimizer.iterations + 1)

            def keep():
                store.assign(tf.cast(gradient, store.dtype))
                return tf.constant(True)

            tf.cond(due, keep, lambda: tf.constant(False))

    def variables(self):
        return list(self.ema.values()) + list(self.captured.values())
