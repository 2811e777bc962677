"""SET, Sparse Evolutionary Training (Mocanu et al. 2018).

At the end of every epoch except the last (or every `every` steps), each
layer drops the fraction `zeta` (paper 0.3) of its active weights with the
smallest |w| and grows the same number at uniformly random inactive
positions, in place. The random positions come from a stateless RNG keyed by
(seed, step, layer index), so every replica draws the same positions and a
seed gives the same masks.

Semantics: the paper removes the weights closest to zero (smallest |w|) and
adds random ones; implementation details follow rigl's SET baseline
(`SparseSETOptimizer`, read for its behaviour): drop count `int(n * zeta)`,
grown weights start at 0 with zeroed optimizer slots, a weight dropped and
regrown in the same update keeps its value. The original SET code
initialises new weights randomly; `grow_init="random_normal"` does that.
Exactly `int(n * zeta)` positions are drawn (no Bernoulli).

Example:

    alg = SET(total_steps=T, steps_per_epoch=600)
"""

from tf_sparse.algorithms import prune_grow
from tf_sparse.algorithms import sparse_momentum


class SET(prune_grow.PruneGrow):
    """SET: magnitude drop, random growth, in place.

    Args:
      total_steps: optimizer steps of the whole run.
      steps_per_epoch: update at the end of every epoch except the last.
      every: or update every `every` steps.
      drop_fraction: zeta in (0, 1) (paper 0.3).
      decay: "constant" (paper), "cosine" or "linear" to
        `final_drop_fraction`.
      regrow_dropped, grow_init, grown_slots, dropped_slots, seed,
        selection_method, jit_selection, skip_gradient_step: see `PruneGrow`.
    """

    name = "set"
    EPOCH_CADENCE = True
    CONFIG_KEYS = {
        "drop_fraction": "drop_fraction",
        "final_drop_fraction": "final_drop_fraction", "decay": "decay",
        "update_every": "every",
        "regrow_dropped": "regrow_dropped", "grow_init": "grow_init",
        "grown_slots": "grown_slots", "dropped_slots": "dropped_slots",
        "skip_gradient_step": "skip_gradient_step",
    }

    def __init__(self, *, total_steps, steps_per_epoch=None, every=None,
                 drop_fraction=0.3, decay="constant", final_drop_fraction=0.0,
                 regrow_dropped="keep", grow_init="zeros", grown_slots="zero",
                 dropped_slots="keep", seed=0, selection_method="radix",
                 jit_selection=True,
                 skip_gradient_step=False):
        owner = type(self).__name__
        self.decay = decay
        super().__init__(
            cadence=sparse_momentum.make_cadence(
                owner, total_steps=total_steps,
                steps_per_epoch=steps_per_epoch, every=every),
            drop_fraction=sparse_momentum.make_decay(
                owner, decay, drop_fraction, final_drop_fraction,
                total_steps, what="drop_fraction"),
            drop_rounding="floor", regrow_dropped=regrow_dropped,
            grow_init=grow_init, grown_slots=grown_slots,
            dropped_slots=dropped_slots, seed=seed,
            selection_method=selection_method, jit_selection=jit_selection,
            skip_gradient_step=skip_gradient_step)

    def grow_score(self, ctx, i):
        return ctx.uniform(i)

    def get_config(self):
        config = super().get_config()
        config.update(decay=self.decay)
        return config
