"""Runs a sparsity-aware recipe (dense pretraining -> GMP / AC/DC, stretched
schedules, distillation, under-training diagnostics) from a config.

Usage:
  python tools/recipe.py --config=configs/recipes/lenet5_gmp.py \
      --workdir=runs/lenet5_gmp --config.train_multiplier=2
  python tools/recipe.py --config=configs/recipes/vit_acdc_kd.py \
      --workdir=runs/vit_acdc --config.sparsity=0.95

  --backend=tensorflow|jax|torch: the Keras backend (default:
      $KERAS_BACKEND, else tensorflow); tools/backend_flag.py.
"""

import backend_flag

backend_flag.select("recipe")   # before Keras is imported

# pylint: disable=wrong-import-position
from absl import app
from absl import flags

from tf_sparse import cli
from tf_sparse import recipes

_CONFIG = cli.define_config_flag("configs/recipes/",
                                 schema="tf_sparse/recipes.py")
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Directory for the pretrained model, diagnostics, "
    "results.json and (AC/DC) the sparse and co-trained dense models.")
_VERBOSE = flags.DEFINE_integer("verbose", 0, "Keras fit verbosity (0, 1, 2).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    results = recipes.run(_CONFIG.value, _WORKDIR.value,
                          verbose=_VERBOSE.value)
    last = results["history"][-1] if results["history"] else {}
    print(f"test accuracy {results['test_accuracy']:.4f}  test loss "
          f"{results['test_loss']:.4f}  density "
          f"{results.get('density', 1.0):.4f}  final train loss "
          f"{last.get('train_loss', float('nan')):.4f}  val loss "
          f"{last.get('val_loss', float('nan')):.4f}  entropy "
          f"{last.get('entropy', float('nan')):.4f}")
    if "dense_cotrained_test_accuracy" in results:
        print("AC/DC co-trained dense model: test accuracy "
              f"{results['dense_cotrained_test_accuracy']:.4f}")


if __name__ == "__main__":
    cli.run_main(main, "recipe")
