"""Configuration of a lottery run, and turning it into steps.

`default_config()` lists every key a lottery config may set (the ConfigDict
is locked, so a misspelt key is an error). Points in training are given as

- an int or an int-like string (`500`, `"500"`, `"500it"`): optimizer steps;
- `"<n>ep"` (`"2ep"`, `"0.5ep"`): epochs, i.e. n * steps_per_epoch, rounded
  half up;
- a float or a string with a dot (`0.05`, `"0.05"`): a fraction of the
  training length T, resolved like `tf_sparse.schedules.resolve_step`
  (`floor(f * T + 0.5)`).

Example:

    from configs.lottery import lenet300_fashion_mnist as cfg
    config = cfg.get_config()
    steps = resolve(config, steps_per_epoch=468)
    steps.total, steps.rewind        # (18720, 0)
"""

import dataclasses
import fractions
import json
import math
import numbers
import os
import re

from tf_sparse import schedules
from tf_sparse.lottery import pruning
from tf_sparse.lottery import state as state_lib

BASELINES = ("random_prune", "random_reinit", "reset")
OPTIMIZERS = ("sgd", "adam")

# Keys that define what a run *is*; a workdir holding a run with other values
# is refused. levels, target_density, baselines and evaluation settings may
# change between invocations (to extend a run or add baselines).
IDENTITY_KEYS = (
    "model", "dataset", "seed", "data_seed", "epochs", "steps_per_epoch",
    "batch_size", "optimizer", "learning_rate", "momentum", "nesterov",
    "weight_decay", "lr_boundaries", "lr_factor", "warmup", "rewind",
    "rewind_optimizer", "prune_fraction", "strategy", "exclude",
    "layer_rates", "augment")


class ConfigError(ValueError):
    """A lottery config value that cannot be used, named in the message."""


def default_config():
    """Every key of a lottery config, with its default (open_lth-like)."""
    import ml_collections  # only needed by config users
    c = ml_collections.ConfigDict()
    c.model = "lenet300_100"
    c.dataset = "fashion_mnist"
    c.data_dir = ""             # "" searches the default places
    c.augment = True            # CIFAR-10 pad-crop-flip (other sets: unused)
    c.seed = 0                  # initialisation (and default data order)
    c.data_seed = -1            # data order u; -1: same as seed
    c.epochs = 40
    c.steps_per_epoch = 0       # 0: the whole training set each epoch
    c.batch_size = 128
    c.eval_batch_size = 1000
    c.train_eval_examples = 10000  # training examples used for train error
    # Optimizer and learning-rate schedule (StepDecayLR).
    c.optimizer = "sgd"
    c.learning_rate = 0.1
    c.momentum = 0.0
    c.nesterov = False
    c.weight_decay = 0.0        # Keras' decoupled form: w -= lr * wd * w
    c.lr_boundaries = ()        # fractions of training (float) or steps (int)
    c.lr_factor = 0.1
    c.warmup = "0"              # linear warm-up length (steps/ep/fraction)
    # Lottery.
    c.rewind = "0"              # k: "0" resets to init; "500it", "2ep", "0.05"
    c.rewind_optimizer = False  # also rewind momentum/Adam moments to step k
    c.prune_fraction = 0.2      # of the remaining weights, per level
    c.strategy = "global"       # or "layerwise"
    c.exclude = ()              # names/patterns never pruned
    c.layer_rates = ""          # "fc3:0.1" prunes fc3 at its own rate
    c.levels = 15               # pruning levels after the dense level 0
    c.target_density = 0.0      # > 0: levels = fewest reaching this density
    c.baselines = ()            # any of random_prune, random_reinit, reset
    c.baseline_levels = ()      # levels with baselines; (): every level >= 1
    # Execution.
    c.eval_every_epoch = True   # test accuracy in TensorBoard each epoch
    c.keep_checkpoints = False  # keep per-epoch checkpoints of done levels
    c.steps_per_execution = 1
    c.jit_compile = False
    c.lock()
    return c


def data_seed(config):
    return config.seed if config.data_seed < 0 else config.data_seed


_STEP_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*"
                      r"(it|its|step|steps|ep|epoch|epochs)?\s*$")


def resolve_point(value, total_steps, steps_per_epoch, what):
    """Turns steps / "<n>ep" / fraction into an int step (see module doc)."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}={value!r} is not a point in training.")
    if isinstance(value, numbers.Integral):
        step = int(value)
    elif isinstance(value, numbers.Real):
        try:
            step = schedules.resolve_step(float(value), total_steps)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"{what}={value!r}: {e}") from None
    elif isinstance(value, str):
        match = _STEP_RE.match(value)
        if not match:
            raise ConfigError(
                f"{what}={value!r} is not understood; write steps ('500' or "
                "'500it'), epochs ('2ep') or a fraction of training ('0.05').")
        number, unit = match.groups()
        if unit in ("ep", "epoch", "epochs"):
            step = math.floor(fractions.Fraction(number) * steps_per_epoch
                              + fractions.Fraction(1, 2))
        elif unit or ("." not in number and "e" not in number.lower()):
            if "." in number or "e" in number.lower():
                raise ConfigError(f"{what}={value!r}: a step count must be "
                                  "a whole number.")
            step = int(number)
        else:
            try:
                step = schedules.resolve_step(float(number), total_steps)
            except (ValueError, TypeError) as e:
                raise ConfigError(f"{what}={value!r}: {e}") from None
    else:
        raise ConfigError(f"{what}={value!r} is not a point in training.")
    if step < 0:
        raise ConfigError(f"{what}={value!r} is negative.")
    return step


@dataclasses.dataclass(frozen=True)
class Steps:
    """A config's training length and rewind point, in optimizer steps."""
    steps_per_epoch: int
    total: int       # T
    rewind: int      # k, 0 <= k < T
    warmup: int


def resolve(config, steps_per_epoch):
    """Checks the config's numbers and resolves T, k and the warm-up."""
    if not isinstance(config.epochs, int) or config.epochs < 1:
        raise ConfigError(f"epochs={config.epochs!r} must be an int >= 1.")
    if config.steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, config.steps_per_epoch)
    total = steps_per_epoch * config.epochs
    rewind = resolve_point(config.rewind, total, steps_per_epoch, "rewind")
    if rewind >= total:
        raise ConfigError(
            f"rewind={config.rewind!r} resolves to step {rewind}, which is "
            f"beyond training: a run of {config.epochs} epochs has {total} "
            f"steps ({steps_per_epoch} per epoch), and the rewound network "
            f"must still train T - k > 0 steps. Use a rewind point < {total}.")
    warmup = resolve_point(config.warmup, total, steps_per_epoch, "warmup")
    if warmup > total:
        raise ConfigError(f"warmup={config.warmup!r} ({warmup} steps) is "
                          f"longer than training ({total} steps).")
    return Steps(steps_per_epoch=steps_per_epoch, total=total, rewind=rewind,
                 warmup=warmup)


def check(config):
    """Validates the values that need no data (fails before any work)."""
    pruning.check_fraction(config.prune_fraction)
    if config.strategy not in pruning.STRATEGIES:
        raise ConfigError(f"strategy={config.strategy!r} is not one of "
                          f"{', '.join(pruning.STRATEGIES)}.")
    pruning.parse_layer_rates(config.layer_rates)
    for name in config.baselines:
        if name not in BASELINES:
            raise ConfigError(f"baselines entry {name!r} is not one of "
                              f"{', '.join(BASELINES)}.")
    if config.optimizer not in OPTIMIZERS:
        raise ConfigError(f"optimizer={config.optimizer!r} is not one of "
                          f"{', '.join(OPTIMIZERS)}.")
    if not isinstance(config.levels, int) or config.levels < 0:
        raise ConfigError(f"levels={config.levels!r} must be an int >= 0.")
    if not 0.0 <= config.target_density < 1.0:
        raise ConfigError(f"target_density={config.target_density!r} must be "
                          "in [0, 1) (0: use levels).")
    if config.batch_size < 1:
        raise ConfigError(f"batch_size={config.batch_size!r} must be >= 1.")


def plain(value):
    """A ConfigDict (or nested values) as JSON-ready Python values."""
    if hasattr(value, "to_dict"):
        return {k: plain(v) for k, v in value.to_dict().items()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


class RunMismatchError(ValueError):
    """The workdir holds a lottery run with another identity."""


RUN_FILE = "lottery.json"


def check_workdir(config, workdir, steps):
    """Writes lottery.json for a new run or checks it matches this config."""
    path = os.path.join(workdir, RUN_FILE)
    current = plain(config)
    if os.path.exists(path):
        previous = state_lib.read_json(path)
        old = previous.get("config", {})
        for key in IDENTITY_KEYS:
            if old.get(key) != current.get(key):
                raise RunMismatchError(
                    f"Workdir {workdir} holds a lottery run with {key}="
                    f"{old.get(key)!r}, but this config has {key}="
                    f"{current.get(key)!r}. Use another --workdir; nothing "
                    "in this one was changed.")
        return previous
    record = {"config": current,
              "steps": dataclasses.asdict(steps)}
    state_lib.write_json(path, record)
    return record


def load_run_config(workdir):
    """The config a lottery workdir was started with, as a ConfigDict."""
    path = os.path.join(workdir, RUN_FILE)
    if not os.path.exists(path):
        raise state_lib.StateError(
            f"{workdir} is not a lottery workdir: {RUN_FILE} is missing. Run "
            "tools/lottery.py with --workdir pointing here first.")
    stored = state_lib.read_json(path).get("config", {})
    config = default_config()
    with config.unlocked():
        for key, value in stored.items():
            if key not in config:
                continue
            default = config[key]
            if isinstance(default, tuple):
                value = tuple(value)
            config[key] = value
    return config


def to_json(config):
    return json.dumps(plain(config), sort_keys=True)
