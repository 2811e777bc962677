"""The one config schema of a run: every key, its default and its meaning.

A run config is a locked `ml_collections.ConfigDict`. Its keys are defined
here once, in sections (`MODEL`, `DATA`, `LENGTH`, `OPTIMIZER`, ...); a kind
of experiment is a choice of sections plus a few preset values
(`default_config("cifar10")` starts from sparse momentum's CIFAR-10
settings), and the lottery and the recipes add a section of their own with
`compose`. A misspelt key is an error, because the dict is locked.

Points and lengths in training (`warmup`, `lr_boundaries`, `lr_decay_every`,
the lottery's `rewind`) take one form everywhere, resolved to optimizer
steps once by `tf_sparse.runs.plan`: an int (steps), a string `"500it"` or
`"2ep"` (epochs), or a float / string with a dot (a fraction of training).

Example:

    config = default_config("cifar10")      # sparse momentum, CIFAR-10
    config.model = "wrn16_8"
    config.sparsity = 0.95
    config.algorithm = "sparse_momentum"
"""

import dataclasses
from typing import Any

from tf_sparse import algorithms
from tf_sparse import patterns


@dataclasses.dataclass(frozen=True)
class Key:
    """One config key: its default and what it means.

    `resumable`: the key may change when a run resumes (how long, how
    often to evaluate or checkpoint, where the data lives); every other key
    changes what the run computes and is part of what the run is, so a
    workdir holding another value is refused. `point`: a point or length in
    training (see the module docstring).
    """
    name: str
    default: Any
    help: str
    resumable: bool = False
    point: bool = False


def _dict(**values):
    return dict(values)


MODEL = (
    Key("model", "lenet300_100", "zoo model name (tf_sparse.models)"),
    Key("model_kwargs", _dict(), "extra arguments of the model builder"),
    Key("init", "keras", "initial weights: 'keras' (the layers' own "
        "initializers), 'torch' (PyTorch's defaults, as the PyTorch "
        "reference code), 'wrn' (its Wide ResNets') or 'kaiming_normal' "
        "(open_lth's); tf_sparse.models.initialization"),
    Key("init_weights", "", "a .keras file whose weights the model starts "
        "from ('' = fresh initialisation)"),
)

DATA = (
    Key("dataset", "fashion_mnist", "fashion_mnist, mnist, cifar10, "
        "imagenet or glue/<task> (glue/sst2, glue/rte, ...; "
        "tf_sparse.runs.data)"),
    Key("data_dir", "", "where the data lives; '' searches the default "
        "places", resumable=True),
    Key("data_source", "auto", "cifar10: auto/python/binary/tfds; "
        "imagenet: auto/tfrecord/tfds; glue: auto/tsv/tfds",
        resumable=True),
    Key("image_size", 0, "0: the data set's own (32 CIFAR-10, 224 ImageNet)"),
    Key("num_classes", 0, "0: the data set's own"),
    Key("augment", True, "CIFAR-10 pad-crop-flip (ImageNet always crops)"),
    Key("validation_fraction", 0.0, "training examples held out for "
        "validation"),
    Key("synthetic_data", False, "random images of the right shape (smoke "
        "tests, benchmarks)"),
    Key("vocab_size", 20000, "text data: vocabulary of the tokenizer"),
    Key("sequence_length", 64, "text data: tokens per example"),
    Key("tokenizer", "", "text data for keras-hub models: '' a word "
        "vocabulary of vocab_size built from the training texts, or a "
        "keras-hub preset whose preprocessor tokenizes "
        "(tf_sparse.data.text_packing)"),
)

SEEDS = (
    Key("seed", 17, "initialisation, masks, data order and augmentation"),
    Key("data_seed", -1, "data order and augmentation; -1: `seed`"),
)

LENGTH = (
    Key("epochs", 20, "epochs of training (times train_multiplier); a "
        "finished run resumed with more epochs is extended", resumable=True),
    Key("steps_per_epoch", 0, "0: the whole training set every epoch; "
        "> 0: the first this many batches of every epoch's order"),
    Key("train_multiplier", 1.0, "stretches training: every position that is "
        "a fraction of training stretches with it"),
    Key("max_steps", 0, "> 0: stop after this many steps (schedules "
        "unchanged); a later start resumes", resumable=True),
)

BATCH = (
    Key("batch_size", 100, "global batch over all replicas"),
    Key("per_replica_batch_size", 0, "> 0: global batch = this x replicas"),
    Key("eval_batch_size", 1000, "batch of evaluation passes",
        resumable=True),
    Key("eval_steps", 0, "0: the whole evaluation split", resumable=True),
)

OPTIMIZER = (
    Key("optimizer", "sgd", "sgd, adam or adamw"),
    Key("learning_rate", 0.1, "peak learning rate (for "
        "lr_reference_batch_size)"),
    Key("momentum", 0.9, "SGD momentum"),
    Key("nesterov", True, "SGD Nesterov momentum"),
    Key("weight_decay", 5e-4, "weight decay coefficient"),
    Key("weight_decay_mode", "decoupled", "decoupled: the Keras optimizer's "
        "own (w -= lr * wd * w); coupled: PyTorch's optimizers (wd * w added "
        "to the gradient inside the optimizer; SGD with PyTorch's momentum "
        "buffer); l2: wd/2 * ||w||^2 added to the loss"),
    Key("weight_decay_exclude", (), "fnmatch patterns of variable paths "
        "without weight decay, e.g. ('*/gamma', '*/beta')"),
    Key("label_smoothing", 0.0, "label smoothing of the cross-entropy"),
    Key("lr_scaling", "none", "none, linear or sqrt scaling of the learning "
        "rate with the global batch"),
    Key("lr_reference_batch_size", 0, "batch the learning rate is given for "
        "(0: the global batch)"),
)

LR_SCHEDULE = (
    Key("lr_schedule", "step", "step, cosine or constant"),
    Key("lr_boundaries", (0.5, 0.75), "step: points where the rate is "
        "multiplied by lr_decay_factor", point=True),
    Key("lr_decay_every", "0", "step: decay every this length instead "
        "('0': use lr_boundaries)", point=True),
    Key("lr_decay_factor", 0.1, "step: the decay factor"),
    Key("final_lr", 0.0, "cosine: the rate at the end"),
    Key("warmup", "0", "linear warm-up length (any schedule)", point=True),
    Key("warmup_start_lr", 0.0, "rate at step 0 of the warm-up"),
)

MASKS = (
    Key("sparsity", 0.95, "fraction of the prunable weights that are zero "
        "(the target of GMP and AC/DC)"),
    Key("distribution", "uniform", "uniform, er or erk"),
    Key("pattern", "unstructured", "which weights are kept or removed "
        "together: 'unstructured', 'N:M' (e.g. '2:4'; sparsity must be "
        "1 - N/M, or the gradual algorithms' target), 'block:RxC' or "
        "'channel' (tf_sparse.patterns)"),
    Key("keep_dense", (), "layer names/patterns left dense"),
    Key("prune", (), "only these layer names/patterns are pruned (): all"),
    Key("rescale_init", False, "scale kept weights by 1/sqrt(layer density)"),
)

ALGORITHM = (
    Key("algorithm", "static", "a name of tf_sparse.algorithms, or 'dense' "
        "(no masks)"),
    Key("algorithm_params", dict.fromkeys(algorithms.CONFIG_PARAMS),
        "hyperparameters of algorithms built by from_params (sparse momentum, "
        "SET, RigL, SNIP); None: the paper's"),
    Key("algorithm_kwargs", _dict(), "constructor arguments of the other "
        "algorithms (GMP, AC/DC)"),
)

DISTILLATION = (
    Key("teacher", "", "a .keras model to distil from ('' = none)"),
    Key("distill_alpha", 0.5, "weight of the soft loss"),
    Key("distill_temperature", 4.0, "softmax temperature"),
)

EVALUATION = (
    Key("eval_every_epochs", 1, "evaluate the validation split (or the test "
        "set) every this many epochs; 0: only at the end", resumable=True),
    Key("diagnostics", False, "under-training diagnostics every epoch "
        "(tf_sparse.undertraining) -> diagnostics.json", resumable=True),
    Key("train_eval_examples", 5000, "fixed training subset the diagnostics "
        "(and the lottery's train error) are measured on", resumable=True),
    Key("entropy_examples", 1000, "fixed validation batch for the entropy",
        resumable=True),
)

EXECUTION = (
    Key("precision", "auto", "auto, float32, mixed_float16, mixed_bfloat16"),
    Key("steps_per_execution", 1, "optimizer steps per compiled call",
        resumable=True),
    Key("jit_compile", False, "compile the train step with XLA "
        "(TensorFlow, PyTorch's torch.compile; JAX always jits it unless "
        "run_eagerly)", resumable=True),
    Key("run_eagerly", False, "debugging", resumable=True),
    Key("sync_batch_norm", True, "batch statistics over all replicas"),
    Key("checkpoint_every_steps", 0, "> 0: also checkpoint mid-epoch",
        resumable=True),
    Key("keep_checkpoints", 2, "checkpoints kept in a workdir (0: delete "
        "them when the training is done)", resumable=True),
    Key("log_every_steps", 0, "> 0: step-level loss to TensorBoard",
        resumable=True),
    Key("divergence_factor", 10.0, "stop when the training loss exceeds "
        "this multiple of its first value, or of the chance-level loss "
        "ln(classes) when that is larger (0: only non-finite losses)",
        resumable=True),
    Key("on_bad_checkpoint", "error", "the newest checkpoint of a resumed "
        "run is damaged: 'error' stops with the file named; 'previous' "
        "resumes from the newest earlier one that reads back (the damaged "
        "files are renamed *.damaged)", resumable=True),
)

SECTIONS = {
    "model": MODEL, "data": DATA, "seeds": SEEDS, "length": LENGTH,
    "batch": BATCH, "optimizer": OPTIMIZER, "lr_schedule": LR_SCHEDULE,
    "masks": MASKS, "algorithm": ALGORITHM, "distillation": DISTILLATION,
    "evaluation": EVALUATION, "execution": EXECUTION,
}

#: What a training run is made of (tools/train.py, the image binaries).
TRAINING = sum(SECTIONS.values(), ())

#: Preset values of the data sets' own binaries; each states its source
#: (docs/paper_configs.md compares every paper config with its reference).
PRESETS = {
    # sparse momentum's MNIST reference (sparse_learning mnist_cifar/main.py,
    # papers.md A.2): batch 100, PyTorch SGD (Nesterov, momentum 0.9, lr
    # 0.1, weight decay 5e-4 in the gradient), lr x0.1 every 25,000
    # iterations, 100 epochs, 10% of the training set held out, PyTorch's
    # default initialisation, seed 17.
    "fashion_mnist": {
        "epochs": 100, "validation_fraction": 0.1, "lr_boundaries": (),
        "lr_decay_every": "25000", "weight_decay_mode": "coupled",
        "init": "torch"},
    # sparse momentum's CIFAR-10 reference settings (main.py, papers.md
    # A.2): the MNIST recipe on CIFAR-10 with pad-crop-flip.
    "cifar10": {
        "model": "resnet20", "dataset": "cifar10", "epochs": 100,
        "validation_fraction": 0.1, "lr_boundaries": (),
        "lr_decay_every": "25000", "weight_decay_mode": "coupled",
        "init": "torch", "log_every_steps": 100},
    # the lottery-ticket ResNet-50 recipe (open_lth; papers.md B.4): global
    # batch 1024, lr 0.1 per 256 scaled linearly, 5-epoch warm-up, x0.1 at
    # epochs 30, 60, 80 of 90, momentum 0.9, weight decay 1e-4 (PyTorch's).
    "imagenet": {
        "model": "resnet50", "dataset": "imagenet", "seed": 0, "epochs": 90,
        "batch_size": 1024, "lr_scaling": "linear",
        "lr_reference_batch_size": 256, "warmup": "5ep",
        "lr_boundaries": ("30ep", "60ep", "80ep"), "nesterov": False,
        "weight_decay": 1e-4, "weight_decay_mode": "coupled",
        "log_every_steps": 100},
}
MNIST_REFERENCE = PRESETS["fashion_mnist"]
PRESETS["mnist"] = {**MNIST_REFERENCE, "dataset": "mnist"}

#: Keys renamed by the one-engine redesign: old name -> new name. Old
#: workdirs are read through `tf_sparse.runs.workdir.migrate`.
RENAMED = {
    "lr_decay_at": "lr_boundaries", "lr_factor": "lr_decay_factor",
    "exclude": "keep_dense", "strategy": "prune_scope",
    "eval_every_epoch": "eval_every_epochs", "warmup_epochs": "warmup",
    "lr_unit": "lr_boundaries", "gmp": "algorithm_kwargs",
    "acdc": "algorithm_kwargs", "scope": "algorithm_kwargs",
}


def _value(key, value):
    import ml_collections
    if isinstance(value, dict):
        return ml_collections.ConfigDict(value)
    if key.point:
        # A point may be an int, a float or a string: no fixed type.
        return ml_collections.FieldReference(value, field_type=object)
    return value


def compose(keys, preset=None):
    """A locked config with `keys` (a sequence of `Key`), their defaults
    changed by `preset` (a dict; a name in it that no key has is an error).

    >>> c = compose(MODEL + SEEDS, {"seed": 0})
    >>> c.seed, c.model
    (0, 'lenet300_100')
    """
    import ml_collections
    names = [k.name for k in keys]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"config keys defined twice: {duplicated}")
    preset = dict(preset or {})
    unknown = sorted(set(preset) - set(names))
    if unknown:
        raise ValueError(f"preset sets keys the config does not have: "
                         f"{unknown}")
    config = ml_collections.ConfigDict()
    for key in keys:
        config[key.name] = _value(key, preset.get(key.name, key.default))
    config.lock()
    return config


def default_config(preset="fashion_mnist"):
    """Every key of a training run, with the defaults of `preset`.

    Presets: fashion_mnist and mnist (sparse momentum's MNIST settings),
    cifar10 (its CIFAR-10 settings), imagenet (the lottery-ticket ResNet-50
    recipe). Config files in configs/ start here and change what they need.
    """
    if preset not in PRESETS:
        raise ValueError(f"Unknown config preset {preset!r}; accepted: "
                         f"{', '.join(PRESETS)}.")
    return compose(TRAINING, PRESETS[preset])


# Numeric keys: (lowest, highest, lowest included, highest included, int).
_RANGES = {
    "batch_size": (1, None, True, True, True),
    "per_replica_batch_size": (0, None, True, True, True),
    "eval_batch_size": (1, None, True, True, True),
    "eval_steps": (0, None, True, True, True),
    "epochs": (1, None, True, True, True),
    "steps_per_epoch": (0, None, True, True, True),
    "max_steps": (0, None, True, True, True),
    "steps_per_execution": (1, None, True, True, True),
    "eval_every_epochs": (0, None, True, True, True),
    "checkpoint_every_steps": (0, None, True, True, True),
    "keep_checkpoints": (0, None, True, True, True),
    "log_every_steps": (0, None, True, True, True),
    "train_eval_examples": (1, None, True, True, True),
    "entropy_examples": (1, None, True, True, True),
    "train_multiplier": (0.0, None, False, True, False),
    "learning_rate": (0.0, None, False, True, False),
    "momentum": (0.0, 1.0, True, False, False),
    "weight_decay": (0.0, None, True, True, False),
    "label_smoothing": (0.0, 1.0, True, False, False),
    "lr_decay_factor": (0.0, 1.0, False, True, False),
    "sparsity": (0.0, 1.0, True, False, False),
    "validation_fraction": (0.0, 1.0, True, False, False),
    "distill_alpha": (0.0, 1.0, True, True, False),
    "distill_temperature": (0.0, None, False, True, False),
    "divergence_factor": (0.0, None, True, True, False),
}
CHOICES = {
    "optimizer": ("sgd", "adam", "adamw"),
    "weight_decay_mode": ("decoupled", "coupled", "l2"),
    "lr_schedule": ("step", "cosine", "constant"),
    "lr_scaling": ("none", "linear", "sqrt"),
    "init": ("keras", "torch", "wrn", "kaiming_normal"),
    "on_bad_checkpoint": ("error", "previous"),
}


def _range_text(low, high, low_in, high_in, integer):
    kind = "an int" if integer else "a number"
    if high is None:
        return f"{kind} {'>=' if low_in else '>'} {low}"
    return (f"{kind} in {'[' if low_in else '('}{low}, {high}"
            f"{']' if high_in else ')'}")


def check(config):
    """Raises ValueError naming the first key whose value cannot be used
    and what is accepted; run before anything is written."""
    import math  # pylint: disable=import-outside-toplevel
    for name, (low, high, low_in, high_in, integer) in _RANGES.items():
        if name not in config:
            continue
        value = config[name]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and math.isfinite(value) and (
            not integer or float(value).is_integer())
        if ok:
            ok = (value >= low if low_in else value > low) and (
                high is None or (value <= high if high_in else value < high))
        if not ok:
            raise ValueError(
                f"{name}={value!r} is not accepted: it must be "
                f"{_range_text(low, high, low_in, high_in, integer)}.")
    for name, accepted in CHOICES.items():
        if name in config and config[name] not in accepted:
            raise ValueError(f"{name}={config[name]!r} is not accepted; "
                             f"accepted: {', '.join(accepted)}.")
    if "pattern" in config:
        _check_pattern(config)


def _check_pattern(config):
    """Raises ValueError naming `pattern` (and `sparsity` where the pattern
    cannot reach it) and what is accepted."""
    value = config["pattern"]
    try:
        pattern = patterns.parse(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"pattern={value!r} is not accepted: {error}") \
            from error
    if config.get("algorithm") == "sr_ste" and pattern.kind != "n:m":
        raise ValueError(
            f"algorithm='sr_ste' trains N:M masks, but pattern={value!r}; "
            "set pattern to an 'N:M' (e.g. '2:4').")
    # The gradual algorithms' target is `sparsity` too: N:M reaches only
    # 1 - N/M (their all-ones start is `sparsify`'s 0.0).
    if "sparsity" in config:
        try:
            pattern.check_sparsity(config["sparsity"])
        except ValueError as error:
            raise ValueError(f"pattern={value!r} with sparsity="
                             f"{config['sparsity']!r}: {error}") from error


def option(config, name, default):
    """`config[name]`, or `default` for a kind whose config has no such key
    (a lottery config has no `teacher`: it never distils)."""
    return config[name] if name in config else default


def identity_names(keys):
    """The names of the keys that define what a run is (all but the
    resumable ones)."""
    return tuple(k.name for k in keys if not k.resumable)


def plain(value):
    """A ConfigDict (or nested values) as JSON-ready Python values."""
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def renamed_hint(name):
    """A sentence for an unknown key that an earlier version had, or ''."""
    new = RENAMED.get(name)
    if new is None:
        return ""
    return (f"config key {name!r} was replaced by {new!r} when the runners "
            "became one engine (see README, 'Configs').")
