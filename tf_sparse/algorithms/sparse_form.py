"""SET, RigL and sparse momentum on layers that compute sparse.

A model converted by `tfs.sparsify(..., compute="sparse")` has no dense
weights or masks in its Dense / EinsumDense / 1x1 Conv2D / Embedding
layers, only the nonzeros and their CSR structure
(`tf_sparse.sparse_compute`; an EinsumDense kernel as its `[K, N]` matmul
matrix, so drop, grow and the dense gradient work on that matrix as on a
Dense kernel). This module runs a prune-and-grow algorithm's decisions on
that form, in place, inside the compiled train step (`tfs.training.attach`
wraps the algorithm when the model computes sparse;
`tfs.callbacks.MaskUpdate` does that for `fit`):

* when, how many: the algorithm's own `cadence`, `drop_fraction`,
  rounding and `layer_counts` (sparse momentum's redistribution by the mean
  |momentum| of each layer's weights, read from the optimizer slots of the
  values), evaluated on the stored entries;
* drop: the `r_l` entries of lowest |w| (`topk.select_bottom` over the
  values vector, not over the layer);
* grow: random (SET, `growth="random"`): exactly `g_l` positions drawn
  uniformly among the candidates by rejection (stateless RNG keyed by
  (seed, step, layer)), no dense array; by |dense gradient| (RigL, sparse
  momentum's `growth="gradient"`): the gradient of the update batch at the
  current weights (a second forward/backward pass in inference mode on
  update steps only, like `gradient_source="tape"`), formed
  `chunk_units` output units at a time: each chunk keeps its best `g_l`
  candidates, and the best `g_l` of those win;
* write: the new entries sorted by (output unit, input); kept weights keep
  their values and optimizer slots (moved with them), grown weights start
  at `grow_init` ("zeros") with fresh slots, and a weight dropped and
  regrown in the same update keeps value and slots with
  `regrow_dropped="keep"`.

Every layer ends with exactly `n_l - r_l + g_l` entries (an in-graph
assertion checks the total). A layer cannot grow past its capacity (its
variables' size, `to_sparse_compute(model, room=...)`): grow counts above
it go to layers with room, in layer order.

Differences from the masked form, each because the state does not exist:
grown weights always get fresh slots (there is no momentum at a position
that holds no weight); sparse momentum's default growth by |momentum| of
inactive weights is refused (use `growth="gradient"` or `"random"`); the
dense gradient is recomputed on the update batch instead of captured from
the optimizer (equal to it when `skip_gradient_step=True`, RigL's default,
up to dropout and batch-norm mode); gradient growth is not available for
Embedding layers; ties go to the lower (unit, input) position.

Example:

    model = tfs.sparsify(model, 0.95, compute="sparse")
    model.compile(...)
    model.fit(x, y, callbacks=[tfs.callbacks.MaskUpdate(
        tfs.algorithms.SET(total_steps=T, steps_per_epoch=spe))])
"""

import keras
import numpy as np
import tensorflow as tf

from tf_sparse import masking
from tf_sparse import topk
from tf_sparse.algorithms import base
from tf_sparse.algorithms import optimizer_state
from tf_sparse.algorithms import prune_grow
from tf_sparse.algorithms import update_schedules
from tf_sparse.sparse_compute import layers as sparse_layers
from tf_sparse.sparse_compute import structure as structure_lib

# Output units per chunk of the dense gradient: about this many entries.
CHUNK_ENTRIES = 1 << 20
ATTR = "sparse_form_update"


def grow_rule(algorithm):
    """"random" or "gradient": how `algorithm` grows on the sparse form;
    raises ValueError when it cannot run there."""
    owner = type(algorithm).__name__
    name = getattr(algorithm, "name", "")
    if name == "set":
        rule = "random"
    elif name == "rigl":
        rule = "gradient"
    elif name == "sparse_momentum":
        growth = algorithm.growth
        if growth == "momentum":
            raise ValueError(
                f"{owner}(growth='momentum') cannot run on layers that "
                "compute sparse: they keep no momentum at positions without "
                "a weight. Use growth='gradient' (|dense gradient| of the "
                "update batch) or growth='random', or compute='masked'.")
        rule = "gradient" if growth == "gradient" else "random"
    else:
        raise ValueError(
            f"{owner} has no sparse-form update: its grow score is defined "
            "on the dense layer. SET, RigL and SparseMomentum run on layers "
            "that compute sparse; use compute='masked' for the others.")
    if algorithm.grow_init != "zeros":
        raise ValueError(
            f"{owner}(grow_init={algorithm.grow_init!r}) on layers that "
            "compute sparse: only grow_init='zeros' is implemented there.")
    return rule


def for_sparse_compute(algorithm):
    """What runs on a model that computes sparse: the algorithm itself when
    it never updates masks (static), else its `SparseFormUpdate` (made
    once per algorithm). Raises ValueError for algorithms with no sparse
    form (GMP, AC/DC, SNIP, custom grow scores)."""
    if isinstance(algorithm, SparseFormUpdate):
        return algorithm
    if not isinstance(algorithm, prune_grow.PruneGrow):
        if type(algorithm).should_update is base.MaskAlgorithm.should_update:
            return algorithm
        raise ValueError(
            f"{type(algorithm).__name__} changes masks of dense layers and "
            "has no sparse-form update; use it with compute='masked'.")
    wrapper = getattr(algorithm, ATTR, None)
    if wrapper is None:
        wrapper = SparseFormUpdate(algorithm)
        setattr(algorithm, ATTR, wrapper)
    return wrapper


class _Context:
    """What `layer_counts` reads, from the stored entries (the interface
    of `prune_grow.UpdateContext`)."""

    def __init__(self, update, step):
        algorithm = update.algorithm
        self.algorithm = algorithm
        self.step = tf.cast(tf.convert_to_tensor(step), tf.int64)
        self.rate = update_schedules.rate_at(
            algorithm.drop_fraction, self.step)
        self.active, self.values = [], []
        for holder in update.kernels:
            capacity = holder.capacity
            self.active.append(structure_lib.used_entries(
                tf.convert_to_tensor(holder.row_ptr), capacity))
            self.values.append(tf.convert_to_tensor(holder.values))
        self.n = tf.stack([tf.reduce_sum(tf.cast(a, tf.float64))
                           for a in self.active])
        self.sizes = tf.constant([float(h.size) for h in update.kernels],
                                 tf.float64)
        self.zeros = self.sizes - self.n
        self._update = update

    def momentum(self, i):
        return tf.reshape(optimizer_state.momentum(
            self._update.model.optimizer, self._update.kernels[i].values),
            [-1])


class _Recorder:
    """Records each sparse layer's input and the gradient at its output
    during one forward/backward pass."""

    def __init__(self, tape):
        self.tape = tape
        self.seen = {}

    def record(self, holder, x, y):
        probe = tf.zeros_like(y)
        self.tape.watch(probe)
        k_in = holder.matrix_shape[0]
        self.seen[id(holder)] = (tf.reshape(x, [-1, k_in]), probe)
        return y + probe


class SparseFormUpdate(base.MaskAlgorithm):
    """Runs `algorithm` (SET, RigL, SparseMomentum) on sparse-compute
    layers (see the module docstring). `chunk_entries`: about how many
    dense-gradient entries are formed at once."""

    name = "sparse_form"

    def __init__(self, algorithm, chunk_entries=CHUNK_ENTRIES):
        super().__init__()
        if not isinstance(algorithm, prune_grow.PruneGrow):
            raise TypeError(f"SparseFormUpdate runs a PruneGrow algorithm, "
                            f"got {type(algorithm).__name__}.")
        self.rule = grow_rule(algorithm)
        if int(chunk_entries) < 1:
            raise ValueError(f"chunk_entries must be >= 1, got "
                             f"{chunk_entries!r}.")
        self.algorithm = algorithm
        self.chunk_entries = int(chunk_entries)
        self.kernels = []
        self.tap = None
        self.last = None

    @property
    def seed(self):
        return self.algorithm.seed

    def attach(self, model):
        owner = type(self.algorithm).__name__
        self.model = model
        self.weights = []
        masked = masking.masked_weights(model)
        if masked:
            raise ValueError(
                f"{owner} on a model that computes sparse: "
                f"{', '.join(mw.path for mw in masked[:8])} still use masks "
                "(no sparse form). Prune-and-grow runs on one form: make "
                "every sparsified layer Dense / EinsumDense (one 2-D matmul) "
                "/ 1x1 Conv2D / Embedding, or "
                "use compute='masked'.")
        self.kernels = [h for _, h in sparse_layers.sparse_kernels(model)]
        # The algorithm's own rules (`layer_counts`) read its model and one
        # entry per layer.
        self.algorithm.model = model
        self.algorithm.weights = list(self.kernels)
        if self.rule == "gradient":
            bad = [h.layer.name for h in self.kernels
                   if h.kind == "embedding"]
            if bad:
                raise ValueError(
                    f"{owner} grows by the dense gradient, which the sparse "
                    f"form does not form for Embedding layers ({bad}); use "
                    "SET / growth='random', or compute='masked'.")
            strategy = model.distribute_strategy
            if strategy.num_replicas_in_sync > 1:
                raise ValueError(
                    f"{owner} on layers that compute sparse recomputes the "
                    "dense gradient in the update, which cannot all-reduce "
                    f"under {type(strategy).__name__}; use one replica.")
        optimizer = getattr(model, "optimizer", None)
        optimizer_state.prepare(optimizer, owner)
        needs_optimizer = (self.algorithm.needs_momentum
                           or self.algorithm.skip_gradient_step)
        if needs_optimizer and optimizer is None:
            raise ValueError(f"{owner} reads the optimizer: compile the model "
                             "before attaching the algorithm.")
        if self.algorithm.needs_momentum:
            optimizer_state.resolve_momentum_source(optimizer, "optimizer",
                                                    owner)
        if self.algorithm.skip_gradient_step:
            self.tap = optimizer_state.GradientTap(
                optimizer, [], skip_due=self.should_update)
        with tf.init_scope():
            self.last = tf.Variable(tf.zeros([3], tf.int64), trainable=False,
                                    name="tfs_sparse_form_last_update")

    def should_update(self, step):
        return self.algorithm.should_update(step)

    def checkpoint_items(self):
        return {"sparse_form_last_update": self.last} if self.last else {}

    def _zero_inactive_weights(self):
        """Nothing to zero: dropped weights leave the stored entries."""

    def last_update(self):
        """(step, dropped, grown) of the last update, Python ints."""
        return tuple(int(v) for v in keras.ops.convert_to_numpy(self.last))

    # ------------------------------------------------------------------

    def _counts(self, ctx):
        drop, grow, _, _ = self.algorithm.layer_counts(ctx)
        capacity = tf.constant([float(h.capacity) for h in self.kernels],
                               tf.float64)
        kept = ctx.n - drop
        if self.algorithm.regrow_dropped == "never":
            candidates = ctx.sizes - ctx.n
        else:
            candidates = ctx.sizes - kept
        room = tf.minimum(capacity - kept, candidates)
        fitted = tf.minimum(grow, room)
        leftover = tf.reduce_sum(grow) - tf.reduce_sum(fitted)
        spare = room - fitted
        before = tf.cumsum(spare, exclusive=True)
        extra = tf.clip_by_value(leftover - before, 0.0, spare)
        return tf.cast(drop, tf.int32), tf.cast(fitted + extra, tf.int32)

    def _dense_gradients(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            recorder = _Recorder(tape)
            for holder in self.kernels:
                holder.recorder = recorder
            try:
                y_pred = self.model(x, training=False)
                loss = self.model.compute_loss(
                    x=x, y=y, y_pred=y_pred, sample_weight=sample_weight)
            finally:
                for holder in self.kernels:
                    holder.recorder = None
        inputs, probes = [], []
        for holder in self.kernels:
            if id(holder) not in recorder.seen:
                raise ValueError(
                    f"{type(self.algorithm).__name__}: layer "
                    f"{holder.layer.name!r} was not called in the model's "
                    "forward pass; its dense gradient is unknown.")
            xi, probe = recorder.seen[id(holder)]
            inputs.append(xi)
            probes.append(probe)
        grads = tape.gradient(loss, probes)
        out = []
        for holder, xi, g in zip(self.kernels, inputs, grads):
            n_out = holder.matrix_shape[1]
            g = tf.zeros([tf.shape(xi)[0], n_out], xi.dtype) if g is None \
                else tf.reshape(g, [-1, n_out])
            out.append((xi, tf.cast(g, xi.dtype)))
        return out

    def update(self, step, data):
        ctx = _Context(self, step)
        drop, grow = self._counts(ctx)
        gradients = None
        if self.rule == "gradient":
            if data is None:
                raise ValueError(
                    f"{type(self.algorithm).__name__} grows by the gradient "
                    "of the update batch; an update without data (step 0) "
                    "cannot run on the sparse form.")
            gradients = self._dense_gradients(data)
        totals = []
        for i, holder in enumerate(self.kernels):
            grad = None if gradients is None else gradients[i]
            totals.append(self._update_layer(ctx, i, holder, drop[i],
                                             grow[i], grad))
        before = tf.cast(tf.reduce_sum(ctx.n), tf.int64)
        after = tf.add_n([t for t in totals])
        check = tf.debugging.assert_equal(
            after, before - tf.reduce_sum(tf.cast(drop, tf.int64))
            + tf.reduce_sum(tf.cast(grow, tf.int64)),
            message=f"{type(self.algorithm).__name__}: nonzero count "
                    "changed in a sparse-form update")
        with tf.control_dependencies([check]):
            self.last.assign(tf.stack([
                ctx.step, tf.reduce_sum(tf.cast(drop, tf.int64)),
                tf.reduce_sum(tf.cast(grow, tf.int64))]))

    # ------------------------------------------------------------------

    def _update_layer(self, ctx, i, holder, n_drop, n_grow, grad):
        k_in, n_out = holder.matrix_shape
        capacity = holder.capacity
        row_ptr = tf.convert_to_tensor(holder.row_ptr)
        cols = tf.convert_to_tensor(holder.cols)
        values = tf.convert_to_tensor(holder.values)
        used = ctx.active[i]
        rows = structure_lib.entry_rows(row_ptr, capacity)
        keys = (tf.cast(rows, tf.int64) * k_in + tf.cast(cols, tf.int64))
        method = self.algorithm.selection_method
        dropped = topk.select_bottom(tf.abs(values), used, n_drop,
                                     method=method, jit=False)
        kept = tf.logical_and(used, tf.logical_not(dropped))
        old_keys = tf.boolean_mask(keys, used)               # sorted
        kept_keys = tf.boolean_mask(keys, kept)              # sorted
        excluded = (old_keys if self.algorithm.regrow_dropped == "never"
                    else kept_keys)
        if self.rule == "random":
            grown = self._grow_random(ctx, i, holder, excluded, n_grow)
        else:
            grown = self._grow_gradient(holder, excluded, n_grow, grad)
        new_keys = tf.sort(tf.concat([kept_keys, grown], axis=0))
        n_new = tf.shape(new_keys)[0]
        # Where each new entry was before (-1: a grown weight).
        found = tf.searchsorted(old_keys, new_keys)
        safe = tf.minimum(found, tf.maximum(tf.shape(old_keys)[0] - 1, 0))
        hit = tf.logical_and(found < tf.shape(old_keys)[0],
                             tf.gather(old_keys, safe) == new_keys)
        if self.algorithm.regrow_dropped == "reinit":
            kept_old = tf.gather(tf.boolean_mask(kept, used), safe)
            hit = tf.logical_and(hit, kept_old)
        used_index = tf.boolean_mask(tf.range(capacity), used)
        source = tf.where(hit, tf.gather(used_index, safe), -1)
        pad = capacity - n_new
        source = tf.concat([source, tf.fill([pad], -1)], axis=0)
        fresh = source < 0
        take = tf.maximum(source, 0)
        new_values = tf.where(fresh, tf.zeros_like(values),
                              tf.gather(values, take))
        new_rows = tf.cast(new_keys // k_in, tf.int32)
        new_cols = tf.cast(new_keys % k_in, tf.int32)
        counts = tf.math.unsorted_segment_sum(tf.ones_like(new_rows),
                                              new_rows, n_out)
        new_row_ptr = tf.concat([[0], tf.cumsum(counts)], axis=0)
        new_cols = tf.concat([new_cols, tf.zeros([pad], tf.int32)], axis=0)
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            for slot in optimizer_state.slot_variables(optimizer,
                                                       holder.values):
                slot.assign(tf.gather(tf.convert_to_tensor(slot), take))
        holder.values.assign(new_values)
        holder.cols.assign(tf.ensure_shape(new_cols, [capacity]))
        holder.row_ptr.assign(tf.ensure_shape(new_row_ptr, [n_out + 1]))
        if optimizer is not None:
            optimizer_state.reset_slots(
                optimizer, holder.values, where=fresh, value=new_values,
                owner=type(self.algorithm).__name__)
        return tf.cast(n_new, tf.int64)

    def _grow_random(self, ctx, i, holder, excluded, n_grow):
        """Exactly `n_grow` keys drawn uniformly among the keys not in
        `excluded` (sorted), by rejection; no dense array."""
        size = tf.constant(holder.size, tf.int64)
        n_grow = tf.cast(n_grow, tf.int32)
        base_seed = tf.random.experimental.stateless_fold_in(
            tf.constant([self.seed, i], tf.int64), ctx.step * 4 + 1)
        density = tf.cast(tf.shape(excluded)[0], tf.float64) / tf.cast(
            size, tf.float64)
        draw = tf.cast(tf.math.ceil(
            tf.cast(n_grow, tf.float64) / tf.maximum(1.0 - density, 1e-3)
            * 1.25), tf.int32) + 16

        def body(round_, chosen):
            seed = tf.random.experimental.stateless_fold_in(base_seed,
                                                            round_)
            keys = tf.random.stateless_uniform(
                [draw], seed=seed, minval=0, maxval=size, dtype=tf.int64)
            at = tf.searchsorted(excluded, keys)
            at = tf.minimum(at, tf.maximum(tf.shape(excluded)[0] - 1, 0))
            taken = tf.logical_and(tf.shape(excluded)[0] > 0,
                                   tf.gather(excluded, at) == keys)
            fresh = tf.boolean_mask(keys, tf.logical_not(taken))
            merged, _ = tf.unique(tf.concat([chosen, fresh], axis=0))
            return round_ + 1, merged

        def cond(round_, chosen):
            del round_
            return tf.shape(chosen)[0] < n_grow

        _, chosen = tf.while_loop(
            cond, body, [tf.constant(0, tf.int64), tf.zeros([0], tf.int64)],
            shape_invariants=[tf.TensorShape([]), tf.TensorShape([None])])
        return chosen[:n_grow]

    def _grow_gradient(self, holder, excluded, n_grow, grad):
        """The `n_grow` keys of largest |dense gradient| outside `excluded`,
        formed a chunk of output units at a time."""
        x, dy = grad
        k_in, n_out = holder.matrix_shape
        units = max(1, min(n_out, self.chunk_entries // max(k_in, 1)))
        method = self.algorithm.selection_method
        scores, keys = [], []
        for j0 in range(0, n_out, units):
            j1 = min(n_out, j0 + units)
            # G^T for units [j0, j1): [units, k_in], row-major = key order.
            block = tf.abs(tf.matmul(dy[:, j0:j1], x, transpose_a=True))
            flat = tf.reshape(block, [-1])
            start = j0 * k_in
            inside = tf.logical_and(excluded >= start,
                                    excluded < j1 * k_in)
            local = tf.boolean_mask(excluded, inside) - start
            taken = tf.scatter_nd(tf.expand_dims(local, 1),
                                  tf.ones_like(local, tf.int32),
                                  [(j1 - j0) * k_in]) > 0
            pick = topk.select_top(flat, tf.logical_not(taken), n_grow,
                                   method=method, jit=False)
            scores.append(tf.boolean_mask(flat, pick))
            keys.append(tf.boolean_mask(
                tf.range(start, j1 * k_in, dtype=tf.int64), pick))
        scores = tf.concat(scores, axis=0)
        keys = tf.concat(keys, axis=0)
        pick = topk.select_top(scores, tf.ones_like(scores, tf.bool), n_grow,
                               method=method, jit=False)
        return tf.boolean_mask(keys, pick)

    def get_config(self):
        return {**self.algorithm.get_config(), "form": "sparse"}
