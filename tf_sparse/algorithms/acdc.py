"""AC/DC: alternating compressed / decompressed training (Peste et al. 2021).

A dense warm-up, then phases that alternate between compressed (sparse:
global magnitude top-k at the phase start, exact count) and decompressed
(dense: every mask back to one; pruned weights re-enter at exactly zero and
train from there), the last phase always sparse. Phases come from
`tf_sparse.schedules.ACDCSchedule` (ints are steps, floats fractions of
training, so a longer run stretches every phase).

At each phase change the optimizer slots (SGD momentum, Adam first and
second moments, ...) of the masked weights can be reset to their initial
values (`reset_momentum`; zeros for momenta and moments, Adagrad's and
Ftrl's `initial_accumulator_value`, see `optimizer_state.reset_slots`), as
the reference runs do after decompression.

At every compression the dense weights are copied first, so at the end the
algorithm holds the co-trained dense model (the weights at the end of the
last dense phase) next to the sparse one: `save_models`. Mask drift between
consecutive compressions (fraction of masked positions whose state changed,
and the overlap of kept sets) is recorded in graph and returned by
`mask_drift()`.

Example:

    model = tfs.sparsify(model, sparsity=0.0)          # all-ones masks
    acdc = tfs.algorithms.ACDC(0.9, warmup=0.1, phase_length=0.05,
                               end_sparse=0.15, total_steps=T)
    model.fit(..., callbacks=[tfs.callbacks.MaskUpdate(acdc)])
    acdc.save_models("sparse.keras", "dense.keras")
    print(acdc.mask_drift())
"""

import numbers

import keras
import numpy as np

from tf_sparse import backend
from tf_sparse import channel_graph
from tf_sparse import cloning
from tf_sparse import masking
from tf_sparse import saving
from tf_sparse import schedules as S
from tf_sparse.algorithms import base
from tf_sparse.algorithms import checks
from tf_sparse.algorithms import magnitude
from tf_sparse.algorithms import optimizer_state

RESET_CHOICES = (False, True, "dense", "sparse")


def _core_model(model):
    """The student of a distillation wrapper, else the model itself."""
    return getattr(model, "tf_sparse_student", None) or model


class ACDC(base.MaskAlgorithm):
    """Alternating compressed / decompressed training.

    Args:
      sparsity: sparsity of compressed phases: a float in (0, 1), or a dict
        from layer name / path / pattern to a sparsity (needs
        scope="layerwise").
      warmup: dense warm-up length (int steps or fraction of total_steps).
      phase_length: length of each alternating phase.
      end_sparse: length of the final compressed phase.
      total_steps: steps of the whole run (required).
      tail: "dense" (default: the last alternating phase is dense, as in the
        reference ResNet-50 config) or "merge"; see `ACDCSchedule`.
      scope: "global" (default: one magnitude ranking across all masked
        weights, as AC/DC) or "layerwise".
      reset_momentum: reset the optimizer slots of the masked weights to their
        initial values at every phase change (True), only when decompressing
        ("dense") or only when compressing ("sparse"); False keeps them.
      schedule: an `ACDCSchedule` to use instead of the four step arguments.
    """

    name = "acdc"

    def __init__(self, sparsity=0.9, *, warmup=0.1, phase_length=0.05,
                 end_sparse=0.15, total_steps=None, tail="dense",
                 scope="global", reset_momentum=True, schedule=None):
        super().__init__()
        self._ties = None   # set by attach (channel pattern)
        if scope not in magnitude.SCOPES:
            raise ValueError(
                f"ACDC scope={scope!r} is not accepted: use one of "
                f"{magnitude.SCOPES}.")
        if isinstance(sparsity, dict):
            if scope == "global":
                raise ValueError(
                    "ACDC: a per-layer sparsity dict needs scope='layerwise'.")
            values = list(sparsity.values())
            for value in values:
                checks.check_sparsity(value, "ACDC sparsity")
            nominal = max(values)
        else:
            nominal = sparsity
        if reset_momentum not in RESET_CHOICES or isinstance(
                reset_momentum, numbers.Number) and not isinstance(
                    reset_momentum, bool):
            raise ValueError(
                f"ACDC reset_momentum={reset_momentum!r} is not accepted: use "
                "True, False, 'dense' or 'sparse'.")
        if schedule is None:
            schedule = S.ACDCSchedule(warmup, phase_length, end_sparse,
                                      sparsity=nominal, tail=tail,
                                      total_steps=total_steps)
        elif not isinstance(schedule, S.ACDCSchedule):
            raise TypeError(
                f"ACDC schedule must be an ACDCSchedule, got "
                f"{type(schedule).__name__}.")
        self.schedule = schedule
        self.sparsity = sparsity if isinstance(sparsity, dict) else float(
            sparsity if sparsity is not None else schedule.sparsity)
        self.scope = scope
        self.reset_momentum = reset_momentum
        phases = schedule.phases()
        self.compressions = tuple(a for a, _, sparse in phases if sparse)
        self.decompressions = tuple(
            a for i, (a, _, sparse) in enumerate(phases) if not sparse and i)

    # -- schedule ---------------------------------------------------------

    def phases(self):
        """`(start, end, is_sparse)` of every phase, in steps."""
        return self.schedule.phases()

    def update_steps(self):
        """Steps at which the mask state changes (phase boundaries)."""
        return list(self.schedule.boundaries)

    def should_update(self, step):
        if isinstance(step, numbers.Integral):
            return bool(self.schedule.is_boundary(int(step)))
        return self.schedule.is_boundary(step)

    def due_at_step_zero(self):
        # Always set the first phase's state (a dense warm-up gets all-ones
        # masks, a sparse start is pruned).
        return True

    # -- state ------------------------------------------------------------

    def attach(self, model):
        super().attach(model)
        if not self.weights:
            raise ValueError("ACDC: the model has no masked weights.")
        self._targets = magnitude.resolve_sparsity(
            self.weights, self.sparsity, "ACDC sparsity")
        self._core = _core_model(model)
        # Channel pattern: tied channels (one dependency group) go together.
        self._ties = channel_graph.ChannelTies.of(
            self._core, [(mw.layer.name, mw.name, magnitude.weight_layout(mw))
                         for mw in self.weights])
        if self.reset_momentum is not False:
            optimizer_state.check_slots(getattr(model, "optimizer", None),
                                        "ACDC")
        n = sum(mw.size for mw in self.weights)
        count = max(1, len(self.compressions))
        step_dtype = S.evaluation.step_dtype()   # int32 on JAX without x64
        self.compressed = keras.Variable(0, dtype=step_dtype, trainable=False,
                                         name="acdc_compressions")
        self.previous_mask = keras.Variable(np.zeros([n], np.float32),
                                            trainable=False,
                                            name="acdc_previous_mask")
        self.drift_changed = keras.Variable(
            np.full([count], -1.0, np.float32), trainable=False,
            name="acdc_drift_changed")
        self.drift_overlap = keras.Variable(
            np.full([count], -1.0, np.float32), trainable=False,
            name="acdc_drift_overlap")
        self.snapshot_step = keras.Variable(-1, dtype=step_dtype,
                                            trainable=False,
                                            name="acdc_dense_step")
        self.dense_snapshot = [
            keras.Variable(np.zeros(tuple(v.shape), v.dtype), trainable=False,
                           name="acdc_dense")
            for v in self._core.weights]
        self.apply_step_zero(model)

    def _reset_slots(self, compress):
        if self.reset_momentum is False:
            return
        if self.reset_momentum == "dense" and compress:
            return
        if self.reset_momentum == "sparse" and not compress:
            return
        optimizer = self.model.optimizer
        if optimizer is None or not optimizer.built:
            return  # Step 0 before the first update: slots are fresh.
        for mw in self.weights:
            # Masks are already set; weights are zeroed after the update.
            optimizer_state.reset_slots(
                optimizer, mw.variable, owner="ACDC",
                value=lambda mw=mw: masking.keep_active(mw.variable, mw.mask))

    def _compress(self, step):
        ops = keras.ops
        for snap, variable in zip(self.dense_snapshot, self._core.weights):
            # A copy: under JAX the train step donates (frees) the
            # variable's own array.
            snap.assign(ops.copy(ops.convert_to_tensor(variable)))
        self.snapshot_step.assign(ops.cast(step, self.snapshot_step.dtype))
        if self.scope == "global":
            sparsity = ops.convert_to_tensor(self._targets[0], "float32")
            new = magnitude.magnitude_masks(self.weights, sparsity, "global",
                                            False, self._ties)
        else:
            new = magnitude.magnitude_masks(
                self.weights,
                [ops.convert_to_tensor(t, "float32") for t in self._targets],
                "layerwise", False, self._ties)
        for mw, mask in zip(self.weights, new):
            mw.mask.assign(mask)
        flat = ops.concatenate([ops.reshape(m, [-1]) for m in new], axis=0)
        flat = ops.cast(flat, "float32")
        index = ops.convert_to_tensor(self.compressed)
        previous = ops.convert_to_tensor(self.previous_mask)

        def record():
            changed = ops.mean(ops.abs(flat - previous))
            overlap = ops.sum(flat * previous) / ops.maximum(
                ops.sum(flat), 1.0)
            for drift, value in ((self.drift_changed, changed),
                                 (self.drift_overlap, overlap)):
                at = ops.arange(drift.shape[0]) == ops.cast(index, "int32")
                drift.assign(ops.where(at, value,
                                       ops.convert_to_tensor(drift)))

        backend.cond(index > 0, record, lambda: None)
        self.previous_mask.assign(flat)
        self.compressed.assign_add(1)
        self._reset_slots(compress=True)

    def _decompress(self):
        for mw in self.weights:
            mw.mask.assign(keras.ops.ones(mw.shape, mw.mask.dtype))
        self._reset_slots(compress=False)

    def update(self, step, data):
        del data
        if isinstance(step, numbers.Integral):
            sparse = self.schedule.phase(int(step))[1]
        else:
            sparse = self.schedule.phase(keras.ops.cast(step, "int64"))[1]
        backend.cond(sparse, lambda: self._compress(step), self._decompress)

    def checkpoint_items(self):
        return {"acdc_compressions": self.compressed,
                "acdc_previous_mask": self.previous_mask,
                "acdc_drift_changed": self.drift_changed,
                "acdc_drift_overlap": self.drift_overlap,
                "acdc_dense_step": self.snapshot_step,
                "acdc_dense": {"snapshot": list(self.dense_snapshot)}}

    # -- results ----------------------------------------------------------

    def mask_drift(self):
        """Per compression after the first: its step, the fraction of masked
        positions whose state changed since the previous compression, and the
        fraction of the kept weights that were kept then too."""
        changed = keras.ops.convert_to_numpy(self.drift_changed)
        overlap = keras.ops.convert_to_numpy(self.drift_overlap)
        done = int(keras.ops.convert_to_numpy(self.compressed))
        return [{"step": int(self.compressions[i]),
                 "changed_fraction": float(changed[i]),
                 "kept_overlap": float(overlap[i])}
                for i in range(1, min(done, len(self.compressions)))]

    def dense_weights(self):
        """The co-trained dense model's weights (numpy, `model.weights` order)."""
        if int(keras.ops.convert_to_numpy(self.snapshot_step)) < 0:
            raise ValueError(
                "ACDC: no compression has happened yet, so there is no "
                "co-trained dense model.")
        return [keras.ops.convert_to_numpy(v) for v in self.dense_snapshot]

    def dense_model(self):
        """A plain Keras copy of the model with the co-trained dense weights."""
        clone = cloning.clone_architecture(self._core)
        clone.set_weights(self.dense_weights())
        return clone

    def save_models(self, sparse_path, dense_path):
        """Saves the sparse model (`tfs.save_model`, masks included) and the
        co-trained dense model (plain `.keras`)."""
        saving.save_model(self._core, sparse_path)
        self.dense_model().save(dense_path)
        return sparse_path, dense_path

    def get_config(self):
        return {"name": self.name, "sparsity": self.sparsity,
                "scope": self.scope, "reset_momentum": self.reset_momentum,
                **self.schedule.get_config()}


def stretched(algorithm, multiplier):
    """An ACDC like `algorithm` for a run `multiplier` times as long."""
    if not isinstance(algorithm, ACDC):
        raise TypeError(
            f"stretched() takes an ACDC, got {type(algorithm).__name__}.")
    return ACDC(algorithm.sparsity, scope=algorithm.scope,
                reset_momentum=algorithm.reset_momentum,
                schedule=S.stretch(algorithm.schedule, multiplier))
