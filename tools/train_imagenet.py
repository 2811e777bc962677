"""Trains a sparse (or dense) network on ImageNet from a config; resumes from --workdir.

Usage:
  python tools/train_imagenet.py --config=configs/imagenet/resnet50_sparse_momentum.py:0.1 \
      --workdir=runs/rn50_sm10 --data_dir=/data/imagenet [--strategy=mirrored]
  python tools/train_imagenet.py ... --config.batch_size=2048 --config.checkpoint_every_steps=1000

The same flags as tools/train_cifar10.py (`--help` lists them; they are
defined in tf_sparse/cli.py). TPU: --strategy=tpu on a TPU VM with local data;
README.md ("CIFAR-10 and ImageNet") has GPU, multi-worker and TPU launches.
"""

from tf_sparse import cli

if __name__ == "__main__":
    cli.run_training_binary("imagenet")
