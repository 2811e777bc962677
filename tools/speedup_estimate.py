"""The sparse-momentum paper's speed-up ESTIMATE next to MEASURED speed.

Estimate (tf_sparse/speedup.py): time every convolution dense, scale by its
weight density and input-activation density, sum. Measured: whole forward
passes of the masked Keras model and of its CSR inference form on this
machine. Both are printed, labelled; only the second is a speed.

Usage:
  python tools/speedup_estimate.py --workdir=runs/lenet5_sm
  python tools/speedup_estimate.py --model=sparse.keras --include_dense
  python tools/speedup_estimate.py --zoo_model=lenet5_caffe --sparsity=0.95
"""

import json

from absl import app
from absl import flags
from absl import logging

from tf_sparse import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "A tools/train.py workdir.")
_MODEL = flags.DEFINE_string("model", None, "A .keras file.")
_ZOO = flags.DEFINE_string(
    "zoo_model", None, "A zoo model name, masked at random with --sparsity "
    "(untrained: activation densities are not those of a trained model).")
_SPARSITY = flags.DEFINE_float("sparsity", 0.9, "For --zoo_model.")
_BATCH = flags.DEFINE_integer("batch_size", 128, "Batch size.")
_INCLUDE_DENSE = flags.DEFINE_bool(
    "include_dense", False, "Also count Dense layers (the paper does not).")
_REPEATS = flags.DEFINE_integer("repeats", 20, "Interleaved repetitions.")
_JSON = flags.DEFINE_string("json_out", None, "Also write the numbers here.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if sum(bool(v) for v in (_WORKDIR.value, _MODEL.value, _ZOO.value)) != 1:
        raise app.UsageError("Give one of --workdir, --model, --zoo_model.")
    import keras
    import tf_sparse as tfs
    from tf_sparse import saving
    from tf_sparse import sparse_inference
    from tf_sparse import speedup
    from tf_sparse.runs import restore

    raw = None
    if _WORKDIR.value:
        model, raw = restore.load_model(_WORKDIR.value)
    elif _MODEL.value:
        try:
            model = tfs.load_model(_MODEL.value, compile=False)
        except saving.NoMasksError:
            model = keras.models.load_model(_MODEL.value, compile=False)
    else:
        keras.utils.set_random_seed(0)
        model = tfs.sparsify(tfs.models.get_model(_ZOO.value),
                             sparsity=_SPARSITY.value, seed=0)
    x, described = restore.check_batch(
        model, (raw or {}).get("dataset", "fashion_mnist"),
        (raw or {}).get("data_dir", ""), _BATCH.value)
    try:
        est = speedup.estimate(model, x, include_dense=_INCLUDE_DENSE.value,
                               repeats=_REPEATS.value)
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    forms = {"Keras (masked, dense kernels)": model}
    try:
        choices = sparse_inference.plan(model, batch_size=_BATCH.value)
        if any(c.choice == "csr" for c in choices):
            forms["CSR inference form"] = (
                sparse_inference.to_sparse_inference(model, choices))
    except ValueError as error:
        logging.warning("No CSR form: %s", error)
    measured = speedup.measure(forms, x, repeats=_REPEATS.value)
    print(f"Batch: {described}.")
    print(speedup.format_report(est, measured))
    if _JSON.value:
        with open(_JSON.value, "w") as f:
            json.dump({"estimate": est.as_dict(),
                       "measured_ms": measured}, f, indent=2)


if __name__ == "__main__":
    cli.run_main(main, "speedup_estimate")
