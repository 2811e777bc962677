"""Distribution strategies, replica arithmetic and mixed precision for the binaries.

One place decides how a run is spread over devices:

* `create_strategy(name, tpu=...)`: "default" (one device), "mirrored" (all
  local GPUs, else the local logical CPUs), "multi_worker" (one process per
  worker, cluster from `TF_CONFIG`), "tpu" (Cloud TPU, `tpu="local"` on a TPU
  VM, or a TPU name / grpc address). Bad names, inconsistent flags, a broken
  `TF_CONFIG` and a TPU that cannot be reached fail at once, naming the value.
* `describe(strategy)`: replicas, workers, this worker's index, whether it is
  the chief, the platform (CPU, GPU, TPU).
* `batch_plan(global_batch, num_replicas, ...)`: the per-replica batch (the
  global batch must divide evenly) and the learning rate after scaling with
  the global batch, with a sentence saying how it was obtained, for the logs.
* `resolve_precision` / `dtype_policy`: "auto" is mixed bfloat16 on TPU,
  mixed float16 (with dynamic loss scaling by Keras's `LossScaleOptimizer`)
  on GPU, float32 on CPU.

Nothing here runs on import; only `split_cpu` touches the device set-up, and
only when called (before TensorFlow initialises its devices).

Example:

    strategy = create_strategy("mirrored")
    info = describe(strategy)
    plan = batch_plan(256, info.num_replicas, base_learning_rate=0.1,
                      reference_batch_size=256, scaling="linear")
    print(info.summary(), plan.summary(), sep="\\n")
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from typing import Optional, Sequence

import tensorflow as tf

from tf_sparse import backend

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
LR_SCALING = ("none", "linear", "sqrt")


class StrategyError(ValueError):
    """A strategy name, flag combination or cluster description that cannot work."""


class TPUNotFoundError(RuntimeError):
    """`--strategy=tpu` could not reach a TPU."""


def _normalise(name: str) -> str:
    return str(name).strip().lower().replace("-", "_")


def split_cpu(num_devices: int) -> list:
    """Splits the first physical CPU into `num_devices` logical devices.

    For testing MirroredStrategy on a machine without GPUs. Must run before
    TensorFlow initialises its devices (before any op, variable or
    strategy); returns the logical CPU devices.

    Raises:
      ValueError: for `num_devices` < 1.
      RuntimeError: naming the problem, if TensorFlow's devices are already
        initialised with another number of CPUs.
    """
    if not isinstance(num_devices, int) or isinstance(num_devices, bool) or num_devices < 1:
        raise ValueError(f"cpu_devices={num_devices!r}: need an int >= 1")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)
    except RuntimeError as err:
        have = len(tf.config.list_logical_devices("CPU"))
        if have == num_devices:
            return tf.config.list_logical_devices("CPU")
        raise RuntimeError(
            f"cannot split the CPU into {num_devices} devices: TensorFlow already "
            f"initialised {have} CPU device(s); split_cpu must run before anything "
            f"else uses TensorFlow ({err})") from err
    return tf.config.list_logical_devices("CPU")


def local_devices() -> list[str]:
    """The devices MirroredStrategy uses by default: GPUs, else logical CPUs."""
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        return [d.name for d in gpus]
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def read_tf_config() -> dict:
    """Parses and checks `TF_CONFIG` for MultiWorkerMirroredStrategy.

    Raises:
      StrategyError: naming what is missing or malformed.
    """
    raw = os.environ.get("TF_CONFIG", "")
    example = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}\'')
    if not raw.strip():
        raise StrategyError(
            "--strategy=multi_worker needs the TF_CONFIG environment variable describing "
            f"the cluster and this worker's task, e.g. {example} (one process per worker; "
            "on a single machine use --strategy=mirrored)")
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise StrategyError(f"TF_CONFIG is not valid JSON ({err}): {raw[:200]!r}") from err
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not (cluster.get("worker") or cluster.get("chief")):
        raise StrategyError(
            f"TF_CONFIG has no cluster with workers: {raw[:200]!r}; expected {example}")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise StrategyError(
            f"TF_CONFIG has no task {{'type': ..., 'index': ...}}: {raw[:200]!r}; "
            f"expected {example}")
    jobs = cluster.get(task["type"])
    if not isinstance(jobs, list) or not (0 <= int(task["index"]) < len(jobs)):
        raise StrategyError(
            f"TF_CONFIG task {task!r} is not in its cluster {cluster!r}")
    return config


def _tpu_strategy(tpu: str):
    target = tpu or os.environ.get("TPU_NAME", "") or "local"
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=target)
        if target != "local":
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except Exception as err:  # NotFound, URLError, Unimplemented, ValueError...
        raise TPUNotFoundError(
            f"--strategy=tpu could not reach TPU {target!r}: {type(err).__name__}: "
            f"{str(err).strip().splitlines()[0][:300]}. On a Cloud TPU VM use --tpu=local "
            "(the default; a TPU name or grpc://IP:8470 addresses a remote TPU). If this "
            "machine has no TPU, use --strategy=default or mirrored.") from err
    return tf.distribute.TPUStrategy(resolver)


def create_strategy(name: str = "default", *, tpu: str = "",
                    devices: Optional[Sequence[str]] = None) -> tf.distribute.Strategy:
    """Creates the named tf.distribute strategy.

    Args:
      name: one of `STRATEGIES` ("-" and case do not matter).
      tpu: the TPU for name="tpu": "local" on a TPU VM (default, also from
        `$TPU_NAME`), a TPU name or a grpc:// address. Refused with other names.
      devices: for "mirrored", the devices to mirror over (default:
        `local_devices()`).

    Raises:
      StrategyError: unknown name, `tpu` without name="tpu", devices with a
        strategy that does not take them, or a missing/broken `TF_CONFIG`.
      TPUNotFoundError: name="tpu" and no TPU answers.
    """
    key = _normalise(name)
    if key not in STRATEGIES:
        raise StrategyError(
            f"unknown strategy {name!r}; accepted: {', '.join(STRATEGIES)}")
    if key != "default":
        backend.require_tensorflow(
            f"tf.distribute strategy {name!r}",
            "Run it with KERAS_BACKEND=tensorflow; under this backend "
            "tf-sparse trains on one device (keras.distribution is not "
            "tested with tf-sparse).")
    if tpu and key != "tpu":
        raise StrategyError(
            f"--tpu={tpu!r} was given with --strategy={name!r}; use --strategy=tpu to "
            "train on a TPU")
    if devices and key != "mirrored":
        raise StrategyError(f"devices={list(devices)!r} only apply to --strategy=mirrored")
    if key == "default":
        return tf.distribute.get_strategy()
    if key == "mirrored":
        return tf.distribute.MirroredStrategy(list(devices) if devices else local_devices())
    if key == "multi_worker":
        read_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    return _tpu_strategy(tpu)


@dataclasses.dataclass(frozen=True)
class ReplicaInfo:
    """Where a run executes, as the logs and run.json report it."""
    strategy: str
    num_replicas: int
    num_workers: int
    worker_index: int
    is_chief: bool
    platform: str
    devices: tuple

    def summary(self) -> str:
        per_worker = self.num_replicas // max(self.num_workers, 1)
        where = ", ".join(d.split("/")[-1].replace("device:", "") for d in self.devices)
        return (f"strategy {self.strategy}: {self.num_replicas} replica(s) on "
                f"{self.num_workers} worker(s) ({per_worker} per worker: {where}); this is "
                f"worker {self.worker_index}{' (chief)' if self.is_chief else ''}; "
                f"platform {self.platform}")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def strategy_name(strategy) -> str:
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "tpu"
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multi_worker"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    return "default"


def describe(strategy=None) -> ReplicaInfo:
    """Replicas, workers and platform of `strategy` (default: the current one)."""
    strategy = strategy or tf.distribute.get_strategy()
    name = strategy_name(strategy)
    num_workers, worker_index, is_chief = 1, 0, True
    resolver = getattr(strategy, "cluster_resolver", None)
    if name == "multi_worker" and resolver is not None:
        spec = resolver.cluster_spec().as_dict()
        num_workers = max(1, len(spec.get("worker", [])) + len(spec.get("chief", [])))
        task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
        if "chief" in spec:
            is_chief = task_type == "chief"
            worker_index = 0 if is_chief else task_id + 1
        else:
            is_chief = task_type in (None, "worker") and task_id == 0
            worker_index = task_id
    elif name == "tpu":
        num_workers = int(getattr(strategy.extended, "num_hosts", 1))
    try:
        devices = tuple(strategy.extended.worker_devices)
    except (AttributeError, RuntimeError):
        devices = ("/device:CPU:0",)
    joined = " ".join(devices).upper()
    platform = "TPU" if name == "tpu" or "TPU" in joined else (
        "GPU" if "GPU" in joined else "CPU")
    return ReplicaInfo(strategy=name, num_replicas=int(strategy.num_replicas_in_sync),
                       num_workers=num_workers, worker_index=worker_index, is_chief=is_chief,
                       platform=platform, devices=devices)


@dataclasses.dataclass(frozen=True)
class BatchPlan:
    """Global and per-replica batch, and the learning rate for that batch."""
    global_batch_size: int
    num_replicas: int
    per_replica_batch_size: int
    base_learning_rate: float
    reference_batch_size: int
    scaling: str
    learning_rate: float

    def summary(self) -> str:
        text = (f"global batch {self.global_batch_size} = {self.num_replicas} replica(s) x "
                f"{self.per_replica_batch_size}; learning rate {self.learning_rate:.6g}")
        if self.scaling == "none":
            return text + f" (lr_scaling=none: as configured)"
        factor = self.global_batch_size / self.reference_batch_size
        rule = "x" if self.scaling == "linear" else "x sqrt"
        return text + (f" = {self.base_learning_rate:.6g} {rule}({self.global_batch_size}/"
                       f"{self.reference_batch_size}) (lr_scaling={self.scaling}, "
                       f"factor {factor:.6g}{'' if self.scaling == 'linear' else ' before sqrt'})")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def batch_plan(global_batch_size: int, num_replicas: int, *, base_learning_rate: float,
               reference_batch_size: int = 0, scaling: str = "none",
               per_replica_batch_size: int = 0) -> BatchPlan:
    """Splits the global batch over replicas and scales the learning rate.

    Args:
      global_batch_size: examples per optimizer step over all replicas; ignored
        (may be 0) when `per_replica_batch_size` is given.
      num_replicas: `strategy.num_replicas_in_sync`.
      base_learning_rate: the learning rate for `reference_batch_size`.
      reference_batch_size: the batch the base rate was tuned for (0: the
        global batch, i.e. no change).
      scaling: "none", "linear" (lr x global/reference, Goyal et al. 2017) or
        "sqrt" (lr x sqrt(global/reference)).
      per_replica_batch_size: if > 0, the global batch is this times the
        number of replicas.

    Raises:
      ValueError: naming the values, for a global batch that does not divide
        by the number of replicas, non-positive sizes or an unknown rule.
    """
    if scaling not in LR_SCALING:
        raise ValueError(f"lr_scaling={scaling!r}; accepted: {', '.join(LR_SCALING)}")
    if num_replicas < 1:
        raise ValueError(f"num_replicas={num_replicas!r} must be >= 1")
    if per_replica_batch_size:
        if per_replica_batch_size < 1:
            raise ValueError(f"per_replica_batch_size={per_replica_batch_size!r} must be >= 1")
        global_batch_size = per_replica_batch_size * num_replicas
    if not isinstance(global_batch_size, int) or global_batch_size < 1:
        raise ValueError(f"batch_size={global_batch_size!r} must be a positive int "
                         "(the global batch over all replicas)")
    if global_batch_size % num_replicas:
        lower = global_batch_size - global_batch_size % num_replicas
        raise ValueError(
            f"batch_size={global_batch_size} (global) is not divisible by the "
            f"{num_replicas} replicas; use a multiple of {num_replicas}, e.g. "
            f"{lower or num_replicas} or {lower + num_replicas}, or set "
            "per_replica_batch_size")
    reference = reference_batch_size or global_batch_size
    if reference < 1:
        raise ValueError(f"lr_reference_batch_size={reference_batch_size!r} must be >= 0")
    factor = global_batch_size / reference
    lr = base_learning_rate * (factor if scaling == "linear" else
                               factor ** 0.5 if scaling == "sqrt" else 1.0)
    return BatchPlan(global_batch_size=global_batch_size, num_replicas=num_replicas,
                     per_replica_batch_size=global_batch_size // num_replicas,
                     base_learning_rate=float(base_learning_rate),
                     reference_batch_size=int(reference), scaling=scaling,
                     learning_rate=float(lr))


def resolve_precision(precision: str, platform: str) -> str:
    """The Keras dtype policy name for `precision` ("auto" picks by platform).

    "auto": "mixed_bfloat16" on TPU, "mixed_float16" on GPU (Keras then wraps
    the optimizer in a `LossScaleOptimizer` with dynamic loss scaling),
    "float32" on CPU.
    """
    key = _normalise(precision)
    aliases = {"fp32": "float32", "bfloat16": "mixed_bfloat16", "bf16": "mixed_bfloat16",
               "float16": "mixed_float16", "fp16": "mixed_float16"}
    key = aliases.get(key, key)
    if key not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; accepted: {', '.join(PRECISIONS)}")
    if key != "auto":
        return key
    return {"TPU": "mixed_bfloat16", "GPU": "mixed_float16"}.get(platform, "float32")


@contextlib.contextmanager
def dtype_policy(name: str):
    """Sets Keras's global dtype policy inside the block, restores it after.

    Layers keep the policy they were created with, so build the model inside.
    """
    import keras  # heavy import kept local
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def worker_directory(directory: str, info: ReplicaInfo) -> str:
    """Where this worker writes files every worker must write (checkpoints).

    With MultiWorkerMirroredStrategy every worker takes part in saving; the
    chief writes to `directory`, the others to a temporary sibling they
    delete afterwards (the pattern of the TF multi-worker guide).
    """
    if info.is_chief:
        return directory
    return os.path.join(directory, f".worker{info.worker_index}_tmp")
