"""Stability (L2 distance, angle) and instability (error barrier) of a lottery run.

Works on a workdir written by tools/lottery.py. For each requested level it
trains further copies of the IMP subnetwork (and of a random subnetwork with
the same per-layer counts) from the rewind point with other data orders, and
reports their L2 distance and angle over the masked weights, the distance to
the dense network (stability to pruning), and the error barrier on the
linear path between copies (30 points, train and test error). Extra rewind
points give instability vs rewind step. Copies are resumable like levels.

Usage:
  python tools/stability.py --workdir=runs/lth \
      --config=configs/lottery/stability.py --config.levels="(0,5,10)" \
      --config.rewind_points="('0','1ep')"

  --backend=tensorflow|jax|torch: the Keras backend (default:
      $KERAS_BACKEND, else tensorflow); tools/backend_flag.py.
"""

import backend_flag

backend_flag.select("stability")   # before Keras is imported

# pylint: disable=wrong-import-position
from absl import app
from absl import flags

from tf_sparse import cli
from tf_sparse.lottery import stability

_CONFIG = cli.define_config_flag("configs/lottery/stability.py",
                                 schema="tf_sparse/lottery/stability.py")
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "A lottery workdir (from tools/lottery.py).")
_VERBOSE = flags.DEFINE_integer("verbose", 1, "Print progress lines (0/1).")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = _CONFIG.value or stability.default_config()
    stability.run(_WORKDIR.value, config, verbose=_VERBOSE.value)
    with open(f"{_WORKDIR.value}/stability/report.md") as f:
        print(f.read())


if __name__ == "__main__":
    cli.run_main(main, "stability")
