"""What a prune-and-grow update records, for monitoring.

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

import keras
import numpy as np
import tensorflow as tf

from tf_sparse.algorithms import float64
from tf_sparse.schedules import evaluation

# One row of `history`: these scalars, then one block of L values per
# per-layer statistic.
SCALARS = ("step", "rate", "churn", "itop", "nonzeros", "dropped", "grown",
           "regrown")
PER_LAYER = ("density", "dropped", "grown", "regrown", "share", "rate")
_COUNTS = ("nonzeros", "dropped", "grown", "regrown")


def _state(value, dtype, name):
    """A non-trainable keras.Variable; "int64" and "float64" become
    "int32" and "float32" under JAX without x64 (which has neither: counts
    and steps stay exact up to 2**31 and 2**24)."""
    if evaluation.step_dtype() == "int32":
        dtype = {"int64": "int32", "float64": "float32"}.get(dtype, dtype)
    return keras.Variable(np.asarray(value, dtype), trainable=False,
                          dtype=dtype, name=name)


class UpdateState(tf.Module):
    """The monitoring variables of an algorithm, one trackable.

    Its variables are `keras.Variable`s written with `keras.ops`, so one
    update records the same values on every Keras backend. It is a
    `tf.Module` only so that TensorFlow's checkpoints track it under one
    name (`checkpoint_items`); under JAX and PyTorch the run's `.keras`
    checkpoints read its variables (`runs.keras_checkpoint`).

    Args:
      weights: the algorithm's `MaskedWeight`s (their masks are the state
        before the first update).
      history: updates kept for `update_history`; more updates than this
        within one execution of several steps are lost.
    """

    def __init__(self, weights, history=64):
        super().__init__()
        n_layers = len(weights)
        self.num_updates = _state(0, "int64", "num_updates")
        self.last_step = _state(-1, "int64", "last_step")
        self.rate = _state(0.0, "float32", "rate")
        self.churn = _state(0.0, "float32", "churn")
        self.nonzeros = _state(sum(mw.nonzeros() for mw in weights),
                               "int64", "nonzeros")
        self.density = _state([mw.density() for mw in weights], "float32",
                              "density")
        for name in ("dropped", "grown", "regrown"):
            setattr(self, name, _state(np.zeros([n_layers]), "int64", name))
        self.share = _state(np.zeros([n_layers]), "float32", "share")
        self.layer_rate = _state(np.zeros([n_layers]), "float32",
                                 "layer_rate")
        self.ever_active = [
            _state(keras.ops.convert_to_numpy(mw.mask) > 0, "bool",
                   f"ever_active_{i}")
            for i, mw in enumerate(weights)]
        ever = [keras.ops.convert_to_numpy(e) for e in self.ever_active]
        self.itop = _state(sum(e.sum() for e in ever)
                           / sum(e.size for e in ever), "float32", "itop")
        self.history = _state(
            np.zeros([history, len(SCALARS) + len(PER_LAYER) * n_layers]),
            "float64", "history")

    def _itop_value(self):
        ops = keras.ops
        total = sum(int(np.prod(e.shape)) for e in self.ever_active)
        ever = ops.sum(ops.stack([
            ops.sum(ops.cast(ops.convert_to_tensor(e), "float64"))
            for e in self.ever_active]))
        return ops.cast(ever / total, "float32")

    def mark_active(self, i, active):
        """Adds layer `i`'s new active set (weight-shaped bool) to
        `ever_active`."""
        ever = self.ever_active[i]
        ever.assign(keras.ops.logical_or(keras.ops.convert_to_tensor(ever),
                                         active))

    def _per_layer(self):
        """The per-layer variables, in `PER_LAYER` order."""
        return (self.density, self.dropped, self.grown, self.regrown,
                self.share, self.layer_rate)

    def record(self, *, step, rate, sizes, before, active, dropped, grown,
               regrown, net_new, share, layer_rates):
        """Writes one update's statistics (keras.ops; in graph on
        TensorFlow).

        Args:
          step: the update's step (int64); rate: its drop rate (float64).
          sizes: float64 [L], the weights' sizes.
          before: int64, active weights before the update, all layers.
          active, dropped, grown, regrown, net_new: per layer, lists of
            int64 counts: active after the update, dropped, grown, grown
            back right after being dropped, newly active.
          share, layer_rates: float64 [L].
        """
        ops = keras.ops

        def total(counts):
            return ops.sum(ops.stack(counts))

        after = total(active)
        self.nonzeros.assign(after)
        self.num_updates.assign(self.num_updates + 1)
        self.last_step.assign(ops.cast(step, "int64"))
        self.rate.assign(ops.cast(rate, "float32"))
        self.density.assign(ops.cast(
            ops.cast(ops.stack(active), "float64") / sizes, "float32"))
        self.dropped.assign(ops.stack(dropped))
        self.grown.assign(ops.stack(grown))
        self.regrown.assign(ops.stack(regrown))
        self.share.assign(ops.cast(share, "float32"))
        self.layer_rate.assign(ops.cast(layer_rates, "float32"))
        self.churn.assign(ops.cast(
            ops.cast(total(net_new), "float64")
            / float64.maximum(ops.cast(before, "float64"), 1.0),
            "float32"))
        self.itop.assign(self._itop_value())
        scalars = [step, self.rate, self.churn, self.itop, after,
                   total(dropped), total(grown), total(regrown)]
        row = ops.concatenate(
            [ops.stack([ops.cast(ops.convert_to_tensor(x), "float64")
                        for x in scalars])]
            + [ops.reshape(ops.cast(ops.convert_to_tensor(v), "float64"),
                           [-1]) for v in self._per_layer()], 0)
        kept = self.history.shape[0]
        slot = ops.mod(ops.convert_to_tensor(self.num_updates) - 1, kept)
        at_slot = ops.arange(kept) == ops.cast(slot, "int32")
        self.history.assign(ops.where(at_slot[:, None], row[None, :],
                                      ops.convert_to_tensor(self.history)))

    def summary_values(self, weights):
        """The last update's monitoring values as Python numbers.

        Returns a dict with scalars (`rate`, `churn`, `itop`, `nonzeros`,
        `num_updates`, `step`, totals of dropped/grown/regrown) and
        `layers`: {weight path: {density, dropped, grown, regrown, share,
        rate}}.
        """
        arrays = {key: keras.ops.convert_to_numpy(v)
                  for key, v in zip(PER_LAYER, self._per_layer())}
        return {
            "num_updates": int(keras.ops.convert_to_numpy(self.num_updates)),
            "step": int(keras.ops.convert_to_numpy(self.last_step)),
            "rate": float(keras.ops.convert_to_numpy(self.rate)),
            "churn": float(keras.ops.convert_to_numpy(self.churn)),
            "itop": float(keras.ops.convert_to_numpy(self.itop)),
            "nonzeros": int(keras.ops.convert_to_numpy(self.nonzeros)),
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
        now = int(keras.ops.convert_to_numpy(self.num_updates))
        rows = keras.ops.convert_to_numpy(self.history)
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
