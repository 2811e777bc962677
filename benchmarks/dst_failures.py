"""Diagnoses the runs of the first accuracy tables that ended at chance.

benchmarks/results/dst_accuracy_lenet5.md (5 epochs) had three runs at 90%
test error with no message (sparse momentum 2% seed 19, RigL 5% and 10%
seed 18) and dst_accuracy_lenet300.md one RigL 2% seed far from the other
two (seed 19, 57% against 17%). Those tables were run with the project's
earlier recipe, not the reference's: Keras's decoupled weight decay,
Keras's (Glorot) initialisation with kept weights rescaled by
1/sqrt(density), lr x0.1 at 50% and 75%, no validation split.

Each case is run again, through `tf_sparse.runs.run`, in these settings:

- `recorded`: the settings the table was made with (does it reproduce?);
- `no_rescale`: the same without the 1/sqrt(density) rescale;
- `reference`: the current config (sparse momentum's reference recipe);
- `reference_erk`: the reference with ERK layer densities instead of uniform
  ones (for the LeNet-5 runs of the 10-epoch table that collapsed at 1% and
  2%: at 1% uniform, conv1 keeps 5 of its 500 weights).

For every run the script keeps the training loss every 20 steps (from the
run's TensorBoard log), the first step at which it sat at ln(10) (a
network that outputs the same distribution for every input), and, on the
trained network, the fraction of the ReLU units of every layer that are
dead (zero for all of 1,000 test images), the largest |weight| per layer,
and the spread of the logits across images.

Usage:
  python benchmarks/dst_failures.py                 # all cases, ~1.5 hours
  python benchmarks/dst_failures.py --cases=lenet300_rigl_2_19
Writes benchmarks/results/dst_failures.{json,md}; finished runs are kept.
"""

import argparse
import glob
import json
import math
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402
import dst_accuracy  # noqa: E402

# model, method, density, seed, epochs: the runs the first tables lost
# (5 epochs, the earlier recipe), then the runs of the LeNet-5 table at 10
# epochs with the reference recipe that ended collapsed.
CASES = {
    "lenet5_sparse_momentum_2_19": ("lenet5", "sparse_momentum", 0.02, 19, 5),
    "lenet5_rigl_5_18": ("lenet5", "rigl", 0.05, 18, 5),
    "lenet5_rigl_10_18": ("lenet5", "rigl", 0.1, 18, 5),
    "lenet300_rigl_2_19": ("lenet300", "rigl", 0.02, 19, 5),
    "lenet5_static_1_17": ("lenet5", "static", 0.01, 17, 10),
    "lenet5_set_1_17": ("lenet5", "set", 0.01, 17, 10),
    "lenet5_rigl_1_17": ("lenet5", "rigl", 0.01, 17, 10),
    "lenet5_static_2_17": ("lenet5", "static", 0.02, 17, 10),
}
# The recipe of the first tables (before the configs followed the reference).
RECORDED = dict(validation_fraction=0.0, lr_boundaries=(0.5, 0.75),
                lr_decay_every="0", weight_decay_mode="decoupled",
                init="keras", rescale_init=True)
SETTINGS = {
    "recorded": RECORDED,
    "no_rescale": {**RECORDED, "rescale_init": False},
    "reference": {},
    # The reference recipe with ERK layer densities instead of uniform ones
    # (conv1 keeps 5 of its 500 weights at 1% uniform).
    "reference_erk": {"distribution": "erk"},
}
CHANCE_LOSS = math.log(10.0)


def loss_curve(workdir):
    """(step, training loss) pairs from the run's TensorBoard log."""
    import tensorflow as tf
    points = []
    for path in glob.glob(os.path.join(workdir, "tensorboard", "train",
                                       "events*")):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.tag == "batch_loss":
                    number = tf.make_ndarray(value.tensor).item()
                    points.append((int(event.step), float(number)))
    return sorted(points)


def first_chance_step(curve, tolerance=0.01):
    """The first logged step from which the loss stays within `tolerance`
    of ln(10) to the end, or None."""
    found = None
    for step, loss in curve:
        if abs(loss - CHANCE_LOSS) < tolerance:
            found = step if found is None else found
        else:
            found = None
    return found


def inspect_network(path, images):
    """Dead ReLU units per layer, largest |weight| per layer, logit spread."""
    import keras
    import numpy as np
    import tf_sparse as tfs

    model = tfs.strip(tfs.load_model(path, compile=False))
    layers = [layer for layer in model.layers
              if getattr(layer, "kernel", None) is not None]
    probe = keras.Model(model.inputs, [layer.output for layer in layers])
    outputs = probe.predict(images, batch_size=1000, verbose=0)
    report = {}
    for layer, out in zip(layers, outputs):
        entry = {"max_abs_kernel": float(np.max(np.abs(
            keras.ops.convert_to_numpy(layer.kernel))))}
        activation = getattr(layer.activation, "__name__", "")
        if activation == "relu":
            units = out.reshape(-1, out.shape[-1])
            entry["dead_units"] = float(np.mean(np.all(units <= 0, axis=0)))
        else:   # the logits
            entry["logit_std_across_images"] = float(
                np.mean(np.std(out, axis=0)))
        report[layer.name] = entry
    return report


def run_case(case, setting):
    import numpy as np
    from tf_sparse import runs

    model, method, density, seed, epochs = CASES[case]
    config = dst_accuracy.load_config(model, method)
    for key, value in SETTINGS[setting].items():
        config[key] = value
    config.epochs = epochs
    config.seed = seed
    config.sparsity = round(1.0 - density, 6)
    config.log_every_steps = 20

    def inspect(workdir):
        path = os.path.join(workdir, "network.keras")
        test = runs.data.make_data(config, config.batch_size).test()
        images, _ = next(iter(test))    # the first 1,000 test images
        return loss_curve(workdir), inspect_network(path, np.asarray(images))

    results, (curve, network), seconds = common.run_in_tempdir(
        config, "dst_fail_", inspect=inspect, model_file="network.keras")
    return {"case": case, "setting": setting, "model": model,
            "method": method, "density": density, "seed": seed,
            "epochs": epochs, "overrides": SETTINGS[setting],
            "test_error": 100.0 * (1.0 - results["test_accuracy"]),
            "test_loss": results["test_loss"],
            "diverged": (results.get("diverged") or {}).get("message"),
            "layer_density": {p: v["density"]
                              for p, v in results["layers"].items()},
            "chance_from_step": first_chance_step(curve),
            "loss_curve": curve[::5],
            "network": network,
            "config": results["config"],
            "provenance": results["provenance"],
            "seconds": seconds}


def markdown(payload):
    lines = ["# Diagnosis of the runs that ended at chance "
             "(benchmarks/dst_failures.py)", "",
             "The configs of benchmarks/dst_accuracy.py at the case's "
             "density and seed, for the number of epochs of the table the "
             "case comes from. `recorded`: the first tables' "
             "recipe (decoupled weight decay, Keras init rescaled by "
             "1/sqrt(density), lr x0.1 at 50%/75%, no validation split); "
             "`no_rescale`: the same without the rescale; `reference`: the "
             "current config (sparse momentum's reference recipe); "
             "`reference_erk`: the same with ERK layer densities instead of "
             "uniform ones.", ""]
    header = ["case", "epochs", "setting", "test error %", "at chance from step",
              "dead ReLU units per layer", "max abs weight per layer",
              "logit std"]
    rows = []
    for r in payload["runs"]:
        net = r["network"]
        dead = ", ".join(f"{k} {100 * v['dead_units']:.0f}%"
                         for k, v in net.items() if "dead_units" in v)
        big = ", ".join(f"{k} {v['max_abs_kernel']:.3g}"
                        for k, v in net.items())
        spread = next((f"{v['logit_std_across_images']:.3g}"
                       for v in net.values()
                       if "logit_std_across_images" in v), "")
        chance = r["chance_from_step"]
        rows.append([r["case"], str(r["epochs"]), r["setting"],
                     f"{r['test_error']:.2f}",
                     "-" if chance is None else str(chance), dead, big,
                     spread])
    lines.append(common.markdown_table(header, rows))
    if payload.get("notes"):
        lines += ["", "Diagnosis:", ""] + [f"- {n}" for n in payload["notes"]]
    info = payload["machine"]
    commits = sorted({r["provenance"]["commit"][:7] for r in payload["runs"]})
    lines += ["", f"Machine: {info.get('cpu')}, TensorFlow "
              f"{info.get('tensorflow')}, Keras {info.get('keras')}; runs at "
              f"commit {', '.join(commits)}."]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--name", default="dst_failures")
    parser.add_argument("--note", action="append", default=[])
    args = parser.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    settings = [s for s in args.settings.split(",") if s]
    for c in cases:
        if c not in CASES:
            parser.error(f"unknown case {c!r}; accepted: {', '.join(CASES)}")
    for s in settings:
        if s not in SETTINGS:
            parser.error(f"unknown setting {s!r}; accepted: "
                         f"{', '.join(SETTINGS)}")
    path = os.path.join(common.RESULTS, f"{args.name}.json")
    old = {}
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
    done = {(r["case"], r["setting"]): r for r in old.get("runs", [])}
    payload = {"machine": common.machine_info(),
               "notes": args.note or old.get("notes", []), "runs": []}
    for case in cases:
        for setting in settings:
            r = done.get((case, setting)) or run_case(case, setting)
            if (case, setting) not in done:
                print(f"{case} {setting}: error {r['test_error']:.2f}% "
                      f"chance from {r['chance_from_step']} "
                      f"({r['seconds']:.0f}s)", flush=True)
            done[(case, setting)] = r
            payload["runs"] = list(done.values())
            common.write_results(args.name, payload, markdown(payload))
    print(markdown(payload))


if __name__ == "__main__":
    main()
