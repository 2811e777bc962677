"""Trains a sparse (or dense) network on ImageNet from a config; resumes from --workdir.

Usage:
  python tools/train_imagenet.py --config=configs/imagenet/resnet50_sparse_momentum.py:0.1 \
      --workdir=runs/rn50_sm10 --data_dir=/data/imagenet [--strategy=mirrored]

  --strategy  default | mirrored | multi_worker (TF_CONFIG) | tpu (with --tpu)
  --config.<key>=<value> overrides any config key, e.g. --config.batch_size=2048.
See tf_sparse/image_experiment.py for what a run writes into --workdir and
README.md ("CIFAR-10 and ImageNet") for GPU, multi-worker and TPU launches.
"""

import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from tf_sparse import image_experiment

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file in configs/imagenet/.", lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Directory for checkpoints, TensorBoard logs, results.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Directory with ImageNet TFRecord shards (train-00000-of-01024 "
    "...) or tfds imagenet2012; overrides config.data_dir.")
_STRATEGY = flags.DEFINE_enum(
    "strategy", "default", ["default", "mirrored", "multi_worker", "tpu"],
    "tf.distribute strategy.")
_TPU = flags.DEFINE_string(
    "tpu", "", "TPU for --strategy=tpu: 'local' on a TPU VM (default), a TPU name or "
    "grpc://IP:8470.")
_CPU_DEVICES = flags.DEFINE_integer(
    "cpu_devices", 0, "Split the CPU into this many logical devices (try mirrored "
    "training without GPUs).")
_VERBOSE = flags.DEFINE_integer("verbose", 1, "Keras fit verbosity (0, 1, 2).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    config = _CONFIG.value
    if _DATA_DIR.value is not None:
        config.data_dir = _DATA_DIR.value
    try:
        results = image_experiment.launch(
            config, _WORKDIR.value, dataset="imagenet", strategy=_STRATEGY.value,
            tpu=_TPU.value, cpu_devices=_CPU_DEVICES.value, verbose=_VERBOSE.value)
    except image_experiment.EXPECTED_ERRORS as err:
        sys.exit(f"train_imagenet: error: {err}")
    print(image_experiment.final_report(results))


if __name__ == "__main__":
    app.run(main)
