"""Cost of dynamic sparse training: epoch time with sparse momentum vs a
dense `fit`, and the time of one mask update on a ResNet-50-sized model.

(1) Epoch time. LeNet-300-100 on Fashion-MNIST (batch 100, 600 steps per
epoch), three variants trained in the same process and interleaved epoch by
epoch: a plain dense Keras model, static sparse (masks, no updates) and
sparse momentum at 95% sparsity with a mask update at the end of every
epoch, so each sparse-momentum epoch includes one update (and the optimizer
hook it installs on every step). The first epoch of each variant (tracing)
is dropped; figures are medians over the remaining epochs, wall time and
process CPU time. Ratios are against the dense variant compiled the same
way: `--jit=both` (default) times every variant without and with XLA
(`jit_compile=True`).

(2) One mask update, ResNet-50 (`tf_sparse.models.get_model("resnet50")`,
25.5M masked weights) sparsified to 90% (uniform), SGD momentum slots filled
with random values: the update (statistics, exact drop and grow for every
layer, mask/weight writes, monitoring state) compiled as in training, timed
after a warm-up call. Median over --update-repeats calls, wall and CPU.

Usage:
  python benchmarks/dst_cost.py                         # both parts
  python benchmarks/dst_cost.py --epochs=6 --update-repeats=5
  python benchmarks/dst_cost.py --skip-update           # only part (1)
  python benchmarks/dst_cost.py --skip-update --jit=on  # part (1), XLA only
Writes benchmarks/results/dst_cost.{json,md}.
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402


# --jit: which compilations of the train step to time.
JIT_MODES = {"off": (False,), "on": (True,), "both": (False, True)}
XLA_SUFFIX = " (XLA)"


def clock():
    return time.perf_counter(), time.process_time()


def epoch_times(args):
    import keras
    import numpy as np
    import tf_sparse as tfs
    from tf_sparse.data import fashion_mnist

    (x, y), _ = fashion_mnist.load_fashion_mnist(None)
    x = (x.reshape(len(x), 28, 28, 1) / 255.0).astype("float32")
    y = y.astype("int32")
    steps = len(x) // 100
    total = steps * args.epochs

    def model(sparse, jit):
        keras.utils.set_random_seed(0)
        m = tfs.models.get_model("lenet300_100", num_classes=10,
                                 input_shape=(28, 28, 1))
        if sparse:
            tfs.sparsify(m, sparsity=0.95, seed=0, rescale_weights=True)
        m.compile(keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
                  keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True), metrics=["accuracy"],
                  jit_compile=jit)
        return m

    variants = {}
    algorithms = {}
    for jit in JIT_MODES[args.jit]:
        suffix = XLA_SUFFIX if jit else ""
        algorithms[jit] = tfs.algorithms.SparseMomentum(
            total_steps=total, steps_per_epoch=steps)
        variants["dense" + suffix] = (model(False, jit), [])
        variants["static" + suffix] = (model(True, jit), [
            tfs.callbacks.MaskUpdate(tfs.algorithms.Static())])
        variants["sparse_momentum" + suffix] = (model(True, jit), [
            tfs.callbacks.MaskUpdate(algorithms[jit])])
    times = {name: {"wall": [], "cpu": []} for name in variants}
    for epoch in range(args.epochs):
        for name, (m, cbs) in variants.items():
            w0, c0 = clock()
            m.fit(x, y, batch_size=100, epochs=epoch + 1,
                  initial_epoch=epoch, shuffle=False, verbose=0,
                  callbacks=cbs)
            w1, c1 = clock()
            times[name]["wall"].append(w1 - w0)
            times[name]["cpu"].append(c1 - c0)
        print(f"epoch {epoch + 1}: " + ", ".join(
            f"{n} {t['wall'][-1]:.2f}s" for n, t in times.items()),
            flush=True)
    summary = {}
    for name, t in times.items():
        summary[name] = {k: statistics.median(v[1:]) for k, v in t.items()}
        summary[name]["per_epoch"] = t
    for name in times:
        # Against the dense model compiled the same way (XLA or not).
        dense = "dense" + (XLA_SUFFIX if name.endswith(XLA_SUFFIX) else "")
        for k in ("wall", "cpu"):
            summary[name][f"{k}_ratio_vs_dense"] = (
                summary[name][k] / summary[dense][k])
            # Per-round ratios: robust to load drifting between rounds.
            per_round = [a / b for a, b in zip(times[name][k][1:],
                                               times[dense][k][1:])]
            summary[name][f"{k}_ratio_median_of_rounds"] = statistics.median(
                per_round)
            if "dense" in times and name.endswith(XLA_SUFFIX):
                summary[name][f"{k}_ratio_vs_dense_without_xla"] = (
                    summary[name][k] / summary["dense"][k])
    for jit, alg in algorithms.items():
        name = "sparse_momentum" + (XLA_SUFFIX if jit else "")
        summary[name]["updates"] = int(alg.state.num_updates.numpy())
    return summary


def update_time(args):
    import keras
    import numpy as np
    import tensorflow as tf
    import tf_sparse as tfs

    keras.utils.set_random_seed(0)
    model = tfs.models.get_model("resnet50")
    tfs.sparsify(model, sparsity=0.9, seed=0)
    masked = sum(mw.size for mw in tfs.masked_weights(model))
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(0)
    for mw in tfs.masked_weights(model):
        slot = model.optimizer.momentums[
            model.optimizer._get_variable_index(mw.variable)]
        slot.assign(rng.standard_normal(mw.shape, dtype=np.float32))
    results = {"masked_weights": masked,
               "layers": len(tfs.masked_weights(model))}
    configs = [("sparse_momentum", "radix",
                lambda m: tfs.algorithms.SparseMomentum(
                    total_steps=10000, every=100, selection_method=m)),
               ("set", "radix",
                lambda m: tfs.algorithms.SET(
                    total_steps=10000, every=100, selection_method=m)),
               ("rigl", "radix",
                lambda m: tfs.algorithms.RigL(
                    total_steps=10000, every=100, selection_method=m))]
    if args.with_no_xla:
        configs.append(("sparse_momentum", "radix-no-xla",
                        lambda m: tfs.algorithms.SparseMomentum(
                            total_steps=10000, every=100,
                            jit_selection=False)))
    if args.with_sort:
        configs.append(("sparse_momentum", "sort",
                        lambda m: tfs.algorithms.SparseMomentum(
                            total_steps=10000, every=100,
                            selection_method=m)))
    for name, method, make in configs:
        alg = make(method.replace("-no-xla", ""))
        tfs.training.attach(model, alg)
        before = sum(mw.nonzeros() for mw in alg.weights)

        @tf.function
        def one_update(step, alg=alg):
            alg.update(step, None)
            for mw in alg.weights:
                mw.variable.assign(tfs.masking.keep_active(mw.variable,
                                                           mw.mask))
            return alg.state.nonzeros.read_value()

        w0, c0 = clock()
        one_update(tf.constant(100, tf.int64))    # trace + XLA compile
        w1, c1 = clock()
        walls, cpus = [], []
        for r in range(args.update_repeats):
            a, b = clock()
            nnz = one_update(tf.constant(200 + 100 * r, tf.int64))
            int(nnz.numpy())
            c, d = clock()
            walls.append(c - a)
            cpus.append(d - b)
        after = sum(mw.nonzeros() for mw in alg.weights)
        assert after == before, (after, before)
        key = f"{name}/{method}"
        results[key] = {"wall_median": statistics.median(walls),
                        "cpu_median": statistics.median(cpus),
                        "wall": walls, "cpu": cpus,
                        "first_call_wall": w1 - w0,
                        "first_call_cpu": c1 - c0,
                        "nonzeros": after}
        print(f"{key}: median {results[key]['wall_median']:.2f}s wall, "
              f"{results[key]['cpu_median']:.2f}s CPU", flush=True)
        tfs.training.detach(model)
    return results


def markdown(payload):
    info = payload["machine"]
    lines = [
        "# Cost of dynamic sparse training (benchmarks/dst_cost.py)",
        "",
        f"Machine: {info.get('cpu')}, {info.get('cpu_count')} vCPUs, "
        f"Python {info.get('python')}, TensorFlow {info.get('tensorflow')}, "
        f"Keras {info.get('keras')}, NumPy {info.get('numpy')}; "
        f"{info.get('date')}; commit {info.get('git_commit')}. The machine "
        "is shared with other jobs: wall times drift; CPU time and "
        "per-round ratios are the steadier figures.",
        "",
    ]
    if "epochs" in payload:
        e = payload["epochs"]
        updates = next(r["updates"] for n, r in e.items()
                       if n.startswith("sparse_momentum"))
        lines += [
            "## Epoch time, LeNet-300-100 on Fashion-MNIST (600 steps of "
            "batch 100)",
            "",
            f"{payload['args']['epochs']} epochs per variant, interleaved; "
            "median over epochs 2..n. Sparse momentum (95% sparsity) updates "
            f"its masks at the end of every epoch ({updates} "
            "updates in the run), inside the compiled train step. Ratios "
            "are against the dense model compiled the same way; \"(XLA)\" "
            "variants use `jit_compile=True` (the masks are then applied "
            "inside the fused XLA step).",
            "",
        ]
        rows = []
        for name, r in e.items():
            rows.append([
                name, f"{r['wall']:.2f}", f"{r['cpu']:.2f}",
                f"{r.get('wall_ratio_vs_dense', 1.0):.3f}",
                f"{r.get('cpu_ratio_vs_dense', 1.0):.3f}",
                f"{r.get('wall_ratio_median_of_rounds', 1.0):.3f}",
                f"{r.get('cpu_ratio_median_of_rounds', 1.0):.3f}",
                (f"{r['cpu_ratio_vs_dense_without_xla']:.3f}"
                 if "cpu_ratio_vs_dense_without_xla" in r else "-")])
        lines.append(common.markdown_table(
            ["variant", "epoch wall s", "epoch CPU s", "wall / dense",
             "CPU / dense", "median per-round wall ratio",
             "median per-round CPU ratio", "CPU / dense without XLA"],
            rows))
    for part, date in payload.get("kept_from", {}).items():
        lines += ["", f"(The {part} figures below are kept from the run of "
                  f"{date}; this run skipped them.)"]
    if "update" in payload:
        u = payload["update"]
        lines += [
            "## One mask update, ResNet-50 "
            f"({u['masked_weights']:,} masked weights in {u['layers']} "
            "layers, 90% sparse)",
            "",
            "Compiled update (as in training; the exact selection runs "
            "under XLA), after one warm-up call. Median of "
            f"{payload['args']['update_repeats']} calls.",
            "",
        ]
        rows = []
        for key, r in u.items():
            if not isinstance(r, dict):
                continue
            rows.append([key, f"{r['wall_median']:.2f}",
                         f"{r['cpu_median']:.2f}",
                         f"{r['first_call_wall']:.1f}"])
        lines.append(common.markdown_table(
            ["algorithm / selection", "wall s", "CPU s",
             "first call (trace + compile) wall s"], rows))
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--update-repeats", type=int, default=5)
    parser.add_argument("--skip-epochs", action="store_true")
    parser.add_argument("--skip-update", action="store_true")
    parser.add_argument("--with-sort", action="store_true",
                        help="also time the argsort selection (slow)")
    parser.add_argument("--with-no-xla", action="store_true",
                        help="also time the radix selection without XLA")
    parser.add_argument("--jit", choices=sorted(JIT_MODES), default="both",
                        help="train-step compilation(s) to time in part (1)")
    parser.add_argument("--name", default="dst_cost")
    args = parser.parse_args()
    payload = {"args": vars(args), "machine": common.machine_info()}
    previous = os.path.join(common.RESULTS, f"{args.name}.json")
    if os.path.exists(previous):
        import json  # pylint: disable=import-outside-toplevel
        with open(previous) as f:
            old = json.load(f)
        # A skipped part keeps its previous figures (and says when).
        for part, skipped in (("epochs", args.skip_epochs),
                              ("update", args.skip_update)):
            if skipped and part in old:
                payload[part] = old[part]
                payload.setdefault("kept_from", {})[part] = (
                    old.get("kept_from", {}).get(part)
                    or old["machine"].get("date"))
    if not args.skip_epochs:
        payload["epochs"] = epoch_times(args)
    if not args.skip_update:
        payload["update"] = update_time(args)
    paths = common.write_results(args.name, payload, markdown(payload))
    print(markdown(payload))
    print("wrote", *paths)


if __name__ == "__main__":
    main()
