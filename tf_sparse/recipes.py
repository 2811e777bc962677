"""Sparsity-aware recipes: (dense pretraining ->) pruning with GMP or AC/DC,
stretched schedules, distillation and under-training diagnostics.

One run, driven by a config from `default_config()` (configs/recipes/):

1. optional dense pretraining (`pretrain_epochs`), saved to
   `pretrained_path` (or `workdir/pretrained.keras`) and reused when that
   file exists; it is the starting point and, with `teacher="pretrained"`,
   the distillation teacher (sparse fine-tuning);
2. the main stage: `epochs * train_multiplier` epochs with algorithm
   "dense", "static", "gmp" or "acdc". Every position in training (learning
   rate warm-up and decay, GMP window and cadence, AC/DC phases) is a
   fraction of the stage, so `train_multiplier=2` stretches all of them
   together; `UndertrainingDiagnostics` records the per-epoch curves;
3. `workdir/results.json`: test metrics, density, the diagnostics history,
   and for AC/DC the mask drift and the co-trained dense model's accuracy
   (both models saved as `.keras`).

Data: "fashion_mnist" (IDX files, see `tf_sparse.data.fashion_mnist`) or
"glue/sst2" (tfds, `download=False`; see `tf_sparse.data.glue`). A held-out
part of the training set is the validation data; a fixed training subset
measures the training loss in inference mode; a fixed validation batch gives
the predictive entropy.

A finished run (results.json present) is returned as it is; a run is not
resumed mid-stage (`tools/train.py` does that for single-stage runs).

Example:

    from configs.recipes import vit_gmp_kd
    results = run(vit_gmp_kd.get_config(), "runs/vit_gmp")
"""

import json
import os
import time

import keras
import numpy as np

from tf_sparse import algorithms
from tf_sparse import callbacks
from tf_sparse import diagnostics
from tf_sparse import distillation
from tf_sparse import schedules
from tf_sparse import sparsification
from tf_sparse import undertraining
from tf_sparse import models as models_lib
from tf_sparse.algorithms import acdc as acdc_lib
from tf_sparse.data import pipelines

ALGORITHMS = ("dense", "static", "gmp", "acdc")


def default_config():
    """Every key a recipe config may set, with its default (locked)."""
    import ml_collections
    c = ml_collections.ConfigDict()
    c.model = "lenet5_caffe"
    c.model_kwargs = ml_collections.ConfigDict()
    c.dataset = "fashion_mnist"      # or "glue/sst2"
    c.data_dir = ""
    c.vocab_size = 20000             # glue/sst2 only
    c.sequence_length = 64           # glue/sst2 only
    c.validation_fraction = 0.1      # held out of the training set
    c.train_eval_examples = 5000     # fixed training subset for train loss
    c.entropy_examples = 1000        # fixed validation batch for entropy
    c.seed = 0
    c.batch_size = 100
    c.epochs = 2                     # main stage length at 1x
    c.train_multiplier = 1.0         # stretches the main stage
    c.steps_per_epoch = 0            # 0: the whole training part
    # Optimizer and learning rate (positions are fractions of the stage).
    c.optimizer = "sgd"              # sgd, adam, adamw
    c.learning_rate = 0.05
    c.momentum = 0.9
    c.nesterov = True
    c.weight_decay = 5e-4
    c.lr_schedule = "cosine"         # cosine, step, constant
    c.warmup = 0.0
    c.lr_decay_at = (0.5, 0.75)      # step schedule only
    # Sparsity.
    c.algorithm = "gmp"              # dense, static, gmp, acdc
    c.sparsity = 0.9
    c.prune = ()                     # layer patterns to prune; () = all
    c.keep_dense = ()                # with prune=(): layers left dense
    c.scope = "global"               # global or layerwise ranking
    c.gmp = ml_collections.ConfigDict(dict(
        initial_sparsity=0.0, begin=0.0, end=0.7, frequency=0.05,
        schedule="cubic"))
    c.acdc = ml_collections.ConfigDict(dict(
        warmup=0.1, phase_length=0.1, end_sparse=0.2, tail="dense",
        reset_momentum=True))
    # Dense pretraining and distillation.
    c.pretrain_epochs = 0
    c.pretrain_learning_rate = 0.0   # 0: learning_rate
    c.pretrained_path = ""           # "": workdir/pretrained.keras
    c.teacher = ""                   # "", "pretrained" or a .keras path
    c.distill_alpha = 0.5
    c.distill_temperature = 4.0
    c.verbose = 0
    c.lock()
    return c


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def load_data(config):
    """`dict(train, val, test, input_shape, num_classes, preprocess)` arrays."""
    if config.dataset == "fashion_mnist":
        from tf_sparse.data import fashion_mnist
        (x, y), (x_test, y_test) = fashion_mnist.load_fashion_mnist(
            config.data_dir or None)
        preprocess = pipelines.scale_grayscale()
        input_shape, num_classes = (28, 28, 1), 10
    elif config.dataset == "glue/sst2":
        from tf_sparse.data import glue
        data = glue.load_sst2(config.data_dir or None)
        vectorizer = glue.make_vectorizer(data["train"][0], config.vocab_size,
                                          config.sequence_length)
        x, y = glue.tokenize(vectorizer, data["train"][0]), data["train"][1]
        x_test = glue.tokenize(vectorizer, data["validation"][0])
        y_test = data["validation"][1]
        preprocess = None
        input_shape, num_classes = (config.sequence_length,), 2
    else:
        raise ValueError(
            f"Unknown dataset {config.dataset!r}; accepted: fashion_mnist, "
            "glue/sst2.")
    y, y_test = np.asarray(y, np.int32), np.asarray(y_test, np.int32)
    (x_train, y_train), (x_val, y_val) = pipelines.split_validation(
        x, y, config.validation_fraction, config.seed)
    return dict(train=(x_train, y_train), val=(x_val, y_val),
                test=(x_test, y_test), input_shape=input_shape,
                num_classes=num_classes, preprocess=preprocess)


def _prepared(arrays, preprocess):
    x, y = arrays
    if preprocess is None:
        return np.asarray(x), np.asarray(y)
    px, py = preprocess(x, y)
    return keras.ops.convert_to_numpy(px), keras.ops.convert_to_numpy(py)


# --------------------------------------------------------------------------
# Pieces
# --------------------------------------------------------------------------


def _optimizer(config, total_steps, learning_rate):
    if config.lr_schedule == "cosine":
        lr = schedules.WarmupCosineLR(learning_rate, warmup=config.warmup,
                                      total_steps=total_steps)
    elif config.lr_schedule == "step":
        lr = schedules.StepDecayLR(learning_rate,
                                   boundaries=tuple(config.lr_decay_at),
                                   warmup=config.warmup,
                                   total_steps=total_steps)
    elif config.lr_schedule == "constant":
        lr = schedules.WarmupConstantLR(learning_rate, warmup=config.warmup,
                                        total_steps=total_steps)
    else:
        raise ValueError(f"Unknown lr_schedule {config.lr_schedule!r}; "
                         "accepted: cosine, step, constant.")
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=config.momentum,
                                    nesterov=config.nesterov,
                                    weight_decay=config.weight_decay or None)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(lr)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay)
    raise ValueError(f"Unknown optimizer {config.optimizer!r}; accepted: "
                     "sgd, adam, adamw.")


def _build(config, data):
    keras.utils.set_random_seed(config.seed)
    kwargs = dict(config.model_kwargs.to_dict()) if hasattr(
        config.model_kwargs, "to_dict") else dict(config.model_kwargs)
    if config.model == "bert_encoder":
        from tf_sparse.models import transformer
        return transformer.bert_encoder(
            vocab_size=config.vocab_size,
            sequence_length=data["input_shape"][0],
            num_classes=data["num_classes"], **kwargs)
    return models_lib.get_model(config.model, num_classes=data["num_classes"],
                                input_shape=data["input_shape"], **kwargs)


def stage_steps(config, num_train):
    """(steps per epoch, epochs, total steps) of the main stage."""
    per_epoch = num_train // config.batch_size
    if config.steps_per_epoch:
        per_epoch = min(per_epoch, config.steps_per_epoch)
    epochs = config.epochs * config.train_multiplier
    if abs(epochs - round(epochs)) > 1e-9 or round(epochs) < 1:
        raise ValueError(
            f"epochs * train_multiplier = {config.epochs} * "
            f"{config.train_multiplier} = {epochs} must be a whole number >= 1.")
    epochs = int(round(epochs))
    return per_epoch, epochs, per_epoch * epochs


def make_algorithm(config, total_steps):
    """The configured algorithm for a stage of `total_steps` (None: dense)."""
    if config.algorithm not in ALGORITHMS:
        raise ValueError(f"Unknown algorithm {config.algorithm!r}; accepted: "
                         f"{', '.join(ALGORITHMS)}.")
    if config.algorithm == "dense":
        return None
    if config.algorithm == "static":
        return algorithms.get("static")
    if config.algorithm == "gmp":
        g = config.gmp
        return algorithms.get(
            "gmp", final_sparsity=config.sparsity,
            initial_sparsity=g.initial_sparsity, begin=g.begin, end=g.end,
            frequency=g.frequency, schedule=g.schedule, scope=config.scope,
            total_steps=total_steps, final_update=True)
    a = config.acdc
    return algorithms.get(
        "acdc", sparsity=config.sparsity, warmup=a.warmup,
        phase_length=a.phase_length, end_sparse=a.end_sparse, tail=a.tail,
        reset_momentum=a.reset_momentum, scope=config.scope,
        total_steps=total_steps)


def apply_masks_for(config, model):
    """Attaches the masks the algorithm starts from (none for dense)."""
    if config.algorithm == "dense":
        return model
    start = config.sparsity if config.algorithm == "static" else 0.0
    if config.prune:
        return sparsification.sparsify(
            model, sparsity={p: start for p in config.prune}, seed=config.seed)
    return sparsification.sparsify(model, sparsity=start,
                                   keep_dense=list(config.keep_dense),
                                   seed=config.seed)


def _fit(model, config, arrays, preprocess, per_epoch, epochs, fit_callbacks):
    x, y = arrays
    train = pipelines.from_arrays(x, y, config.batch_size, training=True,
                                  seed=config.seed, preprocess=preprocess,
                                  repeat=True, max_batches_per_epoch=per_epoch)
    return model.fit(train, epochs=epochs, steps_per_epoch=per_epoch,
                     shuffle=False, verbose=config.verbose,
                     callbacks=fit_callbacks)


def _evaluate(model, arrays, preprocess):
    x, y = arrays
    ds = pipelines.from_arrays(x, y, 1000, training=False,
                               preprocess=preprocess)
    loss, accuracy = model.evaluate(ds, verbose=0)
    return float(loss), float(accuracy)


def _compile(model, optimizer):
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True),
                  metrics=["accuracy"])


def pretrain(config, data, path):
    """Dense pretraining (reused if `path` exists); returns the model."""
    if os.path.exists(path):
        return keras.saving.load_model(path)
    model = _build(config, data)
    per_epoch = len(data["train"][1]) // config.batch_size
    if config.steps_per_epoch:
        per_epoch = min(per_epoch, config.steps_per_epoch)
    total = per_epoch * config.pretrain_epochs
    _compile(model, _optimizer(config, total, config.pretrain_learning_rate
                               or config.learning_rate))
    _fit(model, config, data["train"], data["preprocess"], per_epoch,
         config.pretrain_epochs, [])
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    model.save(path)
    return model


def run(config, workdir, data=None):
    """Runs (or returns the finished) recipe in `workdir`; returns results."""
    os.makedirs(workdir, exist_ok=True)
    done = os.path.join(workdir, "results.json")
    if os.path.exists(done):
        with open(done) as f:
            return json.load(f)
    started = time.time()
    data = data or load_data(config)
    per_epoch, epochs, total = stage_steps(config, len(data["train"][1]))
    algorithm = make_algorithm(config, total)

    teacher = None
    if config.pretrain_epochs:
        path = config.pretrained_path or os.path.join(workdir,
                                                      "pretrained.keras")
        pretrained = pretrain(config, data, path)
        model = _build(config, data)
        model.set_weights(pretrained.get_weights())
        if config.teacher == "pretrained":
            teacher = pretrained
    else:
        model = _build(config, data)
        if config.teacher == "pretrained":
            raise ValueError('teacher="pretrained" needs pretrain_epochs > 0.')
    if config.teacher and config.teacher != "pretrained":
        teacher = keras.saving.load_model(config.teacher)

    model = apply_masks_for(config, model)
    trained = model
    if teacher is not None:
        trained = distillation.Distiller(
            model, teacher, temperature=config.distill_temperature,
            alpha=config.distill_alpha)
    _compile(trained, _optimizer(config, total, config.learning_rate))

    preprocess = data["preprocess"]
    val = _prepared(data["val"], preprocess)
    x_tr, y_tr = data["train"]
    subset = np.random.default_rng(config.seed + 1).permutation(
        len(y_tr))[:config.train_eval_examples]
    train_eval = _prepared((x_tr[subset], y_tr[subset]), preprocess)
    entropy_batch = (val[0][:config.entropy_examples],
                     val[1][:config.entropy_examples])
    diag = undertraining.UndertrainingDiagnostics(
        eval_batch=entropy_batch, validation_data=val,
        train_eval_data=train_eval,
        path=os.path.join(workdir, "diagnostics.json"))
    diag.history = []
    fit_callbacks = [diag]
    if algorithm is not None:
        fit_callbacks.insert(0, callbacks.MaskUpdate(algorithm))
    _fit(trained, config, data["train"], preprocess, per_epoch, epochs,
         fit_callbacks)

    # A Distiller evaluates its student on the hard loss only.
    test_loss, test_accuracy = _evaluate(trained, data["test"], preprocess)
    results = {"config": config.to_dict(), "test_loss": test_loss,
               "test_accuracy": test_accuracy, "epochs": epochs,
               "steps": int(keras.ops.convert_to_numpy(
                   trained.optimizer.iterations)),
               "steps_per_epoch": per_epoch, "history": diag.history,
               "seconds": time.time() - started}
    if algorithm is not None:
        rep = diagnostics.report(model)
        results.update(density=rep.masked_density,
                       total_nonzeros=rep.total_nonzeros,
                       total_size=rep.total_size)
    if isinstance(algorithm, acdc_lib.ACDC):
        results["mask_drift"] = algorithm.mask_drift()
        sparse_path = os.path.join(workdir, "sparse.keras")
        dense_path = os.path.join(workdir, "dense_cotrained.keras")
        algorithm.save_models(sparse_path, dense_path)
        dense = algorithm.dense_model()
        _compile(dense, "sgd")
        results["dense_cotrained_test_loss"], results[
            "dense_cotrained_test_accuracy"] = _evaluate(
                dense, data["test"], preprocess)
        results["dense_cotrained_step"] = int(
            keras.ops.convert_to_numpy(algorithm.snapshot_step))
    with open(done, "w") as f:
        json.dump(results, f, indent=1, default=str)
    return results
