"""When and how much a prune-and-grow algorithm updates.

Builders of the two schedules of `PruneGrow` from constructor arguments (the
cadence, an `UpdateSchedule`, and the drop rate, a decay), with errors named
after the algorithm; and `rate_at`, the rate evaluated in float64 so that
counts such as `ceil(0.8 * 10)` come out exact.

Example:

    cadence = make_cadence("SET", total_steps=T, steps_per_epoch=600)
    rate = make_decay("SET", "cosine", 0.3, 0.0, T, what="drop_fraction")
    p = rate_at(rate, step)                        # float64 tensor
"""

import contextlib
import math

import keras

from tf_sparse import backend
from tf_sparse import schedules
from tf_sparse.algorithms import checks

DECAYS = ("cosine", "linear", "constant")


@contextlib.contextmanager
def errors_named(owner):
    """Prefixes a ValueError raised inside the block with `owner: `."""
    try:
        yield
    except ValueError as error:
        if str(error).startswith(owner):
            raise
        raise ValueError(f"{owner}: {error}") from error


def make_cadence(owner, *, total_steps, steps_per_epoch=None, every=None,
                 begin=None, end=None):
    """Every epoch except the last, or every `every` steps (in [begin, end))."""
    with errors_named(owner):
        if every:
            return schedules.UpdateSchedule(
                every=every, begin=every if begin is None else begin,
                end=1.0 if end is None else end, total_steps=total_steps)
        if steps_per_epoch is None:
            raise ValueError(
                f"{owner}: give steps_per_epoch (update at the end of every "
                "epoch) or every=<int steps>.")
        if begin is None and end is None:
            return schedules.UpdateSchedule.every_epoch(steps_per_epoch,
                                                        total_steps)
        return schedules.UpdateSchedule(
            every=steps_per_epoch,
            begin=steps_per_epoch if begin is None else begin,
            end=total_steps if end is None else end, total_steps=total_steps)


def make_decay(owner, decay, initial, final, total_steps, what="prune_rate",
               begin=0, end=1.0, accepted=DECAYS):
    """The rate schedule: constant at `initial`, or a cosine / linear decay
    from `initial` to `final` between `begin` and `end` (default: the whole
    run)."""
    checks.check_choice(owner, "decay", decay, accepted)
    initial = checks.check_rate(owner, what, initial)
    with errors_named(owner):
        if decay == "constant":
            return schedules.ConstantDecay(initial)
        cls = schedules.CosineDecay if decay == "cosine" else (
            schedules.LinearDecay)
        return cls(initial, final, begin, end, total_steps=total_steps)


def rate_schedule(owner, value):
    """A float becomes a constant schedule; a callable is used as it is."""
    if callable(value):
        return value
    return schedules.ConstantDecay(
        checks.check_rate(owner, "drop fraction", value))


def rate_at(schedule, step):
    """`schedule(step)` as a float64 tensor.

    The decays of `tf_sparse.schedules` compute tensors in float32; a rate
    of 0.8 would become 0.800000012 and `ceil(0.8 * 10)` would give 9. For
    `ConstantDecay`, `CosineDecay` and `LinearDecay` the same formula is
    evaluated here in float64, as the Python path of the schedule (and the
    reference, in Python floats) does: in TensorFlow's graph with float64
    ops, and in Python floats for an eager update of the other backends
    (where `keras.ops.cos` and `clip` of float64 give float32); other
    callables are cast.
    """
    ops = keras.ops
    if isinstance(schedule, schedules.ConstantDecay):
        return ops.convert_to_tensor(float(schedule.value), "float64")
    if not isinstance(schedule, (schedules.CosineDecay,
                                 schedules.LinearDecay)):
        return ops.cast(schedule(ops.cast(step, "int64")), "float64")
    begin = float(schedule.begin_step)
    end = float(schedule.end_step)
    if backend.is_tensorflow():
        step = ops.cast(step, "float64")
        progress = ops.clip((step - begin) / (end - begin), 0.0, 1.0)
        cos = ops.cos
    else:
        step = float(ops.convert_to_numpy(step))
        progress = min(max((step - begin) / (end - begin), 0.0), 1.0)
        cos = math.cos
    if isinstance(schedule, schedules.CosineDecay):
        shape = 0.5 * (1.0 + cos(math.pi * progress))
    else:
        shape = 1.0 - progress
    rate = schedule.final + (schedule.initial - schedule.final) * shape
    return ops.convert_to_tensor(rate, "float64")
