"""AC/DC phases: alternating compressed (sparse) and decompressed (dense).

Example:

    >>> acdc = ACDCSchedule(warmup=0.1, phase_length=0.05, end_sparse=0.15,
    ...                     total_steps=100)
    >>> acdc.boundaries[:3], acdc.phase(12)
    ((10, 15, 20), (1, True))
"""

from __future__ import annotations

import bisect
import dataclasses

import numpy as np
from keras import ops

from tf_sparse.schedules.base import Schedule
from tf_sparse.schedules.base import check_at_least_one_step
from tf_sparse.schedules.base import check_in_interval
from tf_sparse.schedules.base import step_field
from tf_sparse.schedules.evaluation import is_python_step
from tf_sparse.schedules.evaluation import python_step
from tf_sparse.schedules.evaluation import step_tensor
from tf_sparse.schedules.steps import Step


@dataclasses.dataclass(frozen=True)
class ACDCSchedule(Schedule):
    """AC/DC: dense warm-up, alternating sparse/dense phases, final sparse.

    Timeline (``W = warmup``, ``L = phase_length``, ``F = end_sparse``, ``T =
    total_steps``, all resolved to steps):

    * ``[0, W)``: dense warm-up (absent if ``W == 0``);
    * ``[W, T - F)``: ``n = (T - F - W) / L`` phases of ``L`` steps,
      alternating compressed (sparse) and decompressed (dense), starting
      with compressed; ``n`` must be a whole number ("phase lengths that
      don't fit" raise ``ValueError``);
    * ``[T - F, T)``: the final compressed phase, always sparse (SparseML's
      ``ACDCPruningModifier`` likewise always finishes on compression).

    If ``n`` is odd the last alternating phase is compressed and touches the
    final one. ``tail="dense"`` (default) decompresses it instead, so a dense
    phase of ``2 L`` precedes a fresh final compression; this is the
    IST-DASLab ResNet-50 config (100 epochs: dense 0-10, 5-epoch phases
    sparse 10-15 ... sparse 70-75, dense 75-85, sparse 85-100), i.e.
    ``ACDCSchedule(0.1, 0.05, 0.15)``. ``tail="merge"`` keeps it compressed,
    giving one final sparse phase of ``L + F`` (SparseML recipe ACDC 5-85 +
    constant sparsity 85-100).

    Adjacent phases with the same state are one phase. Phases are numbered
    from 0; steps at or past ``T`` stay in the final phase.
    ``phase(step) -> (index, is_sparse)``; ``is_boundary(step)`` is true at
    the first step of each phase whose state differs from the state before
    it (dense before step 0): prune there if the phase is sparse, restore
    all weights (and, per AC/DC, reset momentum) if it is dense.
    ``schedule(step) -> (is_boundary, target_sparsity)`` (``sparsity`` in
    sparse phases, 0.0 in dense ones), the same shape as the GMP schedules.

    Example:

        >>> acdc = ACDCSchedule(0.1, 0.05, 0.15, total_steps=100)
        >>> [(a, b, "S" if s else "D") for a, b, s in acdc.phases()][-3:]
        [(70, 75, 'S'), (75, 85, 'D'), (85, 100, 'S')]
        >>> acdc.phase(80), acdc.is_boundary(85), acdc(90)
        ((14, False), True, (False, 0.9))
    """

    warmup: Step = step_field()
    phase_length: Step = step_field()
    end_sparse: Step = step_field()
    sparsity: float = 0.9
    tail: str = "dense"

    def validate(self):
        if self.total_steps is None:
            raise ValueError(
                "ACDCSchedule needs total_steps (the final sparse phase is "
                "placed at the end of training); got total_steps=None."
            )
        check_in_interval(self, "sparsity", lo_open=True, hi_open=True,
                          accepted="the compressed-phase sparsity")
        if self.tail not in ("dense", "merge"):
            raise ValueError(
                f"ACDCSchedule.tail={self.tail!r} is not accepted: use "
                "'dense' or 'merge'."
            )
        T = self.total_steps
        W, L, F = (self.resolved_step(k)
                   for k in ("warmup", "phase_length", "end_sparse"))
        check_at_least_one_step(self, "phase_length")
        if F < 1:
            raise ValueError(
                f"ACDCSchedule.end_sparse={self.end_sparse!r} resolves to 0 "
                "steps; the final sparse phase must be >= 1 step."
            )
        middle = T - F - W
        if middle < 0 or middle % L:
            raise ValueError(
                "ACDCSchedule: phase lengths don't fit: need warmup + n * "
                "phase_length + end_sparse == total_steps for a whole n >= 0, "
                f"got warmup={self.warmup!r} ({W} steps) + n * "
                f"phase_length={self.phase_length!r} ({L} steps) + "
                f"end_sparse={self.end_sparse!r} ({F} steps) vs total_steps="
                f"{T} (remainder {middle} steps)."
            )
        n = middle // L
        segments = []
        if W:
            segments.append((0, False))
        for k in range(n):
            sparse = k % 2 == 0
            if sparse and k == n - 1 and self.tail == "dense":
                sparse = False
            segments.append((W + k * L, sparse))
        segments.append((T - F, True))
        starts, states = [], []
        for start, sparse in segments:
            if states and states[-1] == sparse:
                continue
            starts.append(start)
            states.append(sparse)
        boundaries = tuple(
            s for i, s in enumerate(starts)
            if states[i] != (states[i - 1] if i else False)
        )
        object.__setattr__(self, "_starts", tuple(starts))
        object.__setattr__(self, "_states", tuple(states))
        object.__setattr__(self, "_boundaries", boundaries)

    def phases(self) -> tuple[tuple[int, int, bool], ...]:
        """``(start, end, is_sparse)`` for each phase, end exclusive."""
        ends = self._starts[1:] + (self.total_steps,)
        return tuple(zip(self._starts, ends, self._states))

    @property
    def boundaries(self) -> tuple[int, ...]:
        """Steps at which `is_boundary` is true."""
        return self._boundaries

    def phase(self, step):
        """``(index, is_sparse)`` of the phase containing ``step``."""
        if is_python_step(step):
            s = python_step(step)
            i = bisect.bisect_right(self._starts, s) - 1
            return i, self._states[i]
        s = step_tensor(step)
        if len(self._starts) > 1:
            later = np.asarray(self._starts[1:], dtype=np.int64)
            hits = ops.greater_equal(ops.expand_dims(s, -1), later)
            index = ops.sum(ops.cast(hits, "int32"), axis=-1)
        else:
            index = ops.zeros(ops.shape(s), dtype="int32")
        states = np.asarray(self._states, dtype=bool)
        return index, ops.take(states, index)

    def is_boundary(self, step):
        """True at the first step of a phase that changes the mask state."""
        if is_python_step(step):
            return python_step(step) in self._boundaries
        s = step_tensor(step)
        if not self._boundaries:
            return ops.zeros(ops.shape(s), dtype="bool")
        marks = np.asarray(self._boundaries, dtype=np.int64)
        return ops.any(ops.equal(ops.expand_dims(s, -1), marks), axis=-1)

    def target_sparsity(self, step):
        """``sparsity`` in compressed phases, 0.0 in decompressed ones."""
        _, sparse = self.phase(step)
        if is_python_step(step):
            return float(self.sparsity) if sparse else 0.0
        return ops.where(sparse, np.float32(self.sparsity), np.float32(0.0))

    def __call__(self, step):
        return self.is_boundary(step), self.target_sparsity(step)
