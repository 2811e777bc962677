"""Export sizes and inference latency: dense vs sparse, Keras vs CSR vs LiteRT.

For LeNet-300-100, LeNet-5-Caffe and a wide MLP (784-2048-2048-10) at 80,
90, 95 and 99% sparsity (uniform, every layer masked, random initial
weights: file sizes and latencies depend on the zeros, not on the values):

* file sizes, raw and gzipped: .keras of the dense model and of the sparse
  one (zeros in place), TFLite without and with the converter's sparsity
  optimisation, and the CSR inference form's SavedModel;
* median latency per batch at batch 1 and 128, in one run, interleaved:
  dense Keras (the stripped model under tf.function), the CSR inference
  form (layers chosen by measurement at that batch size, and with every
  eligible layer forced to CSR), LiteRT on the dense and on the sparse
  TFLite file.

Every exported file is verified against the Keras model (see
tf_sparse/export.py). Results: benchmarks/results/export_benchmark.json and
.md (machine, versions, tables).

Usage:
  python benchmarks/export_benchmark.py [--quick]
"""

import argparse
import json
import os
import platform
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_sparse as tfs  # noqa: E402
from tf_sparse import export  # noqa: E402
from tf_sparse import sparse_inference  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
SPARSITIES = (0.8, 0.9, 0.95, 0.99)
BATCHES = (1, 128)


def wide_mlp():
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(2048, activation="relu", name="fc1")(x)
    x = keras.layers.Dense(2048, activation="relu", name="fc2")(x)
    outputs = keras.layers.Dense(10, name="fc3")(x)
    return keras.Model(inputs, outputs, name="mlp_784_2048_2048_10")


MODELS = {
    "lenet300_100": lambda: tfs.models.get_model("lenet300_100"),
    "lenet5_caffe": lambda: tfs.models.get_model("lenet5_caffe"),
    "mlp_2048": wide_mlp,
}


def machine():
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        from importlib.metadata import version
        litert = version("ai-edge-litert")
    except Exception:  # not installed
        litert = None
    return {"cpu": cpu, "cores": os.cpu_count(),
            "load_average_at_start": list(os.getloadavg()),
            "python": platform.python_version(),
            "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "ai_edge_litert": litert,
            "platform": platform.platform()}


def interleaved(fns, repeats, min_seconds=0.02):
    """(median, min) seconds per call of each function.

    Repetitions are interleaved and the order rotates every repetition, so
    no function always runs right after another (LiteRT's worker threads,
    for one, keep a core busy for a moment after they return).
    """
    inner = []
    for f in fns:
        f()
        start = time.perf_counter()
        f()
        one = max(time.perf_counter() - start, 1e-6)
        inner.append(max(1, min(50, int(min_seconds / one))))
    samples = [[] for _ in fns]
    n = len(fns)
    for r in range(repeats):
        for k in range(n):
            i = (k + r) % n
            start = time.perf_counter()
            for _ in range(inner[i]):
                fns[i]()
            samples[i].append((time.perf_counter() - start) / inner[i])
    return ([float(np.median(s)) for s in samples],
            [float(np.min(s)) for s in samples])


def compiled(model):
    def call(a):
        return model(a, training=False)
    return tf.function(call, autograph=False)


def tflite_ops(content):
    """Op names of a TFLite flatbuffer, in order (via TF's analyzer)."""
    import contextlib
    import io
    import re
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        tf.lite.experimental.Analyzer.analyze(model_content=content)
    return re.findall(r"Op#\d+ (\w+)\(", buffer.getvalue())


def sizes(path):
    raw, gz = export.sizes(path)
    return {"raw": raw, "gzip": gz}


def run_one(name, sparsity, x_by_batch, repeats, tmp, threads):
    keras.utils.set_random_seed(0)
    model = MODELS[name]()
    dense_dir = os.path.join(tmp, f"{name}_dense")
    x_check = x_by_batch[128][:32]
    entry = {"model": name, "sparsity": sparsity}
    # Dense reference files.
    sizes_out = {}
    r = export.export_keras(model, os.path.join(dense_dir, "m.keras"), x_check)
    sizes_out["keras_dense_model"] = sizes(r.path)
    model = tfs.sparsify(model, sparsity=sparsity, seed=0)
    out = os.path.join(tmp, f"{name}_{sparsity}")
    results = export.export_all(model, out, x_check,
                                formats=("keras", "tflite", "tflite_dense"))
    sizes_out["keras_sparse_zeros"] = sizes(results["keras"].path)
    sizes_out["tflite_dense_encoding"] = sizes(results["tflite_dense"].path)
    sizes_out["tflite_sparse_encoding"] = sizes(results["tflite"].path)
    entry["nonzeros"] = tfs.diagnostics.report(model).total_nonzeros
    with open(results["tflite"].path, "rb") as f:
        entry["tflite_sparse_ops"] = tflite_ops(f.read())
    entry["max_abs_diff"] = {k: v.max_abs_diff for k, v in results.items()}
    plain = tfs.strip(model)
    tfl_dense = export.TFLiteRunner(results["tflite_dense"].path,
                                    num_threads=threads)
    tfl_sparse = export.TFLiteRunner(results["tflite"].path,
                                     num_threads=threads)
    entry["latency_ms"] = {}
    entry["csr_choices"] = {}
    for batch in BATCHES:
        x = x_by_batch[batch]
        choices = sparse_inference.plan(plain, batch_size=batch,
                                        repeats=max(5, repeats // 2))
        forced = sparse_inference.plan(plain, batch_size=batch, method="all")
        form = sparse_inference.to_sparse_inference(plain, choices)
        form_all = sparse_inference.to_sparse_inference(plain, forced)
        xt = tf.constant(x)
        fns = {}
        # keras_dense_again is the same graph as keras_dense: its ratio
        # shows how much the shared machine's noise alone moves a column.
        for label, m in (("keras_dense", plain), ("keras_dense_again", plain),
                         ("csr_form", form), ("csr_all_layers", form_all)):
            fns[label] = lambda f=compiled(m): f(xt).numpy()
        fns["litert_dense"] = lambda: tfl_dense(x)
        fns["litert_sparse"] = lambda: tfl_sparse(x)
        ref = plain(xt, training=False).numpy()
        for label, f in fns.items():
            export.compare(label, ref, f(), 1e-4, 1e-4)
        times, fastest = interleaved(list(fns.values()), repeats)
        entry["latency_ms"][str(batch)] = {
            k: t * 1e3 for k, t in zip(fns, times)}
        entry.setdefault("latency_min_ms", {})[str(batch)] = {
            k: t * 1e3 for k, t in zip(fns, fastest)}
        entry["csr_choices"][str(batch)] = [c.as_dict() for c in choices]
        if batch == 128:
            path = os.path.join(out, "csr_saved_model")
            _, res = sparse_inference.export_saved_model(plain, path,
                                                         x_check, choices)
            sizes_out["csr_form_saved_model"] = sizes(res.path)
    entry["sizes_bytes"] = sizes_out
    return entry


def fmt_kb(n):
    return f"{n / 1024:.0f}"


def markdown(payload):
    m = payload["machine"]
    lines = [
        "# Export sizes and inference latency (benchmarks/export_benchmark.py)",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores (shared with other jobs; "
        f"load average at start {', '.join(f'{v:.1f}' for v in m['load_average_at_start'])}). "
        f"Python {m['python']}, TensorFlow {m['tensorflow']}, Keras "
        f"{m['keras']}, NumPy {m['numpy']}, ai-edge-litert "
        f"{m['ai_edge_litert']}; LiteRT threads: {payload['litert_threads']}.",
        "",
        "Models are untrained (random initial weights, uniform sparsity over "
        "every layer): sizes and latencies depend on where the zeros are, "
        "not on the values. Every file was verified against the Keras model "
        "(tf_sparse/export.py tolerances). Latency: median over "
        f"{payload['repeats']} interleaved repetitions, ms per batch; "
        "ratios are dense Keras time / form time (>1 is faster than dense).",
        "",
        "## File sizes (KiB, raw / gzip -9)",
        "",
        "| model | sparsity | .keras dense model | .keras sparse (zeros) | "
        "TFLite dense encoding | TFLite sparse encoding | TFLite dense/sparse "
        "raw | CSR form SavedModel |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in payload["runs"]:
        s = e["sizes_bytes"]
        cell = lambda k: f"{fmt_kb(s[k]['raw'])} / {fmt_kb(s[k]['gzip'])}"  # noqa: E731
        ratio = (s["tflite_dense_encoding"]["raw"]
                 / s["tflite_sparse_encoding"]["raw"])
        lines.append(
            f"| {e['model']} | {e['sparsity']:.2f} | {cell('keras_dense_model')}"
            f" | {cell('keras_sparse_zeros')} | "
            f"{cell('tflite_dense_encoding')} | "
            f"{cell('tflite_sparse_encoding')} | {ratio:.1f}x | "
            f"{cell('csr_form_saved_model')} |")
    for batch in BATCHES:
        lines += [
            "",
            f"## Latency at batch {batch} (median ms per batch; x = dense "
            "Keras time / this time)",
            "",
            "| model | sparsity | dense Keras | same graph again (noise "
            "control) | CSR form (chosen) | CSR, all eligible layers | "
            "LiteRT dense | LiteRT sparse | layers chosen CSR |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for e in payload["runs"]:
            t = e["latency_ms"][str(batch)]
            base = t["keras_dense"]
            cell = lambda k: f"{t[k]:.3f} ({base / t[k]:.2f}x)"  # noqa: E731
            chosen = [c["name"] for c in e["csr_choices"][str(batch)]
                      if c["choice"] == "csr"]
            lines.append(
                f"| {e['model']} | {e['sparsity']:.2f} | {base:.3f} | "
                f"{cell('keras_dense_again')} | "
                f"{cell('csr_form')} | {cell('csr_all_layers')} | "
                f"{cell('litert_dense')} | {cell('litert_sparse')} | "
                f"{', '.join(chosen) or 'none'} |")
        lines += [
            "",
            f"Same runs, ratios of the *fastest* repetition (less sensitive "
            f"to other jobs), batch {batch}:",
            "",
            "| model | sparsity | dense Keras min ms | noise control | CSR "
            "form | CSR, all | LiteRT dense | LiteRT sparse |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for e in payload["runs"]:
            t = e["latency_min_ms"][str(batch)]
            base = t["keras_dense"]
            lines.append(
                f"| {e['model']} | {e['sparsity']:.2f} | {base:.3f} | "
                + " | ".join(f"{base / t[k]:.2f}x" for k in (
                    "keras_dense_again", "csr_form", "csr_all_layers",
                    "litert_dense", "litert_sparse")) + " |")
    lines += ["", "## Ops in the sparse TFLite files", "",
              "| model | sparsity | ops |", "|---|---|---|"]
    for e in payload["runs"]:
        lines.append(f"| {e['model']} | {e['sparsity']:.2f} | "
                     f"{' '.join(e['tflite_sparse_ops'])} |")
    lines += ["", "## Reading", ""] + payload.get("notes", [])
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true",
                        help="fewer repetitions, one sparsity (smoke test)")
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--out", default="export_benchmark")
    args = parser.parse_args()
    sparsities = (0.9,) if args.quick else SPARSITIES
    repeats = 5 if args.quick else args.repeats
    rng = np.random.default_rng(0)
    # Fashion-MNIST-shaped inputs in [0, 1].
    x_by_batch = {b: rng.random((b, 28, 28, 1)).astype(np.float32)
                  for b in BATCHES}
    payload = {"machine": machine(), "repeats": repeats,
               "litert_threads": args.threads, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            for sparsity in sparsities:
                start = time.time()
                entry = run_one(name, sparsity, x_by_batch, repeats, tmp,
                                args.threads)
                payload["runs"].append(entry)
                print(f"{name} {sparsity}: {time.time() - start:.0f}s "
                      f"{json.dumps(entry['latency_ms'])}", flush=True)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, args.out + ".json"), "w") as f:
        json.dump(payload, f, indent=1)
    with open(os.path.join(RESULTS, args.out + ".md"), "w") as f:
        f.write(markdown(payload))


if __name__ == "__main__":
    main()
