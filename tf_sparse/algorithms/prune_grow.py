"""The generic prune-and-grow mask update that SET, RigL and sparse momentum share.

An update, run in graph right after optimizer step `t` when
`cadence.should_update(t)`:

1. rate `p = drop_fraction(t)` (a schedule of the step; a float is constant);
2. per-layer counts: `layer_counts(ctx)` gives the number to drop `r_l`, the
   number to grow `g_l` and a redistribution share per layer (default: drop
   `round(p * n_l)` and regrow the same number in place);
3. drop: the `r_l` active weights with the lowest `drop_score` (default
   `|w|`);
4. grow: the `g_l` candidates with the highest `grow_score`. Candidates are
   the inactive weights after dropping, i.e. a weight dropped in this update
   may be chosen again unless `regrow_dropped="never"`;
5. write the new masks, the values of grown weights and the optimizer slots
   as the options below say; the base class then zeroes dropped weights.

Selection is exact (`tf_sparse.algorithms.selection`): every layer ends with
exactly `n_l - r_l + g_l` active weights and the total never drifts, so no
correction term (sparse_learning's `adjusted_growth`) is needed. An in-graph
assertion checks the total after every update.

Options where the reference implementations differ (each algorithm sets its
paper's default and documents it):

* `regrow_dropped`: "never" (drop and grow sets disjoint; the generic
  default), "keep" (a weight dropped and regrown in the same update keeps
  its value and slots, i.e. it never left: sparse_learning, RigL and SET in
  rigl), "reinit" (it is treated as a new weight: value `grow_init`, slots
  per `grown_slots`).
* `grow_init`: value of newly grown weights, "zeros" (all references) or
  "random_normal" (normal with the standard deviation of the layer's active
  weights, stateless RNG keyed by (seed, step, layer)).
* `grown_slots`, `dropped_slots`: "keep" or "zero" the optimizer slots
  (momentum, Adam moments, ...) of grown / dropped weights. sparse_learning
  keeps both; rigl zeroes the slots of grown weights.
* `skip_gradient_step`: False applies the optimizer step of an update
  iteration and then updates the masks (sparse_learning, rigl_tf2); True
  leaves every variable and optimizer slot as it was at that step and only
  updates the masks (RigL's Algorithm 1, rigl TF1, jaxpruner's SET/RigL).
  The step counter advances either way; decoupled weight decay (the
  optimizer's `weight_decay`) still applies on a skipped step, see
  `optimizer_state.GradientTap`.

Monitoring state (variables updated in graph at every update, written to
TensorBoard by `tfs.callbacks.MaskUpdateSummaries`): `num_updates`,
`last_step`, `rate`, per layer `density`, `dropped`, `grown`, `regrown`,
`share`, `layer_rate`; `churn` (fraction of active weights that are new
after the update), `itop` (in-time over-parameterisation: fraction of all
masked weights ever active), `nonzeros`.

Example (a new algorithm is a small subclass):

    class GrowByMagnitudeOfMomentum(PruneGrow):
        name = "my_alg"
        def grow_score(self, ctx, i):
            return tf.abs(ctx.momentum(i))
"""

import math
import numbers

import tensorflow as tf

from tf_sparse import schedules
from tf_sparse.algorithms import base
from tf_sparse.algorithms import optimizer_state
from tf_sparse.algorithms import selection

REGROW = ("never", "keep", "reinit")
GROW_INIT = ("zeros", "random_normal")
SLOT_POLICIES = ("keep", "zero")
ROUNDING = ("ceil", "floor")


def check_choice(owner, what, value, accepted):
    if value not in accepted:
        raise ValueError(
            f"{owner}: unknown {what} {value!r}; accepted: "
            f"{', '.join(map(str, accepted))}.")
    return value


def check_rate(owner, what, value):
    """A rate in (0, 1), as a float."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(float(value))
            or not 0.0 < float(value) < 1.0):
        raise ValueError(
            f"{owner}: {what}={value!r} is not accepted: it must be a number "
            "in (0, 1) (the fraction of each layer's active weights replaced "
            "per update).")
    return float(value)


def rate_at(schedule, step):
    """`schedule(step)` as a float64 tensor.

    The decays of `tf_sparse.schedules` compute tensors in float32; a rate
    of 0.8 would become 0.800000012 and `ceil(0.8 * 10)` would give 9. For
    `ConstantDecay`, `CosineDecay` and `LinearDecay` the same formula is
    evaluated here in float64, as the Python path of the schedule (and the
    reference, in Python floats) does; other callables are cast.
    """
    step = tf.cast(step, tf.float64)
    if isinstance(schedule, schedules.ConstantDecay):
        return tf.constant(float(schedule.value), tf.float64)
    if isinstance(schedule, (schedules.CosineDecay, schedules.LinearDecay)):
        begin = float(schedule.begin_step)
        end = float(schedule.end_step)
        progress = tf.clip_by_value((step - begin) / (end - begin), 0.0, 1.0)
        if isinstance(schedule, schedules.CosineDecay):
            shape = 0.5 * (1.0 + tf.cos(math.pi * progress))
        else:
            shape = 1.0 - progress
        return schedule.final + (schedule.initial - schedule.final) * shape
    return tf.cast(schedule(tf.cast(step, tf.int64)), tf.float64)


def rate_schedule(owner, value):
    """A float becomes a constant schedule; a callable is used as it is."""
    if callable(value):
        return value
    return schedules.ConstantDecay(check_rate(owner, "drop fraction", value))


class UpdateContext:
    """What one update sees; built at the start of `PruneGrow.update`.

    Per layer `i` (in `algorithm.weights` order), flat tensors:
    `active[i]` (bool), `values[i]` (weights); and `n` / `zeros` / `sizes`
    (float64 vectors). `momentum(i)` and `gradient(i)` read the optimizer
    signals on demand.
    """

    def __init__(self, algorithm, step, data):
        self.algorithm = algorithm
        self.step = tf.cast(tf.convert_to_tensor(step), tf.int64)
        self.data = data
        self.rate = rate_at(algorithm.drop_fraction, self.step)  # float64
        self.active = []
        self.values = []
        for mw in algorithm.weights:
            self.active.append(tf.reshape(
                tf.convert_to_tensor(mw.mask) > 0, [-1]))
            self.values.append(tf.reshape(
                tf.convert_to_tensor(mw.variable), [-1]))
        self.n = tf.stack([tf.reduce_sum(tf.cast(a, tf.float64))
                           for a in self.active])
        self.sizes = tf.constant([float(mw.size) for mw in algorithm.weights],
                                 tf.float64)
        self.zeros = self.sizes - self.n
        self._momentum = {}
        self._gradients = None

    def momentum(self, i):
        if i not in self._momentum:
            self._momentum[i] = tf.reshape(
                self.algorithm.read_momentum(i), [-1])
        return self._momentum[i]

    def gradient(self, i):
        if self._gradients is None:
            self._gradients = self.algorithm.read_gradients(self)
        return tf.reshape(self._gradients[i], [-1])

    def uniform(self, i, salt=0):
        """Stateless uniform scores keyed by (seed, step, layer, salt)."""
        seed = tf.random.experimental.stateless_fold_in(
            tf.constant([self.algorithm.seed, i], tf.int64),
            self.step * 4 + salt)
        return tf.random.stateless_uniform(
            [self.algorithm.weights[i].size], seed=seed)


class _State(tf.Module):
    """The algorithm's variables, one trackable for checkpoints."""


# One row of `_State.history`: these scalars, then one block of L values
# per per-layer statistic.
_SCALARS = ("step", "rate", "churn", "itop", "nonzeros", "dropped", "grown",
            "regrown")
_PER_LAYER = ("density", "dropped", "grown", "regrown", "share", "rate")


class PruneGrow(base.MaskAlgorithm):
    """Drop the lowest `drop_score`, grow the highest `grow_score`.

    Subclasses override `drop_score`, `grow_score` and/or `layer_counts`.

    Args:
      cadence: when to update, an object with `should_update(step)` (e.g.
        `tfs.schedules.UpdateSchedule`).
      drop_fraction: float in (0, 1) or a schedule of the step (e.g.
        `CosineDecay(0.5, 0.005, total_steps=T)`).
      drop_rounding: "ceil" or "floor" of `rate * n_l`.
      regrow_dropped, grow_init, grown_slots, dropped_slots: see the module
        docstring.
      seed: seeds the stateless RNGs (random growth, random grow init).
      selection: "radix" or "sort" (same masks; radix is faster).
      jit_selection: compile the selection with XLA (same masks).
      skip_gradient_step: do not apply the optimizer step of an update
        iteration (see the module docstring).
    """

    name = "prune_grow"
    # Updates kept for `update_history` (monitoring across executions of
    # several steps); more updates than this within one execution are lost.
    HISTORY = 64
    # Subclasses set these (before attach) when they read the optimizer.
    needs_momentum = False
    needs_gradient = False
    momentum_source = "auto"
    gradient_source = "optimizer"
    ema_beta = 0.9

    def __init__(self, *, cadence, drop_fraction, drop_rounding="ceil",
                 regrow_dropped="never", grow_init="zeros",
                 grown_slots="keep", dropped_slots="keep", seed=0,
                 selection_method="radix", jit_selection=True,
                 skip_gradient_step=False):
        super().__init__()
        owner = type(self).__name__
        if not isinstance(skip_gradient_step, bool):
            raise ValueError(f"{owner}: skip_gradient_step must be True or "
                             f"False, got {skip_gradient_step!r}.")
        self.skip_gradient_step = skip_gradient_step
        if not hasattr(cadence, "should_update"):
            raise TypeError(
                f"{owner}: cadence must have should_update(step) (e.g. "
                f"tfs.schedules.UpdateSchedule), got {cadence!r}.")
        self.cadence = cadence
        self.drop_fraction = rate_schedule(owner, drop_fraction)
        self.drop_rounding = check_choice(owner, "drop_rounding",
                                          drop_rounding, ROUNDING)
        self.regrow_dropped = check_choice(owner, "regrow_dropped",
                                           regrow_dropped, REGROW)
        self.grow_init = check_choice(owner, "grow_init", grow_init,
                                      GROW_INIT)
        self.grown_slots = check_choice(owner, "grown_slots", grown_slots,
                                        SLOT_POLICIES)
        self.dropped_slots = check_choice(owner, "dropped_slots",
                                          dropped_slots, SLOT_POLICIES)
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise ValueError(f"{owner}: seed must be an int, got {seed!r}.")
        self.seed = int(seed)
        self.selection_method = check_choice(
            owner, "selection_method", selection_method, selection.METHODS)
        self.jit_selection = bool(jit_selection)
        self.tap = None
        self.state = None
        self._momentum_from = None

    # Config key (`config.algorithm_params.<key>`) -> constructor argument.
    CONFIG_KEYS = {}
    # Whether the constructor takes steps_per_epoch (every-epoch cadence).
    EPOCH_CADENCE = False

    @classmethod
    def from_params(cls, params, *, steps_per_epoch, total_steps, seed=0):
        """Builds the algorithm from config parameters (None = default).

        Raises ValueError naming any parameter this algorithm does not use.
        """
        params = {k: v for k, v in dict(params or {}).items()
                  if v is not None}
        unused = sorted(set(params) - set(cls.CONFIG_KEYS))
        if unused:
            raise ValueError(
                f"algorithm_params {', '.join(unused)} not used by "
                f"{cls.name!r}; it takes: {', '.join(sorted(cls.CONFIG_KEYS))}.")
        kwargs = {"total_steps": int(total_steps), "seed": int(seed)}
        if cls.EPOCH_CADENCE:
            kwargs["steps_per_epoch"] = int(steps_per_epoch)
        for key, value in params.items():
            if key == "update_every" and value == 0:
                continue  # 0: the algorithm's default cadence
            kwargs[cls.CONFIG_KEYS[key]] = (
                tuple(value) if isinstance(value, list) else value)
        return cls(**kwargs)

    # ------------------------------------------------------------------
    # Set-up
    # ------------------------------------------------------------------

    def attach(self, model):
        super().attach(model)
        if not self.weights:
            raise ValueError(f"{type(self).__name__}: the model has no masks.")
        optimizer = getattr(model, "optimizer", None)
        self._check_optimizer(optimizer)
        self.tap = self._make_tap(optimizer)
        n_layers = len(self.weights)
        state = _State()
        state.num_updates = tf.Variable(0, dtype=tf.int64, trainable=False,
                                        name="num_updates")
        state.last_step = tf.Variable(-1, dtype=tf.int64, trainable=False,
                                      name="last_step")
        state.rate = tf.Variable(0.0, trainable=False, name="rate")
        state.churn = tf.Variable(0.0, trainable=False, name="churn")
        state.nonzeros = tf.Variable(
            sum(mw.nonzeros() for mw in self.weights), dtype=tf.int64,
            trainable=False, name="nonzeros")
        state.density = tf.Variable(
            [mw.density() for mw in self.weights], dtype=tf.float32,
            trainable=False, name="density")
        for name in ("dropped", "grown", "regrown"):
            setattr(state, name, tf.Variable(
                tf.zeros([n_layers], tf.int64), trainable=False, name=name))
        state.share = tf.Variable(tf.zeros([n_layers]), trainable=False,
                                  name="share")
        state.layer_rate = tf.Variable(tf.zeros([n_layers]), trainable=False,
                                       name="layer_rate")
        state.ever_active = [
            tf.Variable(tf.convert_to_tensor(mw.mask) > 0, trainable=False,
                        name=f"ever_active_{i}")
            for i, mw in enumerate(self.weights)]
        state.itop = tf.Variable(self._itop_value(state.ever_active),
                                 trainable=False, name="itop")
        # The last HISTORY updates, one row each (see `update_history`), so
        # that a callback running once per execution of several steps sees
        # every update of it.
        state.history = tf.Variable(
            tf.zeros([self.HISTORY, len(_SCALARS) + len(_PER_LAYER) * n_layers],
                     tf.float64), trainable=False, name="history")
        if self.tap is not None:
            state.tap = self.tap.variables()
        self.state = state

    def _itop_value(self, ever_active):
        total = sum(mw.size for mw in self.weights)
        ever = tf.add_n([tf.reduce_sum(tf.cast(e, tf.float64))
                         for e in ever_active])
        return tf.cast(ever / total, tf.float32)

    def _check_optimizer(self, optimizer):
        """Resolves the momentum and gradient sources; raises if the
        optimizer cannot give what the algorithm needs."""
        owner = type(self).__name__
        if ((self.needs_momentum or self.needs_gradient
             or self.skip_gradient_step) and optimizer is None):
            raise ValueError(
                f"{owner} reads the optimizer: compile the model before "
                "attaching the algorithm.")
        self._momentum_from = None
        if self.needs_momentum:
            kind = optimizer_state.momentum_kind(optimizer)
            if self.momentum_source == "optimizer" and kind is None:
                raise ValueError(
                    f"{owner}(momentum_source='optimizer') cannot read "
                    f"momentum from {optimizer_state.describe(optimizer)}; "
                    "readable: SGD with momentum > 0, Adam, AdamW, Nadam. "
                    "Pass momentum_source='ema' (or 'auto') to let tf-sparse "
                    "keep an exponential moving average of the gradients "
                    "instead.")
            if self.momentum_source == "ema" or kind is None:
                self._momentum_from = "ema"
            else:
                self._momentum_from = "optimizer"
        if self.needs_gradient and self.gradient_source == "tape":
            strategy = self.model.distribute_strategy
            if strategy.num_replicas_in_sync > 1:
                raise ValueError(
                    f"{owner}(gradient_source='tape') cannot run under "
                    f"{type(strategy).__name__} with "
                    f"{strategy.num_replicas_in_sync} replicas: the gradient "
                    "would need an all-reduce inside the update's tf.cond, "
                    "which tf.distribute refuses (merge_call in control "
                    "flow). Use gradient_source='optimizer' (the default), "
                    "which reads the optimizer's all-reduced gradient.")

    def _make_tap(self, optimizer):
        """A `GradientTap` if the algorithm needs one, else None."""
        ema = self._momentum_from == "ema"
        capture = self.needs_gradient and self.gradient_source == "optimizer"
        skip = self.skip_gradient_step
        if not (ema or capture or skip):
            return None
        return optimizer_state.GradientTap(
            optimizer, self.weights,
            ema_beta=self.ema_beta if ema else None,
            capture_due=self.should_update if capture else None,
            skip_due=self.should_update if skip else None)

    def should_update(self, step):
        return self.cadence.should_update(step)

    def update_steps(self):
        """The steps of all updates, if the cadence can list them (step 0,
        before any training step, never happens)."""
        steps = getattr(self.cadence, "update_steps", None)
        return [s for s in steps() if s >= 1] if steps is not None else None

    def checkpoint_items(self):
        return {"mask_algorithm_state": self.state} if self.state else {}

    # ------------------------------------------------------------------
    # Signals
    # ------------------------------------------------------------------

    def read_momentum(self, i):
        """The momentum signal of layer i: the optimizer's momentum (see
        `optimizer_state.momentum`) or the gradient EMA the tap keeps."""
        if self._momentum_from == "optimizer":
            return optimizer_state.momentum(self.model.optimizer,
                                            self.weights[i].variable)
        if self._momentum_from == "ema":
            return tf.convert_to_tensor(self.tap.ema[i])
        raise ValueError(f"{type(self).__name__} does not read momentum.")

    def read_gradients(self, ctx):
        """Dense gradients of every masked weight (list, weight shapes).

        "optimizer": the all-reduced gradient the optimizer applied at this
        step (captured by the tap; the batch's gradient at the weights
        before the step). "tape": recomputed on the current batch at the
        weights after the step, with the model in inference mode (no
        batch-norm statistics are updated twice); single replica only.
        """
        if self.gradient_source == "optimizer":
            return [tf.convert_to_tensor(self.tap.captured[i])
                    for i in range(len(self.weights))]
        import keras  # pylint: disable=import-outside-toplevel
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(ctx.data)
        variables = [mw.variable for mw in self.weights]
        with tf.GradientTape() as tape:
            y_pred = self.model(x, training=False)
            loss = self.model.compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight)
        grads = tape.gradient(loss, variables)
        return [tf.zeros(v.shape, v.dtype) if g is None else
                tf.convert_to_tensor(g) for g, v in zip(grads, variables)]

    # ------------------------------------------------------------------
    # The three decisions
    # ------------------------------------------------------------------

    def drop_score(self, ctx, i):
        """Lowest scores among active weights are dropped: |w|."""
        return tf.abs(ctx.values[i])

    def grow_score(self, ctx, i):
        """Highest scores among candidates are grown."""
        raise NotImplementedError

    def drop_counts(self, ctx, rates=None):
        """`round(rate * n_l)` per layer (float64), rounding per
        `drop_rounding`; `rates` overrides the global rate per layer."""
        rate = ctx.rate if rates is None else rates
        raw = rate * ctx.n
        counts = tf.math.ceil(raw) if self.drop_rounding == "ceil" else (
            tf.math.floor(raw))
        return counts

    def layer_counts(self, ctx):
        """(drop counts, grow counts, shares, per-layer rates), float64 [L].

        Default: regrow in place, the same number as dropped. With
        `regrow_dropped="never"` a layer drops at most as many weights as it
        has inactive positions to regrow into.
        """
        drop = self.drop_counts(ctx)
        if self.regrow_dropped == "never":
            drop = tf.minimum(drop, ctx.zeros)
        total = tf.reduce_sum(drop)
        share = tf.where(total > 0, drop / tf.maximum(total, 1.0),
                         tf.zeros_like(drop))
        rates = tf.fill(tf.shape(drop), ctx.rate)
        return drop, drop, share, rates

    # ------------------------------------------------------------------
    # The update
    # ------------------------------------------------------------------

    def _grow_values(self, ctx, i, new_weights):
        if self.grow_init == "zeros":
            return tf.zeros_like(ctx.values[i])
        active = ctx.active[i]
        values = ctx.values[i]
        n = tf.maximum(tf.reduce_sum(tf.cast(active, values.dtype)), 1.0)
        mean = tf.reduce_sum(tf.where(active, values, 0.0)) / n
        var = tf.reduce_sum(tf.where(active, tf.square(values - mean),
                                     0.0)) / n
        seed = tf.random.experimental.stateless_fold_in(
            tf.constant([self.seed, i], tf.int64), ctx.step * 4 + 3)
        noise = tf.random.stateless_normal(tf.shape(values), seed=seed,
                                           dtype=values.dtype)
        del new_weights
        return noise * tf.sqrt(var)

    def update(self, step, data):
        ctx = UpdateContext(self, step, data)
        drop, grow, share, rates = self.layer_counts(ctx)
        drop_i = tf.cast(drop, tf.int32)
        grow_i = tf.cast(grow, tf.int32)
        optimizer = getattr(self.model, "optimizer", None)
        dropped_counts, grown_counts, regrown_counts = [], [], []
        new_total = []
        net_new_total = []
        state = self.state
        for i, mw in enumerate(self.weights):
            active = ctx.active[i]
            dropped = selection.select_bottom(
                self.drop_score(ctx, i), active, drop_i[i],
                self.selection_method, self.jit_selection)
            kept = tf.logical_and(active, tf.logical_not(dropped))
            if self.regrow_dropped == "never":
                candidates = tf.logical_not(active)
            else:
                candidates = tf.logical_not(kept)
            grown = selection.select_top(
                self.grow_score(ctx, i), candidates, grow_i[i],
                self.selection_method, self.jit_selection)
            new_active = tf.logical_or(kept, grown)
            regrown = tf.logical_and(grown, dropped)
            net_new = tf.logical_and(grown, tf.logical_not(active))
            if self.regrow_dropped == "reinit":
                treated_new = grown
            else:
                treated_new = net_new
            net_dropped = tf.logical_and(dropped, tf.logical_not(grown))
            shape = mw.shape
            # Values of new weights (already 0 unless regrown or not zeros).
            if self.grow_init != "zeros" or self.regrow_dropped == "reinit":
                init = self._grow_values(ctx, i, None)
                mw.variable.assign(tf.reshape(
                    tf.where(treated_new, init, ctx.values[i]), shape))
            # Optimizer slots.
            reset = None
            if self.grown_slots == "zero":
                reset = treated_new
            if self.dropped_slots == "zero":
                reset = net_dropped if reset is None else tf.logical_or(
                    reset, net_dropped)
            if reset is not None and optimizer is not None:
                for slot in optimizer_state.slot_variables(optimizer,
                                                           mw.variable):
                    flat = tf.reshape(tf.convert_to_tensor(slot), [-1])
                    slot.assign(tf.reshape(
                        tf.where(reset, tf.zeros_like(flat), flat), shape))
            mw.mask.assign(tf.reshape(tf.cast(new_active, mw.mask.dtype),
                                      shape))
            if state is not None:
                ever = state.ever_active[i]
                ever.assign(tf.logical_or(ever, tf.reshape(new_active, shape)))
            count = lambda b: tf.reduce_sum(tf.cast(b, tf.int64))  # noqa: E731
            dropped_counts.append(count(dropped))
            grown_counts.append(count(grown))
            regrown_counts.append(count(regrown))
            new_total.append(count(new_active))
            net_new_total.append(count(net_new))
        before = tf.cast(tf.reduce_sum(ctx.n), tf.int64)
        after = tf.add_n(new_total)
        check = tf.debugging.assert_equal(
            after, before,
            message=f"{type(self).__name__}: total nonzeros changed in a "
                    "mask update")
        if state is None:
            return
        with tf.control_dependencies([check]):
            state.nonzeros.assign(after)
        state.num_updates.assign_add(1)
        state.last_step.assign(ctx.step)
        state.rate.assign(tf.cast(ctx.rate, tf.float32))
        state.density.assign(tf.cast(
            tf.cast(tf.stack(new_total), tf.float64) / ctx.sizes, tf.float32))
        state.dropped.assign(tf.stack(dropped_counts))
        state.grown.assign(tf.stack(grown_counts))
        state.regrown.assign(tf.stack(regrown_counts))
        state.share.assign(tf.cast(share, tf.float32))
        state.layer_rate.assign(tf.cast(rates, tf.float32))
        state.churn.assign(tf.cast(
            tf.cast(tf.add_n(net_new_total), tf.float64)
            / tf.maximum(tf.cast(before, tf.float64), 1.0), tf.float32))
        state.itop.assign(self._itop_value(state.ever_active))
        as64 = lambda x: tf.reshape(tf.cast(x, tf.float64), [-1])  # noqa: E731
        row = tf.concat(
            [as64(tf.stack([tf.cast(ctx.step, tf.float64),
                            tf.cast(state.rate, tf.float64),
                            tf.cast(state.churn, tf.float64),
                            tf.cast(state.itop, tf.float64),
                            tf.cast(after, tf.float64),
                            tf.cast(tf.add_n(dropped_counts), tf.float64),
                            tf.cast(tf.add_n(grown_counts), tf.float64),
                            tf.cast(tf.add_n(regrown_counts), tf.float64)])),
             as64(state.density), as64(state.dropped), as64(state.grown),
             as64(state.regrown), as64(state.share), as64(state.layer_rate)],
            0)
        slot = tf.math.floormod(state.num_updates - 1, self.HISTORY)
        state.history.assign(tf.tensor_scatter_nd_update(
            state.history, [[slot]], [row]))

    # ------------------------------------------------------------------
    # Reporting
    # ------------------------------------------------------------------

    def summary_values(self):
        """The last update's monitoring values as Python numbers.

        Returns a dict with scalars (`rate`, `churn`, `itop`, `nonzeros`,
        `num_updates`, `step`, totals of dropped/grown/regrown) and
        `layers`: {weight path: {density, dropped, grown, regrown, share,
        rate}}.
        """
        s = self.state
        if s is None:
            return {}
        per_layer = {}
        arrays = {name: getattr(s, name).numpy()
                  for name in ("density", "dropped", "grown", "regrown",
                               "share", "layer_rate")}
        for i, mw in enumerate(self.weights):
            per_layer[mw.path] = {
                "density": float(arrays["density"][i]),
                "dropped": int(arrays["dropped"][i]),
                "grown": int(arrays["grown"][i]),
                "regrown": int(arrays["regrown"][i]),
                "share": float(arrays["share"][i]),
                "rate": float(arrays["layer_rate"][i]),
            }
        return {
            "num_updates": int(s.num_updates.numpy()),
            "step": int(s.last_step.numpy()),
            "rate": float(s.rate.numpy()),
            "churn": float(s.churn.numpy()),
            "itop": float(s.itop.numpy()),
            "nonzeros": int(s.nonzeros.numpy()),
            "dropped": int(arrays["dropped"].sum()),
            "grown": int(arrays["grown"].sum()),
            "regrown": int(arrays["regrown"].sum()),
            "layers": per_layer,
        }

    def update_history(self, since=0):
        """Monitoring values of the updates numbered `since + 1` .. now.

        A list of dicts like `summary_values()` (without `num_updates`, with
        the update's number as `update`), oldest first; at most the last
        `HISTORY` updates are kept.

        >>> alg.update_history(since=3)     # doctest: +SKIP
        [{'update': 4, 'step': 400, 'rate': 0.29, ..., 'layers': {...}}]
        """
        s = self.state
        if s is None:
            return []
        now = int(s.num_updates.numpy())
        rows = s.history.numpy()
        n_scalars, n_layers = len(_SCALARS), len(self.weights)
        out = []
        for number in range(max(since, now - self.HISTORY) + 1, now + 1):
            row = rows[(number - 1) % self.HISTORY]
            values = {"update": number}
            for j, key in enumerate(_SCALARS):
                values[key] = float(row[j])
            for key in ("step", "nonzeros", "dropped", "grown", "regrown"):
                values[key] = int(values[key])
            blocks = row[n_scalars:].reshape(len(_PER_LAYER), n_layers)
            values["layers"] = {
                mw.path: {key: (int(blocks[k, i]) if key in (
                    "dropped", "grown", "regrown") else float(blocks[k, i]))
                          for k, key in enumerate(_PER_LAYER)}
                for i, mw in enumerate(self.weights)}
            out.append(values)
        return out

    def get_config(self):
        return {"name": self.name, "drop_rounding": self.drop_rounding,
                "regrow_dropped": self.regrow_dropped,
                "grow_init": self.grow_init, "grown_slots": self.grown_slots,
                "dropped_slots": self.dropped_slots, "seed": self.seed,
                "skip_gradient_step": self.skip_gradient_step}

