"""RigL (Evci et al. 2020, "Rigging the Lottery: Making All Tickets Winners").

Every `every` steps (paper: dT = 100) up to `end` (paper: 75% of training),
each layer drops the `floor(f * n_l)` active weights of smallest |w| and
grows the same number of inactive weights with the largest |dense
gradient|, in place (per-layer densities never change; use
`distribution="erk"` in `sparsify` for the paper's ERK layouts). The drop
fraction `f` starts at 0.3 and decays by cosine to 0 at `end`
(`tfs.schedules.rigl_cosine_drop_fraction`).

Semantics, following google-research/rigl (`sparse_optimizers_base.py`,
read for its behaviour, and the paper's Algorithm 1):
* grown weights start at 0 and their optimizer slots are set to 0;
* grow candidates include weights dropped in the same update; such a weight
  keeps its value and slots (`reinit_when_same=False`): `regrow_dropped=
  "keep"`;
* the drop count is truncated, `int(n * f)`, as rigl does;
* the gradient is the dense gradient of the batch of the update step, at
  the weights before that step, all-reduced across replicas: read from the
  optimizer (`gradient_source="optimizer"`, see
  `optimizer_state.GradientTap`); `gradient_source="tape"` recomputes it on
  the same batch after the step (single replica only);
* the optimizer step of an update iteration is skipped
  (`skip_gradient_step=True`): the paper's Algorithm 1 either updates the
  mask or takes a gradient step, and rigl TF1 and jaxpruner do the same
  (rigl_tf2 applies it: `skip_gradient_step=False`). Keras's step counter
  still advances on that iteration (rigl TF1 does not advance its global
  step), so every `every` steps one batch is used only for the grow score;
* no noise is added to drop scores (rigl adds N(0, 1e-5)); ties go to the
  lower index.

Example:

    alg = RigL(total_steps=T)                 # dT=100, end=0.75, f=0.3 cosine
    model.fit(..., callbacks=[tfs.callbacks.MaskUpdate(alg)])
"""

import tensorflow as tf

from tf_sparse import schedules
from tf_sparse.algorithms import prune_grow

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
      regrow_dropped, grow_init, grown_slots, dropped_slots, seed,
        selection_method, jit_selection: see `PruneGrow`.
      gradient_source: "optimizer" (default) or "tape".
      skip_gradient_step: skip the optimizer step of update iterations
        (default True, the paper).
    """

    name = "rigl"
    needs_gradient = True
    CONFIG_KEYS = {
        "drop_fraction": "drop_fraction", "decay": "decay",
        "update_every": "every", "update_begin": "begin",
        "update_end": "end",
        "regrow_dropped": "regrow_dropped", "grow_init": "grow_init",
        "grown_slots": "grown_slots", "dropped_slots": "dropped_slots",
        "skip_gradient_step": "skip_gradient_step",
        "gradient_source": "gradient_source",
    }

    def __init__(self, *, total_steps, drop_fraction=0.3, decay="cosine",
                 every=100, begin=0, end=0.75, regrow_dropped="keep",
                 grow_init="zeros", grown_slots="zero", dropped_slots="keep",
                 gradient_source="optimizer", seed=0,
                 selection_method="radix", jit_selection=True,
                 skip_gradient_step=True):
        owner = type(self).__name__
        prune_grow.check_choice(owner, "decay", decay, DECAYS)
        self.gradient_source = prune_grow.check_choice(
            owner, "gradient_source", gradient_source, ("optimizer", "tape"))
        initial = prune_grow.check_rate(owner, "drop_fraction", drop_fraction)
        try:
            cadence = schedules.UpdateSchedule(
                every=every, begin=begin, end=end, skip_last=False,
                total_steps=total_steps)
            if decay == "cosine":
                rate = schedules.CosineDecay(initial, 0.0, begin, end,
                                             total_steps=total_steps)
            else:
                rate = schedules.ConstantDecay(initial)
        except ValueError as error:
            raise ValueError(f"{owner}: {error}") from error
        self.decay = decay
        super().__init__(
            cadence=cadence, drop_fraction=rate, drop_rounding="floor",
            regrow_dropped=regrow_dropped, grow_init=grow_init,
            grown_slots=grown_slots, dropped_slots=dropped_slots, seed=seed,
            selection_method=selection_method, jit_selection=jit_selection,
            skip_gradient_step=skip_gradient_step)

    def grow_score(self, ctx, i):
        return tf.abs(ctx.gradient(i))

    def get_config(self):
        config = super().get_config()
        config.update(decay=self.decay, gradient_source=self.gradient_source)
        return config
