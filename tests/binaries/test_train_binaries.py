"""tools/train_cifar10.py and tools/train_imagenet.py end to end, on CIFAR-10
files and ImageNet TFRecord shards (real JPEGs) written here in the standard
formats; resumption; mixed precision; and bad input."""

import json
import os
import pickle
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_sparse import distribute
from tf_sparse import runs
from tf_sparse.runs import algorithm as algorithm_lib
from tf_sparse.runs import engine
from tf_sparse.runs import model as model_lib
from tf_sparse.runs import plan as plan_lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CIFAR_CONFIG = os.path.join(ROOT, "configs", "cifar10", "resnet20_dense.py")
IMAGENET_CONFIG = os.path.join(ROOT, "configs", "imagenet", "resnet50_dense.py")
PER_BATCH = 8   # images per CIFAR-10 training batch file (5 files)


def write_cifar10(directory, seed=0):
    """The python (pickle) and binary layouts of the same small CIFAR-10."""
    rng = np.random.default_rng(seed)
    py = os.path.join(directory, "cifar-10-batches-py")
    binary = os.path.join(directory, "cifar-10-batches-bin")
    os.makedirs(py)
    os.makedirs(binary)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        data = rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, PER_BATCH)
        with open(os.path.join(py, name), "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels.tolist(),
                         b"data": data, b"filenames": [b"x.png"] * PER_BATCH}, f, protocol=2)
        records = np.concatenate([labels[:, None].astype(np.uint8), data], axis=1)
        records.tofile(os.path.join(binary, name + ".bin"))
    return directory


def _example(image, label):
    jpeg = tf.io.encode_jpeg(tf.constant(image, tf.uint8), quality=90).numpy()
    return tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg])),
        "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
    })).SerializeToString()


def write_imagenet(directory, train_shards=2, per_shard=6, validation=4, seed=0):
    """TF/TPU-style shards: JPEG bytes and 1-based labels."""
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    splits = [("train", s, train_shards, per_shard) for s in range(train_shards)]
    splits.append(("validation", 0, 1, validation))
    for split, index, total, count in splits:
        path = os.path.join(directory, f"{split}-{index:05d}-of-{total:05d}")
        with tf.io.TFRecordWriter(path) as writer:
            for _ in range(count):
                h, w = rng.integers(40, 80, 2)
                writer.write(_example(rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
                                      int(rng.integers(1, 1001))))
    return directory


def run_binary(binary, config, workdir, *args, timeout=900):
    cmd = [sys.executable, os.path.join(ROOT, "tools", binary), f"--config={config}",
           f"--workdir={workdir}", "--verbose=0", *args]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=ROOT)


SMALL = ["--config.batch_size=8", "--config.eval_batch_size=8", "--config.log_every_steps=2",
         "--config.validation_fraction=0.0", "--config.eval_every_epochs=0"]


def test_cifar10_from_python_batches_then_resume_from_binary_batches(tmp_path):
    """Static sparse here: sparse momentum's updates through the runner are
    checked by test_distributed_runs (two workers) at the same cost."""
    data = write_cifar10(str(tmp_path / "data"))
    workdir = str(tmp_path / "run")
    common = [f"--data_dir={data}", *SMALL, "--config.algorithm=static",
              "--config.sparsity=0.9", "--config.lr_decay_every=1ep",
              "--config.epochs=3"]
    # Interrupted after the first epoch (5 steps).
    first = run_binary("train_cifar10.py", CIFAR_CONFIG, workdir, *common,
                       "--config.max_steps=5", "--config.data_source=python")
    assert first.returncode == 0, first.stderr[-3000:]
    setup = json.load(open(os.path.join(workdir, "setup.json")))
    assert setup["replicas"]["num_replicas"] == 1
    assert setup["steps_per_epoch"] == 5 and setup["data"]["train_examples"] == 40
    assert any("global batch 8 = 1 replica(s) x 8" in line for line in setup["log"])
    results = json.load(open(os.path.join(workdir, "results.json")))
    assert results["steps"] == 5 and results["epochs_done"] == 1
    assert not results["finished"]
    budget = int(np.floor(0.1 * results["total_size"] + 0.5))
    assert results["total_nonzeros"] == budget
    densities = [w["nonzeros"] / w["size"] for w in results["layers"].values()]
    assert max(densities) - min(densities) < 0.01      # uniform 10% per layer
    assert "test accuracy" in first.stdout

    # The same images read from the binary batches: resumes after epoch 1.
    second = run_binary("train_cifar10.py", CIFAR_CONFIG, workdir, *common,
                        "--config.data_source=binary", "--verbose=1")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Resuming" in second.stdout
    results = json.load(open(os.path.join(workdir, "results.json")))
    assert results["steps"] == 15 and results["epochs_done"] == 3
    assert results["finished"] and results["steps_run"] == 10
    assert results["total_nonzeros"] == budget
    lr = results["setup"]["learning_rate_schedule"]
    assert lr["boundaries"] == [5, 10]                  # lr_decay_every=1 epoch
    names = os.listdir(os.path.join(workdir, "tensorboard"))
    assert any(name.startswith("events") for name in names) and "train" in names


def test_imagenet_tfrecords_with_real_jpegs(tmp_path):
    data = write_imagenet(str(tmp_path / "imagenet"))
    workdir = str(tmp_path / "run")
    proc = run_binary("train_imagenet.py", IMAGENET_CONFIG, workdir, f"--data_dir={data}",
                      "--config.model=resnet20", "--config.image_size=32",
                      "--config.batch_size=4", "--config.eval_batch_size=4",
                      "--config.epochs=1", "--config.label_smoothing=0.1",
                      "--config.algorithm=static", "--config.sparsity=0.8",
                      "--config.steps_per_execution=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.load(open(os.path.join(workdir, "results.json")))
    setup = results["setup"]
    assert setup["data"]["train_examples"] == 12 and setup["data"]["test_examples"] == 4
    assert setup["data"]["num_classes"] == 1000
    assert setup["steps_per_epoch"] == 3 and results["steps"] == 3
    # Linear scaling from 0.1 per 256 images: 0.1 * 4 / 256.
    assert setup["batch"]["learning_rate"] == pytest.approx(0.1 * 4 / 256)
    assert 0.0 <= results["test_top5_accuracy"] <= 1.0
    assert "top-5" in proc.stdout


def test_mixed_precision_keeps_masks_and_scales_the_loss(tmp_path):
    """float16 (GPU) gets Keras's dynamic loss scaling, bfloat16 (TPU) none;
    variables stay float32 and the masks keep their exact counts."""
    import keras
    for precision in ("mixed_float16", "mixed_bfloat16"):
        config = runs.default_config("cifar10")
        config.update(dict(model="lenet5_caffe", synthetic_data=True, batch_size=4,
                           eval_batch_size=4, max_steps=3, eval_every_epochs=0,
                           eval_steps=1, log_every_steps=0, sparsity=0.9,
                           precision=precision, validation_fraction=0.0))
        captured = {}
        original = model_lib.build

        def remember(*args, **kwargs):
            captured["model"] = model = original(*args, **kwargs)
            return model

        model_lib.build = remember
        try:
            results = runs.run(config, str(tmp_path / precision), verbose=0)
        finally:
            model_lib.build = original
        model = captured["model"]
        assert results["steps_run"] == 3 and np.isfinite(results["test_loss"])
        assert model.layers[1].dtype_policy.name == precision
        assert model.layers[1].kernel.dtype == "float32"
        scaled = type(model.optimizer).__name__ == "LossScaleOptimizer"
        assert scaled == (precision == "mixed_float16")
        assert results["total_nonzeros"] == int(np.floor(0.1 * results["total_size"] + 0.5))
        assert keras.config.dtype_policy().name == "float32"   # restored afterwards


def test_snip_prunes_the_dense_initialisation_on_the_first_batch(tmp_path):
    config = runs.default_config("cifar10")
    config.update(dict(algorithm="snip", sparsity=0.9, synthetic_data=True, batch_size=8,
                       eval_batch_size=8, max_steps=1, eval_every_epochs=0, eval_steps=1,
                       log_every_steps=0, validation_fraction=0.0, run_eagerly=True))
    results = runs.run(config, str(tmp_path), verbose=0)
    assert results["total_nonzeros"] == int(np.floor(0.1 * results["total_size"] + 0.5))
    densities = [w["nonzeros"] / w["size"] for w in results["layers"].values()]
    assert max(densities) - min(densities) > 0.05   # global saliency, not uniform


# --- bad input ---------------------------------------------------------------


def test_cli_bad_input_is_named(tmp_path):
    missing = run_binary("train_cifar10.py", CIFAR_CONFIG, str(tmp_path / "a"),
                         f"--data_dir={tmp_path}", "--config.max_steps=1")
    assert missing.returncode != 0
    assert "train_cifar10: error:" in missing.stderr
    assert "cifar-10-batches-py" in missing.stderr and "Traceback" not in missing.stderr

    tpu = run_binary("train_imagenet.py", IMAGENET_CONFIG, str(tmp_path / "b"),
                     "--strategy=tpu", "--tpu=local", "--config.synthetic_data=True")
    assert tpu.returncode != 0
    assert "could not reach TPU 'local'" in tpu.stderr and "Traceback" not in tpu.stderr

    odd = run_binary("train_cifar10.py", CIFAR_CONFIG, str(tmp_path / "c"),
                     "--strategy=mirrored", "--cpu_devices=2", "--config.batch_size=7",
                     "--config.synthetic_data=True")
    assert odd.returncode != 0
    assert "batch_size=7 (global) is not divisible by the 2 replicas" in odd.stderr

    arg = run_binary("train_imagenet.py", IMAGENET_CONFIG, str(tmp_path / "d"),
                     "--algorithm_arg=reset_momentum", "--config.synthetic_data=True")
    assert arg.returncode != 0
    assert ("train_imagenet: error: --algorithm_arg='reset_momentum': expected "
            "key=value") in arg.stderr and "Traceback" not in arg.stderr


def test_strategy_names_and_flags_are_checked():
    with pytest.raises(distribute.StrategyError, match="unknown strategy 'mirorred'"):
        distribute.create_strategy("mirorred")
    with pytest.raises(distribute.StrategyError, match="--tpu='my-tpu'.*--strategy=tpu"):
        distribute.create_strategy("default", tpu="my-tpu")
    assert distribute.describe(distribute.create_strategy("default")).num_replicas == 1


@pytest.mark.parametrize("tf_config,message", [
    (None, "needs the TF_CONFIG environment variable"),
    ("{not json", "TF_CONFIG is not valid JSON"),
    ('{"task": {"type": "worker", "index": 0}}', "no cluster with workers"),
    ('{"cluster": {"worker": ["a:1"]}}', "no task"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}',
     "is not in its cluster"),
])
def test_multi_worker_needs_a_valid_tf_config(monkeypatch, tf_config, message):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(distribute.StrategyError, match=message):
        distribute.create_strategy("multi_worker")


def test_batch_plan_divides_and_scales():
    plan = distribute.batch_plan(1024, 8, base_learning_rate=0.1, reference_batch_size=256,
                                 scaling="linear")
    assert plan.per_replica_batch_size == 128 and plan.learning_rate == pytest.approx(0.4)
    assert "0.4 = 0.1 x(1024/256)" in plan.summary()
    sqrt = distribute.batch_plan(0, 4, base_learning_rate=0.1, reference_batch_size=64,
                                 scaling="sqrt", per_replica_batch_size=64)
    assert sqrt.global_batch_size == 256 and sqrt.learning_rate == pytest.approx(0.2)
    with pytest.raises(ValueError, match="batch_size=100 .* not divisible by the 8 replicas"):
        distribute.batch_plan(100, 8, base_learning_rate=0.1)
    with pytest.raises(ValueError, match="lr_scaling='cubic'"):
        distribute.batch_plan(8, 1, base_learning_rate=0.1, scaling="cubic")


def test_precision_auto_follows_the_platform():
    assert distribute.resolve_precision("auto", "TPU") == "mixed_bfloat16"
    assert distribute.resolve_precision("auto", "GPU") == "mixed_float16"
    assert distribute.resolve_precision("auto", "CPU") == "float32"
    assert distribute.resolve_precision("bf16", "CPU") == "mixed_bfloat16"
    with pytest.raises(ValueError, match="precision='float8'"):
        distribute.resolve_precision("float8", "GPU")


def test_corrupt_cifar10_batch_is_named(tmp_path):
    data = write_cifar10(str(tmp_path / "data"))
    broken = os.path.join(data, "cifar-10-batches-bin", "data_batch_3.bin")
    with open(broken, "r+b") as f:
        f.truncate(3073 * 2 + 100)
    config = runs.default_config("cifar10")
    config.update(dict(data_dir=data, data_source="binary", batch_size=8, max_steps=1))
    with pytest.raises(ValueError, match="data_batch_3.bin: 6246 bytes is not a positive multiple"):
        runs.launch(config, str(tmp_path / "run"), datasets=("cifar10",))


def test_corrupt_imagenet_shard_is_named(tmp_path):
    data = write_imagenet(str(tmp_path / "imagenet"), train_shards=2, per_shard=2, validation=2)
    shard = os.path.join(data, "train-00001-of-00002")
    raw = bytearray(open(shard, "rb").read())
    raw[40] ^= 0xFF                        # flip bits inside the first record
    open(shard, "wb").write(bytes(raw))
    config = runs.default_config("imagenet")
    config.update(dict(data_dir=data, model="resnet20", image_size=32, batch_size=2,
                       eval_batch_size=2, epochs=1, max_steps=1, log_every_steps=0))
    with pytest.raises(ValueError, match="train-00001-of-00002: record 0 is damaged"):
        runs.launch(config, str(tmp_path / "run"), datasets=("imagenet",))


def test_wrong_binary_for_the_config_and_unknown_algorithm(tmp_path):
    config = runs.default_config("imagenet")
    with pytest.raises(ValueError, match="this binary trains on 'cifar10'"):
        runs.launch(config, str(tmp_path), datasets=("cifar10",))
    config = runs.default_config("cifar10")
    config.algorithm = "lottery_magic"
    plan = plan_lib.Plan(steps_per_epoch=10, epochs=10, total_steps=100)
    with pytest.raises(ValueError, match="Unknown algorithm 'lottery_magic'.*sparse_momentum"):
        algorithm_lib.make(config, plan)
    config.algorithm = "dense"
    with pytest.raises(ValueError, match="algorithm='dense' trains without masks"):
        algorithm_lib.make(config, plan)


# --- mid-epoch checkpoints ---------------------------------------------------


def _resume_config(data, **changes):
    config = runs.default_config("cifar10")
    config.update(dict(
        data_dir=data, data_source="python", batch_size=8, eval_batch_size=8,
        validation_fraction=0.0, eval_every_epochs=0, log_every_steps=0,
        epochs=2, algorithm="sparse_momentum", sparsity=0.9, seed=3,
        model="lenet5_caffe"))
    config.algorithm_params.update_every = 3      # updates at 3, 6, 9
    config.update(changes)
    return config


def test_a_run_stopped_mid_epoch_resumes_bit_identical(tmp_path, monkeypatch):
    data = write_cifar10(str(tmp_path / "data"))
    captured = {}
    original = model_lib.build

    def build_model(*args, **kwargs):
        captured["model"] = original(*args, **kwargs)
        return captured["model"]

    monkeypatch.setattr(model_lib, "build", build_model)

    def run(workdir, **changes):
        keras.backend.clear_session()
        results = runs.run(_resume_config(data, **changes),
                           str(tmp_path / workdir), verbose=0)
        model = captured["model"]
        return results, [v.numpy().copy() for v in model.weights], model

    whole, expected, _ = run("whole")
    assert whole["steps"] == 10

    # Stopped at step 7 (epoch 2, batch 2): a checkpoint every 3 steps and
    # one where training stopped, so nothing is lost.
    first, _, _ = run("parts", max_steps=7, checkpoint_every_steps=3)
    assert first["steps"] == 7 and not first["finished"]
    names = sorted(os.listdir(tmp_path / "parts" / "checkpoints"))
    assert "ckpt-7.index" in names and "ckpt-6.index" in names

    second, got, model = run("parts", checkpoint_every_steps=3)
    assert second["steps"] == 10 and second["steps_run"] == 3
    assert second["epochs_done"] == 2
    for a, b in zip(expected, got):
        assert a.tobytes() == b.tobytes()
