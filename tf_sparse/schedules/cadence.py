"""The mask-update cadence: at which steps a dynamic method updates masks.

Example:

    >>> UpdateSchedule.every_epoch(steps_per_epoch=50, total_steps=200).update_steps()
    [50, 100, 150]
"""

from __future__ import annotations

import dataclasses

from keras import ops

from tf_sparse.schedules.base import Windowed
from tf_sparse.schedules.base import begin_field
from tf_sparse.schedules.base import end_field
from tf_sparse.schedules.base import every_field
from tf_sparse.schedules.evaluation import is_python_step
from tf_sparse.schedules.evaluation import python_step
from tf_sparse.schedules.evaluation import step_tensor
from tf_sparse.schedules.steps import Step
from tf_sparse.schedules.steps import is_integer


@dataclasses.dataclass(frozen=True)
class UpdateSchedule(Windowed):
    """When to update masks: every ``every`` steps inside a window.

    ``should_update(step)`` is true iff ``(step - begin) % every == 0`` and
    ``begin <= step < end`` (``skip_last=True``, the default) or
    ``begin <= step <= end`` (``skip_last=False``, the tfmot/RigL inclusive
    convention). With the default ``end=1.0`` the skipped "last" update is
    the one after the final optimizer step, which no training step would use.
    ``every``, ``begin`` and ``end`` are ints (steps) or fractions.

    `every_epoch` builds sparse momentum's cadence: after every epoch except
    the last, i.e. at ``step = k * steps_per_epoch`` for ``k = 1 ..
    epochs - 1``.

    Example:

        >>> cadence = UpdateSchedule(every=100, begin=0.1, end=0.5,
        ...                          total_steps=1000)
        >>> cadence.update_steps()
        [100, 200, 300, 400]
        >>> UpdateSchedule.every_epoch(50, 200).update_steps()
        [50, 100, 150]
    """

    every: Step = every_field()
    begin: Step = begin_field(0)
    end: Step = end_field(1.0)
    skip_last: bool = True

    def validate(self):
        self.check_window()
        if not isinstance(self.skip_last, bool):
            raise ValueError(
                f"UpdateSchedule.skip_last={self.skip_last!r} must be a bool."
            )

    @classmethod
    def every_epoch(cls, steps_per_epoch: int, total_steps: int, *,
                    skip_last: bool = True) -> "UpdateSchedule":
        """Updates at the end of every epoch except the last.

        That is after ``k * steps_per_epoch`` completed steps, ``k = 1, 2,
        ...``, below ``total_steps`` (``skip_last=False`` adds the update at
        ``total_steps`` itself when it falls on an epoch end).
        """
        if not is_integer(steps_per_epoch) or steps_per_epoch < 1:
            raise ValueError(
                f"steps_per_epoch={steps_per_epoch!r} is not accepted: it "
                "must be an int >= 1."
            )
        return cls(
            every=int(steps_per_epoch),
            begin=int(steps_per_epoch),
            end=total_steps,
            skip_last=skip_last,
            total_steps=total_steps,
        )

    @property
    def every_steps(self) -> int:
        return self.resolved_step("every")

    def should_update(self, step):
        """True (bool, or bool tensor) if masks are updated at ``step``."""
        b, e, f = self.begin_step, self.end_step, self.every_steps
        if is_python_step(step):
            s = python_step(step)
            in_window = b <= s and (s < e if self.skip_last else s <= e)
            return bool(in_window and (s - b) % f == 0)
        s = step_tensor(step)
        upper = ops.less(s, e) if self.skip_last else ops.less_equal(s, e)
        in_window = ops.logical_and(ops.greater_equal(s, b), upper)
        on_beat = ops.equal(ops.mod(ops.subtract(s, b), f), 0)
        return ops.logical_and(in_window, on_beat)

    __call__ = should_update

    def update_steps(self) -> list[int]:
        """All steps at which `should_update` is true, in order."""
        stop = self.end_step if self.skip_last else self.end_step + 1
        return list(range(self.begin_step, stop, self.every_steps))
