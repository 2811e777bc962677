"""The prune-and-grow update engine that SET, RigL and sparse momentum share.

An algorithm is a small subclass that chooses when (`cadence`), how many
(`drop_fraction`, `layer_counts`), what to drop (`drop_score`, lowest among
active weights; default `|w|`) and what to grow (`grow_score`, highest among
candidates). One update, run in graph right after optimizer step `t` when
`cadence.should_update(t)`:

1. rate `p = drop_fraction(t)`, evaluated in float64
   (`update_schedules.rate_at`: float32 would make `ceil(0.8 * 10)` 9);
2. per-layer counts: `layer_counts(ctx)` gives the number to drop `r_l`, the
   number to grow `g_l`, a redistribution share and a rate per layer
   (default: drop `ceil` or `floor` of `p * n_l` and regrow the same number
   in place; `redistribution` has the helpers for moving weights between
   layers);
3. drop: the `r_l` active weights with the lowest `drop_score`;
4. grow: the `g_l` candidates with the highest `grow_score`. Candidates are
   the inactive weights after dropping, i.e. a weight dropped in this update
   may be chosen again unless `regrow_dropped="never"`;
5. write the new masks, the values of grown weights and the optimizer slots
   as the options below say; the base class then zeroes dropped weights;
6. record the update's statistics (`monitoring.UpdateState`, written to
   TensorBoard by `tfs.callbacks.MaskUpdateSummaries`).

Exact counts: selection is `tf_sparse.topk` (k a tensor, ties to the lower
index, XLA-compiled on its own), so every layer ends with exactly
`n_l - r_l + g_l` active weights and the total never drifts; an in-graph
assertion checks it after every update. The references' correction terms
for inexact counts (sparse_learning's `adjusted_growth`) are not needed, and
random growth draws exactly `g_l` positions (stateless RNG keyed by (seed,
step, layer), so replicas and reruns agree), not a Bernoulli mask.

Structured patterns (`sparsify(pattern=...)`, `tf_sparse.patterns`; the
unstructured path is unchanged, bit for bit):

* block and channel: counts are whole groups (`count_units`; the rate
  applies to a layer's active groups), the `r_l` active groups of lowest
  summed drop score are dropped and the `g_l` candidate groups of highest
  summed grow score grown. Sums, not means: the groups of a layer have one
  size, so both give the same choice, and sums are what SNIP, GMP and
  static pruning rank groups by.
* N:M: the `r_l` active weights of lowest drop score in the layer are
  dropped; each group then regrows, among its own candidates, as many as
  it lost, by grow score: every group keeps N (exactly, after every
  update), and the layer its count. With `regrow_dropped="never"` only a
  group's weakest active entries, as many as it has inactive ones, can be
  dropped. N:M layers never lend or borrow weights (see
  `redistribution.can_move`).

Signals (`UpdateContext`): momentum is the optimizer's (SGD's buffer, Adam's
`m / (sqrt(v) + eps)`, see `optimizer_state.momentum`) or, for optimizers
without momentum, a gradient EMA the tap keeps (`momentum_source`: "auto",
"optimizer" refuses such optimizers, "ema" always uses the average). The
dense gradient is the all-reduced one the optimizer applied at the update
step, at the weights before it (`gradient_source="optimizer"`, read through
`optimizer_state.GradientTap`), or recomputed after the step on one replica
(`"tape"`).

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
  keeps both; rigl zeroes the slots of grown weights. "zero" resets each
  slot to the optimizer's own initial value (`optimizer_state.reset_slots`):
  0 for momenta and moments, Adagrad's and Ftrl's
  `initial_accumulator_value`, the weight's new value for
  ScheduleFreeAdamW's `z`.
* `skip_gradient_step`: False applies the optimizer step of an update
  iteration and then updates the masks (sparse_learning, rigl_tf2); True
  leaves every variable and optimizer slot as it was at that step and only
  updates the masks (RigL's Algorithm 1, rigl TF1, jaxpruner's SET/RigL).
  The step counter advances either way; decoupled weight decay (the
  optimizer's `weight_decay`) still applies on a skipped step, see
  `optimizer_state.GradientTap`.

Example (a new algorithm is a small subclass):

    class GrowByMagnitudeOfMomentum(PruneGrow):
        name = "my_alg"
        needs_momentum = True
        def grow_score(self, ctx, i):
            return keras.ops.abs(ctx.momentum(i))

    alg = GrowByMagnitudeOfMomentum(
        cadence=tfs.schedules.UpdateSchedule(every=100, total_steps=T),
        drop_fraction=0.3, regrow_dropped="keep")
"""

import numbers

import keras

from tf_sparse import backend
from tf_sparse import channel_graph
from tf_sparse import patterns
from tf_sparse import topk
from tf_sparse.algorithms import base
from tf_sparse.algorithms import checks
from tf_sparse.algorithms import float64
from tf_sparse.algorithms import monitoring
from tf_sparse.algorithms import optimizer_state
from tf_sparse.algorithms import update_schedules

REGROW = ("never", "keep", "reinit")
GROW_INIT = ("zeros", "random_normal")
SLOT_POLICIES = ("keep", "zero")
ROUNDING = ("ceil", "floor")
GRADIENT_SOURCES = ("optimizer", "tape")


def config_keys(*same, **renamed):
    """`CONFIG_KEYS` of a prune-and-grow algorithm: config key
    (`config.algorithm_params.<key>`) -> constructor argument, for the
    options every one takes, the keys `same` and the pairs `renamed`."""
    options = ("regrow_dropped", "grow_init", "grown_slots", "dropped_slots",
               "skip_gradient_step")
    return {**{key: key for key in options + same}, **renamed}


class UpdateContext:
    """What one update sees; built at the start of `PruneGrow.update`.

    Per layer `i` (in `algorithm.weights` order), flat tensors:
    `active[i]` (bool), `values[i]` (weights); and `n` / `zeros` / `sizes`
    (float64 vectors) counted in the layer's units: weights, or groups for
    a layer whose pattern keeps or removes whole groups (block, channel;
    `PruneGrow.count_units`), so that drop and grow counts are whole groups.
    `weight_n` / `weight_sizes` are the same in weights. `momentum(i)` and
    `gradient(i)` read the optimizer signals on demand.
    """

    def __init__(self, algorithm, step, data):
        ops = keras.ops
        self.algorithm = algorithm
        self.step = ops.cast(ops.convert_to_tensor(step), "int64")
        self.data = data
        self.rate = update_schedules.rate_at(algorithm.drop_fraction,
                                             self.step)  # float64
        self.active = []
        self.values = []
        for mw in algorithm.weights:
            self.active.append(ops.reshape(
                ops.convert_to_tensor(mw.mask) > 0, [-1]))
            self.values.append(ops.reshape(
                ops.convert_to_tensor(mw.variable), [-1]))
        self.weight_n = ops.stack([ops.sum(ops.cast(a, "float64"))
                                   for a in self.active])
        self.weight_sizes = ops.convert_to_tensor(
            [float(mw.size) for mw in algorithm.weights], "float64")
        units = algorithm.count_units()
        if all(u == 1 for u in units):
            self.n, self.sizes = self.weight_n, self.weight_sizes
        else:
            per = ops.convert_to_tensor([float(u) for u in units], "float64")
            self.n = self.weight_n / per
            self.sizes = self.weight_sizes / per
        self.zeros = self.sizes - self.n
        self._momentum = {}
        self._gradients = None

    def momentum(self, i):
        if i not in self._momentum:
            self._momentum[i] = keras.ops.reshape(
                self.algorithm.read_momentum(i), [-1])
        return self._momentum[i]

    def gradient(self, i):
        if self._gradients is None:
            self._gradients = self.algorithm.read_gradients(self)
        return keras.ops.reshape(self._gradients[i], [-1])

    def uniform(self, i, salt=0):
        """Stateless uniform scores keyed by (seed, step, layer, salt)
        (`backend.stateless_random`)."""
        return backend.stateless_random(
            "uniform", [self.algorithm.weights[i].size],
            (self.algorithm.seed, i), self.step * 4 + salt)


class PruneGrow(base.MaskAlgorithm):
    """Drop the lowest `drop_score`, grow the highest `grow_score`.

    Subclasses override `drop_score`, `grow_score` and/or `layer_counts`,
    and set `needs_momentum` / `needs_gradient` when they read those.

    Args:
      cadence: when to update, an object with `should_update(step)` (e.g.
        `tfs.schedules.UpdateSchedule`).
      drop_fraction: float in (0, 1) or a schedule of the step (e.g.
        `CosineDecay(0.5, 0.005, total_steps=T)`).
      drop_rounding: "ceil" or "floor" of `rate * n_l`.
      regrow_dropped, grow_init, grown_slots, dropped_slots,
        skip_gradient_step: see the module docstring.
      seed: seeds the stateless RNGs (random growth, random grow init).
      selection_method: "radix" or "sort" (same masks; radix is faster).
      jit_selection: compile the selection with XLA (same masks).

    Where signals come from (see the module docstring) is set by a subclass
    before it calls `__init__`: `momentum_source` ("auto", "optimizer" or
    "ema"), `ema_beta` (decay of the gradient EMA when it is used) and
    `gradient_source` ("optimizer" or "tape"). A subclass takes its paper's
    arguments and passes the options above on (`**options`).
    """

    name = "prune_grow"
    # Updates kept for `update_history` (monitoring across executions of
    # several steps); more updates than this within one execution are lost.
    HISTORY = 64
    # Subclasses set these (before __init__) when they read the optimizer.
    needs_momentum = False
    needs_gradient = False
    momentum_source = "auto"
    gradient_source = "optimizer"
    ema_beta = 0.9
    # Config key (`config.algorithm_params.<key>`) -> constructor argument.
    CONFIG_KEYS = {}
    # Whether the constructor takes steps_per_epoch (every-epoch cadence).
    EPOCH_CADENCE = False
    # Per masked weight, its `patterns.Layout` (set by `attach`); None: the
    # algorithm was not attached to masks (every weight on its own).
    layouts = None
    # `channel_graph.ChannelTies` of the masked channels (set by `attach`):
    # channel scores are summed over whole dependency groups.
    ties = None

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
        self.drop_fraction = update_schedules.rate_schedule(owner,
                                                            drop_fraction)

        def choice(what, value, accepted):
            return checks.check_choice(owner, what, value, accepted)

        self.drop_rounding = choice("drop_rounding", drop_rounding, ROUNDING)
        self.regrow_dropped = choice("regrow_dropped", regrow_dropped, REGROW)
        self.grow_init = choice("grow_init", grow_init, GROW_INIT)
        self.grown_slots = choice("grown_slots", grown_slots, SLOT_POLICIES)
        self.dropped_slots = choice("dropped_slots", dropped_slots,
                                    SLOT_POLICIES)
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise ValueError(f"{owner}: seed must be an int, got {seed!r}.")
        self.seed = int(seed)
        self.selection_method = choice("selection_method", selection_method,
                                       topk.METHODS)
        self.jit_selection = bool(jit_selection)
        choice("momentum_source", self.momentum_source,
               optimizer_state.MOMENTUM_SOURCES)
        choice("gradient_source", self.gradient_source, GRADIENT_SOURCES)
        self.ema_beta = checks.check_rate(owner, "ema_beta", self.ema_beta)
        self.tap = None
        self.state = None
        self.momentum_from = None

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
        self.layouts = [patterns.layout_of(mw.pattern, mw.layer, mw.name,
                                           mw.shape) for mw in self.weights]
        for mw, layout in zip(self.weights, self.layouts):
            problem = layout.misfit(keras.ops.convert_to_numpy(mw.mask))
            if problem is not None:
                raise ValueError(
                    f"{type(self).__name__}: the mask of {mw.path} does not "
                    f"follow its pattern {mw.pattern!r}: {problem}.")
        self.ties = channel_graph.ChannelTies.of(
            model, [(mw.layer.name, mw.name, layout)
                    for mw, layout in zip(self.weights, self.layouts)])
        optimizer = getattr(model, "optimizer", None)
        self._check_optimizer(optimizer)
        self.tap = self._make_tap(optimizer)
        self.state = monitoring.UpdateState(self.weights, self.HISTORY)
        if self.tap is not None:
            self.state.tap = self.tap.variables()

    def _check_optimizer(self, optimizer):
        """Resolves `momentum_from` ("optimizer", "ema" or None); raises if
        the optimizer cannot give what the algorithm needs."""
        owner = type(self).__name__
        if ((self.needs_momentum or self.needs_gradient
             or self.skip_gradient_step) and optimizer is None):
            raise ValueError(
                f"{owner} reads the optimizer: compile the model before "
                "attaching the algorithm.")
        if "zero" in (self.grown_slots, self.dropped_slots):
            optimizer_state.check_slots(optimizer, owner)
        self.momentum_from = None
        if self.needs_momentum:
            self.momentum_from = optimizer_state.resolve_momentum_source(
                optimizer, self.momentum_source, owner)
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
        ema = self.momentum_from == "ema"
        capture = self.needs_gradient and self.gradient_source == "optimizer"
        skip = self.skip_gradient_step
        if not (ema or capture or skip):
            return None
        return optimizer_state.GradientTap(
            optimizer, self.weights,
            ema_beta=self.ema_beta if ema else None,
            capture_due=self.should_update if capture else None,
            skip_due=self.should_update if skip else None)

    def count_units(self):
        """Weights per counting unit of each layer (Python ints): the group
        size where a pattern keeps or removes whole groups (block, channel),
        else 1 (unstructured, and N:M, whose groups keep their count)."""
        if self.layouts is None:
            return [1] * len(self.weights)
        return [layout.group_size if layout.whole_groups else 1
                for layout in self.layouts]

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
        if self.momentum_from == "optimizer":
            return optimizer_state.momentum(self.model.optimizer,
                                            self.weights[i].variable)
        if self.momentum_from == "ema":
            return keras.ops.convert_to_tensor(self.tap.ema[i])
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
            return [keras.ops.convert_to_tensor(self.tap.captured[i])
                    for i in range(len(self.weights))]
        # In TensorFlow's train step only (`training` refuses "tape" on the
        # other backends): a tape inside the compiled update.
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
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
    # The decisions
    # ------------------------------------------------------------------

    def drop_score(self, ctx, i):
        """Lowest scores among active weights are dropped: |w|."""
        return keras.ops.abs(ctx.values[i])

    def grow_score(self, ctx, i):
        """Highest scores among candidates are grown."""
        raise NotImplementedError

    def drop_counts(self, ctx, rates=None):
        """`round(rate * n_l)` per layer (float64), rounding per
        `drop_rounding`; `rates` overrides the global rate per layer."""
        rate = ctx.rate if rates is None else rates
        raw = rate * ctx.n
        return (float64.ceil(raw) if self.drop_rounding == "ceil"
                else float64.floor(raw))

    def layer_counts(self, ctx):
        """(drop counts, grow counts, shares, per-layer rates), float64 [L].

        Default: regrow in place, the same number as dropped. With
        `regrow_dropped="never"` a layer drops at most as many weights as it
        has inactive positions to regrow into.
        """
        ops = keras.ops
        drop = self.drop_counts(ctx)
        if self.regrow_dropped == "never":
            drop = float64.minimum(drop, ctx.zeros)
        total = ops.sum(drop)
        share = ops.where(total > 0, drop / float64.maximum(total, 1.0),
                          ops.zeros_like(drop))
        rates = ops.full(ops.shape(drop), ctx.rate, "float64")
        return drop, drop, share, rates

    # ------------------------------------------------------------------
    # The update
    # ------------------------------------------------------------------

    def update(self, step, data):
        ops = keras.ops
        ctx = UpdateContext(self, step, data)
        drop, grow, share, rates = self.layer_counts(ctx)
        drop = ops.cast(drop, "int32")
        grow = ops.cast(grow, "int32")
        counts = {"active": [], "dropped": [], "grown": [], "regrown": [],
                  "net_new": []}
        tied = self._tied_sums(ctx)
        for i in range(len(self.weights)):
            sets = self._update_layer(ctx, i, drop[i], grow[i],
                                      None if tied is None else
                                      (tied[0][i], tied[1][i]))
            for key, positions in sets.items():
                counts[key].append(
                    ops.sum(ops.cast(positions, "int64")))
        before = ops.cast(ops.sum(ctx.weight_n), "int64")
        backend.check_equal(
            ops.sum(ops.stack(counts["active"])), before,
            f"{type(self).__name__}: total nonzeros changed in a mask update")
        self.state.record(step=ctx.step, rate=ctx.rate,
                          sizes=ctx.weight_sizes,
                          before=before, share=share, layer_rates=rates,
                          **counts)

    def _tied_sums(self, ctx):
        """(drop sums, grow sums) per layer, each channel's summed over its
        dependency group (`ties`); None without ties."""
        if self.ties is None:
            return None
        drop, grow = [], []
        for i, (mw, ids) in enumerate(zip(self.weights, self.ties.ids)):
            if ids is None:
                drop.append(None)
                grow.append(None)
                continue
            layout = self.layouts[i]
            drop.append(layout.group_sums(keras.ops.reshape(
                self.drop_score(ctx, i), mw.shape)))
            grow.append(layout.group_sums(keras.ops.reshape(
                self.grow_score(ctx, i), mw.shape)))
        return self.ties.tie(drop), self.ties.tie(grow)

    def _update_layer(self, ctx, i, n_drop, n_grow, tied=None):
        """Drops and grows in layer `i`, writes its mask, grown values and
        slots; returns the flat position sets the update counts. `tied`:
        the layer's (drop, grow) channel sums over dependency groups."""
        active = ctx.active[i]
        layout = None if self.layouts is None else self.layouts[i]
        if layout is None or layout.unstructured:
            dropped, grown = self._select_weights(ctx, i, n_drop, n_grow)
        elif layout.whole_groups:
            dropped, grown = self._select_groups(ctx, i, n_drop, n_grow,
                                                 layout, tied)
        else:
            dropped, grown = self._select_n_m(ctx, i, n_drop, layout)
        ops = keras.ops
        kept = ops.logical_and(active, ops.logical_not(dropped))
        new_active = ops.logical_or(kept, grown)
        net_new = ops.logical_and(grown, ops.logical_not(active))
        self._write_layer(ctx, i, new_active, dropped, grown, net_new)
        return {"active": new_active, "dropped": dropped, "grown": grown,
                "regrown": ops.logical_and(grown, dropped),
                "net_new": net_new}

    def _candidates(self, active, kept):
        """Where growth may go: every inactive position, and the dropped
        ones too unless `regrow_dropped="never"` (bools, keras.ops)."""
        return keras.ops.logical_not(
            active if self.regrow_dropped == "never" else kept)

    def _select_weights(self, ctx, i, n_drop, n_grow):
        """Unstructured: the `n_drop` active weights of lowest drop score,
        then the `n_grow` candidates of highest grow score (flat bools)."""
        select = dict(method=self.selection_method, jit=self.jit_selection)
        active = ctx.active[i]
        dropped = topk.select_bottom(self.drop_score(ctx, i), active, n_drop,
                                     **select)
        kept = keras.ops.logical_and(active, keras.ops.logical_not(dropped))
        grown = topk.select_top(self.grow_score(ctx, i),
                                self._candidates(active, kept), n_grow,
                                **select)
        return dropped, grown

    def _select_groups(self, ctx, i, n_drop, n_grow, layout, tied=None):
        """Whole groups (block, channel): `n_drop` active groups of lowest
        summed drop score, `n_grow` candidate groups of highest summed grow
        score (counts in groups; flat bools of weights). Sums, not means:
        a layer's groups all have the same size, so both rank alike. With
        `tied` sums (channels of one dependency group), tied layers rank
        their channels alike."""
        select = dict(method=self.selection_method, jit=self.jit_selection)
        shape = self.weights[i].shape
        given = {} if tied is None or tied[0] is None else {
            "drop": tied[0], "grow": tied[1]}

        def sums(scores, which):
            if which in given:
                return given[which]
            return layout.group_sums(keras.ops.reshape(scores, shape))

        def weights_of(groups):
            return keras.ops.reshape(layout.expand(groups), [-1])

        active = layout.group_eligible(keras.ops.reshape(ctx.active[i],
                                                         shape))
        dropped = topk.select_bottom(
            sums(self.drop_score(ctx, i) if not given else None, "drop"),
            active, n_drop, **select)
        kept = keras.ops.logical_and(active, keras.ops.logical_not(dropped))
        grown = topk.select_top(
            sums(self.grow_score(ctx, i) if not given else None, "grow"),
            self._candidates(active, kept), n_grow, **select)
        return weights_of(dropped), weights_of(grown)

    def _select_n_m(self, ctx, i, n_drop, layout):
        """N:M: the `n_drop` active weights of lowest drop score in the
        layer, then in every group as many candidates of that group as it
        lost, by grow score, so each group keeps its count (N). With
        `regrow_dropped="never"` a group can drop at most its inactive
        entries (the weakest active ones are eligible)."""
        ops = keras.ops
        shape = self.weights[i].shape
        active = ctx.active[i]
        eligible = active
        if self.regrow_dropped == "never":
            grouped = layout.groups(ops.reshape(active, shape))
            free = layout.group_size - ops.sum(
                ops.cast(grouped, "int32"), axis=1, keepdims=True)
            eligible = ops.reshape(layout.select(
                ops.reshape(self.drop_score(ctx, i), shape),
                ops.reshape(active, shape), free, lowest=True), [-1])
        dropped = topk.select_bottom(
            self.drop_score(ctx, i), eligible, n_drop,
            method=self.selection_method, jit=self.jit_selection)
        kept = ops.logical_and(active, ops.logical_not(dropped))
        candidates = self._candidates(active, kept)
        lost = ops.sum(ops.cast(layout.groups(
            ops.reshape(dropped, shape)), "int32"), axis=1, keepdims=True)
        grown = layout.select(ops.reshape(self.grow_score(ctx, i), shape),
                              ops.reshape(candidates, shape), lost)
        return dropped, ops.reshape(grown, [-1])

    def _write_layer(self, ctx, i, new_active, dropped, grown, net_new):
        ops = keras.ops
        mw = self.weights[i]
        treated_new = grown if self.regrow_dropped == "reinit" else net_new
        # Values of new weights (already 0 unless regrown or not zeros).
        if self.grow_init != "zeros" or self.regrow_dropped == "reinit":
            mw.variable.assign(ops.reshape(
                ops.where(treated_new, self._grow_values(ctx, i),
                          ctx.values[i]), mw.shape))
        reset = None
        if self.grown_slots == "zero":
            reset = treated_new
        if self.dropped_slots == "zero":
            net_dropped = ops.logical_and(dropped, ops.logical_not(grown))
            reset = net_dropped if reset is None else ops.logical_or(
                reset, net_dropped)
        optimizer = getattr(self.model, "optimizer", None)
        if reset is not None and optimizer is not None:
            # Slots start from the weight's new value (WEIGHT slots, e.g.
            # ScheduleFreeAdamW's z): grown values kept, dropped ones 0.
            optimizer_state.reset_slots(
                optimizer, mw.variable, reset, owner=type(self).__name__,
                value=lambda: ops.where(
                    new_active, ops.reshape(
                        ops.convert_to_tensor(mw.variable), [-1]), 0.0))
        mw.mask.assign(ops.reshape(ops.cast(new_active, mw.mask.dtype),
                                   mw.shape))
        self.state.mark_active(i, ops.reshape(new_active, mw.shape))

    def _grow_values(self, ctx, i):
        """`grow_init="random_normal"`: normal noise with the standard
        deviation of the layer's active weights."""
        ops = keras.ops
        if self.grow_init == "zeros":
            return ops.zeros_like(ctx.values[i])
        active = ctx.active[i]
        values = ctx.values[i]
        n = ops.maximum(ops.sum(ops.cast(active, values.dtype)), 1.0)
        mean = ops.sum(ops.where(active, values, 0.0)) / n
        var = ops.sum(ops.where(active, ops.square(values - mean), 0.0)) / n
        noise = backend.stateless_random(
            "normal", ops.shape(values), (self.seed, i), ctx.step * 4 + 3,
            dtype=values.dtype)
        return noise * ops.sqrt(var)

    # ------------------------------------------------------------------
    # Reporting
    # ------------------------------------------------------------------

    def summary_values(self):
        """The last update's monitoring values as Python numbers (see
        `monitoring.UpdateState.summary_values`)."""
        return self.state.summary_values(self.weights) if self.state else {}

    def update_history(self, since=0):
        """Monitoring values of the updates numbered `since + 1` .. now,
        oldest first; at most the last `HISTORY` updates are kept.

        >>> alg.update_history(since=3)     # doctest: +SKIP
        [{'update': 4, 'step': 400, 'rate': 0.29, ..., 'layers': {...}}]
        """
        if self.state is None:
            return []
        return self.state.update_history(self.weights, since)

    def get_config(self):
        return {"name": self.name, "drop_rounding": self.drop_rounding,
                "regrow_dropped": self.regrow_dropped,
                "grow_init": self.grow_init, "grown_slots": self.grown_slots,
                "dropped_slots": self.dropped_slots, "seed": self.seed,
                "skip_gradient_step": self.skip_gradient_step}
