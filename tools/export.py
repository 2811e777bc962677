"""Exports a trained sparse model: .keras, SavedModel, TFLite, CSR SavedModel.

Every file is loaded back and checked against the Keras model on a batch
(real test images of the run's data set when available, else random inputs,
as the report says); a file that misses its tolerance is deleted and the
command fails with the size of the miss.

Usage:
  python tools/export.py --workdir=runs/lenet300_static --output_dir=exported
  python tools/export.py --model=sparse.keras --output_dir=exported \
      --formats=keras,saved_model,tflite,tflite_dense,csr_saved_model

Formats: keras (plain Keras, zeros in place), saved_model (`model.export`),
tflite (sparse weight encoding, checked with the LiteRT interpreter),
tflite_dense (no sparsity optimisation, for comparison), csr_saved_model
(the CSR inference form of tf_sparse.sparse_inference, layers chosen by
measurement at --csr_batch_size).
"""

import json
import os

from absl import app
from absl import flags
from absl import logging

from tf_sparse import cli

_WORKDIR = flags.DEFINE_string(
    "workdir", None, "A tools/train.py workdir (run.json + checkpoints/).")
_MODEL = flags.DEFINE_string(
    "model", None, "A .keras file (from tfs.save_model or a plain one).")
_OUTPUT = flags.DEFINE_string("output_dir", None, "Where to write the files.")
_FORMATS = flags.DEFINE_list(
    "formats", ["keras", "saved_model", "tflite", "csr_saved_model"],
    "keras, saved_model, tflite, tflite_dense, csr_saved_model.")
_BATCH = flags.DEFINE_integer("batch", 64, "Examples in the check batch.")
_CSR_BATCH = flags.DEFINE_integer(
    "csr_batch_size", 128, "Serving batch size the CSR layers are chosen for.")
_CSR_METHOD = flags.DEFINE_enum(
    "csr_method", "measure", ["measure", "rule", "all", "none"],
    "How CSR layers are chosen (tf_sparse.sparse_inference.plan).")
_ATOL = flags.DEFINE_float("atol", None, "Override every format's atol.")
_RTOL = flags.DEFINE_float("rtol", None, "Override every format's rtol.")
_ALGORITHM = flags.DEFINE_string(
    "algorithm", None, "Training algorithm for the FLOPs report (default: "
    "the run's, or static).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if bool(_WORKDIR.value) == bool(_MODEL.value):
        raise app.UsageError("Give exactly one of --workdir and --model.")
    if not _OUTPUT.value:
        raise app.UsageError("--output_dir is required.")
    import keras
    import tf_sparse as tfs
    from tf_sparse import saving
    from tf_sparse import export
    from tf_sparse import flops
    from tf_sparse import sparse_inference
    from tf_sparse.runs import restore

    raw_config = None
    if _WORKDIR.value:
        model, raw_config = restore.load_model(_WORKDIR.value)
        source = f"workdir {_WORKDIR.value}"
    else:
        try:
            model = tfs.load_model(_MODEL.value, compile=False)
        except saving.NoMasksError:
            model = keras.models.load_model(_MODEL.value, compile=False)
        source = f"file {_MODEL.value}"
    raw = raw_config or {}
    x, described = restore.check_batch(model, raw.get("dataset"),
                                      raw.get("data_dir", ""), _BATCH.value)
    os.makedirs(_OUTPUT.value, exist_ok=True)
    tolerances = {}
    if _ATOL.value is not None or _RTOL.value is not None:
        for fmt, (atol, rtol) in export.TOLERANCES.items():
            tolerances[fmt] = (_ATOL.value if _ATOL.value is not None
                               else atol,
                               _RTOL.value if _RTOL.value is not None
                               else rtol)
    formats = [f for f in _FORMATS.value if f != "csr_saved_model"]
    try:
        results = export.export_all(model, _OUTPUT.value, x, formats,
                                    tolerances=tolerances)
        choices = None
        if "csr_saved_model" in _FORMATS.value:
            choices = sparse_inference.plan(model, batch_size=_CSR_BATCH.value,
                                            method=_CSR_METHOD.value)
            kwargs = {}
            if _ATOL.value is not None:
                kwargs["atol"] = _ATOL.value
            if _RTOL.value is not None:
                kwargs["rtol"] = _RTOL.value
            _, results["csr_saved_model"] = (
                sparse_inference.export_saved_model(
                    model, os.path.join(_OUTPUT.value, "csr_saved_model"), x,
                    choices, **kwargs))
    except (export.ExportError, ValueError) as error:
        raise app.UsageError(f"Export refused: {error}") from None

    algorithm = _ALGORITHM.value or (raw_config or {}).get("algorithm",
                                                           "static")
    try:
        counted = flops.training_flops(model, algorithm)
    except ValueError as error:
        logging.warning("%s; counting FLOPs as static sparse.", error)
        counted = flops.training_flops(model, "static")
    lines = [f"Exported {source} to {_OUTPUT.value}; checked on {described}.",
             "format           size (bytes)  gzip (bytes)  max |diff|  "
             "tolerance"]
    for fmt, r in results.items():
        lines.append(f"{fmt:<16} {r.size_bytes:>12}  {r.gzip_bytes:>12}  "
                     f"{r.max_abs_diff:10.3g}  {r.atol:g} + {r.rtol:g}|y|")
    if choices is not None:
        lines.append(f"CSR layers (batch {_CSR_BATCH.value}):")
        lines += [f"  {c.name}: {c.choice} ({c.reason})" for c in choices]
    lines.append(f"FLOPs ({algorithm}):")
    lines += ["  " + line for line in counted.total_lines()]
    print("\n".join(lines))
    with open(os.path.join(_OUTPUT.value, "export_report.json"), "w") as f:
        json.dump({"source": source, "checked_on": described,
                   "results": {k: v.as_dict() for k, v in results.items()},
                   "csr_choices": [c.as_dict() for c in choices or []],
                   "flops": counted.as_dict()}, f, indent=2)


if __name__ == "__main__":
    cli.run_main(main, "export")
