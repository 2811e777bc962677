"""The absl command lines of tools/: the flags the binaries share, once.

Nothing here runs at import: the binaries call these functions, so importing
`tf_sparse` defines no flags.

Example (tools/train_cifar10.py is this):

    from tf_sparse import cli

    if __name__ == "__main__":
        cli.run_training_binary("cifar10")
"""

import ast
import sys

# What differs between the training binaries.
BINARIES = {
    "fashion_mnist": {
        "program": "train",
        "datasets": ("fashion_mnist", "mnist"),
        "configs": "configs/fashion_mnist/",
        "data_dir": "Directory with the Fashion-MNIST (or MNIST) IDX files; "
                    "overrides config.data_dir.",
    },
    "cifar10": {
        "program": "train_cifar10",
        "datasets": ("cifar10",),
        "configs": "configs/cifar10/",
        "data_dir": "Directory with CIFAR-10 (python or binary batches, or "
                    "tfds); overrides config.data_dir.",
    },
    "imagenet": {
        "program": "train_imagenet",
        "datasets": ("imagenet",),
        "configs": "configs/imagenet/",
        "data_dir": "Directory with ImageNet TFRecord shards "
                    "(train-00000-of-01024 ...) or tfds imagenet2012; "
                    "overrides config.data_dir.",
    },
}


def define_algorithm_arg_flag():
    """`--algorithm_arg=key=value` (repeatable) -> config.algorithm_kwargs.

    Sets constructor arguments of algorithms configured through
    `config.algorithm_kwargs` (GMP, AC/DC) that the config file does not
    define, which `--config.algorithm_kwargs.<key>` cannot add to a locked
    config.
    """
    from absl import flags  # pylint: disable=import-outside-toplevel
    return flags.DEFINE_multi_string(
        "algorithm_arg", [],
        "key=value added to config.algorithm_kwargs (repeatable; the value "
        "is a Python literal, else a string), e.g. "
        "--algorithm_arg=reset_momentum=False.")


def parse_algorithm_args(values):
    """["a=1", "b=cubic"] -> {"a": 1, "b": "cubic"}; a clear error else.

    >>> parse_algorithm_args(["final_fraction=0.1", "schedule=cubic"])
    {'final_fraction': 0.1, 'schedule': 'cubic'}
    """
    parsed = {}
    for item in values:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ValueError(
                f"--algorithm_arg={item!r}: expected key=value with a Python "
                "identifier as key, e.g. --algorithm_arg=reset_momentum=False")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        parsed[key] = list(value) if isinstance(value, tuple) else value
    return parsed


def apply_algorithm_args(config, values):
    """Adds `--algorithm_arg` values to `config.algorithm_kwargs`."""
    parsed = parse_algorithm_args(values)
    if parsed:
        with config.unlocked():
            for key, value in parsed.items():
                config.algorithm_kwargs[key] = value
    return config


def renamed_key_hint(argv):
    """A hint for `--config.<old key>` flags renamed by the one-engine
    redesign ('' when there is none)."""
    from tf_sparse.runs import config as run_config  # pylint: disable=import-outside-toplevel
    hints = []
    for arg in argv:
        if arg.startswith("--config."):
            key = arg[len("--config."):].split("=", 1)[0].split(".", 1)[0]
            hint = run_config.renamed_hint(key)
            if hint:
                hints.append(hint)
    return " ".join(hints)


def _list_in_main_help(holders):
    """`--help` shows the main module's key flags: make these its own."""
    from absl import flags  # pylint: disable=import-outside-toplevel
    for holder in holders:
        flags.FLAGS.register_key_flag_for_module(
            sys.argv[0], flags.FLAGS[holder.name])


def define_config_flag(configs):
    """`--config`: a config file, locked (misspelt keys are errors)."""
    from ml_collections import config_flags  # pylint: disable=import-outside-toplevel
    hint = renamed_key_hint(sys.argv[1:])
    if hint:
        sys.exit(f"{sys.argv[0]}: error: {hint}")
    return config_flags.DEFINE_config_file(
        "config", None, f"Path to a config file in {configs}.",
        lock_config=True)


def run_training_binary(dataset):
    """Defines the flags of tools/train.py (dataset "fashion_mnist"),
    tools/train_cifar10.py or tools/train_imagenet.py, and runs it."""
    # pylint: disable=import-outside-toplevel
    from absl import app
    from absl import flags
    from absl import logging

    from tf_sparse.runs import engine

    text = BINARIES[dataset]
    config_flag = define_config_flag(text["configs"])
    workdir = flags.DEFINE_string(
        "workdir", None,
        "Directory for checkpoints, TensorBoard logs, results.")
    data_dir = flags.DEFINE_string("data_dir", None, text["data_dir"])
    strategy = flags.DEFINE_enum(
        "strategy", "default", ["default", "mirrored", "multi_worker", "tpu"],
        "tf.distribute strategy.")
    tpu = flags.DEFINE_string(
        "tpu", "", "TPU for --strategy=tpu: 'local' on a TPU VM (default), a "
        "TPU name or grpc://IP:8470.")
    cpu_devices = flags.DEFINE_integer(
        "cpu_devices", 0, "Split the CPU into this many logical devices (try "
        "mirrored training without GPUs).")
    verbose = flags.DEFINE_integer("verbose", 1,
                                   "Keras fit verbosity (0, 1, 2).")
    algorithm_args = define_algorithm_arg_flag()
    flags.mark_flags_as_required(["config", "workdir"])
    _list_in_main_help([config_flag, workdir, data_dir, strategy, tpu,
                        cpu_devices, verbose, algorithm_args])
    program = text["program"]

    def main(argv):
        if len(argv) > 1:
            raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
        logging.set_verbosity(logging.WARNING)
        config = config_flag.value
        if data_dir.value is not None:
            config.data_dir = data_dir.value
        try:
            apply_algorithm_args(config, algorithm_args.value)
            results = engine.launch(
                config, workdir.value, strategy=strategy.value,
                tpu=tpu.value, cpu_devices=cpu_devices.value,
                verbose=verbose.value, datasets=text["datasets"])
        except engine.EXPECTED_ERRORS as err:
            sys.exit(f"{program}: error: {err}")
        print(engine.final_report(results))
        if "diverged" in results:
            sys.exit(f"{program}: error: {results['diverged']['message']}")

    app.run(main)
