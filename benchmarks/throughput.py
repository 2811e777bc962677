"""Images per second on this CPU: CIFAR-10 training of ResNet-20 and WRN-16-8,
dense vs sparse momentum at 5% weights, and the input pipelines alone.

Training runs the pieces of the run engine `tf_sparse.runs` (what
tools/train_cifar10.py runs): the zoo model (built and sparsified by
`build_model`), SGD with Nesterov momentum and L2 weight decay
(`make_optimizer`), the algorithm by registry name (`make_algorithm`,
attached with `tfs.callbacks.MaskUpdate`), `model.fit` on the real CIFAR-10
training pipeline (`pipelines.image_classification_datasets` with
pad-crop-flip and normalisation) fed with random uint8 images of CIFAR-10's
shape (the CIFAR-10 files are not on this machine). "dense" has no masks;
"sparse momentum" keeps 5% of the weights (uniform), with the mask
constraint applied after every optimizer step and its train-step hook in
the compiled function. Its mask update runs at the end of each epoch of the
real run (390 steps at batch 128); the measured windows are shorter, so the
figures are per-step cost without updates (the update itself is timed by
benchmarks/dst_cost.py).

The variants of one model are measured interleaved, window by window, after
a warm-up window that traces the step; figures are medians over windows, in
wall-clock images/s and in images per process-CPU-second (the machine is
shared: wall times vary 2-3x with other users' load, CPU time much less).

The input pipelines alone: the CIFAR-10 training pipeline as above, and the
ImageNet training pipeline (TFRecord shards of real JPEGs written here, 500x375
like typical ImageNet photos, random-resized crop to 224, flip, normalise),
each iterated without a model.

Usage:
  python benchmarks/throughput.py                       # everything
  python benchmarks/throughput.py --models=resnet20 --windows=2
Writes benchmarks/results/throughput.{json,md}.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402

STEPS = {"resnet20": 25, "wrn16_8": 6}      # steps per measured window


def clock():
    return time.perf_counter(), time.process_time()


def load_average():
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def cifar_arrays(n_train, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, n_train).astype(np.uint8)
    return (x, y), (x[:1000], y[:1000])


def cifar_pipeline(arrays, batch_size, seed=0):
    from tf_sparse.data import cifar10, pipelines
    train, _, _, info = pipelines.image_classification_datasets(
        arrays[0], arrays[1], batch_size=batch_size, seed=seed, num_classes=10,
        preprocess=cifar10.normalize_cifar10, augment=cifar10.augment_cifar10,
        repeat=True)
    return train, info


def pipeline_rate(dataset, batch_size, batches, warmup=5):
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    (w0, c0) = clock()
    for _ in range(batches):
        next(iterator)
    (w1, c1) = clock()
    images = batches * batch_size
    return {"images": images, "wall_s": w1 - w0, "cpu_s": c1 - c0,
            "images_per_s": images / (w1 - w0), "images_per_cpu_s": images / (c1 - c0),
            "load_average": load_average()}


def imagenet_pipeline_rate(batch_size, batches, seed=0):
    import numpy as np
    import tensorflow as tf
    from tf_sparse.data import imagenet

    rng = np.random.default_rng(seed)
    directory = tempfile.mkdtemp(prefix="imagenet_bench_")
    shards, per_shard = 4, 64
    for s in range(shards):
        path = os.path.join(directory, f"train-{s:05d}-of-{shards:05d}")
        with tf.io.TFRecordWriter(path) as writer:
            for _ in range(per_shard):
                # Smooth random images compress like photos (noise would not).
                small = rng.integers(0, 256, (12, 16, 3)).astype(np.float32)
                image = tf.image.resize(small[None], (375, 500))[0]
                jpeg = tf.io.encode_jpeg(tf.cast(image, tf.uint8), quality=90).numpy()
                example = tf.train.Example(features=tf.train.Features(feature={
                    "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(
                        value=[jpeg])),
                    "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(
                        value=[int(rng.integers(1, 1001))]))}))
                writer.write(example.SerializeToString())
    ds, n = imagenet.imagenet_dataset(directory, "train", batch_size, training=True,
                                      seed=seed, repeat=True, shuffle_buffer=256)
    result = pipeline_rate(ds, batch_size, batches, warmup=2)
    result.update({"records": n, "jpeg_size": [375, 500], "image_size": 224})
    return result


def stamps_callback():
    """A callback recording (wall, process CPU) at every batch end."""
    import keras

    class Stamps(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.stamps = []

        def on_train_batch_end(self, batch, logs=None):
            self.stamps.append(clock())

    return Stamps()


def train_variants(model_name, batch_size, windows, steps, arrays):
    import types

    from tf_sparse import callbacks as tfs_callbacks
    from tf_sparse import runs
    from tf_sparse.runs import algorithm as algorithm_lib
    from tf_sparse.runs import model as model_lib
    from tf_sparse.runs import optimizer as optimizer_lib
    from tf_sparse.runs import plan as plan_lib

    train, info = cifar_pipeline(arrays, batch_size)
    real_steps_per_epoch = 50000 // batch_size
    total = real_steps_per_epoch * 200
    plan = plan_lib.Plan(steps_per_epoch=real_steps_per_epoch, epochs=200,
                         total_steps=total)
    shapes = types.SimpleNamespace(input_shape=(32, 32, 3), num_classes=10)
    variants = {}
    for label, algorithm, sparsity in (("dense", "dense", 0.0),
                                       ("sparse_momentum_5pct", "sparse_momentum", 0.95)):
        config = runs.default_config("cifar10")
        config.model = model_name
        config.algorithm = algorithm
        config.sparsity = sparsity
        config.batch_size = batch_size
        model = model_lib.build(config, shapes)
        alg = algorithm_lib.make(config, plan)
        if alg is not None:
            model = model_lib.sparsify(config, model, gradual=False)
        lr = optimizer_lib.learning_rate(config, plan, 0.1)
        model.compile(optimizer=optimizer_lib.make_optimizer(config, model, lr),
                      loss=optimizer_lib.make_loss(config, 10), metrics=["accuracy"])
        fit_callbacks = []
        if alg is not None:
            fit_callbacks.append(tfs_callbacks.MaskUpdate(alg))
        (w0, _) = clock()
        model.fit(train, epochs=1, steps_per_epoch=2, verbose=0,
                  callbacks=fit_callbacks)      # trace the step (warm-up)
        variants[label] = {"model": model, "callbacks": fit_callbacks, "windows": [],
                           "warmup_s": clock()[0] - w0}
    for _ in range(windows):
        for label, v in variants.items():
            stamps = stamps_callback()
            load = load_average()
            v["model"].fit(train, epochs=1, steps_per_epoch=steps + 1, verbose=0,
                           callbacks=v["callbacks"] + [stamps])
            (w0, c0), (w1, c1) = stamps.stamps[0], stamps.stamps[-1]
            images = steps * batch_size  # the first step of the window is excluded
            v["windows"].append({"images_per_s": images / (w1 - w0),
                                 "images_per_cpu_s": images / (c1 - c0),
                                 "wall_s": w1 - w0, "load_average": load})
    out = {}
    for label, v in variants.items():
        rates = [w["images_per_s"] for w in v["windows"]]
        cpu_rates = [w["images_per_cpu_s"] for w in v["windows"]]
        out[label] = {"images_per_s": statistics.median(rates),
                      "images_per_cpu_s": statistics.median(cpu_rates),
                      "windows": v["windows"], "warmup_s": v["warmup_s"],
                      "steps_per_window": steps, "batch_size": batch_size}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="resnet20,wrn16_8")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--pipeline-batches", type=int, default=60)
    parser.add_argument("--imagenet-batches", type=int, default=8)
    parser.add_argument("--name", default="throughput")
    args = parser.parse_args()

    import tensorflow as tf  # noqa: F401  (versions in machine_info)
    from tf_sparse import algorithms

    machine = common.machine_info()
    machine["load_average_start"] = load_average()
    sm_registered = "sparse_momentum" in algorithms.names()
    if not sm_registered:
        raise SystemExit("sparse_momentum is not registered; nothing to compare")
    arrays = cifar_arrays(50000)
    results = {"machine": machine, "batch_size": args.batch_size, "training": {}}
    train, _ = cifar_pipeline(arrays, args.batch_size)
    results["cifar10_pipeline"] = pipeline_rate(train, args.batch_size, args.pipeline_batches)
    print("cifar10 pipeline", round(results["cifar10_pipeline"]["images_per_s"]), "img/s",
          flush=True)
    for model_name in args.models.split(","):
        results["training"][model_name] = train_variants(
            model_name, args.batch_size, args.windows, STEPS.get(model_name, 10), arrays)
        print(model_name, {k: round(v["images_per_s"], 1)
                           for k, v in results["training"][model_name].items()}, flush=True)
    results["cifar10_pipeline_after"] = pipeline_rate(train, args.batch_size,
                                                      args.pipeline_batches)
    results["imagenet_pipeline"] = imagenet_pipeline_rate(32, args.imagenet_batches)
    print("imagenet pipeline", round(results["imagenet_pipeline"]["images_per_s"], 1),
          "img/s", flush=True)
    machine["load_average_end"] = load_average()

    rows = []
    for model_name, variants in results["training"].items():
        dense = variants["dense"]["images_per_s"]
        for label, v in variants.items():
            rows.append([model_name, label, f"{v['images_per_s']:.1f}",
                         f"{v['images_per_cpu_s']:.1f}",
                         f"{v['images_per_s'] / dense:.2f}",
                         " / ".join(f"{w['images_per_s']:.1f}" for w in v["windows"])])
    pipe = results["cifar10_pipeline"]
    pipe2 = results["cifar10_pipeline_after"]
    inet = results["imagenet_pipeline"]
    fastest = max(v["images_per_s"] for m in results["training"].values() for v in m.values())
    md = [f"# Training and input-pipeline throughput on this CPU\n",
          f"Machine: {machine.get('cpu')}, {machine['cpu_count']} cores (shared; load "
          f"average {machine['load_average_start']:.1f} at start, "
          f"{machine['load_average_end']:.1f} at end); Python {machine['python']}, "
          f"TensorFlow {machine['tensorflow']}, Keras {machine['keras']}, NumPy "
          f"{machine['numpy']}; commit {machine.get('git_commit')}; {machine['date']}.\n",
          f"Script: `benchmarks/throughput.py` (see its docstring for the method). "
          f"Batch {args.batch_size}, float32, one device, CIFAR-10-shaped random images "
          f"through the real training pipeline. Medians over {args.windows} interleaved "
          f"windows; wall img/s depends on other users' load, img per CPU-second "
          f"less so.\n",
          "## Training (CIFAR-10, 32x32)\n",
          common.markdown_table(
              ["model", "variant", "img/s (wall)", "img per CPU-s", "vs dense", "windows (img/s)"],
              rows),
          "sparse_momentum_5pct: 95% of every conv/fc kernel masked (uniform), mask constraint "
          "after every step, the sparse-momentum hook in the compiled step (its "
          "end-of-epoch update is not inside these windows). Masking simulates sparsity: "
          "the convolutions are dense, so a sparse step costs what a dense one does.\n",
          "## Input pipelines alone\n",
          common.markdown_table(
              ["pipeline", "img/s (wall)", "img per CPU-s", "vs fastest training"],
              [["CIFAR-10 train (gather, pad-crop-flip, normalise), before training",
                f"{pipe['images_per_s']:.0f}", f"{pipe['images_per_cpu_s']:.0f}",
                f"{pipe['images_per_s'] / fastest:.1f}x"],
               ["CIFAR-10 train, again after training",
                f"{pipe2['images_per_s']:.0f}", f"{pipe2['images_per_cpu_s']:.0f}",
                f"{pipe2['images_per_s'] / fastest:.1f}x"],
               ["ImageNet train (TFRecord JPEG 500x375 -> random-resized crop 224, flip)",
                f"{inet['images_per_s']:.1f}", f"{inet['images_per_cpu_s']:.1f}", "-"]]),
          f"\nThe CIFAR-10 pipeline alone delivers {pipe['images_per_s'] / fastest:.1f}x the "
          "images the fastest training variant consumes, so the input is not the "
          "bottleneck; it runs in parallel with the step (prefetch). The ImageNet "
          "pipeline is reported for reference (ResNet-50 training at 224x224 was not "
          "measured on this CPU).\n"]
    paths = common.write_results(args.name, results, "\n".join(md))
    print("\n".join(paths))


if __name__ == "__main__":
    main()
