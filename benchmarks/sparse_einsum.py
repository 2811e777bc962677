"""Sparse compute of an EinsumDense layer: a MultiHeadAttention query
projection ("abc,cde->abde", bias "de") forward + backward, masked (dense
einsum) against sparse compute (`EinsumPlan` reshape + the compiled CSR
kernels), per density.

One layer of hidden H -> heads x key_dim on [batch, seq, H] inputs; the
gradient of every trainable variable and of the input, in a tf.function.
Times are interleaved medians of wall and CPU (process) time per call; the
ratio is masked / sparse, measured in the same run. The machine is shared
(2 cores, another benchmark running), so CPU-time ratios are the steadier.

    python benchmarks/sparse_einsum.py [--quick]
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import common  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_sparse as tfs  # noqa: E402
from tf_sparse.sparse_compute import build as sc_build  # noqa: E402

SPARSITIES = (0.5, 0.8, 0.9, 0.95, 0.98)


def projection(hidden, heads, compute, sparsity, seq):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((seq, hidden))
    layer = keras.layers.EinsumDense(
        "abc,cde->abde", output_shape=(seq, heads, hidden // heads),
        bias_axes="de", name="query")
    model = keras.Model(inputs, layer(inputs))
    tfs.sparsify(model, sparsity, seed=1, compute=compute)
    return model


def step_fn(model):
    variables = model.trainable_variables

    @tf.function(autograph=False)
    def step(x, r):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(model(x) * r)
        return tape.gradient(loss, [x] + variables)

    return step


def measure(hidden, heads, batch, seq, sparsity, rounds, inner):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(batch, seq, hidden)).astype("float32"))
    r = tf.constant(rng.normal(size=(batch, seq, heads, hidden // heads))
                    .astype("float32"))
    steps = {c: step_fn(projection(hidden, heads, c, sparsity, seq))
             for c in ("masked", "sparse")}
    walls = {c: [] for c in steps}
    cpus = {c: [] for c in steps}
    for c in steps:
        steps[c](x, r)
        steps[c](x, r)
    for i in range(rounds):
        for c in (list(steps) if i % 2 == 0 else list(steps)[::-1]):
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(inner):
                out = steps[c](x, r)
            _ = out[0].numpy()
            walls[c].append((time.perf_counter() - w0) / inner * 1e3)
            cpus[c].append((time.process_time() - c0) / inner * 1e3)
    med = {f"{c}_{kind}_ms": statistics.median(v[c])
           for kind, v in (("wall", walls), ("cpu", cpus)) for c in steps}
    return {"hidden": hidden, "heads": heads, "batch": batch, "seq": seq,
            "sparsity": sparsity, **med,
            "wall_ratio": med["masked_wall_ms"] / med["sparse_wall_ms"],
            "cpu_ratio": med["masked_cpu_ms"] / med["sparse_cpu_ms"]}


def markdown(payload):
    rows = [[f"{r['hidden']}->{r['heads']}x{r['hidden'] // r['heads']}",
             f"{r['batch']}x{r['seq']}", f"{r['sparsity']:.0%}",
             f"{r['masked_wall_ms']:.2f}", f"{r['sparse_wall_ms']:.2f}",
             f"{r['wall_ratio']:.2f}x", f"{r['cpu_ratio']:.2f}x"]
            for r in payload["rows"]]
    return ("# Sparse compute: EinsumDense (MultiHeadAttention query "
            "projection)\n\n" + "\n".join(f"- {n}" for n in payload["notes"])
            + "\n\n" + common.markdown_table(
                ["projection", "batch x seq", "sparsity", "masked ms",
                 "sparse ms", "masked/sparse wall", "masked/sparse CPU"],
                rows))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="one small shape, few rounds")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--inner", type=int, default=3)
    parser.add_argument("--name", default="sparse_einsum")
    args = parser.parse_args(argv)
    shapes = [(256, 4, 8, 64)] if args.quick else [(256, 4, 8, 64),
                                                   (1024, 16, 8, 64)]
    rows = []
    for hidden, heads, batch, seq in shapes:
        for sparsity in SPARSITIES:
            row = measure(hidden, heads, batch, seq, sparsity, args.rounds,
                          args.inner)
            print(row, flush=True)
            rows.append(row)
    payload = {
        "machine": common.machine_info(), "kernels": sc_build.status().split(
            " (")[0],
        "notes": [
            "forward + backward (input and every trainable variable) of one "
            "EinsumDense 'abc,cde->abde' (bias 'de') in a tf.function; "
            "interleaved medians of "
            f"{args.rounds} rounds x {args.inner} calls",
            "masked: the dense einsum on the masked kernel (what compute="
            "'masked' runs); sparse: compute='sparse' (EinsumPlan reshape, "
            "CSR kernels, values gradient at the nonzeros only)",
            "shared machine: 2 cores, another benchmark running; CPU-time "
            "ratios are the steadier figure",
        ],
        "rows": rows}
    paths = common.write_results(args.name, payload, markdown(payload))
    print("\n".join(paths))


if __name__ == "__main__":
    main()
