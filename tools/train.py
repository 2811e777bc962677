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
"""

from tf_sparse import cli

if __name__ == "__main__":
    cli.run_training_binary("fashion_mnist")
