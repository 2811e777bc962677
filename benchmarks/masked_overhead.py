"""What masking costs per training epoch: the masked model vs dense Keras
(issue 16, point 5: the masked path at <= 1.03x dense on LeNet-300-100 and
LeNet-5).

The only extra work of a masked training step is the mask constraint, run
by the optimizer after its update for every masked weight
(`tf_sparse.masking.keep_active`). This script times `fit` epochs of

    dense              the Keras model, no masks
    masked             tfs.sparsify(model, 0.9) with its constraint as built
                       (`multiply_no_nan` on TensorFlow: one fused op)
    masked_where       the same, enforced by the formulation used before
                       (`where(mask > 0, w, zeros_like(w))`: compare, fill,
                       select), to show what the change bought
    dense_xla, masked_xla   both compiled with `jit_compile=True`, where XLA
                       fuses the constraint into the update

for LeNet-300-100, LeNet-5-Caffe and the keras-hub ViT of
benchmarks/hub_finetune.py (`hub_vit`: `ViTBackbone` + `ViTImageClassifier`,
patch 7, 4 layers, hidden 64; only its 24 attention/MLP projections masked,
`hub.sparsity_map`), interleaved round by round (order reversed every other round), SGD with
momentum, synthetic input of the model's shape, and reports the median
ratio to dense of wall time and of process CPU time (CPU time is the
steadier figure on a shared machine). Writes
benchmarks/results/masked_overhead.{json,md}.

Usage:
  python benchmarks/masked_overhead.py
  python benchmarks/masked_overhead.py --models=lenet300_100 --rounds=5
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import archs  # noqa: E402
import common  # noqa: E402
import step_time  # noqa: E402

NAME = "masked_overhead"
VARIANTS = ("dense", "masked", "masked_where", "dense_xla", "masked_xla")


def where_constraint(keras, mask):
    """The enforcement as it was before: compare, fill and select."""

    class WhereMask(keras.constraints.Constraint):
        def __call__(self, w):
            return keras.ops.where(mask > 0, w, keras.ops.zeros_like(w))

    return WhereMask()


BATCH = dict(archs.BATCH, hub_vit=128)
HUB_VIT = dict(patch_size=7, num_layers=4, num_heads=4, hidden_dim=64,
               mlp_dim=128)   # configs/recipes/hub_vit_gmp_kd.py's model


def build(name, variant, sparsity, keras, tfs):
    keras.utils.set_random_seed(0)
    if name == "hub_vit":
        from tf_sparse.models import hub
        model = hub.get_model("vit", num_classes=10, input_shape=(28, 28, 1),
                              **HUB_VIT)
        sparsity = hub.sparsity_map(model, sparsity)
    else:
        model = archs.build(name, keras)
    if variant.startswith("masked"):
        model = tfs.sparsify(model, sparsity=sparsity, seed=0)
        if variant == "masked_where":
            for mw in tfs.masking.masked_weights(model):
                mw.variable.constraint = where_constraint(keras, mw.mask)
    return model


def time_model(name, steps, rounds, sparsity):
    import keras
    import numpy as np
    import tf_sparse as tfs

    batch = BATCH[name]
    rng = np.random.default_rng(0)
    x = rng.random((batch * steps, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, batch * steps).astype("int32")
    models, clocks = {}, {}
    for variant in VARIANTS:
        model = build(name, variant, sparsity, keras, tfs)
        model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                      keras.losses.SparseCategoricalCrossentropy(
                          from_logits=True),
                      jit_compile=variant.endswith("_xla"))
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # tracing
        models[variant] = model
        clocks[variant] = step_time.EpochClock(keras)
    for r in range(rounds):
        for variant in (VARIANTS if r % 2 == 0 else VARIANTS[::-1]):
            models[variant].fit(x, y, batch_size=batch, epochs=1, verbose=0,
                                shuffle=False,
                                callbacks=[clocks[variant].callback])
    for variant, model in models.items():
        if variant.startswith("masked"):
            pruned = sum(int(np.count_nonzero(
                keras.ops.convert_to_numpy(mw.variable)[
                    keras.ops.convert_to_numpy(mw.mask) == 0]))
                for mw in tfs.masking.masked_weights(model))
            assert pruned == 0, (variant, pruned)
    return {v: {"wall": c.wall, "cpu": c.cpu} for v, c in clocks.items()}, \
        batch


def ratios(times, variant, baseline):
    """Median over rounds of the per-round ratio (same round, same load)."""
    import numpy as np
    out = {}
    for kind in ("wall", "cpu"):
        per_round = np.array(times[variant][kind]) / np.array(
            times[baseline][kind])
        out[kind] = float(np.median(per_round))
    return out


def markdown(payload):
    rows = []
    for name, result in payload["models"].items():
        times = result["times"]
        for variant in VARIANTS[1:]:
            base = "dense_xla" if variant.endswith("_xla") else "dense"
            if variant == base:
                continue
            r = ratios(times, variant, base)
            rows.append([name, f"{variant} / {base}", f"{r['wall']:.3f}",
                         f"{r['cpu']:.3f}"])
        dense_ms = 1000 * sorted(times["dense"]["wall"])[
            len(times["dense"]["wall"]) // 2] / result["steps"]
        rows.append([name, "dense ms/step (wall, median)",
                     f"{dense_ms:.2f}", ""])
    args = payload["args"]
    return "\n".join([
        "# The masked path vs dense: cost per epoch",
        "",
        f"`python benchmarks/masked_overhead.py` ({args['rounds']} "
        f"interleaved rounds per model, steps per epoch: "
        + ", ".join(f"{name} {result['steps']} (batch {result['batch']})"
                    for name, result in payload["models"].items())
        + f"; sparsity "
        f"{args['sparsity']}; SGD momentum; synthetic input; machine: "
        f"{payload['machine']['cpu_count']} cores, "
        f"{payload['machine'].get('cpu', '?')}, shared with other jobs; TF "
        f"{payload['machine']['tensorflow']}, Keras "
        f"{payload['machine']['keras']}; commit "
        f"{payload['machine'].get('git_commit')}).",
        "",
        "Each ratio is the median over rounds of (variant / baseline) "
        "measured in the same round. An epoch is `steps` optimizer steps, "
        "so the ratio per epoch is the ratio per step.",
        "",
        common.markdown_table(["model", "ratio", "wall", "CPU"], rows),
        "",
    ] + payload.get("notes", [])) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models",
                        default="lenet300_100,lenet5_caffe,hub_vit")
    parser.add_argument("--steps", default="600,200,100",
                        help="steps per epoch, one per model")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--note", action="append", default=[])
    args = parser.parse_args()
    names = args.models.split(",")
    steps = [int(s) for s in args.steps.split(",")]
    steps += [steps[-1]] * (len(names) - len(steps))
    models = {}
    for name, n in zip(names, steps):
        times, batch = time_model(name, n, args.rounds, args.sparsity)
        models[name] = {"times": times, "steps": n, "batch": batch}
        print(name, {v: ratios(times, v, "dense_xla" if v.endswith("_xla")
                               else "dense") for v in VARIANTS}, flush=True)
    payload = {"machine": common.machine_info(),
               "args": {"models": names, "steps": args.steps,
                        "rounds": args.rounds, "sparsity": args.sparsity},
               "models": models, "notes": args.note}
    print("\n".join(common.write_results(NAME, payload, markdown(payload))))


if __name__ == "__main__":
    main()
