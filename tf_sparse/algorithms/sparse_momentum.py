"""Sparse momentum (Dettmers & Zettlemoyer 2019, "Sparse Networks from Scratch").

Reference: sparse_learning (`sparselearning/core.py` at e19ff16; papers.md
A.1). At the end of every epoch but the last (or every `every` steps), each
layer prunes its `ceil(p_l * n_l)` active weights of smallest |w| (`p`
cosine from 0.5 to 0.005, capped for dense layers); the pruned total is
regrown across the layers by their mean |momentum| over active weights,
each capped at 99% of its free positions (`redistribution.redistribute`),
at the inactive weights of largest |momentum|, just-pruned ones included.
Grown weights start at 0, a weight pruned and regrown keeps its value,
momentum is not reset (reference v1.0).

With a structured pattern (`prune_grow`'s docstring) whole blocks or
channels are pruned and regrown, and N:M groups keep N; regrowth moves
between layers only where counts stay exact (`redistribution.can_move`:
block patterns, in blocks), otherwise every layer regrows in place.

Example:

    alg = SparseMomentum(total_steps=20 * 600, steps_per_epoch=600)
"""

import keras

from tf_sparse.algorithms import checks
from tf_sparse.algorithms import prune_grow
from tf_sparse.algorithms import redistribution as redis
from tf_sparse.algorithms import update_schedules

GROWTH = ("momentum", "random", "gradient")
REDISTRIBUTION = ("momentum", "magnitude", "nonzero", "none", "size")


class SparseMomentum(prune_grow.PruneGrow):
    """Sparse momentum; the defaults follow the reference.

    Args:
      total_steps, steps_per_epoch, every: run length and cadence (every
        epoch but the last, or every `every` steps).
      prune_rate, decay ("cosine", "linear", "constant"), final_prune_rate
        (None: 0.005 for cosine, the reference's eta_min; 0 for linear).
      growth: "momentum", "random" or "gradient" (|dense gradient|).
      redistribution: "momentum", "magnitude" (mean |w|), "nonzero" (active
        count), "none" (each layer regrows what it pruned: the paper's "no
        redistribution", section 5) or "size" (the code's `none`).
      max_fill, dense_layer_density: see `redistribution`.
      momentum_source, ema_beta, gradient_source, regrow_dropped ("keep"),
        **options: see `PruneGrow`.
    """

    name = "sparse_momentum"
    EPOCH_CADENCE = True
    CONFIG_KEYS = prune_grow.config_keys(
        "decay", "growth", "redistribution", "momentum_source",
        "gradient_source", drop_fraction="prune_rate",
        final_drop_fraction="final_prune_rate", update_every="every")

    def __init__(self, *, total_steps, steps_per_epoch=None, every=None,
                 prune_rate=0.5, final_prune_rate=None, decay="cosine",
                 growth="momentum", redistribution="momentum",
                 momentum_source="auto", ema_beta=0.9, max_fill=0.99,
                 dense_layer_density=0.8, gradient_source="optimizer",
                 regrow_dropped="keep", **options):
        owner = type(self).__name__
        self.growth = checks.check_choice(owner, "growth", growth, GROWTH)
        self.redistribution = checks.check_choice(
            owner, "redistribution", redistribution, REDISTRIBUTION)
        self.max_fill, self.dense_layer_density = redis.check_caps(
            owner, max_fill, dense_layer_density)
        self.needs_momentum = "momentum" in (growth, redistribution)
        self.needs_gradient = growth == "gradient"
        self.momentum_source, self.ema_beta = momentum_source, ema_beta
        self.gradient_source, self.decay = gradient_source, decay
        super().__init__(
            cadence=update_schedules.make_cadence(
                owner, total_steps=total_steps,
                steps_per_epoch=steps_per_epoch, every=every),
            drop_fraction=update_schedules.make_decay(
                owner, decay, prune_rate, (0.005 if decay == "cosine" else 0.0)
                if final_prune_rate is None else final_prune_rate,
                total_steps),
            drop_rounding="ceil", regrow_dropped=regrow_dropped, **options)

    def redistribution_stats(self, ctx):
        """Per-layer statistic the regrowth is shared by (float64 [L])."""
        if self.redistribution == "momentum":
            return redis.mean_abs_active(
                ctx, [ctx.momentum(i) for i in range(len(self.weights))])
        if self.redistribution == "magnitude":
            return redis.mean_abs_active(ctx, ctx.values)
        return ctx.n if self.redistribution == "nonzero" else ctx.sizes

    def layer_counts(self, ctx):
        if (self.redistribution == "none" or not redis.can_move(self.layouts)
                or self.ties is not None):
            # N:M layers, channels of different fan-ins and tied channels
            # (dependency groups) keep their counts: each layer regrows in
            # place what it pruned.
            return super().layer_counts(ctx)
        return redis.redistribute(
            ctx, redis.shares(self.redistribution_stats(ctx)),
            self.drop_counts, dense_layer_density=self.dense_layer_density,
            max_fill=self.max_fill, disjoint=self.regrow_dropped == "never")

    def grow_score(self, ctx, i):
        if self.growth == "random":
            return ctx.uniform(i)
        return keras.ops.abs(ctx.momentum(i) if self.growth == "momentum"
                      else ctx.gradient(i))

    def get_config(self):
        own = ("growth", "redistribution", "momentum_source", "max_fill",
               "decay", "dense_layer_density")
        return {**super().get_config(), **{k: getattr(self, k) for k in own}}
