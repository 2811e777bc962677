"""Trains a sparse model on Fashion-MNIST (or MNIST) from a config; resumes
from --workdir.

Usage:
  python tools/train.py --config=configs/fashion_mnist/lenet300_static.py \
      --workdir=runs/static --config.epochs=5 --config.sparsity=0.9

  --config.<key>=<value> overrides any config key (tf_sparse/runs/config.py).
  --algorithm_arg=<key>=<value> adds a GMP / AC/DC constructor argument the
      config does not set (config.algorithm_kwargs).
  --strategy, --cpu_devices: tf.distribute, as the CIFAR-10 binary.
The flags are defined in tf_sparse/cli.py (shared by the training binaries);
see tf_sparse/runs/engine.py for what a run writes into --workdir.

A user error (a flag or config value, a damaged workdir file or checkpoint, a
full disk) is one line on stderr and exit status 1; --verbosity=1 adds the
traceback. When the newest checkpoint is damaged, the error says so and
--config.on_bad_checkpoint=previous resumes from the newest earlier one that
reads back. docs/bad_inputs.md lists the errors.
"""

from tf_sparse import cli

if __name__ == "__main__":
    cli.run_training_binary("fashion_mnist")
