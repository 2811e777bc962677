"""Sparse momentum (Dettmers & Zettlemoyer 2019, "Sparse Networks from Scratch").

The reference is sparse_learning (`sparselearning/core.py` at e19ff16, read
for its semantics; summarised in the project reference notes, papers.md
A.1). One update, at
the end of every epoch except the last (or every `every` steps), with
`p = prune_rate(step)` (0.5 decayed by cosine to 0.005 over training):

1. statistics per masked weight `l`: active count `n_l`, inactive `z_l`,
   mean momentum magnitude over ACTIVE weights `mom_l`, and the layer's share
   `s_l = mom_l / sum_k mom_k`;
2. prune-rate cap: a layer that is more than 80% dense (`z_l / size_l <
   0.2`) and whose share exceeds `1/L` gets `p_l = min(p, z_l / size_l)`;
   every other layer `p_l = p`;
3. prune the `r_l = ceil(p_l * n_l)` active weights of smallest `|w|`;
4. regrowth: `R = sum r_l` is shared by `s_l`, each layer capped at
   `floor(0.99 * (z_l + r_l))` (its free positions after pruning); what a
   capped layer cannot take is spread equally over the other layers
   (the fixed point of the reference's spill-over loop: `g_l = min(cap_l,
   s_l R + lambda)`, one `lambda` for all layers, solved exactly). The real
   `g_l` are rounded to integers by largest remainder so that `sum g_l = R`
   exactly;
5. grow the `g_l` inactive weights with the largest `|momentum|`
   (candidates include the weights pruned in step 3, as in the reference);
6. grown weights start at 0; a weight pruned and regrown in the same update
   keeps its value; momentum buffers are not reset (reference v1.0).

With `regrow_dropped="never"` (disjoint drop and grow sets) the caps are
`floor(0.99 * z_l)` and, when `R` exceeds the `sum z_l` free positions (a
model denser than about `1 / (1 + p)`), the drop counts are cut to sum to
`sum z_l`, by largest remainder in proportion to `r_l`.

Exact counts: every layer ends with exactly `n_l - r_l + g_l` weights and
the total stays at the budget, so the reference's growth-correction term
(`adjusted_growth`, needed there because of inexact random growth and
`ceil`s) is not needed and not implemented.

Momentum: SGD's momentum buffer, or Adam's `m / (sqrt(v) + eps)` as the
reference (`optimizer_state.momentum`); for other optimizers an exponential
moving average of the dense gradient (`beta = ema_beta`) that tf-sparse
keeps (`momentum_source="auto"`, the default); `momentum_source="optimizer"`
refuses such optimizers with an error, `"ema"` always uses the average.

Ablations (the paper's section 5): `redistribution` = "momentum" (default),
"magnitude" (mean |w| of active weights), "nonzero" (active count), "none"
(each layer regrows what it pruned, densities stay fixed: the paper's "no
redistribution") or "size" (share proportional to layer size: what the
reference code's `--redistribution none` does); `growth` = "momentum"
(default), "random" (exactly `g_l` uniformly chosen positions, stateless RNG
keyed by (seed, step, layer); the reference draws a Bernoulli mask, so its
count is only approximate) or "gradient" (largest |dense gradient| of the
update step's batch, the reference's `.grad` of the last batch).

Differences from the reference, all deliberate: exact selection instead of
`torch.sort` over all weights (an active weight that is exactly 0 is still
an active weight here; ties go to the lower index); no correction term; the
gradient step of the last batch of an epoch is applied before the update
(as in the reference).

Example:

    alg = SparseMomentum(total_steps=20 * 600, steps_per_epoch=600)
    model.fit(x, y, epochs=20, callbacks=[tfs.callbacks.MaskUpdate(alg)])
"""

import tensorflow as tf

from tf_sparse import schedules
from tf_sparse.algorithms import prune_grow

GROWTH = ("momentum", "random", "gradient")
REDISTRIBUTION = ("momentum", "magnitude", "nonzero", "none", "size")
DECAYS = ("cosine", "linear", "constant")


def make_cadence(owner, *, total_steps, steps_per_epoch=None, every=None,
                 begin=None, end=None):
    """Every epoch except the last, or every `every` steps (in [begin, end))."""
    try:
        if every:
            return schedules.UpdateSchedule(
                every=every, begin=every if begin is None else begin,
                end=1.0 if end is None else end, total_steps=total_steps)
        if steps_per_epoch is None:
            raise ValueError(
                f"{owner}: give steps_per_epoch (update at the end of every "
                "epoch) or every=<int steps>.")
        if begin is None and end is None:
            return schedules.UpdateSchedule.every_epoch(steps_per_epoch,
                                                        total_steps)
        return schedules.UpdateSchedule(
            every=steps_per_epoch,
            begin=steps_per_epoch if begin is None else begin,
            end=total_steps if end is None else end, total_steps=total_steps)
    except ValueError as error:
        if str(error).startswith(owner):
            raise
        raise ValueError(f"{owner}: {error}") from error


def make_decay(owner, decay, initial, final, total_steps, what="prune_rate"):
    """The rate schedule: constant, or cosine/linear from `initial` to
    `final` over the whole run."""
    prune_grow.check_choice(owner, "decay", decay, DECAYS)
    initial = prune_grow.check_rate(owner, what, initial)
    try:
        if decay == "constant":
            return schedules.ConstantDecay(initial)
        cls = schedules.CosineDecay if decay == "cosine" else (
            schedules.LinearDecay)
        return cls(initial, final, 0, 1.0, total_steps=total_steps)
    except ValueError as error:
        raise ValueError(f"{owner}: {error}") from error


def water_fill(base, caps, total):
    """`min(caps, base + lam)` with one `lam >= 0` so that the sum is `total`.

    float64 vectors; needs `sum(min(caps, base)) <= total <= sum(caps)`.
    This is where the reference's spill-over loop converges: the excess of
    capped layers is added in equal parts to the layers still below their
    cap.
    """
    cand = tf.concat([[0.0], tf.maximum(caps - base, 0.0)], 0)
    sums = tf.reduce_sum(
        tf.minimum(caps[None, :], base[None, :] + cand[:, None]), axis=1)
    best = tf.reduce_max(tf.where(sums <= total, cand, 0.0))
    at_best = tf.minimum(caps, base + best)
    open_layers = tf.reduce_sum(tf.cast(base + best < caps, tf.float64))
    lam = best + tf.where(
        open_layers > 0,
        (total - tf.reduce_sum(at_best)) / tf.maximum(open_layers, 1.0), 0.0)
    return tf.minimum(caps, base + lam)


def round_to_total(real, caps, total):
    """Integers (as float64) near `real` summing to `total`, each <= caps.

    Floors, then +1 for the largest remainders (ties to the lower layer
    index) among layers still below their cap.
    """
    floors = tf.minimum(tf.floor(real), caps)
    extra = tf.cast(total - tf.reduce_sum(floors), tf.int32)
    remainder = tf.where(floors < caps, real - floors, -1.0)
    order = tf.argsort(remainder, direction="DESCENDING", stable=True)
    n = tf.size(real)
    rank = tf.scatter_nd(order[:, None], tf.range(n), [n])
    bump = tf.logical_and(rank < extra, floors < caps)
    return floors + tf.cast(bump, tf.float64)


class SparseMomentum(prune_grow.PruneGrow):
    """Sparse momentum: magnitude pruning, momentum redistribution and growth.

    Args:
      total_steps: optimizer steps of the whole run (the prune-rate decay
        spans it).
      steps_per_epoch: update at the end of every epoch except the last.
      every: or update every `every` steps (sparse_learning's
        `prune_every_k_steps`).
      prune_rate: initial prune rate p in (0, 1) (reference 0.5).
      final_prune_rate: p at the end of training (reference 0.005).
      decay: "cosine" (reference), "linear" or "constant".
      growth: "momentum", "random" or "gradient".
      redistribution: "momentum", "magnitude", "nonzero", "none" or "size".
      momentum_source: "auto", "optimizer" or "ema" (see module docstring).
      ema_beta: decay of the gradient EMA when it is used.
      max_fill: a layer regrows at most this fraction of its free positions
        (reference 0.99).
      dense_layer_density: the prune-rate cap applies to layers denser than
        this (reference 0.8).
      regrow_dropped, grow_init, grown_slots, dropped_slots, seed,
        selection_method, jit_selection, skip_gradient_step: see
        `PruneGrow` (defaults here follow the reference: "keep", "zeros",
        "keep", "keep", and the gradient step of an update is applied).
      gradient_source: for growth="gradient": "optimizer" or "tape".
    """

    name = "sparse_momentum"
    EPOCH_CADENCE = True
    CONFIG_KEYS = {
        "drop_fraction": "prune_rate",
        "final_drop_fraction": "final_prune_rate", "decay": "decay",
        "update_every": "every", "growth": "growth",
        "redistribution": "redistribution",
        "momentum_source": "momentum_source",
        "regrow_dropped": "regrow_dropped", "grow_init": "grow_init",
        "grown_slots": "grown_slots", "dropped_slots": "dropped_slots",
        "skip_gradient_step": "skip_gradient_step",
        "gradient_source": "gradient_source",
    }

    def __init__(self, *, total_steps, steps_per_epoch=None, every=None,
                 prune_rate=0.5, final_prune_rate=0.005, decay="cosine",
                 growth="momentum", redistribution="momentum",
                 momentum_source="auto", ema_beta=0.9, max_fill=0.99,
                 dense_layer_density=0.8, regrow_dropped="keep",
                 grow_init="zeros", grown_slots="keep", dropped_slots="keep",
                 gradient_source="optimizer", seed=0,
                 selection_method="radix", jit_selection=True,
                 skip_gradient_step=False):
        owner = type(self).__name__
        self.growth = prune_grow.check_choice(owner, "growth", growth, GROWTH)
        self.redistribution = prune_grow.check_choice(
            owner, "redistribution", redistribution, REDISTRIBUTION)
        self.momentum_source = prune_grow.check_choice(
            owner, "momentum_source", momentum_source,
            ("auto", "optimizer", "ema"))
        self.gradient_source = prune_grow.check_choice(
            owner, "gradient_source", gradient_source, ("optimizer", "tape"))
        self.ema_beta = prune_grow.check_rate(owner, "ema_beta", ema_beta)
        if not 0.0 < float(max_fill) <= 1.0:
            raise ValueError(f"{owner}: max_fill={max_fill!r} must be in "
                             "(0, 1].")
        self.max_fill = float(max_fill)
        self.dense_layer_density = prune_grow.check_rate(
            owner, "dense_layer_density", dense_layer_density)
        self.needs_momentum = "momentum" in (growth, redistribution)
        self.needs_gradient = growth == "gradient"
        self.decay = decay
        super().__init__(
            cadence=make_cadence(owner, total_steps=total_steps,
                                 steps_per_epoch=steps_per_epoch,
                                 every=every),
            drop_fraction=make_decay(owner, decay, prune_rate,
                                     final_prune_rate, total_steps),
            drop_rounding="ceil", regrow_dropped=regrow_dropped,
            grow_init=grow_init, grown_slots=grown_slots,
            dropped_slots=dropped_slots, seed=seed,
            selection_method=selection_method, jit_selection=jit_selection,
            skip_gradient_step=skip_gradient_step)

    def redistribution_stats(self, ctx):
        """Per-layer statistic the regrowth is shared by (float64 [L])."""
        mode = self.redistribution
        if mode == "nonzero":
            return ctx.n
        if mode == "size":
            return ctx.sizes
        stats = []
        for i in range(len(self.weights)):
            signal = ctx.momentum(i) if mode == "momentum" else ctx.values[i]
            magnitude = tf.cast(tf.abs(signal), tf.float64)
            stats.append(tf.reduce_sum(tf.where(ctx.active[i], magnitude,
                                                0.0)))
        return tf.stack(stats) / tf.maximum(ctx.n, 1.0)

    def layer_counts(self, ctx):
        if self.redistribution == "none":
            return super().layer_counts(ctx)
        n_layers = len(self.weights)
        stats = self.redistribution_stats(ctx)
        total_stat = tf.reduce_sum(stats)
        share = tf.where(total_stat > 0, stats / tf.maximum(total_stat, 1e-300),
                         tf.fill([n_layers], tf.constant(1.0 / n_layers, tf.float64)))
        p = ctx.rate
        zero_fraction = ctx.zeros / ctx.sizes
        capped = tf.logical_and(
            zero_fraction < 1.0 - self.dense_layer_density,
            share > 1.0 / n_layers)
        rates = tf.where(capped, tf.minimum(p, zero_fraction), p)
        drop = self.drop_counts(ctx, rates)
        removed = tf.reduce_sum(drop)
        if self.regrow_dropped == "never":
            # Disjoint sets: only the positions inactive before the update
            # can grow, so a model denser than 1 / (1 + p) cannot drop all
            # it would; the total drop is cut to the free positions, shared
            # in proportion to the layers' drop counts.
            free = ctx.zeros
            limit = tf.minimum(removed, tf.reduce_sum(free))
            drop = round_to_total(drop * limit / tf.maximum(removed, 1.0),
                                  drop, limit)
            removed = limit
        else:
            free = ctx.zeros + drop
        caps = tf.floor(self.max_fill * free)
        caps = tf.where(tf.reduce_sum(caps) >= removed, caps, free)
        real = water_fill(share * removed, caps, removed)
        grow = round_to_total(real, caps, removed)
        return drop, grow, share, rates

    def grow_score(self, ctx, i):
        if self.growth == "momentum":
            return tf.abs(ctx.momentum(i))
        if self.growth == "gradient":
            return tf.abs(ctx.gradient(i))
        return ctx.uniform(i)

    def get_config(self):
        config = super().get_config()
        config.update(growth=self.growth, redistribution=self.redistribution,
                      momentum_source=self.momentum_source,
                      max_fill=self.max_fill, decay=self.decay,
                      dense_layer_density=self.dense_layer_density)
        return config
