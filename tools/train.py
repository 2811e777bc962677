"""Trains a sparse model on Fashion-MNIST (or MNIST) from a config; resumes
from --workdir.

Usage:
  python tools/train.py --config=configs/fashion_mnist/lenet300_static.py \
      --workdir=runs/static --config.epochs=5 --config.sparsity=0.9

  --config.<key>=<value> overrides any config key (tf_sparse/runs/config.py).
  --algorithm_arg=<key>=<value> adds a GMP / AC/DC constructor argument the
      config does not set (config.algorithm_kwargs).
  --strategy, --cpu_devices: tf.distribute, as the CIFAR-10 binary.
  --backend=tensorflow|jax|torch: the Keras backend (sets KERAS_BACKEND
      before Keras is imported; default: $KERAS_BACKEND, else tensorflow).
      Every Fashion-MNIST config trains on all three through the same run
      engine: under jax or torch mask updates run between two train steps
      (steps_per_execution=1), checkpoints are .keras files
      (workdir/checkpoints/ckpt-<batches>.keras) and --strategy /
      --cpu_devices (tf.distribute) are refused in one line.
The flags are defined in tf_sparse/cli.py (shared by the training binaries);
see tf_sparse/runs/engine.py for what a run writes into --workdir.

A user error (a flag or config value, a damaged workdir file or checkpoint, a
full disk) is one line on stderr and exit status 1; --verbosity=1 adds the
traceback. When the newest checkpoint is damaged, the error says so and
--config.on_bad_checkpoint=previous resumes from the newest earlier one that
reads back. docs/bad_inputs.md lists the errors.
"""

import backend_flag


def main():
    backend_flag.select("train")
    # pylint: disable=import-outside-toplevel
    from tf_sparse import cli
    cli.run_training_binary("fashion_mnist")


if __name__ == "__main__":
    main()
