"""What a prune-and-grow update records, in graph, for monitoring.

`UpdateState` holds the variables one update writes (and a resumed run
continues, as one checkpointed trackable): `num_updates`, `last_step`,
`rate`; per layer `density`, `dropped`, `grown`, `regrown`, `share`,
`layer_rate`; `churn` (fraction of active weights that are new after the
update), `itop` (in-time over-parameterisation: fraction of all masked
weights ever active, from the per-layer `ever_active` masks), `nonzeros`;
and `history`, one row per update for the last `history` updates, so that a
callback running once per execution of several steps sees every update of
it. `tfs.callbacks.MaskUpdateSummaries` writes them to TensorBoard.

Example:

    state = UpdateState(weights)                       # at attach
    state.record(step=..., rate=..., ...)              # in the update
    state.summary_values(weights)["itop"]              # after it
    state.update_history(weights, since=3)             # updates 4, 5, ...
"""

import tensorflow as tf

# One row of `history`: these scalars, then one block of L values per
# per-layer statistic.
SCALARS = ("step", "rate", "churn", "itop", "nonzeros", "dropped", "grown",
           "regrown")
PER_LAYER = ("density", "dropped", "grown", "regrown", "share", "rate")
_COUNTS = ("nonzeros", "dropped", "grown", "regrown")


class UpdateState(tf.Module):
    """The monitoring variables of an algorithm, one trackable.

    Args:
      weights: the algorithm's `MaskedWeight`s (their masks are the state
        before the first update).
      history: updates kept for `update_history`; more updates than this
        within one execution of several steps are lost.
    """

    def __init__(self, weights, history=64):
        super().__init__()
        n_layers = len(weights)
        self.num_updates = tf.Variable(0, dtype=tf.int64, trainable=False,
                                       name="num_updates")
        self.last_step = tf.Variable(-1, dtype=tf.int64, trainable=False,
                                     name="last_step")
        self.rate = tf.Variable(0.0, trainable=False, name="rate")
        self.churn = tf.Variable(0.0, trainable=False, name="churn")
        self.nonzeros = tf.Variable(
            sum(mw.nonzeros() for mw in weights), dtype=tf.int64,
            trainable=False, name="nonzeros")
        self.density = tf.Variable(
            [mw.density() for mw in weights], dtype=tf.float32,
            trainable=False, name="density")
        for name in ("dropped", "grown", "regrown"):
            setattr(self, name, tf.Variable(
                tf.zeros([n_layers], tf.int64), trainable=False, name=name))
        self.share = tf.Variable(tf.zeros([n_layers]), trainable=False,
                                 name="share")
        self.layer_rate = tf.Variable(tf.zeros([n_layers]), trainable=False,
                                      name="layer_rate")
        self.ever_active = [
            tf.Variable(tf.convert_to_tensor(mw.mask) > 0, trainable=False,
                        name=f"ever_active_{i}")
            for i, mw in enumerate(weights)]
        self.itop = tf.Variable(self._itop_value(), trainable=False,
                                name="itop")
        self.history = tf.Variable(
            tf.zeros([history, len(SCALARS) + len(PER_LAYER) * n_layers],
                     tf.float64), trainable=False, name="history")

    def _itop_value(self):
        total = sum(e.shape.num_elements() for e in self.ever_active)
        ever = tf.add_n([tf.reduce_sum(tf.cast(e, tf.float64))
                         for e in self.ever_active])
        return tf.cast(ever / total, tf.float32)

    def mark_active(self, i, active):
        """Adds layer `i`'s new active set (weight-shaped bool) to
        `ever_active`."""
        ever = self.ever_active[i]
        ever.assign(tf.logical_or(ever, active))

    def _per_layer(self):
        """The per-layer variables, in `PER_LAYER` order."""
        return (self.density, self.dropped, self.grown, self.regrown,
                self.share, self.layer_rate)

    def record(self, *, step, rate, sizes, before, active, dropped, grown,
               regrown, net_new, share, layer_rates):
        """Writes one update's statistics (in graph).

        Args:
          step: the update's step (int64); rate: its drop rate (float64).
          sizes: float64 [L], the weights' sizes.
          before: int64, active weights before the update, all layers.
          active, dropped, grown, regrown, net_new: per layer, lists of
            int64 counts: active after the update, dropped, grown, grown
            back right after being dropped, newly active.
          share, layer_rates: float64 [L].
        """
        after = tf.add_n(active)
        self.nonzeros.assign(after)
        self.num_updates.assign_add(1)
        self.last_step.assign(step)
        self.rate.assign(tf.cast(rate, tf.float32))
        self.density.assign(tf.cast(
            tf.cast(tf.stack(active), tf.float64) / sizes, tf.float32))
        self.dropped.assign(tf.stack(dropped))
        self.grown.assign(tf.stack(grown))
        self.regrown.assign(tf.stack(regrown))
        self.share.assign(tf.cast(share, tf.float32))
        self.layer_rate.assign(tf.cast(layer_rates, tf.float32))
        self.churn.assign(tf.cast(
            tf.cast(tf.add_n(net_new), tf.float64)
            / tf.maximum(tf.cast(before, tf.float64), 1.0), tf.float32))
        self.itop.assign(self._itop_value())
        scalars = [step, self.rate, self.churn, self.itop, after,
                   tf.add_n(dropped), tf.add_n(grown), tf.add_n(regrown)]
        row = tf.concat(
            [tf.stack([tf.cast(x, tf.float64) for x in scalars])]
            + [tf.reshape(tf.cast(v, tf.float64), [-1])
               for v in self._per_layer()], 0)
        slot = tf.math.floormod(self.num_updates - 1, self.history.shape[0])
        self.history.assign(tf.tensor_scatter_nd_update(
            self.history, [[slot]], [row]))

    def summary_values(self, weights):
        """The last update's monitoring values as Python numbers.

        Returns a dict with scalars (`rate`, `churn`, `itop`, `nonzeros`,
        `num_updates`, `step`, totals of dropped/grown/regrown) and
        `layers`: {weight path: {density, dropped, grown, regrown, share,
        rate}}.
        """
        arrays = {key: v.numpy()
                  for key, v in zip(PER_LAYER, self._per_layer())}
        return {
            "num_updates": int(self.num_updates.numpy()),
            "step": int(self.last_step.numpy()),
            "rate": float(self.rate.numpy()),
            "churn": float(self.churn.numpy()),
            "itop": float(self.itop.numpy()),
            "nonzeros": int(self.nonzeros.numpy()),
            **{key: int(arrays[key].sum())
               for key in ("dropped", "grown", "regrown")},
            "layers": {mw.path: _layer_values(arrays, i)
                       for i, mw in enumerate(weights)},
        }

    def update_history(self, weights, since=0):
        """Monitoring values of the updates numbered `since + 1` .. now.

        A list of dicts like `summary_values()` (without `num_updates`, with
        the update's number as `update`), oldest first; at most the last
        `history` updates are kept.
        """
        now = int(self.num_updates.numpy())
        rows = self.history.numpy()
        kept = rows.shape[0]
        n_scalars, n_layers = len(SCALARS), len(weights)
        out = []
        for number in range(max(since, now - kept) + 1, now + 1):
            row = rows[(number - 1) % kept]
            values = {"update": number}
            for j, key in enumerate(SCALARS):
                values[key] = float(row[j])
            for key in ("step",) + _COUNTS:
                values[key] = int(values[key])
            blocks = row[n_scalars:].reshape(len(PER_LAYER), n_layers)
            arrays = dict(zip(PER_LAYER, blocks))
            values["layers"] = {mw.path: _layer_values(arrays, i)
                                for i, mw in enumerate(weights)}
            out.append(values)
        return out


def _layer_values(arrays, i):
    return {key: int(arrays[key][i]) if key in _COUNTS else float(
        arrays[key][i]) for key in PER_LAYER}
