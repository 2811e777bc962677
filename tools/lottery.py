"""Finds lottery tickets by iterative magnitude pruning with rewinding.

Runs (or resumes) IMP in --workdir: level 0 is the dense network, each
further level prunes 20% (prune_fraction) of the remaining weights and
rewinds the survivors to step k; baselines (random pruning, random reinit,
reset to 0) train next to each level. Finished levels are skipped; an
interrupted level resumes from its last checkpoint. Writes report.md and
accuracy.png at the end.

Usage:
  python tools/lottery.py --config=configs/lottery/lenet300_fashion_mnist.py \
      --workdir=runs/lth --config.levels=5 --config.rewind=100it \
      --config.baselines="('random_prune','random_reinit')"
  python tools/lottery.py --workdir=runs/lth --report_only
"""

import sys

from absl import app
from absl import flags
from absl import logging

from tf_sparse import cli
from tf_sparse.lottery import config as config_lib
from tf_sparse.lottery import imp
from tf_sparse.lottery import pruning
from tf_sparse.lottery import reports
from tf_sparse.runs import runner
from tf_sparse.runs import workdir

_CONFIG = cli.define_config_flag("configs/lottery/")
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Run folder: run.json, rewind/, level_XX/, report.")
_VERBOSE = flags.DEFINE_integer("verbose", 1, "Print progress lines (0/1).")
_REPORT_ONLY = flags.DEFINE_bool(
    "report_only", False, "Only rewrite report.md and the plots.")
flags.mark_flags_as_required(["workdir"])

_USER_ERRORS = (config_lib.ConfigError, workdir.WorkdirError,
                pruning.PruningError, FileNotFoundError, runner.Diverged)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    try:
        if _REPORT_ONLY.value:
            print(reports.write_run_report(_WORKDIR.value))
            return
        if _CONFIG.value is None:
            raise app.UsageError("--config is required (unless --report_only).")
        imp.run(_CONFIG.value, _WORKDIR.value, verbose=_VERBOSE.value)
        print(reports.write_run_report(_WORKDIR.value))
    except _USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)
