"""Trains a sparse (or dense) network on CIFAR-10 from a config; resumes from --workdir.

Usage:
  python tools/train_cifar10.py --config=configs/cifar10/wrn16_8_sparse_momentum.py \
      --workdir=runs/wrn16_8_sm --data_dir=~/data [--strategy=mirrored]

  --strategy  default | mirrored | multi_worker (TF_CONFIG) | tpu (with --tpu)
  --config.<key>=<value> overrides any config key, e.g. --config.epochs=250.
  --algorithm_arg=<key>=<value> adds a GMP / AC/DC constructor argument the
      config does not set (config.algorithm_kwargs), e.g. reset_momentum=False.
The flags are defined in tf_sparse/cli.py (shared by the training
binaries). See tf_sparse/runs/engine.py for what a run writes into
--workdir and README.md ("CIFAR-10 and ImageNet") for GPU, multi-worker and
TPU launches. User errors are one line (--verbosity=1 adds the traceback);
--config.on_bad_checkpoint=previous resumes past a damaged newest checkpoint
(docs/bad_inputs.md).
"""

from tf_sparse import cli

if __name__ == "__main__":
    cli.run_training_binary("cifar10")
