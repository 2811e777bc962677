"""SET, Sparse Evolutionary Training (Mocanu et al. 2018).

At the end of every epoch except the last (or every `every` steps), each
layer drops the fraction `zeta` (paper 0.3) of its active weights with the
smallest |w| and grows the same number at uniformly random inactive
positions, in place.

Semantics: the paper removes the weights closest to zero (smallest |w|) and
adds random ones; implementation details follow rigl's SET baseline
(`SparseSETOptimizer`, read for its behaviour): drop count `int(n * zeta)`,
grown weights start at 0 with fresh optimizer slots (each slot's initial
value, see `optimizer_state.reset_slots`), a weight dropped and regrown in
the same update keeps its value. The original SET code initialises new
weights randomly; `grow_init="random_normal"` does that.

With a structured pattern (`sparsify(pattern=...)`) whole blocks or
channels (whole dependency groups) are dropped and grown, and N:M groups
keep N after every update (see `prune_grow`).

Example:

    alg = SET(total_steps=T, steps_per_epoch=600)
"""

from tf_sparse.algorithms import prune_grow
from tf_sparse.algorithms import update_schedules


class SET(prune_grow.PruneGrow):
    """SET: magnitude drop, random growth, in place.

    Args:
      total_steps: optimizer steps of the whole run.
      steps_per_epoch: update at the end of every epoch except the last.
      every: or update every `every` steps.
      drop_fraction: zeta in (0, 1) (paper 0.3).
      decay: "constant" (paper), "cosine" or "linear" to
        `final_drop_fraction`.
      regrow_dropped ("keep"), grown_slots ("zero"), **options (grow_init,
        dropped_slots, seed, selection_method, jit_selection,
        skip_gradient_step): see `PruneGrow`.
    """

    name = "set"
    EPOCH_CADENCE = True
    CONFIG_KEYS = prune_grow.config_keys(
        "drop_fraction", "final_drop_fraction", "decay",
        update_every="every")

    def __init__(self, *, total_steps, steps_per_epoch=None, every=None,
                 drop_fraction=0.3, decay="constant", final_drop_fraction=0.0,
                 regrow_dropped="keep", grown_slots="zero", **options):
        owner = type(self).__name__
        self.decay = decay
        super().__init__(
            cadence=update_schedules.make_cadence(
                owner, total_steps=total_steps,
                steps_per_epoch=steps_per_epoch, every=every),
            drop_fraction=update_schedules.make_decay(
                owner, decay, drop_fraction, final_drop_fraction,
                total_steps, what="drop_fraction"),
            drop_rounding="floor", regrow_dropped=regrow_dropped,
            grown_slots=grown_slots, **options)

    def grow_score(self, ctx, i):
        return ctx.uniform(i)

    def get_config(self):
        return {**super().get_config(), "decay": self.decay}
