"""Turning a sparse model into files that run without tf_sparse.

`strip(model)` returns a new model of the same architecture with no masks,
whose weights are the sparse model's weights with pruned entries exactly 0.
Its predictions equal the sparse model's exactly (same graph, same values).

The `export_*` functions write one deployable file each and check it: the
file is loaded back (with Keras, TensorFlow or the LiteRT interpreter), run
on a batch, and compared with the Keras model's predictions. Outputs must
satisfy `|exported - keras| <= atol + rtol * |keras|` elementwise (numpy's
`allclose`); otherwise the file is deleted and `ExportMismatchError` says by
how much it missed. Default tolerances, float32:

| format                  | atol  | rtol  | why not exact                     |
|-------------------------|-------|-------|-----------------------------------|
| `.keras` (plain Keras)  | 1e-6  | 1e-6  | same graph and weights: exact here|
| SavedModel (`export`)   | 1e-5  | 1e-5  | graph rewrites may fuse ops       |
| TFLite / LiteRT         | 1e-4  | 1e-4  | other kernels, other sum order    |

TFLite files are written with the converter's `EXPERIMENTAL_SPARSITY`
optimisation (sparse weight encoding, DENSIFY ops at load on x86) unless
`sparse=False`. Running them needs the LiteRT interpreter
(`pip install "tf-sparse[export]"`, package `ai-edge-litert`).

Example:

    plain = tfs.strip(model)
    plain.save("model.keras")        # loads anywhere, no tf_sparse needed
    results = tfs.export.export_all(model, "out/", x_test[:64])
    for r in results.values():
        print(r.format, r.path, r.size_bytes, r.max_abs_diff)
"""

import dataclasses
import gzip
import io
import os
import shutil
import tarfile
import tempfile

import keras
import numpy as np

from tf_sparse import backend
from tf_sparse import cloning
from tf_sparse import masking
from tf_sparse import sparse_compute

TOLERANCES = {
    "keras": (1e-6, 1e-6),
    "saved_model": (1e-5, 1e-5),
    "tflite": (1e-4, 1e-4),
    "tflite_dense": (1e-4, 1e-4),
}
FORMATS = ("keras", "saved_model", "tflite", "tflite_dense")


class ExportError(ValueError):
    """A model cannot be exported in the requested format."""


class ExportMismatchError(ExportError):
    """An exported file does not reproduce the Keras model's outputs."""


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """One written and verified file (or SavedModel directory)."""
    format: str
    path: str
    size_bytes: int
    gzip_bytes: int
    max_abs_diff: float
    atol: float
    rtol: float
    batch: int

    def as_dict(self):
        return dataclasses.asdict(self)


def _masked_values(model):
    masks = {id(mw.variable): mw.mask for mw in masking.masked_weights(model)}
    values = []
    for variable in model.weights:
        mask = masks.get(id(variable))
        value = variable if mask is None else masking.keep_active(variable,
                                                                  mask)
        values.append(keras.ops.convert_to_numpy(value))
    return values


def strip(model):
    """A plain Keras copy of a sparse model, pruned weights set to 0 (also
    for layers computing sparse, `tf_sparse.sparse_compute`)."""
    if sparse_compute.is_sparse_compute(model):
        return sparse_compute.plain_copy(model)
    if not masking.is_sparse(model):
        raise ValueError(f"Model {model.name!r} is not sparse; nothing to strip.")
    clone = cloning.clone_architecture(model)
    clone.set_weights(_masked_values(model))
    return clone


# --------------------------------------------------------------------------
# Verification helpers.


def check_pruned_weights_are_zero(model):
    """Raises ExportError if any masked-out weight of `model` is nonzero."""
    for mw in masking.masked_weights(model):
        value = keras.ops.convert_to_numpy(mw.variable)
        mask = keras.ops.convert_to_numpy(mw.mask)
        bad = int(np.count_nonzero(value[mask == 0]))
        if bad:
            raise ExportError(
                f"{mw.path}: {bad} pruned weights are not zero (weights were "
                "set without re-applying the masks). Call "
                "tfs.apply_masks(model) before exporting.")


def _single_input(model, x, fmt):
    if isinstance(x, dict) or isinstance(x, (list, tuple)):
        raise ExportError(
            f"{fmt} export checks single-input models only; {model.name!r} "
            "was given several inputs. Export with model.export and check "
            "the result yourself.")
    x = np.asarray(x)
    if x.ndim < 1 or x.shape[0] < 1:
        raise ExportError(f"The verification batch is empty (shape {x.shape}).")
    return x


def keras_outputs(model, x):
    """The model's inference outputs on `x` as a numpy array."""
    out = model(x, training=False)
    if isinstance(out, (list, tuple, dict)):
        raise ExportError(
            f"Model {model.name!r} has several outputs; export checks "
            "single-output models only.")
    return np.asarray(keras.ops.convert_to_numpy(out))


def compare(fmt, expected, actual, atol, rtol):
    """Max abs difference; raises ExportMismatchError outside tolerance."""
    actual = np.asarray(actual)
    if actual.shape != expected.shape:
        raise ExportMismatchError(
            f"{fmt}: output shape {actual.shape}, Keras model "
            f"{expected.shape}.")
    diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    max_diff = float(diff.max()) if diff.size else 0.0
    bound = atol + rtol * np.abs(expected.astype(np.float64))
    if not np.all(np.isfinite(actual)) or np.any(diff > bound):
        worst = int(np.argmax(diff - bound)) if diff.size else 0
        raise ExportMismatchError(
            f"{fmt}: exported outputs differ from the Keras model's by up to "
            f"{max_diff:.3g} (tolerance |diff| <= {atol:g} + {rtol:g} * "
            f"|keras|; worst element {worst}: "
            f"{actual.reshape(-1)[worst]!r} vs "
            f"{expected.reshape(-1)[worst]!r}). The file was not kept.")
    return max_diff


def sizes(path):
    """(raw bytes, gzip bytes) of a file, or of a directory as a tar."""
    if os.path.isdir(path):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            tar.add(path, arcname=os.path.basename(path.rstrip(os.sep)))
        raw = sum(os.path.getsize(os.path.join(d, f))
                  for d, _, files in os.walk(path) for f in files)
        data = buffer.getvalue()
    else:
        with open(path, "rb") as f:
            data = f.read()
        raw = len(data)
    return raw, len(gzip.compress(data, compresslevel=9, mtime=0))


def _remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
        os.remove(path)


def _result(fmt, path, expected, actual, atol, rtol, batch):
    try:
        diff = compare(fmt, expected, actual, atol, rtol)
    except ExportMismatchError:
        _remove(path)
        raise
    raw, gz = sizes(path)
    return ExportResult(format=fmt, path=str(path), size_bytes=raw,
                        gzip_bytes=gz, max_abs_diff=diff, atol=atol,
                        rtol=rtol, batch=int(expected.shape[0]))


def _tol(fmt, atol, rtol):
    default = TOLERANCES[fmt]
    return (default[0] if atol is None else atol,
            default[1] if rtol is None else rtol)


# --------------------------------------------------------------------------
# The formats.


def plain_model(model):
    """`strip(model)` for a sparse model, the model itself otherwise."""
    if not (masking.is_sparse(model)
            or sparse_compute.is_sparse_compute(model)):
        return model
    try:
        return strip(model)
    except ValueError as error:
        raise ExportError(
            f"Cannot write model {model.name!r} as a plain .keras file: "
            f"{error}") from error


def export_keras(model, path, x, *, atol=None, rtol=None):
    """Writes a plain Keras `.keras` file (zeros in place) and checks it."""
    path = str(path)
    if not path.endswith(".keras"):
        raise ExportError(f"path must end in .keras, got {path!r}.")
    atol, rtol = _tol("keras", atol, rtol)
    expected = keras_outputs(model, x)
    plain = plain_model(model)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    plain.save(path)
    try:
        loaded = keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types here.
        _remove(path)
        raise ExportError(
            f"The .keras file of {model.name!r} does not load back "
            f"({type(error).__name__}: {str(error)[:300]}). Subclassed models "
            "need get_config and keras.saving.register_keras_serializable."
        ) from error
    return _result("keras", path, expected, keras_outputs(loaded, x), atol,
                   rtol, len(x))


def _input_signature(x):
    import tensorflow as tf
    return [tf.TensorSpec((None,) + tuple(x.shape[1:]), tf.as_dtype(x.dtype))]


def _write_saved_model(model, path, x):
    backend.require(
        "SavedModel and LiteRT export", ("tensorflow", "jax"),
        "Save the model with tfs.save_model and export it from a process "
        "with KERAS_BACKEND=tensorflow (or jax).")
    check_pruned_weights_are_zero(model)
    try:
        model.export(path, format="tf_saved_model", verbose=False,
                     input_signature=_input_signature(x))
    except Exception as error:
        _remove(path)
        raise ExportError(
            f"model.export failed for {model.name!r}: "
            f"{type(error).__name__}: {str(error)[:400]}") from error


def export_saved_model(model, path, x, *, atol=None, rtol=None):
    """Writes a SavedModel (`model.export`, endpoint `serve`) and checks it.

    The model itself is exported (its pruned weights must be zero, which
    `sparsify` guarantees); mask variables are not part of the SavedModel.
    """
    import tensorflow as tf
    path = str(path)
    x = _single_input(model, x, "SavedModel")
    atol, rtol = _tol("saved_model", atol, rtol)
    expected = keras_outputs(model, x)
    _write_saved_model(model, path, x)
    loaded = tf.saved_model.load(path)
    actual = loaded.serve(tf.constant(x)).numpy()
    return _result("saved_model", path, expected, actual, atol, rtol, len(x))


def litert_interpreter(model_path=None, model_content=None, num_threads=None):
    """A LiteRT (`ai_edge_litert`) interpreter; a clear error if missing."""
    try:
        from ai_edge_litert import interpreter as litert
    except ImportError as error:
        raise ExportError(
            "Running TFLite files needs the LiteRT interpreter: pip install "
            "'tf-sparse[export]' (package ai-edge-litert). "
            "tf.lite.Interpreter is deprecated and not used.") from error
    return litert.Interpreter(model_path=model_path,
                              model_content=model_content,
                              num_threads=num_threads)


class TFLiteRunner:
    """Runs a single-input TFLite model on numpy batches of any size."""

    def __init__(self, model_path=None, model_content=None, num_threads=None):
        self.interpreter = litert_interpreter(model_path, model_content,
                                              num_threads)
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ExportError(
                f"TFLite model has {len(inputs)} inputs and {len(outputs)} "
                "outputs; only single-input, single-output models are run.")
        self._input = inputs[0]["index"]
        self._output = outputs[0]["index"]
        self._shape = None

    def __call__(self, x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self._shape != x.shape:
            self.interpreter.resize_tensor_input(self._input, list(x.shape))
            self.interpreter.allocate_tensors()
            self._shape = x.shape
        self.interpreter.set_tensor(self._input, x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output)


def tflite_bytes(model, x, sparse=True):
    """The TFLite flatbuffer of `model` (sparse weight encoding if `sparse`)."""
    import tensorflow as tf
    x = _single_input(model, x, "TFLite")
    with tempfile.TemporaryDirectory() as tmp:
        saved = os.path.join(tmp, "saved_model")
        _write_saved_model(model, saved, x)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        if sparse:
            converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
        try:
            return converter.convert()
        except Exception as error:
            raise ExportError(
                f"TFLite conversion of {model.name!r} failed (an op with no "
                f"TFLite builtin?): {type(error).__name__}: "
                f"{str(error)[-600:]}") from error


def export_tflite(model, path, x, *, sparse=True, atol=None, rtol=None,
                  num_threads=None):
    """Writes a TFLite flatbuffer and checks it with the LiteRT interpreter."""
    path = str(path)
    fmt = "tflite" if sparse else "tflite_dense"
    atol, rtol = _tol(fmt, atol, rtol)
    x = _single_input(model, x, "TFLite")
    expected = keras_outputs(model, x)
    content = tflite_bytes(model, x, sparse=sparse)
    runner = TFLiteRunner(model_content=content, num_threads=num_threads)
    actual = runner(x)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(content)
    return _result(fmt, path, expected, actual, atol, rtol, len(x))


_FILENAMES = {"keras": "model.keras", "saved_model": "saved_model",
              "tflite": "model_sparse.tflite",
              "tflite_dense": "model_dense.tflite"}


def export_all(model, directory, x, formats=("keras", "saved_model",
                                               "tflite"), tolerances=None):
    """Writes and checks each format into `directory`; dict format->result.

    `tolerances` maps a format to (atol, rtol) to override the defaults.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ExportError(f"Unknown export formats {unknown}; accepted: "
                          f"{', '.join(FORMATS)}.")
    tolerances = tolerances or {}
    os.makedirs(directory, exist_ok=True)
    results = {}
    for fmt in formats:
        path = os.path.join(directory, _FILENAMES[fmt])
        atol, rtol = tolerances.get(fmt, (None, None))
        if fmt == "keras":
            results[fmt] = export_keras(model, path, x, atol=atol, rtol=rtol)
        elif fmt == "saved_model":
            results[fmt] = export_saved_model(model, path, x, atol=atol,
                                              rtol=rtol)
        else:
            results[fmt] = export_tflite(model, path, x,
                                         sparse=fmt == "tflite", atol=atol,
                                         rtol=rtol)
    return results
