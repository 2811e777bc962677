"""Trains a sparse (or dense) network on ImageNet from a config; resumes from --workdir.

Usage:
  python tools/train_imagenet.py --config=configs/imagenet/resnet50_sparse_momentum.py:0.1 \
      --workdir=runs/rn50_sm10 --data_dir=/data/imagenet [--strategy=mirrored]
  python tools/train_imagenet.py ... --config.batch_size=2048 --config.checkpoint_every_steps=1000

The same flags as tools/train_cifar10.py (`--help` lists them; they are
defined in tf_sparse/cli.py). TPU: --strategy=tpu on a TPU VM with local data;
README.md ("CIFAR-10 and ImageNet") has GPU, multi-worker and TPU launches.
"""

import sys

from tf_sparse import backend
from tf_sparse import cli

if __name__ == "__main__":
    try:
        backend.require_tensorflow(
            "tools/train_imagenet.py (tf.distribute and TFRecord / tfds input, tested on TensorFlow only)",
            "Run it with KERAS_BACKEND=tensorflow; tools/train.py trains the "
            "Fashion-MNIST configs on jax and torch too.")
    except backend.UnsupportedBackendError as error:
        sys.exit(f"train_imagenet: error: {error}")
    cli.run_training_binary("imagenet")
