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

  --backend=tensorflow|jax|torch: the Keras backend (default:
      $KERAS_BACKEND, else tensorflow); tools/backend_flag.py.
"""

import backend_flag

backend_flag.select("lottery")   # before Keras is imported

# pylint: disable=wrong-import-position
from absl import app
from absl import flags

from tf_sparse import cli
from tf_sparse.lottery import imp
from tf_sparse.lottery import reports

_CONFIG = cli.define_config_flag("configs/lottery/",
                                 schema="tf_sparse/lottery/config.py")
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Run folder: run.json, rewind/, level_XX/, report.")
_VERBOSE = flags.DEFINE_integer("verbose", 1, "Print progress lines (0/1).")
_REPORT_ONLY = flags.DEFINE_bool(
    "report_only", False, "Only rewrite report.md and the plots.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    """User errors (config, workdir, pruning, a diverged level) are one
    line through `cli.run_main`."""
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if _REPORT_ONLY.value:
        print(reports.write_run_report(_WORKDIR.value))
        return
    if _CONFIG.value is None:
        raise app.UsageError("--config is required (unless --report_only).")
    imp.run(_CONFIG.value, _WORKDIR.value, verbose=_VERBOSE.value)
    print(reports.write_run_report(_WORKDIR.value))


if __name__ == "__main__":
    cli.run_main(main, "lottery")
