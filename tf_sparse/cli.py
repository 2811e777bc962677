"""The absl command lines of tools/: the flags the binaries share, once.

Nothing here runs at import: the binaries call these functions, so importing
`tf_sparse` defines no flags.

Every binary runs its `main` through `run_main`: an error in what the user
gave (a flag, a config key or value, a file in the workdir, a checkpoint, the
data; `tf_sparse.runs.engine.USER_ERRORS`) is one line on stderr,
`<program>: error: <message>`, and exit status 1, no traceback. An unknown
config key or a config file that cannot be loaded is reported the same way
while the flags are parsed. `--verbosity=1` (or higher) shows the traceback
of those errors too; any other exception is a bug and always shows it.

Example (tools/train_cifar10.py is this):

    from tf_sparse import cli

    if __name__ == "__main__":
        cli.run_training_binary("cifar10")
"""

import ast
import os
import re
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
        "tensorflow_only": "tf.distribute",
    },
    "imagenet": {
        "program": "train_imagenet",
        "datasets": ("imagenet",),
        "configs": "configs/imagenet/",
        "data_dir": "Directory with ImageNet TFRecord shards "
                    "(train-00000-of-01024 ...) or tfds imagenet2012; "
                    "overrides config.data_dir.",
        "tensorflow_only": "tf.distribute and TFRecord / tfds input",
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


# Where the configs of this binary are and where their keys are explained
# (set by `define_config_flag`; used in error messages).
_CONFIG_HELP = {"configs": "configs/", "schema": "tf_sparse/runs/config.py"}


def define_config_flag(configs, schema="tf_sparse/runs/config.py"):
    """`--config`: a config file, locked (misspelt keys are errors).

    `configs`: the folder (or file) of this binary's configs; `schema`:
    where the keys are listed with their meaning. Both are named in the
    error for a missing config file or an unknown key.
    """
    from ml_collections import config_flags  # pylint: disable=import-outside-toplevel
    _CONFIG_HELP.update(configs=configs, schema=schema)
    hint = renamed_key_hint(sys.argv[1:])
    if hint:
        sys.exit(f"{_program()}: error: {hint}")
    return config_flags.DEFINE_config_file(
        "config", None, f"Path to a config file in {configs}.",
        lock_config=True)


# --------------------------------------------------------------------------
# One line per user error
# --------------------------------------------------------------------------


def _program():
    return os.path.splitext(os.path.basename(sys.argv[0] or "tf_sparse"))[0]


def one_line(error):
    """The message of `error` on one line (whitespace runs collapsed)."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


def verbosity_in(argv):
    """The value of absl's `--verbosity` (`-v`) in `argv`, 0 if not given.

    >>> verbosity_in(["train.py", "--verbosity=1"]), verbosity_in(["x"])
    (1, 0)
    """
    value = 0
    for i, arg in enumerate(argv[1:], 1):
        for name in ("--verbosity", "-verbosity", "-v", "--v"):
            if arg == name and i + 1 < len(argv):
                text = argv[i + 1]
            elif arg.startswith(name + "="):
                text = arg.split("=", 1)[1]
            else:
                continue
            try:
                value = int(text)
            except ValueError:
                pass
    return value


def _config_arg(argv):
    for arg in argv[1:]:
        if arg.startswith(("--config=", "-config=")):
            return arg.split("=", 1)[1]
    return None


def _config_file_message(path, error):
    """The sentence for a config file that cannot be loaded."""
    file = (path or "").split(":", 1)[0]
    if file and not os.path.exists(file):
        folder = _CONFIG_HELP["configs"]
        folder = folder if os.path.isdir(folder) else os.path.dirname(folder)
        try:
            known = sorted(n for n in os.listdir(folder) if n.endswith(".py")
                           and not n.startswith("_"))
        except OSError:
            known = []
        listing = (f"; {folder} holds {', '.join(known)}" if known else "")
        return f"--config={path}: no such config file{listing}."
    text = one_line(error)
    if "Error whilst parsing config file" in text:
        # ml_collections puts the config file's traceback into the text.
        lines = [line for line in str(error).splitlines() if line.strip()]
        text = lines[-1].strip() if lines else text
    return f"--config={path}: the config file cannot be loaded: {text}"


def _unknown_key_message(error, argv):
    """The sentence for `--config.<key>` naming a key the config lacks, or
    None when `error` is not that."""
    text = str(error)
    match = re.search(r"""\\?'([A-Za-z_][A-Za-z0-9_]*)\\?'""", text)
    if not match:
        return None
    key = match.group(1)
    for arg in argv[1:]:
        found = re.match(r"^--?(?:no)?config\.([A-Za-z0-9_.]+)(=.*)?$", arg)
        if found and key in found.group(1).split("."):
            suggestion = re.search(r'Did you mean "([^"]+)"', text)
            hint = (f"; did you mean {suggestion.group(1)!r}?" if suggestion
                    else ".")
            if found.group(1).startswith("algorithm_kwargs."):
                hint += (f" A constructor argument the config does not set "
                         f"is added with --algorithm_arg={key}=<value>.")
            return (f"{arg}: the config has no key {key!r}{hint} Every key "
                    f"is listed with its meaning in {_CONFIG_HELP['schema']}.")
    return None


def _parse_error_message(error, argv):
    """One line for an error raised while the flags are parsed, or None for
    one that is not the user's (a bug: its traceback is shown)."""
    from absl import flags  # pylint: disable=import-outside-toplevel
    if isinstance(error, (AttributeError, KeyError)):
        return _unknown_key_message(error, argv)
    if isinstance(error, OSError):
        return _config_file_message(_config_arg(argv), error)
    if isinstance(error, flags.Error):
        if "Error whilst parsing config file" in str(error):
            return _config_file_message(_config_arg(argv), error)
        return one_line(error)
    if isinstance(error, (TypeError, ValueError)):
        return one_line(error)
    return None


def _flags_parser(program):
    """absl's flag parsing, with its errors (and those of loading the
    config file and its overrides) as one line."""
    from absl import flags  # pylint: disable=import-outside-toplevel

    def parse(argv):
        try:
            rest = flags.FLAGS(argv)
        except Exception as error:  # pylint: disable=broad-except
            message = _parse_error_message(error, argv)
            if message is None or verbosity_in(argv) >= 1:
                raise
            sys.exit(f"{program}: error: {message}")
        if "config" in flags.FLAGS:
            value = flags.FLAGS["config"].value
            # A config file that could not be loaded is kept as an object
            # that raises on first use: report it now.
            if type(value).__name__ == "_ErrorConfig":
                if verbosity_in(argv) >= 1:
                    value.lock()
                sys.exit(f"{program}: error: " + _config_file_message(
                    _config_arg(argv), getattr(value, "_error", "")))
        return rest

    return parse


def user_errors():
    """The exception types the binaries report as one line."""
    from tf_sparse.runs import engine  # pylint: disable=import-outside-toplevel
    return engine.USER_ERRORS


def run_main(main, program=None, *, errors=()):
    """`app.run(main)` with user errors as one line (see module docstring).

    Args:
      main: the binary's `main(argv)`.
      program: the name in messages (default: the script's name).
      errors: more exception types that are the user's.
    """
    from absl import app  # pylint: disable=import-outside-toplevel
    from absl import flags  # pylint: disable=import-outside-toplevel
    from absl import logging  # pylint: disable=import-outside-toplevel
    program = program or _program()

    def wrapped(argv):
        verbosity = flags.FLAGS["verbosity"]
        debug = verbosity.present and verbosity.value >= 1
        if not verbosity.present:
            logging.set_verbosity(logging.WARNING)
        caught = tuple(user_errors()) + tuple(errors)
        try:
            return main(argv)
        except caught as error:
            if debug:
                raise
            sys.exit(f"{program}: error: {one_line(error)}")

    app.run(wrapped, flags_parser=_flags_parser(program))


def run_training_binary(dataset):
    """Defines the flags of tools/train.py (dataset "fashion_mnist"),
    tools/train_cifar10.py or tools/train_imagenet.py, and runs it; the
    last two exit with a one-line error off TensorFlow."""
    # pylint: disable=import-outside-toplevel
    from absl import app
    from absl import flags

    from tf_sparse import backend
    from tf_sparse.runs import engine

    text = BINARIES[dataset]
    if "tensorflow_only" in text:
        try:
            backend.require_tensorflow(
                f"tools/{text['program']}.py ({text['tensorflow_only']}, "
                "tested on TensorFlow only)",
                "Run it with KERAS_BACKEND=tensorflow; tools/train.py trains "
                "the Fashion-MNIST configs on jax and torch too.")
        except backend.UnsupportedBackendError as error:
            sys.exit(f"{text['program']}: error: {error}")
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
        config = config_flag.value
        if data_dir.value is not None:
            config.data_dir = data_dir.value
        apply_algorithm_args(config, algorithm_args.value)
        results = engine.launch(
            config, workdir.value, strategy=strategy.value,
            tpu=tpu.value, cpu_devices=cpu_devices.value,
            verbose=verbose.value, datasets=text["datasets"])
        print(engine.final_report(results))
        if "diverged" in results:
            sys.exit(f"{program}: error: {results['diverged']['message']}")

    run_main(main, program)
