"""A resumable sparse training run driven by a config: what `tools/train.py` runs.

A run lives in a workdir:

    workdir/run.json        the config the run was started with
    workdir/checkpoints/    model, masks, optimizer slots, step
    workdir/tensorboard/    loss, accuracy, learning rate, densities
    workdir/results.json    test metrics and the density report at the end

Started again on the same workdir, a run continues from its last checkpoint
(every epoch, or every `checkpoint_every_steps` steps), mid-epoch included;
the data order of every epoch depends only on (seed, epoch) (see
`tf_sparse.data.pipelines`), so a resumed run sees exactly the batches the
uninterrupted run would have seen.
A workdir holding a run with another model, data set or sparsity is refused.

Example:

    from configs.fashion_mnist import lenet300_static as cfg
    results = run(cfg.get_config(), "runs/static")
    print(results["test_accuracy"])
"""

import json
import os

import keras
import numpy as np

from tf_sparse import algorithms
from tf_sparse import callbacks
from tf_sparse import checkpoints
from tf_sparse import diagnostics
from tf_sparse import distillation
from tf_sparse import flops
from tf_sparse import sparsification
from tf_sparse import models as models_lib
from tf_sparse import schedules
from tf_sparse import undertraining
from tf_sparse.data import fashion_mnist
from tf_sparse.data import pipelines

# Keys that define what a run *is*; resuming with another value is refused.
IDENTITY_KEYS = ("model", "dataset", "sparsity", "distribution", "keep_dense",
                 "rescale_init", "algorithm", "algorithm_params", "seed",
                 "batch_size",
                 "optimizer", "algorithm_kwargs", "train_multiplier",
                 "teacher")

# Gradual pruning (issue 5): the model starts dense (all-ones masks) and
# `sparsity` is the algorithm's target; configured by `algorithm_kwargs`.
GRADUAL = {"gmp": "final_sparsity", "acdc": "sparsity"}


def default_config():
    """Every key a training config may set, with its default.

    Config files in configs/ start from this and change what they need; a key
    that is not here is an error (the ConfigDict is locked).
    """
    import ml_collections  # Only needed by config users.
    c = ml_collections.ConfigDict()
    c.model = "lenet300_100"
    c.dataset = "fashion_mnist"
    c.data_dir = ""            # "" searches the default places.
    c.seed = 17
    c.epochs = 20
    c.batch_size = 100
    c.steps_per_epoch = 0      # 0: the whole training set every epoch.
    c.checkpoint_every_steps = 0   # 0: checkpoint at the end of each epoch.
    # Optimizer (sparse momentum's MNIST defaults: Nesterov SGD 0.1, wd 5e-4).
    c.optimizer = "sgd"
    c.learning_rate = 0.1
    c.momentum = 0.9
    c.nesterov = True
    c.weight_decay = 5e-4
    c.lr_decay_at = (0.5, 0.75)   # fractions of training
    c.lr_decay_factor = 0.1
    # Sparsity.
    c.sparsity = 0.95
    c.distribution = "uniform"
    c.keep_dense = ()
    c.rescale_init = False     # scale kept weights by 1/sqrt(layer density)
    c.algorithm = "static"
    # Mask-update hyperparameters (tf_sparse.algorithms.from_params); None
    # takes the algorithm's own (paper's) default.
    c.algorithm_params = ml_collections.ConfigDict(
        dict.fromkeys(algorithms.CONFIG_PARAMS))
    # GMP / AC/DC: constructor arguments (tf_sparse/algorithms/gmp.py,
    # acdc.py), positions as fractions of training; the target is `sparsity`.
    c.algorithm_kwargs = ml_collections.ConfigDict()
    # Train epochs * train_multiplier epochs; every schedule position is a
    # fraction of training, so learning rate and masks stretch together.
    c.train_multiplier = 1.0
    # Distillation from a dense teacher (.keras file; "" = none).
    c.teacher = ""
    c.distill_alpha = 0.5
    c.distill_temperature = 4.0
    # Under-training diagnostics each epoch -> workdir/diagnostics.json
    # (validation loss and entropy on the test set; no split here).
    c.diagnostics = False
    # Execution.
    c.steps_per_execution = 1
    c.jit_compile = False
    c.lock()
    return c


class RunMismatchError(ValueError):
    """The workdir holds a run that differs from the requested one."""


def _plain(value):
    if hasattr(value, "to_dict"):
        return {k: _plain(v) for k, v in value.to_dict().items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def check_workdir(config, workdir):
    """Writes run.json for a new run, or checks it matches an existing one."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "run.json")
    current = _plain(config)
    if os.path.exists(path):
        with open(path) as f:
            previous = json.load(f)
        for key in IDENTITY_KEYS:
            if previous.get(key) != current.get(key):
                raise RunMismatchError(
                    f"Workdir {workdir} holds a run with {key}="
                    f"{previous.get(key)!r}, but this config has {key}="
                    f"{current.get(key)!r}. Use another --workdir; nothing was "
                    "changed in this one.")
        return False
    with open(path, "w") as f:
        json.dump(current, f, indent=2, sort_keys=True)
    return True


def load_arrays(config):
    """Train and test arrays (uint8 images, int32 labels) of a data set."""
    if config.dataset != "fashion_mnist":
        raise ValueError(
            f"Unknown dataset {config.dataset!r} for tools/train.py; accepted: "
            "fashion_mnist (CIFAR-10 and ImageNet have their own binaries).")
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_fashion_mnist(
        config.data_dir or None)
    return ((x_train, y_train.astype(np.int32)),
            (x_test, y_test.astype(np.int32)))


def learning_rate(config, total_steps):
    """Step decay: x`lr_decay_factor` at each fraction in `lr_decay_at`."""
    if not config.lr_decay_at:
        return config.learning_rate
    return schedules.StepDecayLR(
        config.learning_rate, boundaries=tuple(config.lr_decay_at),
        factor=config.lr_decay_factor, total_steps=total_steps)


def make_optimizer(config, total_steps):
    lr = learning_rate(config, total_steps)
    name = config.optimizer
    if name == "sgd":
        return keras.optimizers.SGD(lr, momentum=config.momentum,
                                    nesterov=config.nesterov,
                                    weight_decay=config.weight_decay or None)
    if name == "adam":
        return keras.optimizers.Adam(lr)
    if name == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay)
    raise ValueError(
        f"Unknown optimizer {name!r}; accepted: sgd, adam, adamw.")


def build_model(config, input_shape, num_classes, init_masks=None):
    """The configured model, sparsified; `init_masks(dense_model)` may give
    the masks (SNIP prunes the dense initialisation)."""
    keras.utils.set_random_seed(config.seed)
    model = models_lib.get_model(config.model, num_classes=num_classes,
                                 input_shape=input_shape)
    return sparsification.sparsify(
        model, sparsity=0.0 if config.algorithm in GRADUAL else
        config.sparsity, distribution=config.distribution,
        keep_dense=list(config.keep_dense), seed=config.seed,
        rescale_weights=config.rescale_init,
        masks=init_masks(model) if init_masks else None)


def build_algorithm(config, steps_per_epoch, total_steps):
    """`config.algorithm` with `config.algorithm_params` for this run."""
    if config.algorithm in GRADUAL:
        kwargs = dict(config.algorithm_kwargs.to_dict())
        kwargs.setdefault(GRADUAL[config.algorithm], config.sparsity)
        kwargs.setdefault("total_steps", total_steps)
        return algorithms.get(config.algorithm, **kwargs)
    return algorithms.from_params(
        config.algorithm, config.algorithm_params.to_dict(),
        steps_per_epoch=steps_per_epoch, total_steps=total_steps,
        seed=config.seed)


def total_epochs(config):
    """`epochs * train_multiplier`, which must be a whole number."""
    epochs = config.epochs * config.train_multiplier
    if abs(epochs - round(epochs)) > 1e-9 or round(epochs) < 1:
        raise ValueError(
            f"epochs * train_multiplier = {config.epochs} * "
            f"{config.train_multiplier} = {epochs} must be a whole number >= 1.")
    return int(round(epochs))


def run(config, workdir, verbose=1):
    """Trains (or resumes) the configured run in `workdir`; returns results."""
    check_workdir(config, workdir)
    (x_train, y_train), (x_test, y_test) = load_arrays(config)
    steps_per_epoch = len(x_train) // config.batch_size
    if config.steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, config.steps_per_epoch)
    epochs = total_epochs(config)
    total_steps = steps_per_epoch * epochs
    num_classes = int(max(y_train.max(), y_test.max())) + 1

    # scale_grayscale adds the channel axis: (28, 28) images -> (28, 28, 1).
    algorithm = build_algorithm(config, steps_per_epoch, total_steps)
    init_masks = None
    if getattr(algorithm, "prunes_at_init", False):
        # SNIP: masks from one batch (the run's first) on the dense init.
        batch = next(iter(pipelines.from_arrays(
            x_train, y_train, algorithm.batch_size or config.batch_size,
            training=True, seed=config.seed,
            preprocess=pipelines.scale_grayscale())))

        def init_masks(dense):
            return algorithm.initial_masks(
                dense, batch, keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True), config.sparsity,
                keep_dense=list(config.keep_dense))
    model = student = build_model(config, x_train.shape[1:] + (1,),
                                  num_classes, init_masks=init_masks)
    if config.teacher:
        model = distillation.Distiller(
            student, keras.saving.load_model(config.teacher),
            temperature=config.distill_temperature, alpha=config.distill_alpha)
    model.compile(optimizer=make_optimizer(config, total_steps),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True),
                  metrics=["accuracy"],
                  steps_per_execution=config.steps_per_execution,
                  jit_compile=config.jit_compile)
    mask_update = callbacks.MaskUpdate(algorithm)
    mask_update.set_model(model)
    ckpt = checkpoints.TrainingCheckpoint(
        os.path.join(workdir, "checkpoints"), model, algorithm)
    ckpt.restore()
    done = int(model.optimizer.iterations.numpy())
    if verbose and done:
        print(f"Resuming {workdir} at step {done} (epoch "
              f"{done // steps_per_epoch + 1}, batch "
              f"{done % steps_per_epoch + 1}).")
    fit_callbacks = [mask_update,
                     callbacks.MaskUpdateSummaries(
                         os.path.join(workdir, "tensorboard"), algorithm),
                     callbacks.SparsitySummaries(
                         os.path.join(workdir, "tensorboard")),
                     flops.FlopsSummaries(
                         os.path.join(workdir, "tensorboard"), algorithm,
                         batch_size=config.batch_size),
                     callbacks.SaveCheckpoint(
                         ckpt, every_steps=config.checkpoint_every_steps)]
    if config.diagnostics:
        x_eval, y_eval = pipelines.scale_grayscale()(x_test, y_test)
        x_eval, y_eval = x_eval.numpy(), y_eval
        fit_callbacks.append(undertraining.UndertrainingDiagnostics(
            eval_batch=(x_eval[:1000], y_eval[:1000]),
            validation_data=(x_eval, y_eval),
            train_eval_data=pipelines.scale_grayscale()(
                x_train[:5000], y_train[:5000]),
            path=os.path.join(workdir, "diagnostics.json")))

    def stream(first_epoch):
        return pipelines.from_arrays(
            x_train, y_train, config.batch_size, training=True,
            seed=config.seed, preprocess=pipelines.scale_grayscale(),
            repeat=True, start_epoch=first_epoch,
            max_batches_per_epoch=steps_per_epoch)

    start_epoch, offset = divmod(done, steps_per_epoch)
    if offset and start_epoch < epochs:
        # Killed mid-epoch: finish that epoch from the next unseen batch.
        model.fit(stream(start_epoch).skip(offset), epochs=start_epoch + 1,
                  initial_epoch=start_epoch, shuffle=False,
                  steps_per_epoch=steps_per_epoch - offset, verbose=verbose,
                  callbacks=fit_callbacks)
        start_epoch += 1
    if start_epoch < epochs:
        model.fit(stream(start_epoch), epochs=epochs,
                  initial_epoch=start_epoch, shuffle=False,
                  steps_per_epoch=steps_per_epoch, verbose=verbose,
                  callbacks=fit_callbacks)
    test_loss, test_accuracy = model.evaluate(
        pipelines.from_arrays(x_test, y_test, 1000, training=False,
                              preprocess=pipelines.scale_grayscale()),
        verbose=0)
    rep = diagnostics.report(student)
    results = {"test_loss": float(test_loss),
               "test_accuracy": float(test_accuracy),
               "steps": int(model.optimizer.iterations.numpy()),
               "epochs": epochs, **rep.as_dict(),
               "summary": diagnostics.summary(student, algorithm=algorithm)}
    if hasattr(algorithm, "mask_drift"):   # AC/DC: drift, both models
        results["mask_drift"] = algorithm.mask_drift()
        algorithm.save_models(os.path.join(workdir, "sparse.keras"),
                              os.path.join(workdir, "dense_cotrained.keras"))
    try:
        counted = flops.training_flops(student, algorithm)
        results["flops"] = counted.as_dict()
        results["flops"]["train_total_sparse"] = (
            counted.train_sparse * results["steps"] * config.batch_size)
        results["flops"]["train_total_dense"] = (
            counted.train_dense * results["steps"] * config.batch_size)
    except ValueError:  # No counting rule for this algorithm: not counted.
        pass
    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    return results


def final_report(results):
    """The text the CLI prints at the end: density table and test metrics."""
    return (f"{results['summary']}\n"
            f"test accuracy: {results['test_accuracy']:.4f}  test loss: "
            f"{results['test_loss']:.4f}  density: {results['density']:.4f} "
            f"({results['total_nonzeros']} of {results['total_size']} "
            "weights)" + flops.final_report_line(results.get("flops")))
