"""The lottery config: the run schema plus a lottery section.

`default_config()` composes the training keys of `tf_sparse.runs.config`
(model, data, length, optimizer, learning-rate schedule, execution) with
the keys of IMP (`LOTTERY`), preset to open_lth's LeNet settings. The dict
is locked, so a misspelt key is an error. Points in training (`rewind`,
`warmup`, `lr_boundaries`) are steps (`500`, `"500it"`), epochs (`"2ep"`)
or fractions of training (`0.05`), resolved once by `resolve`.

Example:

    from configs.lottery import lenet300_fashion_mnist as cfg
    config = cfg.get_config()
    steps = resolve(config, steps_per_epoch=468)
    steps.total, steps.rewind        # (18720, 0)
"""

import dataclasses

from tf_sparse import schedules
from tf_sparse.lottery import pruning
from tf_sparse.runs import config as run_config
from tf_sparse.runs import plan as plan_lib

BASELINES = ("random_prune", "random_reinit", "reset")
OPTIMIZERS = ("sgd", "adam")
Key = run_config.Key

LOTTERY = (
    Key("rewind", "0", "k: the step surviving weights rewind to ('0': the "
        "initialisation; '500it', '2ep', 0.05)", point=True),
    Key("rewind_optimizer", False, "also rewind momentum / Adam moments to "
        "step k (else they restart at zero)"),
    Key("prune_fraction", 0.2, "of the remaining weights, per level"),
    Key("prune_scope", "global", "global (one magnitude ranking) or "
        "layerwise"),
    Key("layer_rates", "", "'fc3:0.1' prunes fc3 at its own rate"),
    Key("levels", 15, "pruning levels after the dense level 0",
        resumable=True),
    Key("target_density", 0.0, "> 0: levels = the fewest reaching this "
        "density", resumable=True),
    Key("baselines", (), "any of random_prune, random_reinit, reset",
        resumable=True),
    Key("baseline_levels", (), "levels with baselines; (): every level >= 1",
        resumable=True),
)

# The run schema's keys a lottery uses: no sparsity or algorithm (IMP makes
# the masks), no distillation, no max_steps (every training runs to T).
_TRAINING = tuple(
    k for k in run_config.TRAINING
    if k.name not in ("sparsity", "distribution", "prune", "rescale_init",
                      "algorithm", "algorithm_params", "algorithm_kwargs",
                      "teacher", "distill_alpha", "distill_temperature",
                      "max_steps", "diagnostics", "entropy_examples"))
KEYS = _TRAINING + LOTTERY

# open_lth's `mnist_lenet_300_100` (papers.md B.4): plain SGD 0.1, batch
# 128, 40 epochs, no weight decay, constant learning rate; PyTorch's SGD
# (momentum buffer and weight decay as torch.optim.SGD) for every config.
PRESET = {
    "seed": 0, "epochs": 40, "batch_size": 128, "momentum": 0.0,
    "nesterov": False, "weight_decay": 0.0, "lr_boundaries": (),
    "weight_decay_mode": "coupled", "keep_checkpoints": 0,
    "train_eval_examples": 10000,
}

# Every level, baseline and copy trains to the same T: the length is part
# of what a lottery run is too.
IDENTITY = run_config.identity_names(KEYS) + ("epochs",)


class ConfigError(ValueError):
    """A lottery config value that cannot be used, named in the message."""


def default_config():
    """Every key of a lottery config, with open_lth-like defaults."""
    return run_config.compose(KEYS, PRESET)


@dataclasses.dataclass(frozen=True)
class Steps:
    """A config's training length and rewind point, in optimizer steps."""
    steps_per_epoch: int
    total: int       # T
    rewind: int      # k, 0 <= k < T
    warmup: int


def resolve_point(value, total_steps, steps_per_epoch, what):
    """A point of training in steps (`schedules.resolve_point`), or a
    `ConfigError` naming it."""
    try:
        return schedules.resolve_point(value, total_steps, steps_per_epoch,
                                       what)
    except (TypeError, ValueError) as error:
        raise ConfigError(str(error)) from None


def resolve(config, steps_per_epoch):
    """Checks the config's numbers and resolves T, k and the warm-up."""
    if not isinstance(config.epochs, int) or config.epochs < 1:
        raise ConfigError(f"epochs={config.epochs!r} must be an int >= 1.")
    plan = plan_lib.resolve(config, steps_per_epoch)
    total = plan.total_steps
    rewind = resolve_point(config.rewind, total, plan.steps_per_epoch,
                           "rewind")
    if rewind >= total:
        raise ConfigError(
            f"rewind={config.rewind!r} resolves to step {rewind}, which is "
            f"beyond training: a run of {plan.epochs} epochs has {total} "
            f"steps ({plan.steps_per_epoch} per epoch), and the rewound "
            f"network must still train T - k > 0 steps. Use a rewind point "
            f"< {total}.")
    warmup = resolve_point(config.warmup, total, plan.steps_per_epoch,
                           "warmup")
    if warmup > total:
        raise ConfigError(f"warmup={config.warmup!r} ({warmup} steps) is "
                          f"longer than training ({total} steps).")
    return Steps(steps_per_epoch=plan.steps_per_epoch, total=total,
                 rewind=rewind, warmup=warmup)


def check(config):
    """Validates the values that need no data (fails before any work)."""
    pruning.check_fraction(config.prune_fraction)
    if config.prune_scope not in pruning.STRATEGIES:
        raise ConfigError(f"prune_scope={config.prune_scope!r} is not one of "
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


def from_record(stored):
    """A config from the dict a workdir stored (keys it lacks: defaults)."""
    config = default_config()
    with config.unlocked():
        for key, value in stored.items():
            if key not in config:
                continue
            if isinstance(config[key], tuple) and isinstance(value, list):
                value = tuple(value)
            config[key] = value
    return config
