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
* `SLOT_INITIAL_VALUES` / `initial_value(optimizer, slot)`: the one table
  of where each optimizer's per-weight slots start: 0 for momenta and
  moments, Adagrad's and Ftrl's `initial_accumulator_value`, the weight
  itself for ScheduleFreeAdamW's `z` and the weights' EMA, ... for every
  Keras 3 optimizer (inherited by subclasses: AdamW, TorchSGD, CoupledAdam),
  inside LossScaleOptimizer and MultiOptimizer too. `register_slots`
  declares a custom optimizer's slots.
* `reset_slots(optimizer, variable, where=None)`: sets the slots of
  `variable` (or of the `where` entries) to those initial values, as for a
  weight the optimizer never saw: the slots of dropped or grown weights in a
  prune-and-grow update, all slots of the masked weights at an AC/DC phase
  change. Not zeros: Ftrl with a zeroed accumulator divides 0 by 0 at the
  next step where the weight's gradient is 0 (its weight is
  `(clip(linear) - linear) / (sqrt(accumulator) / lr)`) and the NaN spreads
  through the model; Adagrad with a zeroed accumulator takes a first step
  ~1/sqrt(epsilon) times the gradient. An optimizer with slots the table
  does not know raises ValueError rather than guessing 0.
  `slot_variables(optimizer, variable)` lists the slots a reset sets.
* `prepare(optimizer)`, run by every algorithm at attach and trace time:
  refuses Keras's Adafactor (NaN on sparse models; use
  `tf_sparse.optimizers.Adafactor`) and re-applies the masks after
  `finalize_variable_values` (which `fit` runs at the end: with
  `use_ema=True` it writes the weights' moving averages, non-zero at pruned
  positions, without any constraint).
* `GradientTap`: sees the dense, all-reduced gradient of each masked weight
  inside the optimizer's own update (see its docstring). It keeps an
  exponential moving average of gradients for optimizers without momentum
  and stores the gradient of a mask-update step for RigL's growth.

Example:

    source = resolve_momentum_source(model.optimizer, "auto", "MyAlg")
    m = momentum(model.optimizer, kernel)          # if source == "optimizer"
    reset_slots(model.optimizer, kernel, where=grown_flat)
"""

import keras
import numpy as np
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
    ops = keras.ops
    if kind == "sgd":
        return ops.convert_to_tensor(optimizer.momentums[index])
    if kind == "adam":
        m = ops.convert_to_tensor(optimizer._momentums[index])  # pylint: disable=protected-access
        v = ops.convert_to_tensor(optimizer._velocities[index])  # pylint: disable=protected-access
        return m / (ops.sqrt(v) + ops.cast(optimizer.epsilon, m.dtype))
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


# ---------------------------------------------------------------------------
# Initial values of optimizer slots: the one table every reset reads.
# ---------------------------------------------------------------------------


class _Marker:
    """A named table entry that is not a number (see `SLOT_INITIAL_VALUES`)."""

    def __init__(self, name, doc):
        self.name = name
        self.__doc__ = doc

    def __repr__(self):
        return self.name


WEIGHT = _Marker(
    "WEIGHT", "The slot starts at the weight's own value (ScheduleFreeAdamW's "
    "`z` sequence, the EMA of weights under `use_ema=True`).")
KEEP = _Marker(
    "KEEP", "The slot is never reset: it holds no per-weight memory of the "
    "trajectory (gradients pending under `gradient_accumulation_steps`).")


class Factored:
    """A slot of per-row or per-column statistics (Adafactor's `r`, `c`):
    shared by all weights of a row/column, so a reset of some entries leaves
    it as it is; a reset of the whole weight (AC/DC) sets it to `initial`."""

    def __init__(self, initial):
        self.initial = initial

    def __repr__(self):
        return f"Factored({self.initial!r})"


def _accumulator_value(optimizer):
    return optimizer.initial_accumulator_value


# Optimizer class -> {attribute holding one slot per trainable variable:
# the slot's initial value}. Values: a number; a function of the optimizer
# (Adagrad's and Ftrl's `initial_accumulator_value`); WEIGHT; KEEP; or
# Factored(value). Entries are inherited along the class hierarchy
# (AdamW and tf_sparse.optimizers.CoupledAdam use Adam's, TorchSGD SGD's);
# the base Optimizer's entries (EMA of weights, gradient accumulators) apply
# to every optimizer. Checked against freshly built optimizers by
# tests/algorithms/test_optimizer_slots.py. Keras classes absent from the
# installed version are skipped.
_KERAS_SLOTS = {
    # The EMA of weights (use_ema=True) is built at 0, but its first update
    # ignores that and takes the weight: WEIGHT gives a reset the same start.
    "Optimizer": {"_model_variables_moving_average": WEIGHT,
                  "_accumulated_gradients": KEEP},
    "SGD": {"momentums": 0.0},
    "Adam": {"_momentums": 0.0, "_velocities": 0.0, "_velocity_hats": 0.0},
    "Adamax": {"_m": 0.0, "_u": 0.0},
    "Nadam": {"_momentums": 0.0, "_velocities": 0.0},
    "RMSprop": {"_velocities": 0.0, "_momentums": 0.0,
                "_average_gradients": 0.0},
    "Adagrad": {"_accumulators": _accumulator_value},
    "Adadelta": {"_accumulated_grads": 0.0, "_accumulated_delta_vars": 0.0},
    "Ftrl": {"_accumulators": _accumulator_value, "_linears": 0.0},
    "Lion": {"_momentums": 0.0},
    "Lamb": {"_momentums": 0.0, "_velocities": 0.0},
    # `_v` of a matrix is recomputed from r and c at every step.
    "Adafactor": {"_r": Factored(0.0), "_c": Factored(0.0), "_v": 0.0},
    # Muon: momentum of every weight, Adam velocity of the non-matrix ones.
    "Muon": {"momentums": 0.0, "adam_velocities": 0.0},
    # ScheduleFreeAdamW builds its `z` sequence (`_momentums`) as a copy of
    # the weights: x = y = z at the start.
    "ScheduleFreeAdamW": {"_momentums": WEIGHT, "_velocities": 0.0},
}
SLOT_INITIAL_VALUES = {
    getattr(keras.optimizers, name): slots
    for name, slots in _KERAS_SLOTS.items()
    if hasattr(keras.optimizers, name)}

# Lists on an optimizer with one entry per trainable variable that are not
# slots.
_NOT_SLOTS = ("_variables", "_trainable_variables")


def register_slots(optimizer_class, slots):
    """Declares the slots of `optimizer_class` (and its subclasses):
    {attribute: initial value}, as in `SLOT_INITIAL_VALUES`. Needed for a
    custom optimizer with per-weight slots before an algorithm resets them.

        register_slots(MyOptimizer, {"_accumulators": 0.1, "_traces": 0.0})
    """
    if not (isinstance(optimizer_class, type)
            and issubclass(optimizer_class, keras.optimizers.Optimizer)):
        raise TypeError(f"register_slots: {optimizer_class!r} is not a Keras "
                        "optimizer class.")
    for name, initial in dict(slots).items():
        if not (initial in (WEIGHT, KEEP) or callable(initial)
                or isinstance(initial, (int, float, Factored))):
            raise TypeError(
                f"register_slots({optimizer_class.__name__}): initial value "
                f"of {name!r} must be a number, a function of the optimizer, "
                f"WEIGHT, KEEP or Factored(...), got {initial!r}.")
    SLOT_INITIAL_VALUES[optimizer_class] = dict(slots)


def slot_owner(optimizer, variable=None):
    """The optimizer that owns the slots of `variable`: the inner optimizer
    of a LossScaleOptimizer; the sub-optimizer of a MultiOptimizer."""
    optimizer = unwrap(optimizer)
    multi = getattr(keras.optimizers, "MultiOptimizer", None)
    if multi is not None and isinstance(optimizer, multi):
        if variable is None or not optimizer.built:
            raise ValueError(
                "A MultiOptimizer's slots belong to its sub-optimizers: "
                "name the variable (and build the optimizer) first.")
        index = optimizer._var_to_optimizer_idx[  # pylint: disable=protected-access
            optimizer._var_key(variable)]  # pylint: disable=protected-access
        return unwrap(optimizer.optimizers[index])
    return optimizer


def _declared(optimizer):
    """{attribute: initial value} declared for the optimizer's class and its
    bases (a subclass's entry overrides its base's)."""
    table = {}
    for cls in reversed(type(optimizer).__mro__):
        table.update(SLOT_INITIAL_VALUES.get(cls, {}))
    return table


def per_weight_lists(optimizer):
    """{attribute: list} of the built optimizer's lists holding one variable
    (or None) per trainable variable: its slots, declared or not."""
    trainable = list(getattr(optimizer, "_trainable_variables", None) or [])
    found = {}
    for name, value in vars(optimizer).items():
        if name in _NOT_SLOTS or not isinstance(value, (list, tuple)):
            continue
        if not trainable or len(value) != len(trainable):
            continue
        if not all(v is None or isinstance(v, keras.Variable) for v in value):
            continue
        if all(v is None for v in value):
            continue
        if any(v is t for v, t in zip(value, trainable)):
            continue
        found[name] = value
    return found


def slot_table(optimizer, owner="tf_sparse"):
    """{attribute: initial value} of every per-weight slot of the built
    optimizer (slot owner, see `slot_owner`), declared values resolved.

    Raises ValueError naming the slots whose initial value is not known (a
    custom optimizer, or a subclass adding slots): resetting them to an
    assumed 0 can break the optimizer (Ftrl's accumulator at 0 gives NaN).
    Declare them with `register_slots`.
    """
    declared = _declared(optimizer)
    present = per_weight_lists(optimizer)
    unknown = sorted(set(present) - set(declared))
    if unknown:
        raise ValueError(
            f"{owner}: cannot reset the slots of optimizer "
            f"{type(optimizer).__name__}: the initial value of "
            f"{', '.join(unknown)} is not known (resetting them to 0 could "
            "break the optimizer, e.g. Ftrl's accumulators start at "
            "initial_accumulator_value). Declare them with "
            "tfs.algorithms.optimizer_state.register_slots("
            f"{type(optimizer).__name__}, {{name: initial value}}), or keep "
            "the slots (grown_slots='keep', dropped_slots='keep', "
            "reset_momentum=False).")
    table = {}
    for name, initial in declared.items():
        if name not in present:
            continue
        factored = isinstance(initial, Factored)
        value = initial.initial if factored else initial
        if value not in (WEIGHT, KEEP) and callable(value):
            value = value(optimizer)
        table[name] = Factored(value) if factored else value
    return table


def initial_value(optimizer, slot):
    """The initial value of slot `slot` (an attribute name such as
    "_accumulators") of `optimizer`: a number, WEIGHT (the weight's own
    value), KEEP (never reset) or Factored(number). Raises for a slot the
    table does not know."""
    table = _declared(slot_owner(optimizer))
    if slot not in table:
        raise ValueError(
            f"Slot {slot!r} of {type(slot_owner(optimizer)).__name__} is not "
            "declared; see tfs.algorithms.optimizer_state.register_slots.")
    value = table[slot]
    if isinstance(value, Factored):
        return value
    if value not in (WEIGHT, KEEP) and callable(value):
        return value(slot_owner(optimizer))
    return value


def check_slots(optimizer, owner="tf_sparse"):
    """Raises early (see `slot_table`) if the built optimizer has slots of
    unknown initial value; nothing to check before it is built."""
    if optimizer is None:
        return
    for opt in _leaf_optimizers(optimizer):
        if getattr(opt, "built", False):
            slot_table(opt, owner)


def _leaf_optimizers(optimizer):
    """The optimizers that own slots: `optimizer` unwrapped, or each
    sub-optimizer of a MultiOptimizer."""
    optimizer = unwrap(optimizer)
    multi = getattr(keras.optimizers, "MultiOptimizer", None)
    if multi is not None and isinstance(optimizer, multi):
        return [unwrap(o) for o in optimizer.optimizers]
    return [optimizer]


def _slots_of(optimizer, variable, owner):
    """[(slot variable, initial value)] of `variable`, table order."""
    optimizer = slot_owner(optimizer, variable)
    if not getattr(optimizer, "built", False):
        return []
    index = optimizer._get_variable_index(variable)  # pylint: disable=protected-access
    lists = per_weight_lists(optimizer)
    out = []
    for name, initial in slot_table(optimizer, owner).items():
        slot = lists[name][index]
        if slot is not None:
            out.append((slot, initial))
    return out


def slot_variables(optimizer, variable):
    """The optimizer's per-weight slot variables of `variable` that a reset
    sets (same shape as `variable`: momentum, moments, accumulators, ...);
    factored statistics and kept slots (gradient accumulators) are left out.
    Empty before the optimizer is built."""
    return [slot for slot, initial in _slots_of(optimizer, variable,
                                                "slot_variables")
            if initial is not KEEP and not isinstance(initial, Factored)
            and tuple(slot.shape) == tuple(variable.shape)]


def reset_slots(optimizer, variable, where=None, value=None,
                owner="tf_sparse"):
    """Sets the optimizer slots of `variable` to their initial values
    (`initial_value`: 0 for momenta and moments, Adagrad's and Ftrl's
    `initial_accumulator_value`, the weight itself for ScheduleFreeAdamW's
    `z`, ...), as for a weight the optimizer has never seen. Usable in
    graph.

    `where`: a flat bool tensor over `variable`'s entries; only those slot
      entries are reset (factored statistics are then kept). None resets the
      whole slots.
    `value`: the weight's value the WEIGHT slots start from (a tensor of its
      shape, or a function returning one, called only if needed); default
      the variable's current value.
    Raises ValueError for an optimizer whose slots are not all declared.
    """
    ops = keras.ops
    weight = None
    for slot, initial in _slots_of(optimizer, variable, owner):
        if initial is KEEP:
            continue
        if isinstance(initial, Factored):
            if where is None:
                slot.assign(ops.full(slot.shape, initial.initial,
                                     slot.dtype))
            continue
        if initial is WEIGHT:
            if weight is None:
                weight = value() if callable(value) else value
                if weight is None:   # a copy: JAX's step frees the array
                    weight = ops.copy(ops.convert_to_tensor(variable))
                weight = ops.reshape(weight, [-1])
            fresh = ops.cast(weight, slot.dtype)
        else:
            fresh = ops.full([int(np.prod(slot.shape))], initial, slot.dtype)
        if where is None:
            slot.assign(ops.reshape(fresh, slot.shape))
            continue
        flat = ops.reshape(ops.convert_to_tensor(slot), [-1])
        slot.assign(ops.reshape(ops.where(where, fresh, flat), slot.shape))


# ---------------------------------------------------------------------------
# Optimizers that need care with masks.
# ---------------------------------------------------------------------------


def check_mask_safe(optimizer, owner="tf_sparse"):
    """Raises for an optimizer known to break on a sparse model.

    Keras's Adafactor gives NaN weights on sparse models (see
    `tf_sparse.optimizers.Adafactor` for why): use
    `tf_sparse.optimizers.Adafactor`, which takes the same arguments.
    """
    if optimizer is None:
        return
    for opt in _leaf_optimizers(optimizer):
        adafactor = getattr(keras.optimizers, "Adafactor", None)
        if (adafactor is not None and isinstance(opt, adafactor)
                and type(opt).update_step is adafactor.update_step):
            raise ValueError(
                f"{owner}: keras.optimizers.Adafactor gives NaN weights on a "
                "sparse model (its factored second moment underflows to 0 "
                "where a zero-gradient row meets a zero-gradient column, "
                "which masks create, and 0/0 then spreads to the whole "
                "weight). Use tf_sparse.optimizers.Adafactor (same "
                "arguments), which computes the same update without the "
                "underflow.")


def keep_masks_on_finalize(optimizer):
    """Makes `optimizer.finalize_variable_values` re-apply the variables'
    constraints (the masks) after it writes them.

    With `use_ema=True` Keras's `fit` ends by overwriting every weight with
    its moving average (`finalize_variable_values`) and applies no
    constraint afterwards; the average includes the values the optimizer
    wrote at pruned positions before the mask constraint zeroed them, so
    pruned weights would end non-zero. Idempotent; no-op without EMA.
    """
    if optimizer is None or getattr(optimizer, "_tf_sparse_finalize", None):
        return
    original = optimizer.finalize_variable_values

    def finalize_variable_values(var_list):
        original(var_list)
        for variable in var_list:
            if getattr(variable, "constraint", None) is not None:
                variable.assign(variable.constraint(variable))

    object.__setattr__(optimizer, "finalize_variable_values",
                       finalize_variable_values)
    object.__setattr__(optimizer, "_tf_sparse_finalize", original)


def prepare(optimizer, owner="tf_sparse"):
    """What every mask algorithm does with the model's optimizer when it is
    attached, and again when its step is traced (the model may have been
    compiled after attaching): refuse known-broken optimizers
    (`check_mask_safe`) and keep masks through `finalize_variable_values`
    (`keep_masks_on_finalize`). No-op for None."""
    if optimizer is None:
        return
    check_mask_safe(optimizer, owner)
    keep_masks_on_finalize(optimizer)


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
        if len(_leaf_optimizers(self.optimizer)) != 1 or (
                _leaf_optimizers(self.optimizer)[0] is not self.optimizer):
            # Its sub-optimizers run the updates: a tap here would see none.
            raise ValueError(
                f"{type(self.optimizer).__name__} cannot give tf-sparse the "
                "gradients (or skip the updates) of masked weights: its "
                "sub-optimizers apply them. Use one optimizer for the model, "
                "or an algorithm that reads neither gradients nor momentum "
                "(SET, Static, GMP, AC/DC).")
        self.ema_beta = ema_beta
        self.capture_due = capture_due
        self.skip_due = skip_due
        self.ema = {}
        self.captured = {}
        self._by_key = {}
        for i, mw in enumerate(weights):
            key = self.optimizer._var_key(mw.variable)  # pylint: disable=protected-access
            self._by_key[key] = i
            # keras.Variables: TensorFlow's step writes them (`_observe`),
            # the JAX and PyTorch updates write the captured gradient
            # (`training.EagerUpdates`); both read them with keras.ops.
            if ema_beta is not None:
                self.ema[i] = keras.Variable(
                    np.zeros(mw.shape), dtype=mw.variable.dtype,
                    trainable=False, name=f"tfs_grad_ema_{i}")
            if capture_due is not None:
                self.captured[i] = keras.Variable(
                    np.zeros(mw.shape), dtype=mw.variable.dtype,
                    trainable=False, name=f"tfs_grad_{i}")
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
