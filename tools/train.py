"""Trains a sparse model from a config; resumes from --workdir.

Usage:
  python tools/train.py --config=configs/fashion_mnist/lenet300_static.py \
      --workdir=runs/static --config.epochs=5 --config.sparsity=0.9
  --algorithm_arg=<key>=<value> adds a GMP / AC/DC constructor argument the
      config does not set (config.algorithm_kwargs).
"""

import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from tf_sparse import cli
from tf_sparse import experiment

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file in configs/.", lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Directory for checkpoints, TensorBoard logs, results.")
_VERBOSE = flags.DEFINE_integer("verbose", 1, "Keras fit verbosity (0, 1, 2).")
_ALGORITHM_ARGS = cli.define_algorithm_arg_flag()
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    try:
        config = cli.apply_algorithm_args(_CONFIG.value, _ALGORITHM_ARGS.value)
    except ValueError as err:
        sys.exit(f"train: error: {err}")
    results = experiment.run(config, _WORKDIR.value, verbose=_VERBOSE.value)
    print(experiment.final_report(results))


if __name__ == "__main__":
    app.run(main)
