"""`--backend=tensorflow|jax|torch` for the binaries in tools/: picks the
Keras backend before Keras is first imported.

Keras fixes its backend at import (`KERAS_BACKEND`), so a binary calls
`select(program)` before it imports absl's flags or tf_sparse. The flag is
removed from `sys.argv` (absl never sees it); without it the backend is
`$KERAS_BACKEND`, else TensorFlow. A missing or unknown name is a one-line
error naming what is accepted.

Example (the first lines of a binary):

    import backend_flag
    backend_flag.select("lottery")
    from tf_sparse import cli    # Keras now runs on the chosen backend
"""

import os
import sys

BACKENDS = ("tensorflow", "jax", "torch")


def take(argv, program):
    """Removes `--backend=NAME` / `--backend NAME` from `argv` (a list,
    changed in place); returns NAME or None. Exits with a one-line error
    for a missing or unknown name.

    >>> argv = ["train.py", "--backend=jax", "--workdir=w"]
    >>> take(argv, "train"), argv
    ('jax', ['train.py', '--workdir=w'])
    """
    for i, arg in enumerate(argv[1:], start=1):
        if arg == "--backend" or arg.startswith("--backend="):
            if arg == "--backend":
                if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                    sys.exit(f"{program}: error: --backend needs a value: "
                             f"one of {', '.join(BACKENDS)}.")
                value = argv.pop(i + 1)
            else:
                value = arg.split("=", 1)[1]
            del argv[i]
            if value not in BACKENDS:
                sys.exit(f"{program}: error: --backend={value!r} is not "
                         f"accepted: use one of {', '.join(BACKENDS)}.")
            return value
    return None


def select(program):
    """Takes `--backend` from `sys.argv` and sets `KERAS_BACKEND`; exits
    with a one-line error if Keras was already imported on another."""
    chosen = take(sys.argv, program)
    if chosen is None:
        return
    if "keras" in sys.modules and os.environ.get(
            "KERAS_BACKEND", "tensorflow") != chosen:
        sys.exit(f"{program}: error: Keras was imported before "
                 f"--backend={chosen} could take effect.")
    os.environ["KERAS_BACKEND"] = chosen
