"""Do the initial masks connect the input to the output at all?

A sparse network whose masks leave no path of nonzero weights from the
input to an output logit computes the same logits for every image: it can
only learn the class prior (90% error on Fashion-MNIST) and the engine
reports it as collapsed. Static sparse training never changes its masks, so
such a network stays cut forever; SET and RigL keep every layer's count (they
can reconnect only inside the layer's budget); sparse momentum moves weights
between layers.

For each model, density and seed of the accuracy tables
(benchmarks/dst_accuracy.py), this script builds the initial masks exactly
as the engine does (the configs' uniform per-layer density, the seed) and
counts, layer by layer, the units (output channels of a convolution, units
of a Dense layer) that are reachable from the input through nonzero
weights, and the output logits that are. No training: a second or two per
case.

Usage:
  python benchmarks/dst_paths.py
Writes benchmarks/results/dst_paths.{json,md}.
"""

import os
import sys
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402
import dst_accuracy  # noqa: E402

DENSITIES = (0.01, 0.02, 0.05, 0.1)
SEEDS = (17, 18, 19)
INPUT = types.SimpleNamespace(input_shape=(28, 28, 1), num_classes=10)


def reachable_units(model):
    """[(layer name, reachable units, units)] for a chain of Conv2D,
    pooling, Flatten and Dense layers, masks applied (a weight counts when
    its mask is 1 and its value nonzero)."""
    import keras
    import numpy as np
    from tf_sparse import masking

    masks = {mw.layer.name: mw.mask.numpy() for mw in
             masking.masked_weights(model)}
    alive = None          # per channel / unit of the current activation
    spatial = 1           # positions per channel before a Flatten
    rows = []
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            kernel = layer.kernel.numpy()
            if layer.name in masks:
                kernel = kernel * masks[layer.name]
            # (inputs, outputs) connectivity of the layer.
            links = np.abs(kernel).reshape(-1, *kernel.shape[-2:]).sum(0) \
                if isinstance(layer, keras.layers.Conv2D) else np.abs(kernel)
            links = links > 0
            if alive is None:
                alive = np.ones(links.shape[0], bool)
            out = links[alive].any(axis=0)
            rows.append((layer.name, int(out.sum()), int(out.size)))
            alive = out
        elif isinstance(layer, keras.layers.Flatten) and alive is not None:
            spatial = int(np.prod(layer.input.shape[1:-1]))
            # Channels last: flattened index = position * channels + channel.
            alive = np.tile(alive, spatial)
    return rows


def case(model_name, density, seed):
    import keras
    from tf_sparse.runs import model as model_lib

    config = dst_accuracy.load_config(model_name, "static")
    config.seed = seed
    config.sparsity = round(1.0 - density, 6)
    keras.backend.clear_session()
    model = model_lib.build(config, INPUT)
    model_lib.sparsify(config, model, gradual=False)
    rows = reachable_units(model)
    return {"model": model_name, "density": density, "seed": seed,
            "distribution": config.distribution,
            "layers": [{"layer": n, "reachable": r, "units": u}
                       for n, r, u in rows],
            "outputs_reachable": rows[-1][1]}


def markdown(payload):
    lines = [
        "# Paths from input to output in the initial masks "
        "(benchmarks/dst_paths.py)", "",
        "Masks built as the engine builds them for the accuracy tables "
        "(configs/fashion_mnist/<model>_static.py: uniform per-layer "
        "density, the run's seed). `reachable`: units (output channels of "
        "a convolution, units of a Dense layer) connected to the input "
        "through nonzero weights, per layer; the last number is the "
        "output logits. A network with 0 reachable logits computes the "
        "same output for every image.", "",
        "Machine: {cpu}, TensorFlow {tensorflow}, Keras {keras}; {date}; "
        "commit {git_commit}.".format(**{k: payload["machine"].get(k) for k in
                                        ("cpu", "tensorflow", "keras", "date",
                                         "git_commit")}), ""]
    header = ["model", "weights", "seed", "reachable units per layer",
              "logits reachable"]
    rows = []
    for r in payload["runs"]:
        per_layer = ", ".join(f"{l['layer']} {l['reachable']}/{l['units']}"
                              for l in r["layers"])
        rows.append([r["model"], f"{100 * r['density']:g}%", str(r["seed"]),
                     per_layer, f"{r['outputs_reachable']}/10"])
    lines.append(common.markdown_table(header, rows))
    return "\n".join(lines) + "\n"


def main():
    runs = [case(m, d, s) for m in ("lenet5", "lenet300")
            for d in DENSITIES for s in SEEDS]
    payload = {"machine": common.machine_info(), "runs": runs}
    paths = common.write_results("dst_paths", payload, markdown(payload))
    print(markdown(payload))
    print("wrote", *paths)


if __name__ == "__main__":
    main()
