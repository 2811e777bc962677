"""A whole run from a config: what tools/train.py, train_cifar10.py and
train_imagenet.py run, and what the recipes and the lottery build on.

`run(config, workdir)`:

1. where: the tf.distribute strategy, its replicas, the global batch and
   its learning-rate scaling, the precision (`tf_sparse.distribute`);
2. what: run.json is written, or checked against the run already in the
   workdir (`tf_sparse.runs.workdir`);
3. the data (`tf_sparse.runs.data`), the length in steps
   (`tf_sparse.runs.plan`), the model, optimizer and algorithm
   (`tf_sparse.runs.runner.build_session`);
4. training to the end, resuming from the last checkpoint
   (`tf_sparse.runs.runner.train`);
5. results.json: test metrics, the density report, FLOPs, and what the
   algorithm produced (AC/DC's co-trained dense model and mask drift).

Only the chief of a multi-worker run writes run.json, setup.json,
TensorBoard and results.json.

    workdir/run.json        kind and config
    workdir/setup.json      replicas, batch, learning rate, precision, steps
    workdir/checkpoints/    model, masks, optimizer slots, algorithm state
    workdir/tensorboard/    loss, accuracy, learning rate, densities, FLOPs
    workdir/diagnostics.json  under-training diagnostics (config.diagnostics)
    workdir/results.json    what the run measured at the end

Example:

    config = tf_sparse.runs.default_config("fashion_mnist")
    config.algorithm = "sparse_momentum"
    results = run(config, "runs/sm")
    print(final_report(results))
"""

import time

import keras
import numpy as np
import tensorflow as tf

from tf_sparse import algorithms
from tf_sparse import backend
from tf_sparse import diagnostics
from tf_sparse import distribute
from tf_sparse import flops
from tf_sparse import masking
from tf_sparse import saving
from tf_sparse import undertraining
from tf_sparse.runs import config as config_lib
from tf_sparse.runs import data as data_lib
from tf_sparse.runs import eager
from tf_sparse.runs import optimizer as optimizer_lib
from tf_sparse.runs import plan as plan_lib
from tf_sparse.runs import runner
from tf_sparse.runs import workdir as workdir_lib

# Errors the binaries report as one message, without a traceback (unless
# --verbosity >= 1; `tf_sparse.cli.run_main`): what the user gave and where
# the run lives, not bugs. ValueError: a config value, a flag, a file of the
# workdir (WorkdirError, WorkdirWriteError), a checkpoint
# (checkpoints.CheckpointError), a .keras file (saving.SavedModelError), a
# data set; OSError: a file that is missing or cannot be read or written;
# TensorFlow's errors for data it cannot read or find; no TPU; a feature
# the Keras backend cannot run (a strategy under JAX); a diverged run. Any
# other exception is a bug and keeps its traceback.
USER_ERRORS = (ValueError, OSError, distribute.TPUNotFoundError,
               backend.UnsupportedBackendError,
               tf.errors.InvalidArgumentError, tf.errors.DataLossError,
               tf.errors.NotFoundError, tf.errors.PermissionDeniedError,
               runner.Diverged)
EXPECTED_ERRORS = USER_ERRORS


def check_execution(config, info):
    """Fails early on settings that cannot run on `info`'s replicas."""
    if config.jit_compile and info.num_replicas > 1 and info.platform == "CPU":
        raise ValueError(
            "jit_compile=True with several CPU replicas fails in XLA "
            "(resources on another device); use jit_compile=False with this "
            "strategy")
    if config.steps_per_execution < 1:
        raise ValueError(f"steps_per_execution={config.steps_per_execution!r}"
                         " must be >= 1")
    eager.check(config, info)
    if config.eval_batch_size % info.num_replicas:
        raise ValueError(f"eval_batch_size={config.eval_batch_size} is not "
                         f"divisible by the {info.num_replicas} replicas")


class Prepared:
    """Strategy, batch, precision, data and plan of a run, before any model.

    Args:
      config: the run's config.
      strategy: a tf.distribute strategy (default: the current one).
      data: a data object to use instead of `config.dataset`'s.
      epochs: overrides the config's length (a recipe's pretraining).
    """

    def __init__(self, config, *, strategy=None, data=None, epochs=None):
        config_lib.check(config)
        self.config = config
        self.strategy = strategy or tf.distribute.get_strategy()
        self.info = distribute.describe(self.strategy)
        check_execution(config, self.info)
        self.batch = distribute.batch_plan(
            config.batch_size, self.info.num_replicas,
            base_learning_rate=config.learning_rate,
            reference_batch_size=config.lr_reference_batch_size,
            scaling=config.lr_scaling,
            per_replica_batch_size=config.per_replica_batch_size)
        self.policy = distribute.resolve_precision(config.precision,
                                                   self.info.platform)
        self.data = data or data_lib.make_data(
            config, self.batch.global_batch_size)
        if 0 < config.steps_per_epoch < self.data.steps_per_epoch:
            self.data.steps_per_epoch = config.steps_per_epoch
        self.plan = plan_lib.resolve(config, self.data.steps_per_epoch,
                                     epochs=epochs)

    def setup(self):
        """What run.json's neighbour setup.json records (and the log)."""
        data, plan, config = self.data, self.plan, self.config
        return {
            "replicas": self.info.as_dict(), "batch": self.batch.as_dict(),
            "precision": self.policy,
            "data": {"dataset": config.dataset,
                     "train_examples": data.num_train,
                     "test_examples": data.num_test,
                     "input_shape": list(data.input_shape),
                     "num_classes": data.num_classes},
            "steps_per_epoch": plan.steps_per_epoch, "epochs": plan.epochs,
            "total_steps": plan.total_steps,
            "learning_rate_schedule": optimizer_lib.learning_rate(
                config, plan, self.batch.learning_rate).get_config(),
            "steps_per_execution": config.steps_per_execution,
            "sync_batch_norm": bool(config.sync_batch_norm
                                    and self.info.num_replicas > 1),
        }

    def log_lines(self):
        auto = self.config.precision == "auto"
        return [self.info.summary(), self.batch.summary(),
                f"precision {self.policy} "
                f"({'auto on ' + self.info.platform if auto else 'configured'}"
                f"); data {self.config.dataset}: {self.data.num_train} "
                f"training examples {tuple(self.data.input_shape)}, "
                f"{self.data.num_classes} classes",
                plan_lib.describe(self.plan, self.config.steps_per_execution)
                + f"; lr schedule {self.config.lr_schedule}"]

    def build_session(self, **kwargs):
        return runner.build_session(
            self.config, self.plan, self.data, strategy=self.strategy,
            info=self.info, policy=self.policy,
            learning_rate=self.batch.learning_rate, **kwargs)

    def evaluation_set(self):
        """The evaluation split; on a TPU without its last partial batch
        (TPUs need full batches)."""
        dataset = self.data.test()
        num_test = self.data.num_test
        if (self.info.platform == "TPU"
                and num_test % self.config.eval_batch_size):
            dataset = dataset.take(num_test // self.config.eval_batch_size)
        return dataset


def _eval_batch(arrays, n):
    x, y = arrays
    return x[:n], y[:n]


def diagnostics_callback(config, data, workdir):
    """`UndertrainingDiagnostics` on the run's fixed subsets: the training
    subset of `train_eval_examples`, the validation split (else the test
    set), and its first `entropy_examples` for the entropy."""
    if hasattr(data, "evaluation_arrays"):
        evaluation = data.evaluation_arrays()
        train_eval = data.train_eval_arrays(config.train_eval_examples,
                                            config.seed)
        eval_batch = _eval_batch(evaluation, config.entropy_examples)
    else:
        evaluation = data.evaluation()
        train_eval = data.train_eval(config.train_eval_examples, config.seed)
        x, y = next(iter(evaluation))
        eval_batch = (np.asarray(x), np.asarray(y))
    return undertraining.UndertrainingDiagnostics(
        eval_batch=eval_batch, validation_data=evaluation,
        train_eval_data=train_eval, batch_size=config.eval_batch_size,
        path=workdir.file("diagnostics.json"))


def algorithm_results(session, workdir, evaluation):
    """What an algorithm produced besides the masks (AC/DC: the mask drift,
    and the sparse and the co-trained dense model, saved and evaluated)."""
    algorithm = session.algorithm
    if not isinstance(algorithm, algorithms.ACDC):
        return {}
    sparse_path = workdir.file("sparse.keras")
    dense_path = workdir.file("dense_cotrained.keras")
    saving.save_model(session.core, sparse_path)
    dense = algorithm.dense_model()
    dense.save(dense_path)
    dense.compile(loss=session.loss, metrics=["accuracy"])
    scores = dense.evaluate(evaluation, verbose=0, return_dict=True)
    return {"mask_drift": algorithm.mask_drift(),
            "dense_cotrained_test_loss": float(scores["loss"]),
            "dense_cotrained_test_accuracy": float(scores["accuracy"]),
            "dense_cotrained_step": int(keras.ops.convert_to_numpy(
                algorithm.snapshot_step))}


def flops_results(session, steps, batch_size):
    """Training and inference FLOPs at the final masks (no rule: {})."""
    try:
        counted = flops.training_flops(session.core, session.algorithm)
    except ValueError:
        return {}
    out = counted.as_dict()
    out["train_total_sparse"] = counted.train_sparse * steps * batch_size
    out["train_total_dense"] = counted.train_dense * steps * batch_size
    return {"flops": out}


def results_of(prepared, session, trained, workdir, *, seconds,
               diagnostics_history=None):
    """The results dict of a finished (or stopped) run."""
    config = prepared.config
    evaluation = prepared.evaluation_set()
    scores = runner.evaluate(session, evaluation, steps=config.eval_steps)
    steps = session.iterations
    results = {
        "test_loss": scores["loss"],
        "test_accuracy": scores.get("accuracy", float("nan")),
        "steps": steps, "batches": trained.position,
        "steps_run": trained.steps_run, "epochs": prepared.plan.epochs,
        "epochs_done": trained.position // prepared.plan.steps_per_epoch,
        "finished": trained.position >= prepared.plan.total_steps,
        "seconds": seconds, "setup": prepared.setup(),
        "config": config_lib.plain(config),
        "provenance": workdir_lib.provenance(),
        **diagnostics.report(session.core).as_dict(),
        "summary": diagnostics.summary(session.core,
                                       algorithm=session.algorithm),
    }
    if "top5_accuracy" in scores:
        results["test_top5_accuracy"] = scores["top5_accuracy"]
    if trained.diverged:
        results["diverged"] = trained.diverged
    images, _ = next(iter(evaluation))
    collapsed = runner.collapse_report(session.core, images)
    if collapsed:
        results["collapsed"] = collapsed
    if diagnostics_history is not None:
        results["history"] = diagnostics_history
    if session.algorithm is not None:
        results.update(flops_results(session, steps,
                                     prepared.batch.global_batch_size))
    if results["finished"] and prepared.info.is_chief:
        results.update(algorithm_results(session, workdir, evaluation))
    return results


def save_network(session, path):
    """The trained network as a .keras file (masks included when sparse)."""
    if masking.is_sparse(session.core):
        saving.save_model(session.core, path)
    else:
        session.core.save(path)


def run(config, workdir, *, strategy=None, data=None, model_fn=None,
        verbose=1, kind="train", identity=None, epochs=None, model_file=None):
    """Trains (or resumes) the configured run in `workdir`; returns results.

    Args:
      config: a run config (`tf_sparse.runs.default_config`).
      workdir: the run's folder.
      strategy: a tf.distribute strategy (default: the current one).
      data: a data object instead of `config.dataset`'s.
      model_fn: builds the dense network instead of the zoo model.
      verbose: Keras fit verbosity; progress lines when > 0.
      kind: the kind recorded in run.json ("train", "pretrain", ...).
      identity: keys that define the run (default: the schema's).
      epochs: overrides the config's length.
      model_file: once training is finished, the network is saved there
        (.keras, masks included when sparse).
    """
    started = time.time()
    wd = workdir_lib.Workdir(workdir)
    # Everything that can refuse the config runs before anything is written.
    prepared = Prepared(config, strategy=strategy, data=data, epochs=epochs)
    info = prepared.info
    if identity is None:
        identity = config_lib.identity_names(config_lib.TRAINING)
    wd.check(config, identity, kind=kind, write=False)
    session = prepared.build_session(model_fn=model_fn)
    wd.check(config, identity, kind=kind, write=info.is_chief)
    if info.is_chief:
        lines = prepared.log_lines()
        if verbose:
            print("\n".join(lines), flush=True)
        wd.write_json("setup.json", {**prepared.setup(), "log": lines})
    callbacks = []
    diag = None
    if config.diagnostics:
        diag = diagnostics_callback(config, prepared.data, wd)
        callbacks.append(diag)
    if info.is_chief:
        callbacks += runner.summaries(
            session, wd.tensorboard,
            batch_size=prepared.batch.global_batch_size,
            log_every_steps=config.log_every_steps)
    trained = runner.train(
        session, prepared.data, workdir, data_seed=runner.data_seed(config),
        end_step=prepared.plan.total_steps,
        stop_step=prepared.plan.stop_step, callbacks=callbacks,
        validation=prepared.data.evaluation(),
        eval_every_epochs=config.eval_every_epochs,
        checkpoint_every_steps=config.checkpoint_every_steps,
        keep_checkpoints=config.keep_checkpoints, verbose=verbose,
        label=workdir, divergence_factor=config.divergence_factor,
        loss_floor=runner.chance_loss(prepared.data.num_classes))
    results = results_of(prepared, session, trained, wd,
                         seconds=time.time() - started,
                         diagnostics_history=diag.history if diag else None)
    if info.is_chief:
        if model_file and results["finished"]:
            save_network(session, model_file)
        wd.write_json("results.json", results)
    return results


def launch(config, workdir, *, strategy="default", tpu="", cpu_devices=0,
           verbose=1, datasets=None):
    """What the binaries run: device set-up, strategy, then `run`.

    `cpu_devices` > 0 splits the CPU into that many logical devices first
    (to try mirrored training without GPUs). `datasets`: the data sets this
    binary trains on (another is an error naming it). A damaged ImageNet
    shard is named by re-reading the shards when training fails with a
    DataLossError.
    """
    if datasets and config.dataset not in datasets:
        raise ValueError(
            f"config.dataset={config.dataset!r}, but this binary trains on "
            f"{' or '.join(map(repr, datasets))}; use the other binary or "
            "another config")
    if cpu_devices:
        backend.require_tensorflow(
            f"--cpu_devices={cpu_devices} (logical CPU devices for "
            "tf.distribute)", "Leave it out: under this backend the run "
            "trains on one device.")
        distribute.split_cpu(cpu_devices)
    strategy_obj = distribute.create_strategy(strategy, tpu=tpu)
    try:
        return run(config, workdir, strategy=strategy_obj, verbose=verbose)
    except tf.errors.DataLossError:
        if config.dataset == "imagenet" and config.data_dir:
            from tf_sparse.data import imagenet
            for split in imagenet.SPLITS:
                imagenet.verify_tfrecord_files(imagenet.find_tfrecord_shards(
                    config.data_dir, split, require_all=False))
        raise


def final_report(results):
    """The text the binaries print at the end."""
    top5 = (f"  top-5: {results['test_top5_accuracy']:.4f}"
            if "test_top5_accuracy" in results else "")
    return (f"{results['summary']}\n"
            f"test accuracy: {results['test_accuracy']:.4f}{top5}  test "
            f"loss: {results['test_loss']:.4f}  density: "
            f"{results['density']:.4f} ({results['total_nonzeros']} of "
            f"{results['total_size']} weights)  steps: {results['steps']}"
            + flops.final_report_line(results.get("flops"))
            + (f"\nWARNING: {results['collapsed']['message']}"
               if "collapsed" in results else ""))
