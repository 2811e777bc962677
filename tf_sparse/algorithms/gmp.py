"""Gradual magnitude pruning (GMP): Zhu & Gupta's sparsity ramp, in graph.

From an initial to a final sparsity between `begin` and `end`, every
`frequency` steps, the smallest-magnitude active weights are pruned until each
layer (layer-wise) or the whole model (global) holds exactly its target
number of nonzeros. Pruned weights never come back.

Schedules are those of `tf_sparse.schedules`, so GMP's targets agree step for
step with tensorflow-model-optimization's `PolynomialDecay` (``"cubic"``
and ``"linear"``, any ``power``) and `ConstantSparsity` (``"constant"``);
``"inverse_cubic"`` is SparseML's curve. Positions are ints (steps) or
floats (fractions of training), so a longer run stretches the ramp.

Counts: a weight of ``n`` entries at target sparsity ``s`` keeps
``floor((1 - s) * n + 0.5)`` (and at least 1, as tfmot) entries; ``1 - s``
is computed in float32 like tfmot, the product in float64
(`magnitude.kept_count`). Ties in magnitude go to the lower flat index
(`tf_sparse.topk`), so a count is always exact (tfmot thresholds instead
and may keep more on ties).

Timing: the hook runs after optimizer step ``s`` and prunes when the
schedule says so at ``s``. tfmot evaluates its schedule at
``iterations + 1`` before the step; ``tfmot_timing=True`` evaluates ours at
``s + 1`` too, which prunes at the same point of training on the same
weights as a tfmot run. A prune due at step 0 (before any update) is applied
when the algorithm is attached.

Example:

    model = tfs.sparsify(model, sparsity=0.0)          # all-ones masks
    gmp = tfs.algorithms.GMP(0.9, begin=0.1, end=0.7, frequency=100,
                             total_steps=epochs * steps_per_epoch)
    model.fit(x, y, epochs=epochs, callbacks=[tfs.callbacks.MaskUpdate(gmp)])
"""

import dataclasses
import numbers
import warnings

import keras

from tf_sparse import channel_graph
from tf_sparse import schedules as S
from tf_sparse.algorithms import base
from tf_sparse.algorithms import checks
from tf_sparse.algorithms import magnitude

CURVES = ("cubic", "linear", "inverse_cubic", "constant")


def make_schedule(curve, initial, final, begin, end, frequency, total_steps,
                  power=None):
    """The `tf_sparse.schedules` object behind a GMP curve name."""
    if curve not in CURVES:
        raise ValueError(
            f"GMP schedule {curve!r} is not accepted: use one of {CURVES}.")
    if curve == "constant":
        return S.ConstantSparsity(final, begin=begin, end=end,
                                  frequency=frequency, total_steps=total_steps)
    if curve == "inverse_cubic":
        return S.InterpolatedSparsity(initial, final, begin=begin, end=end,
                                      frequency=frequency,
                                      inter_func="inverse_cubic",
                                      total_steps=total_steps)
    if power is None:
        power = 3 if curve == "cubic" else 1
    return S.PolynomialSparsity(initial, final, begin=begin, end=end,
                                power=power, frequency=frequency,
                                total_steps=total_steps)


def _with_final(schedule, final):
    if isinstance(schedule, S.ConstantSparsity):
        return dataclasses.replace(schedule, target=final)
    return dataclasses.replace(schedule, final=final)


def _final_of(schedule):
    if isinstance(schedule, S.ConstantSparsity):
        return schedule.target
    return schedule.final


class GMP(base.MaskAlgorithm):
    """Gradual magnitude pruning, layer-wise or global.

    Args:
      final_sparsity: target sparsity at `end`: a float in [0, 1), or a dict
        from layer name / path / fnmatch pattern to a sparsity (per-layer
        targets, e.g. embeddings 0.5, attention 0.9; layer-wise only). May
        be omitted when `schedule` is a schedule object (its final value).
      initial_sparsity: sparsity at `begin` (ignored by "constant").
      begin, end: where the ramp starts and ends: int steps or float
        fractions of `total_steps`. For "constant", `end=-1` prunes until
        training stops.
      frequency: steps between mask updates (int, or a fraction).
      schedule: "cubic" (Zhu & Gupta, tfmot `PolynomialDecay(power=3)`),
        "linear", "inverse_cubic" (SparseML) or "constant" (tfmot
        `ConstantSparsity`); or a `PolynomialSparsity`, `InterpolatedSparsity`
        or `ConstantSparsity` object (its window and cadence are used; its
        `final`/`target` is replaced by `final_sparsity` when given).
      power: exponent for "cubic"/"linear" (default 3 and 1).
      scope: "layerwise" (each weight reaches the target) or "global" (one
        magnitude ranking across all masked weights; the total reaches it).
      total_steps: steps of the whole run; required when any position is a
        fraction.
      tfmot_timing: evaluate the schedule at `step + 1`, as tfmot does.
      final_update: also update at `end` when `end - begin` is not a
        multiple of `frequency` (tfmot then never reaches the final
        sparsity; off by default for tfmot agreement).

    Start from a model with all-ones masks (`tfs.sparsify(model, 0.0)`); layers
    that must stay dense are left out with `keep_dense`. A pattern given to
    `sparsify` (`tfs.sparsify(model, 0.0, pattern="2:4")`) is followed at
    every update (`magnitude.magnitude_masks`): whole groups, or for N:M the
    same number in every group, N at the final sparsity (which must then be
    1 - N/M).
    """

    name = "gmp"

    def __init__(self, final_sparsity=None, *, initial_sparsity=0.0,
                 begin=0, end=0.75, frequency=100, schedule="cubic",
                 power=None, scope="layerwise", total_steps=None,
                 tfmot_timing=False, final_update=False):
        super().__init__()
        self._ties = None   # set by attach (channel pattern)
        if scope not in magnitude.SCOPES:
            raise ValueError(
                f"GMP scope={scope!r} is not accepted: use one of "
                f"{magnitude.SCOPES}.")
        if isinstance(final_sparsity, dict) and scope == "global":
            raise ValueError(
                "GMP: a per-layer final_sparsity dict needs scope='layerwise'; "
                "a global ranking has one target for the whole model.")
        schedule_types = (S.PolynomialSparsity, S.InterpolatedSparsity,
                          S.ConstantSparsity)
        if final_sparsity is None:
            if not isinstance(schedule, schedule_types):
                raise ValueError(
                    "GMP needs final_sparsity (a float in [0, 1) or a "
                    "{layer pattern: sparsity} dict), or a schedule object "
                    "that carries it.")
            final_sparsity = float(_final_of(schedule))
        self.scope = scope
        self.final_sparsity = final_sparsity
        self.tfmot_timing = bool(tfmot_timing)
        self.final_update = bool(final_update)
        self.offset = 1 if tfmot_timing else 0
        finals = (sorted(set(final_sparsity.values()))
                  if isinstance(final_sparsity, dict) else [final_sparsity])
        for value in finals:
            checks.check_sparsity(value, "GMP final_sparsity")
        if isinstance(schedule, str):
            first = make_schedule(schedule, initial_sparsity, finals[0], begin,
                                  end, frequency, total_steps, power)
        elif isinstance(schedule, schedule_types):
            # final_sparsity (a float or a dict) replaces the schedule's.
            first = _with_final(schedule, finals[0])
        else:
            raise TypeError(
                f"GMP schedule={schedule!r} is not accepted: give a name in "
                f"{CURVES} or a PolynomialSparsity / InterpolatedSparsity / "
                "ConstantSparsity.")
        self.schedule = first
        # One schedule per distinct final sparsity (same window and cadence).
        self._schedules = {float(_final_of(first)): first}
        for value in finals:
            self._schedules.setdefault(float(value), _with_final(first, value))
        self._warn_if_final_missed()

    # -- schedule ---------------------------------------------------------

    def _warn_if_final_missed(self):
        sched = self.schedule
        if isinstance(sched, S.ConstantSparsity):
            return
        b, e, f = sched.begin_step, sched.end_step, sched.frequency_steps
        if (e - b) % f and not self.final_update:
            last = b + ((e - b) // f) * f
            warnings.warn(
                f"GMP: end - begin = {e - b} steps is not a multiple of "
                f"frequency={f}; the last update is at step {last}, before "
                f"end={e}, so the final sparsity is never reached (tfmot "
                "behaves the same). Choose end = begin + k * frequency, or "
                "pass final_update=True to add an update at end.",
                stacklevel=3)

    def target(self, step, final=None):
        """Scheduled sparsity at optimizer step `step` (Python float)."""
        sched = self.schedule if final is None else self._schedules[final]
        return float(sched(step + self.offset)[1])

    def update_steps(self, total_steps=None):
        """Steps (hook numbering) at which masks change, up to `total_steps`
        (default: the schedule's `total_steps`, else its `end`)."""
        if total_steps is None:
            total_steps = self.schedule.total_steps
        if total_steps is None:
            total_steps = max(self.schedule.end_step, self.schedule.begin_step)
        return [s for s in range(total_steps + 1) if self.should_update(s)]

    def _extra_final(self):
        sched = self.schedule
        return (self.final_update and not isinstance(sched, S.ConstantSparsity)
                and (sched.end_step - sched.begin_step) % sched.frequency_steps)

    def should_update(self, step):
        extra = self._extra_final()
        if isinstance(step, numbers.Integral):
            s = int(step) + self.offset
            return bool(self.schedule(s)[0]) or bool(
                extra and s == self.schedule.end_step)
        s = keras.ops.cast(step, "int64") + self.offset
        due = self.schedule(s)[0]
        if extra:
            due = keras.ops.logical_or(
                due, keras.ops.equal(s, self.schedule.end_step))
        return due

    # -- state ------------------------------------------------------------

    def attach(self, model):
        super().attach(model)
        if not self.weights:
            raise ValueError("GMP: the model has no masked weights.")
        self._finals = magnitude.resolve_sparsity(
            self.weights, self.final_sparsity, "GMP final_sparsity")
        magnitude.check_patterns(self.weights, self._finals, self.scope,
                                 "GMP final_sparsity")
        # Channel pattern: tied channels (one dependency group) go together.
        self._ties = channel_graph.ChannelTies.of(
            model, [(mw.layer.name, mw.name, magnitude.weight_layout(mw))
                    for mw in self.weights])
        step_dtype = S.evaluation.step_dtype()   # int32 on JAX without x64
        self.updates = keras.Variable(0, dtype=step_dtype, trainable=False,
                                      name="gmp_updates")
        self.last_update = keras.Variable(-1, dtype=step_dtype,
                                          trainable=False,
                                          name="gmp_last_update")
        self.current_target = keras.Variable(
            0.0, dtype="float32", trainable=False, name="gmp_target")
        self.apply_step_zero(model)

    def update(self, step, data):
        del data
        s = keras.ops.cast(step, "int64") + self.offset
        targets = {final: sched(s)[1] for final, sched in self._schedules.items()}
        if self.scope == "global":
            sparsity = targets[float(_final_of(self.schedule))]
            new = magnitude.magnitude_masks(self.weights, sparsity, "global",
                                            True, self._ties)
        else:
            per_weight = [targets[f] for f in self._finals]
            new = magnitude.magnitude_masks(self.weights, per_weight,
                                            "layerwise", True, self._ties)
            sparsity = targets[self._finals[0]]
        for mw, mask in zip(self.weights, new):
            mw.mask.assign(mask)
        self.updates.assign_add(1)
        self.last_update.assign(keras.ops.cast(step, self.last_update.dtype))
        self.current_target.assign(keras.ops.cast(sparsity, "float32"))

    def checkpoint_items(self):
        return {"gmp_updates": self.updates,
                "gmp_last_update": self.last_update,
                "gmp_target": self.current_target}

    def get_config(self):
        return {"name": self.name, "final_sparsity": self.final_sparsity,
                "scope": self.scope, "tfmot_timing": self.tfmot_timing,
                "final_update": self.final_update,
                "schedule": type(self.schedule).__name__,
                **{k: v for k, v in self.schedule.get_config().items()}}


def stretched(algorithm, multiplier):
    """A GMP like `algorithm` for a run `multiplier` times as long."""
    if not isinstance(algorithm, GMP):
        raise TypeError(f"stretched() takes a GMP, got {type(algorithm).__name__}.")
    return GMP(algorithm.final_sparsity,
               schedule=S.stretch(algorithm.schedule, multiplier),
               scope=algorithm.scope, tfmot_timing=algorithm.tfmot_timing,
               final_update=algorithm.final_update)
