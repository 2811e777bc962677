"""Sparse compute (issue 16): training time, memory and kernel timings of
`tfs.sparsify(..., compute="sparse")` against the same masked model computed
densely and the dense model, in one run, interleaved.

Sections (all by default; `--sections=mlp,lenet,memory,kernels,masked`):

* mlp: wide MLP 1024-4096-4096-10 at batch 128, SGD momentum: one `fit`
  epoch of --steps steps after a warm-up epoch, dense / masked / sparse
  interleaved round by round, at 80, 90, 95, 98, 99% sparsity; the loss of
  every epoch of the sparse model against the masked one's (same
  initialisation, same batches).
* lenet: the same for LeNet-300-100 on Fashion-MNIST-sized input (28x28x1,
  batch 100).
* memory: bytes of the weights + optimizer slots (+ masks, + CSR structure)
  vs density, counted from the variables after `optimizer.build`.
* kernels: per-kernel timings per layer shape and density: forward, the
  fused backward (input gradient dX and the sampled weight gradient, SDDMM,
  in one pass), against `tf.sparse.sparse_dense_matmul` (forward and dX),
  the TensorFlow CSR fallback, and the dense matmuls; the crossover density
  (below it sparse forward+backward beats dense) per layer shape.
* masked: the masked path's overhead per epoch on LeNet-300-100 and
  LeNet-5 (dense vs masked, interleaved), with the masks' enforcement pass
  (the weight constraint) switched off as an attribution, and under XLA.

Usage:
  python benchmarks/sparse_compute.py                  # ~15-20 min, 2 cores
  python benchmarks/sparse_compute.py --quick          # a smoke run
Writes benchmarks/results/sparse_compute.{json,md}.
"""

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import archs  # noqa: E402
import common  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_sparse as tfs  # noqa: E402
from tf_sparse.sparse_compute import build as sc_build  # noqa: E402
from tf_sparse.sparse_compute import ops as sc_ops  # noqa: E402
from tf_sparse.sparse_compute import structure as sc_structure  # noqa: E402

SPARSITIES = (0.8, 0.9, 0.95, 0.98, 0.99)
SECTIONS = ("mlp", "lenet", "memory", "kernels", "masked", "enforce")


def wide_mlp():
    return keras.Sequential([
        keras.layers.Input((1024,)),
        keras.layers.Dense(4096, activation="relu", name="fc1"),
        keras.layers.Dense(4096, activation="relu", name="fc2"),
        keras.layers.Dense(10, name="fc3")], name="wide_mlp")


def lenet300():
    return archs.build("lenet300_100", keras)


def lenet5():
    return archs.build("lenet5_caffe", keras)


MODELS = {"wide_mlp": (wide_mlp, (1024,), 128),
          "lenet300_100": (lenet300, (28, 28, 1), 100),
          "lenet5_caffe": (lenet5, (28, 28, 1), 100)}


def data(name, steps):
    _, shape, batch = MODELS[name]
    rng = np.random.default_rng(0)
    x = rng.random((batch * steps,) + shape, dtype=np.float32)
    y = rng.integers(0, 10, size=(batch * steps,)).astype("int32")
    return x, y


def make(name, compute, sparsity, jit=False, seed=0):
    """The model `name` with one initialisation per seed: dense
    (compute=None), masked or sparse compute at `sparsity`; compiled with
    SGD momentum."""
    keras.utils.set_random_seed(seed)
    model = MODELS[name][0]()
    if compute is not None:
        tfs.sparsify(model, sparsity, seed=seed, compute=compute)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True), jit_compile=jit)
    return model


def epoch(model, x, y, batch):
    """(wall seconds, CPU seconds, loss) of one fit epoch."""
    w0, c0 = time.perf_counter(), time.process_time()
    history = model.fit(x, y, batch_size=batch, epochs=1, shuffle=False,
                        verbose=0)
    return (time.perf_counter() - w0, time.process_time() - c0,
            history.history["loss"][0])


def interleaved(models, x, y, batch, rounds):
    """{label: {"wall": [..], "cpu": [..], "loss": [..]}}: a warm-up
    epoch each, then `rounds` rounds of one epoch per model in turn."""
    out = {label: {"wall": [], "cpu": [], "loss": []} for label in models}
    for model in models.values():
        model.fit(x[:batch * 2], y[:batch * 2], batch_size=batch, epochs=1,
                  verbose=0, shuffle=False)
    for _ in range(rounds):
        for label, model in models.items():
            wall, cpu, loss = epoch(model, x, y, batch)
            out[label]["wall"].append(wall)
            out[label]["cpu"].append(cpu)
            out[label]["loss"].append(loss)
    return out


def median(values):
    return statistics.median(values)


def training_section(name, steps, rounds, sparsities):
    """Epoch times of dense / masked / sparse at each sparsity."""
    _, _, batch = MODELS[name]
    x, y = data(name, steps)
    rows = []
    for sparsity in sparsities:
        models = {"dense": make(name, None, None),
                  "masked": make(name, "masked", sparsity),
                  "sparse": make(name, "sparse", sparsity)}
        times = interleaved(models, x, y, batch, rounds)
        masked, sparse = times["masked"]["loss"], times["sparse"]["loss"]
        row = {"sparsity": sparsity, "steps": steps, "rounds": rounds,
               "batch": batch}
        for label, t in times.items():
            row[f"{label}_s"] = median(t["wall"])
            row[f"{label}_cpu_s"] = median(t["cpu"])
        row["sparse_speedup_vs_masked"] = row["masked_s"] / row["sparse_s"]
        row["sparse_speedup_vs_dense"] = row["dense_s"] / row["sparse_s"]
        row["masked_over_dense"] = row["masked_s"] / row["dense_s"]
        row["losses_masked"] = masked
        row["losses_sparse"] = sparse
        row["max_rel_loss_diff"] = max(
            abs(a - b) / max(abs(a), 1e-12) for a, b in zip(sparse, masked))
        rows.append(row)
        print(name, {k: (round(v, 4) if isinstance(v, float) else v)
                     for k, v in row.items() if not k.startswith("losses")},
              flush=True)
        del models
        keras.backend.clear_session()
    return rows


def variable_bytes(variables):
    return int(sum(int(np.prod(v.shape)) * tf.as_dtype(v.dtype).size
                   for v in variables))


def memory_section(name, sparsities):
    """Bytes of weights, masks / structure and optimizer slots."""
    rows = []
    for sparsity in (None,) + tuple(sparsities):
        for compute in (("dense",) if sparsity is None
                        else ("masked", "sparse")):
            model = make(name, None if compute == "dense" else compute,
                         sparsity)
            model.optimizer.build(model.trainable_variables)
            slots = [v for v in model.optimizer.variables
                     if v.path.split("/")[-1] not in ("iteration",
                                                      "learning_rate")]
            masks = [mw.mask for mw in tfs.masking.masked_weights(model)]
            weights = variable_bytes(model.variables)
            rows.append({
                "sparsity": sparsity or 0.0, "compute": compute,
                "weights_bytes": weights,
                "masks_bytes": variable_bytes(masks),
                "slots_bytes": variable_bytes(slots),
                "total_bytes": weights + variable_bytes(masks)
                + variable_bytes(slots)})
            keras.backend.clear_session()
    dense_total = rows[0]["total_bytes"]
    for row in rows:
        row["over_dense"] = row["total_bytes"] / dense_total
    return rows


def _timed(fn, reps):
    fn()
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return median(times)


def kernel_section(shapes, densities, reps):
    """Per-kernel times (ms) per (inputs, outputs, batch) and density."""
    lib = sc_ops.compiled_ops()
    rng = np.random.default_rng(0)
    rows = []
    for k_in, n_out, batch in shapes:
        x = tf.constant(rng.normal(size=(batch, k_in)).astype("float32"))
        dy = tf.constant(rng.normal(size=(batch, n_out)).astype("float32"))
        w_dense = tf.constant(rng.normal(size=(k_in, n_out)).astype(
            "float32"))
        dense_fwd = tf.function(lambda: tf.matmul(x, w_dense))
        dense_bwd = tf.function(lambda: (
            tf.matmul(dy, w_dense, transpose_b=True),
            tf.matmul(x, dy, transpose_a=True)))
        t_dense_fwd = _timed(lambda: dense_fwd().numpy(), reps)
        t_dense_bwd = _timed(lambda: [t.numpy() for t in dense_bwd()], reps)
        xt, dyt = tf.transpose(x), tf.transpose(dy)
        for density in densities:
            mask = rng.random((k_in, n_out)) < density
            s = sc_structure.from_mask(mask)
            values = tf.constant(sc_structure.gather(
                rng.normal(size=(k_in, n_out)).astype("float32"), s))
            row_ptr, cols = tf.constant(s.row_ptr), tf.constant(s.cols)
            row = {"inputs": k_in, "outputs": n_out, "batch": batch,
                   "density": density, "nnz": s.nnz,
                   "dense_fwd_ms": 1e3 * t_dense_fwd,
                   "dense_bwd_ms": 1e3 * t_dense_bwd}
            if lib is not None:
                fwd = tf.function(lambda: lib.tfs_sparse_matmul(
                    xt, row_ptr, cols, values))
                bwd = tf.function(lambda: lib.tfs_sparse_matmul_grad(
                    xt, dyt, row_ptr, cols, values))
                layer_fwd = tf.function(lambda: sc_ops.matmul(
                    x, row_ptr, cols, values, path="compiled"))
                row["compiled_fwd_ms"] = 1e3 * _timed(
                    lambda: fwd().numpy(), reps)
                row["compiled_bwd_ms"] = 1e3 * _timed(
                    lambda: [t.numpy() for t in bwd()], reps)
                row["compiled_fwd_with_transposes_ms"] = 1e3 * _timed(
                    lambda: layer_fwd().numpy(), reps)
            # tf.sparse: K^T [outputs, inputs] as a SparseTensor.
            sp = tf.sparse.SparseTensor(
                tf.constant(np.stack([s.rows(), s.cols[:s.nnz]], 1),
                            tf.int64), values[:s.nnz], [n_out, k_in])
            tfsp_fwd = tf.function(
                lambda: tf.sparse.sparse_dense_matmul(sp, xt))
            tfsp_dx = tf.function(lambda: tf.sparse.sparse_dense_matmul(
                sp, dyt, adjoint_a=True))
            row["tf_sparse_fwd_ms"] = 1e3 * _timed(
                lambda: tfsp_fwd().numpy(), reps)
            row["tf_sparse_dx_ms"] = 1e3 * _timed(
                lambda: tfsp_dx().numpy(), reps)
            v = tf.Variable(values)

            @tf.function
            def csr_step():
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    y = sc_ops.matmul(x, row_ptr, cols, v, path="csr")
                dx, dv = tape.gradient(y, [x, v], output_gradients=dy)
                return y, dx, tf.convert_to_tensor(dv)

            @tf.function
            def csr_fwd():
                return sc_ops.matmul(x, row_ptr, cols, v, path="csr")

            row["csr_fwd_ms"] = 1e3 * _timed(lambda: csr_fwd().numpy(), reps)
            row["csr_fwd_bwd_ms"] = 1e3 * _timed(
                lambda: [t.numpy() for t in csr_step()], reps)
            dense_total = row["dense_fwd_ms"] + row["dense_bwd_ms"]
            if lib is not None:
                row["compiled_fwd_bwd_over_dense"] = (
                    row["compiled_fwd_ms"] + row["compiled_bwd_ms"]) \
                    / dense_total
            row["csr_fwd_bwd_over_dense"] = row["csr_fwd_bwd_ms"] \
                / dense_total
            rows.append(row)
            print("kernel", {k: (round(v, 3) if isinstance(v, float) else v)
                             for k, v in row.items()}, flush=True)
    return rows


def crossovers(rows, key="compiled_fwd_bwd_over_dense"):
    """Per layer shape: the density where sparse forward+backward costs the
    same as dense (linear interpolation between measured densities), None
    when it never wins or always wins in the measured range."""
    out = []
    for shape in sorted({(r["inputs"], r["outputs"], r["batch"])
                         for r in rows}):
        pts = sorted((r["density"], r[key]) for r in rows
                     if (r["inputs"], r["outputs"], r["batch"]) == shape
                     and key in r)
        cross = None
        for (d0, r0), (d1, r1) in zip(pts, pts[1:]):
            if r0 <= 1.0 < r1:
                cross = d0 + (1.0 - r0) * (d1 - d0) / (r1 - r0)
                break
        wins_all = all(r < 1.0 for _, r in pts)
        out.append({"inputs": shape[0], "outputs": shape[1],
                    "batch": shape[2], "crossover_density": cross,
                    "wins_at_every_measured_density": wins_all,
                    "wins_at_no_measured_density": all(
                        r >= 1.0 for _, r in pts)})
    return out


def unconstrained(model):
    """The masked model with its masks' enforcement (the weight
    constraint) switched off: the attribution variant of the masked-overhead
    section (its masks are not kept; never train a real model this way)."""
    for mw in tfs.masking.masked_weights(model):
        mw.variable.constraint = None
    return model


class _WhereScalar:
    """Enforcement in one select: where(mask > 0, w, 0.0) (no zeros_like
    tensor). Bitwise the same as `masking.keep_active`."""

    def __init__(self, mask):
        self.mask = mask

    def __call__(self, w):
        return tf.where(tf.convert_to_tensor(self.mask) > 0, w, 0.0)


class _WhereBool:
    """Enforcement with the mask kept as a bool variable: one select, no
    compare. Bitwise the same as `masking.keep_active`."""

    def __init__(self, mask):
        self.mask = tf.Variable(tf.convert_to_tensor(mask) > 0,
                                trainable=False)

    def __call__(self, w):
        return tf.where(self.mask, w, 0.0)


def constrained(model, kind):
    """The masked model with its constraint replaced by the candidate
    enforcement `kind` ("where_scalar" or "where_bool"); masks stay exact
    (checked at the end of the section)."""
    cls = {"where_scalar": _WhereScalar, "where_bool": _WhereBool}[kind]
    for mw in tfs.masking.masked_weights(model):
        mw.variable.constraint = cls(mw.mask)
    return model


def masked_section(steps, rounds):
    """Masked vs dense epoch time (LeNet-300-100, LeNet-5) at 90%, with
    the enforcement switched off (attribution) and two cheaper
    enforcements (candidates for `masking.keep_active`)."""
    rows = []
    for name in ("lenet300_100", "lenet5_caffe"):
        _, _, batch = MODELS[name]
        x, y = data(name, steps)
        models = {
            "dense": make(name, None, None),
            "masked": make(name, "masked", 0.9),
            "masked_no_constraint": unconstrained(make(name, "masked", 0.9)),
            "masked_where_scalar": constrained(make(name, "masked", 0.9),
                                               "where_scalar"),
            "masked_where_bool": constrained(make(name, "masked", 0.9),
                                             "where_bool"),
            "dense_xla": make(name, None, None, jit=True),
            "masked_xla": make(name, "masked", 0.9, jit=True)}
        times = interleaved(models, x, y, batch, rounds)
        row = {"model": name, "steps": steps, "rounds": rounds,
               "batch": batch, "sparsity": 0.9}
        for label, t in times.items():
            row[f"{label}_s"] = median(t["wall"])
            row[f"{label}_cpu_s"] = median(t["cpu"])
        for label in ("masked", "masked_no_constraint", "masked_where_scalar",
                      "masked_where_bool"):
            row[f"{label}_over_dense"] = row[f"{label}_s"] / row["dense_s"]
            row[f"{label}_over_dense_cpu"] = (row[f"{label}_cpu_s"]
                                              / row["dense_cpu_s"])
        row["masked_xla_over_dense_xla"] = (row["masked_xla_s"]
                                            / row["dense_xla_s"])
        # The candidate enforcements kept every pruned weight at +0.0.
        for label in ("masked_where_scalar", "masked_where_bool"):
            row[f"{label}_masks_exact"] = all(
                not np.any((mw.mask.numpy() == 0) & (
                    np.signbit(mw.variable.numpy())
                    | (mw.variable.numpy() != 0)))
                for mw in tfs.masking.masked_weights(models[label]))
        rows.append(row)
        print("masked", {k: (round(v, 4) if isinstance(v, float) else v)
                         for k, v in row.items()}, flush=True)
        keras.backend.clear_session()
    return rows


def _enforcer(variables):
    @tf.function
    def enforce():
        for v in variables:
            v.assign(v.constraint(v))
    return enforce


def enforce_section(reps):
    """The masks' enforcement pass alone (what the optimizer runs after
    every update: `w.assign(constraint(w))` for each masked weight), in ms
    per step, for `masking.keep_active` and the two candidates, next to the
    dense train step (ms, from `train_on_batch`). Less noisy than epoch
    ratios on a loaded machine: it times the pass itself."""
    rows = []
    for name in ("lenet300_100", "lenet5_caffe"):
        _, _, batch = MODELS[name]
        x, y = data(name, 1)
        dense = make(name, None, None)
        dense.train_on_batch(x, y)
        step = _timed(lambda: dense.train_on_batch(x, y), reps)
        # What calling a tf.function costs by itself (subtracted below).
        call = _timed(tf.function(lambda: tf.constant(0.0)), reps)
        row = {"model": name, "dense_step_ms": 1e3 * step,
               "empty_call_ms": 1e3 * call}
        for label in ("keep_active", "where_scalar", "where_bool"):
            model = make(name, "masked", 0.9)
            if label != "keep_active":
                constrained(model, label)
            variables = [mw.variable for mw in
                         tfs.masking.masked_weights(model)]

            row[f"{label}_ms"] = 1e3 * (_timed(_enforcer(variables), reps)
                                        - call)
            row[f"{label}_over_dense_step"] = row[f"{label}_ms"] / (
                1e3 * step)
        rows.append(row)
        print("enforce", {k: (round(v, 4) if isinstance(v, float) else v)
                          for k, v in row.items()}, flush=True)
        keras.backend.clear_session()
    return rows


def fmt(value, digits=3):
    if value is None:
        return "-"
    return f"{value:.{digits}f}"


def markdown(payload):
    parts = ["# Sparse compute (issue 16)\n\n",
             f"Kernels: {payload['kernels_status']}\n\n"]
    notes = list(payload["notes"])
    by_sparsity = {r["sparsity"]: r for r in payload.get("mlp") or []}
    for sparsity, goal in ((0.95, 1.5), (0.99, 3.0)):
        r = by_sparsity.get(sparsity)
        if r is None:
            continue
        wall = r["sparse_speedup_vs_masked"]
        cpu = r["masked_cpu_s"] / r["sparse_cpu_s"]
        notes.append(
            f"Goal of issue 16 on the wide MLP at {sparsity:.0%}: sparse "
            f"compute >= {goal}x faster than the masked model: "
            f"{'met' if min(wall, cpu) >= goal else 'NOT met'} "
            f"({wall:.2f}x wall, {cpu:.2f}x CPU).")
    parts.append("\n".join(f"- {n}" for n in notes) + "\n")
    for key, title in (("mlp", "Wide MLP 1024-4096-4096-10, batch 128, "
                        "SGD momentum"),
                       ("lenet", "LeNet-300-100, 28x28x1 input, batch 100, "
                        "SGD momentum")):
        rows = payload.get(key)
        if not rows:
            continue
        parts.append(f"\n## {title}\n\nMedian epoch time of "
                     f"{rows[0]['steps']} steps over {rows[0]['rounds']} "
                     "interleaved rounds (wall seconds). Speed-up > 1: "
                     "sparse compute is faster. CPU: process CPU time "
                     "(user + system) of the epoch.\n\n")
        parts.append(common.markdown_table(
            ["sparsity", "dense s", "masked s", "sparse s",
             "masked / sparse", "dense / sparse", "masked / dense",
             "masked / sparse (CPU)", "dense / sparse (CPU)",
             "max rel. loss diff (sparse vs masked)"],
            [[f"{r['sparsity']:.0%}", fmt(r["dense_s"]), fmt(r["masked_s"]),
              fmt(r["sparse_s"]), fmt(r["sparse_speedup_vs_masked"], 2),
              fmt(r["sparse_speedup_vs_dense"], 2),
              fmt(r["masked_over_dense"], 3),
              fmt(r["masked_cpu_s"] / r["sparse_cpu_s"], 2),
              fmt(r["dense_cpu_s"] / r["sparse_cpu_s"], 2),
              f"{r['max_rel_loss_diff']:.1e}"] for r in rows]))
    if payload.get("memory"):
        parts.append("\n## Memory of weights + masks/structure + optimizer "
                     "slots (wide MLP, SGD momentum)\n\nBytes of the "
                     "variables after `optimizer.build`. Sparse weights: "
                     "values (float32) + their int32 column index + row "
                     "pointers; slots: one momentum per nonzero (and "
                     "bias).\n\n")
        parts.append(common.markdown_table(
            ["sparsity", "compute", "weights MB", "masks MB", "slots MB",
             "total MB", "total / dense"],
            [[f"{r['sparsity']:.0%}", r["compute"],
              fmt(r["weights_bytes"] / 2**20, 1),
              fmt(r["masks_bytes"] / 2**20, 1),
              fmt(r["slots_bytes"] / 2**20, 1),
              fmt(r["total_bytes"] / 2**20, 1), fmt(r["over_dense"], 3)]
             for r in payload["memory"]]))
    if payload.get("kernels"):
        parts.append("\n## Per-kernel timings (ms, median)\n\nbwd: the "
                     "fused input gradient + sampled weight gradient "
                     "(SDDMM) of the compiled kernel; dense bwd: the two "
                     "matmuls dY W^T and X^T dY; tf.sparse: "
                     "`tf.sparse.sparse_dense_matmul` forward and dX "
                     "(it has no SDDMM); CSR: the TensorFlow fallback "
                     "(forward + backward). Wall-time medians of 7 calls "
                     "on the loaded machine: single entries can be off by "
                     "2-10x (e.g. a bwd slower at a lower density); read "
                     "the trend.\n\n")
        parts.append(common.markdown_table(
            ["in x out (batch)", "density", "dense fwd", "dense bwd",
             "compiled fwd", "compiled bwd", "tf.sparse fwd", "tf.sparse dX",
             "CSR fwd+bwd", "compiled fwd+bwd / dense"],
            [[f"{r['inputs']}x{r['outputs']} ({r['batch']})",
              f"{r['density']:.0%}", fmt(r["dense_fwd_ms"], 2),
              fmt(r["dense_bwd_ms"], 2), fmt(r.get("compiled_fwd_ms"), 2),
              fmt(r.get("compiled_bwd_ms"), 2), fmt(r["tf_sparse_fwd_ms"], 2),
              fmt(r["tf_sparse_dx_ms"], 2), fmt(r["csr_fwd_bwd_ms"], 2),
              fmt(r.get("compiled_fwd_bwd_over_dense"), 2)]
             for r in payload["kernels"]]))
        parts.append("\nCrossover (compiled forward + backward as fast as "
                     "dense) per layer shape:\n\n")
        parts.append(common.markdown_table(
            ["in x out (batch)", "crossover density",
             "wins at every measured density", "wins at none"],
            [[f"{c['inputs']}x{c['outputs']} ({c['batch']})",
              "-" if c["crossover_density"] is None
              else f"{c['crossover_density']:.1%}",
              c["wins_at_every_measured_density"],
              c["wins_at_no_measured_density"]]
             for c in payload["crossovers"]]))
    if payload.get("masked"):
        parts.append("\n## Masked path overhead at 90% sparsity (median "
                     "epoch, interleaved)\n\n`no constraint`: the masked "
                     "model with the masks' enforcement pass switched off "
                     "(attribution only: its masks are not kept); the "
                     "two `where(..., 0.0)` columns are candidate "
                     "enforcements that keep pruned weights bitwise +0.0 "
                     "(checked after the run).\n\n")
        labels = [("masked", "masked (keep_active)"),
                  ("masked_no_constraint", "no constraint"),
                  ("masked_where_scalar", "where(mask > 0, w, 0.0)"),
                  ("masked_where_bool", "where(bool mask, w, 0.0)")]
        parts.append(common.markdown_table(
            ["model", "dense s"] + [f"{t} / dense (wall, CPU)"
                                    for _, t in labels]
            + ["XLA: masked / dense (wall)"],
            [[r["model"], fmt(r["dense_s"])]
             + [f"{fmt(r.get(f'{k}_over_dense'))}, "
                f"{fmt(r.get(f'{k}_over_dense_cpu'))}" for k, _ in labels]
             + [fmt(r["masked_xla_over_dense_xla"])]
             for r in payload["masked"]]))
    if payload.get("enforce"):
        parts.append("\n## The enforcement pass alone (ms per step, "
                     "median)\n\nWhat the optimizer adds to every step of "
                     "a masked model (`w.assign(constraint(w))` per masked "
                     "weight, in a `tf.function`, less the cost of calling "
                     "an empty `tf.function`), as a fraction of the dense "
                     "train step (`train_on_batch`). Inside the train step "
                     "it can overlap other ops, so this is an upper bound "
                     "of its share.\n\n")
        parts.append(common.markdown_table(
            ["model", "dense step ms", "keep_active ms (share)",
             "where(mask > 0, w, 0.0) ms (share)",
             "where(bool mask, w, 0.0) ms (share)"],
            [[r["model"], fmt(r["dense_step_ms"], 2)]
             + [f"{fmt(r[f'{k}_ms'], 3)} ({fmt(r[f'{k}_over_dense_step'], 3)})"
                for k in ("keep_active", "where_scalar", "where_bool")]
             for r in payload["enforce"]]))
    parts.append(f"\nMachine: {payload['machine']}\n")
    return "".join(parts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--quick", action="store_true",
                        help="few steps and rounds (a smoke run)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mlp-steps", type=int, default=20)
    parser.add_argument("--lenet-steps", type=int, default=50)
    parser.add_argument("--masked-steps", type=int, default=100)
    parser.add_argument("--masked-rounds", type=int, default=5)
    parser.add_argument("--name", default="sparse_compute")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other sections of an existing "
                        "results file and replace the ones run now")
    parser.add_argument("--render", action="store_true",
                        help="only rewrite the .md from the existing .json")
    parser.add_argument("--note", action="append", default=[],
                        help="a line for the notes of the results")
    args = parser.parse_args(argv)
    sections = [s for s in args.sections.split(",") if s]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; accepted: "
                     f"{', '.join(SECTIONS)}")
    if args.render:
        path = os.path.join(common.RESULTS, f"{args.name}.json")
        with open(path, encoding="utf-8") as f:
            payload = json.load(f)
        common.write_results(args.name, payload, markdown(payload))
        return
    sparsities = SPARSITIES
    rounds = args.rounds
    if args.quick:
        args.mlp_steps, args.lenet_steps, args.masked_steps = 3, 5, 5
        rounds = args.masked_rounds = 1
        sparsities = (0.9, 0.99)
    payload = {"machine": common.machine_info(),
               "kernels_status": sc_build.status().replace(
                   sc_build.cache_dir(), "<cache>"),
               "sparsities": list(sparsities), "notes": list(args.note)}
    started = time.time()
    if "mlp" in sections:
        payload["mlp"] = training_section("wide_mlp", args.mlp_steps, rounds,
                                          sparsities)
    if "lenet" in sections:
        payload["lenet"] = training_section("lenet300_100", args.lenet_steps,
                                            rounds, sparsities)
    if "memory" in sections:
        payload["memory"] = memory_section("wide_mlp", sparsities)
    if "kernels" in sections:
        shapes = [(784, 300, 100), (300, 100, 100), (1024, 4096, 128),
                  (4096, 4096, 128)]
        densities = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
        if args.quick:
            shapes, densities = shapes[:2], (0.05, 0.5)
        payload["kernels"] = kernel_section(shapes, densities,
                                            reps=3 if args.quick else 7)
        payload["crossovers"] = crossovers(payload["kernels"])
    if "masked" in sections:
        payload["masked"] = masked_section(args.masked_steps,
                                           args.masked_rounds)
    if "enforce" in sections:
        payload["enforce"] = enforce_section(reps=30 if args.quick else 200)
    payload["seconds"] = time.time() - started
    if args.merge:
        path = os.path.join(common.RESULTS, f"{args.name}.json")
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
        payload["seconds"] += old.get("seconds", 0.0)
        payload["notes"] = old.get("notes", []) + [
            n for n in payload["notes"] if n not in old.get("notes", [])]
        old.update({k: v for k, v in payload.items()
                    if k in sections or k in ("seconds", "notes")
                    or (k == "crossovers" and "kernels" in sections)})
        payload = old
    paths = common.write_results(args.name, payload, markdown(payload))
    print("wrote", *(os.path.relpath(p, os.path.dirname(HERE))
                     for p in paths))


if __name__ == "__main__":
    main()
