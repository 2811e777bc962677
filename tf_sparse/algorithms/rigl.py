"""RigL (Evci et al. 2020, "Rigging the Lottery: Making All Tickets Winners").

Every `every` steps (paper: dT = 100) up to `end` (paper: 75% of training),
each layer drops the `floor(f * n_l)` active weights of smallest |w| and
grows the same number of inactive weights with the largest |dense
gradient|, in place (use `distribution="erk"` in `sparsify` for the paper's
ERK layouts). `f` starts at 0.3 and decays by cosine to 0 at `end`.

Semantics, following google-research/rigl (`sparse_optimizers_base.py`,
read for its behaviour, and the paper's Algorithm 1): grown weights start
at 0 with fresh slots (rigl zeroes them; here each slot's initial value,
see `optimizer_state.reset_slots`); a weight dropped and regrown in the same
update keeps its value and slots (`reinit_when_same=False`); the drop count is
`int(n * f)`; the gradient is the all-reduced dense gradient of the update
step's batch at the weights before that step; that step's optimizer update
is skipped (`skip_gradient_step=True`, as Algorithm 1, rigl TF1 and
jaxpruner; rigl_tf2 applies it), though Keras's step counter still
advances, so every `every` steps one batch is used only for the grow score;
no noise is added to drop scores (rigl adds N(0, 1e-5)).

With a structured pattern (`sparsify(pattern=...)`) whole blocks or
channels (whole dependency groups) are dropped and grown, and N:M groups
keep N after every update (see `prune_grow`).

Example:

    alg = RigL(total_steps=T)                 # dT=100, end=0.75, f=0.3 cosine
    model.fit(..., callbacks=[tfs.callbacks.MaskUpdate(alg)])
"""

import keras

from tf_sparse import schedules
from tf_sparse.algorithms import prune_grow
from tf_sparse.algorithms import update_schedules

DECAYS = ("cosine", "constant")


class RigL(prune_grow.PruneGrow):
    """RigL: magnitude drop, gradient growth, in place.

    Args:
      total_steps: optimizer steps of the whole run.
      drop_fraction: initial drop fraction in (0, 1) (paper 0.3).
      decay: "cosine" (to 0 at `end`, the paper) or "constant".
      every: update every this many steps (paper 100).
      begin, end: update window, int steps or fractions of training
        (paper 0 and 0.75); updates at `begin <= step <= end`.
      gradient_source: "optimizer" (default) or "tape".
      regrow_dropped ("keep"), grown_slots ("zero"), skip_gradient_step
        (True), **options (grow_init, dropped_slots, seed,
        selection_method, jit_selection): see `PruneGrow`.
    """

    name = "rigl"
    needs_gradient = True
    CONFIG_KEYS = prune_grow.config_keys(
        "drop_fraction", "decay", "gradient_source", update_every="every",
        update_begin="begin", update_end="end")

    def __init__(self, *, total_steps, drop_fraction=0.3, decay="cosine",
                 every=100, begin=0, end=0.75, gradient_source="optimizer",
                 regrow_dropped="keep", grown_slots="zero",
                 skip_gradient_step=True, **options):
        owner = type(self).__name__
        with update_schedules.errors_named(owner):
            cadence = schedules.UpdateSchedule(
                every=every, begin=begin, end=end, skip_last=False,
                total_steps=total_steps)
        self.gradient_source, self.decay = gradient_source, decay
        super().__init__(
            cadence=cadence, drop_fraction=update_schedules.make_decay(
                owner, decay, drop_fraction, 0.0, total_steps,
                what="drop_fraction", begin=begin, end=end, accepted=DECAYS),
            drop_rounding="floor", regrow_dropped=regrow_dropped,
            grown_slots=grown_slots, skip_gradient_step=skip_gradient_step,
            **options)

    def grow_score(self, ctx, i):
        return keras.ops.abs(ctx.gradient(i))

    def get_config(self):
        return {**super().get_config(), "decay": self.decay,
                "gradient_source": self.gradient_source}
