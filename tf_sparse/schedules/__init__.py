"""Schedules for sparse training: everything that varies over a run.

Every schedule is a small frozen dataclass, built once with
``total_steps=...`` and then called with the step (a Python int, or an
integer tensor such as ``optimizer.iterations``). `base` holds the
protocol, `steps` the step values (an int step count, a float fraction of
training, or a config's ``"2ep"``) and `evaluation` the Python (float64)
and tensor (float32) paths. One module per family:

* `decay`: prune-rate / drop-fraction decays (sparse momentum, SET, RigL);
* `cadence`: when masks are updated (`UpdateSchedule`);
* `sparsity`: gradual magnitude pruning targets (tfmot / SparseML rules);
* `acdc`: AC/DC compressed / decompressed phases;
* `learning_rate`: Keras learning-rate schedules for the binaries.

Example:

    from tf_sparse import schedules as S
    T = 100 * 390                                   # 100 epochs of 390 steps
    rate = S.CosineDecay(0.5, 0.005, total_steps=T)  # sparse momentum
    cadence = S.UpdateSchedule.every_epoch(390, T)
    gmp = S.PolynomialSparsity(0.0, 0.9, begin=0.1, end=0.6, frequency=100,
                               total_steps=T)
    lr = S.StepDecayLR(0.1, boundaries=(0.5, 0.75), total_steps=T)
    long_gmp = S.stretch(gmp, 2)                     # same shape, 2x steps
    warmup = S.resolve_point("5ep", T, 390)          # a config's "5ep": 1950
"""

from tf_sparse.schedules import acdc
from tf_sparse.schedules import base
from tf_sparse.schedules import cadence
from tf_sparse.schedules import decay
from tf_sparse.schedules import evaluation
from tf_sparse.schedules import learning_rate
from tf_sparse.schedules import sparsity
from tf_sparse.schedules import steps
from tf_sparse.schedules.acdc import ACDCSchedule
from tf_sparse.schedules.base import Schedule
from tf_sparse.schedules.base import stretch
from tf_sparse.schedules.cadence import UpdateSchedule
from tf_sparse.schedules.decay import ConstantDecay
from tf_sparse.schedules.decay import CosineDecay
from tf_sparse.schedules.decay import LinearDecay
from tf_sparse.schedules.decay import rigl_cosine_drop_fraction
from tf_sparse.schedules.learning_rate import StepDecayLR
from tf_sparse.schedules.learning_rate import WarmupConstantLR
from tf_sparse.schedules.learning_rate import WarmupCosineLR
from tf_sparse.schedules.sparsity import ConstantSparsity
from tf_sparse.schedules.sparsity import INTER_FUNCS
from tf_sparse.schedules.sparsity import InterpolatedSparsity
from tf_sparse.schedules.sparsity import PolynomialSparsity
from tf_sparse.schedules.steps import Step
from tf_sparse.schedules.steps import resolve_point
from tf_sparse.schedules.steps import resolve_step

__all__ = [
    "Step",
    "resolve_step",
    "resolve_point",
    "stretch",
    "Schedule",
    "ConstantDecay",
    "CosineDecay",
    "LinearDecay",
    "rigl_cosine_drop_fraction",
    "UpdateSchedule",
    "PolynomialSparsity",
    "ConstantSparsity",
    "InterpolatedSparsity",
    "INTER_FUNCS",
    "ACDCSchedule",
    "StepDecayLR",
    "WarmupCosineLR",
    "WarmupConstantLR",
]

# `doctest.testmod(tf_sparse.schedules)` only collects objects defined in
# this module; these entries make it run the examples of every module and of
# everything re-exported above.
__test__ = {
    **{m.__name__: m for m in (steps, base, evaluation, decay, cadence,
                               sparsity, acdc, learning_rate)},
    **{name: globals()[name] for name in __all__
       if name not in ("Step", "INTER_FUNCS")},
}
