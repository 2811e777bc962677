"""Lottery tickets: IMP with rewinding, baselines, stability, instability.

A thin layer on the run engine (`tf_sparse.runs`): every level, baseline
and stability copy is one training of the engine's runner on one compiled
session, started from a rewound state under its own masks.

Modules:
  pruning      global / layer-wise magnitude pruning with exact counts (NumPy)
  config       the run schema plus the lottery section, resolved to steps
  state        checked, atomically written state and mask files
  runs         the prepared run and the folder protocol of every training
  imp          iterative magnitude pruning with rewinding, one folder per level
  baselines    random pruning, random reinitialisation, reset to step 0
  stability    L2 distance and angle between trained copies (data order, pruning)
  instability  linear interpolation and the error barrier
  reports      markdown tables, PNG plots

Example:

    from tf_sparse import lottery
    config = lottery.default_config()
    config.levels = 5
    lottery.imp.run(config, "runs/lth")
    lottery.stability.run("runs/lth", lottery.stability.default_config())
"""

from tf_sparse.lottery import baselines
from tf_sparse.lottery import config
from tf_sparse.lottery import imp
from tf_sparse.lottery import instability
from tf_sparse.lottery import pruning
from tf_sparse.lottery import reports
from tf_sparse.lottery import runs
from tf_sparse.lottery import stability
from tf_sparse.lottery import state
from tf_sparse.lottery.config import default_config
from tf_sparse.lottery.state import StateError
from tf_sparse.lottery.pruning import PruningError
from tf_sparse.lottery.config import ConfigError
