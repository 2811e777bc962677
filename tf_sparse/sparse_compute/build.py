"""Builds and loads the compiled kernels (`kernels.cc`) of sparse compute.

The kernels are a TensorFlow custom-op library compiled with the system's
C++ compiler (`g++`, or `$CXX`) against the installed TensorFlow's headers
(`tf.sysconfig`), with `-O3 -march=native`. It is built once, on first
use or ahead of time with

    python -m tf_sparse.sparse_compute.build

into a cache folder (`$TF_SPARSE_CACHE_DIR`, else
`$XDG_CACHE_HOME/tf_sparse` or `~/.cache/tf_sparse`), under a name keyed by
the source, the flags, the TensorFlow version, the compiler and the CPU, so
another TensorFlow or machine gets its own build. Concurrent builds (test
workers) take a file lock and write with an atomic rename.

`TF_SPARSE_KERNELS` chooses: "auto" (default: compiled kernels when they
build and load, otherwise TensorFlow ops with a one-line
`KernelsUnavailableWarning`), "tf" (always TensorFlow ops, no build, no
message), "compiled" (raise `BuildError` when they cannot be used).

Example:

    lib = load()              # the op module, or None (TensorFlow ops)
    print(status())           # one line: which kernels and why
"""

import fcntl
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings

import tensorflow as tf

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "kernels.cc")
ENV_MODE = "TF_SPARSE_KERNELS"
ENV_CACHE = "TF_SPARSE_CACHE_DIR"
MODES = ("auto", "tf", "compiled")
OPT_FLAGS = ("-O3", "-march=native", "-fPIC", "-shared")


class BuildError(RuntimeError):
    """The compiled kernels cannot be built or loaded; the message says why
    (compiler output included)."""


class KernelsUnavailableWarning(UserWarning):
    """Sparse compute runs TensorFlow ops because the compiled kernels are
    not available (said once per process)."""


_LOCK = threading.Lock()
_STATE = {"loaded": False, "module": None, "reason": None}


def mode():
    """The `TF_SPARSE_KERNELS` setting; raises ValueError naming a bad one."""
    value = os.environ.get(ENV_MODE, "auto").strip().lower() or "auto"
    if value not in MODES:
        raise ValueError(
            f"{ENV_MODE}={value!r} is not accepted; use one of "
            f"{', '.join(MODES)}.")
    return value


def compiler():
    """The C++ compiler command (`$CXX` or g++), or None when absent."""
    name = os.environ.get("CXX", "g++")
    return shutil.which(name)


def _cpu_key():
    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line
                    break
    except OSError:
        pass
    return f"{platform.machine()}|{platform.processor()}|{flags}"


def _command(cxx, source, output):
    return ([cxx, "-std=c++17", *OPT_FLAGS, source, "-o", output]
            + list(tf.sysconfig.get_compile_flags())
            + list(tf.sysconfig.get_link_flags()))


def cache_dir():
    """The folder the library is built into."""
    root = os.environ.get(ENV_CACHE)
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
            os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "tf_sparse")
    return root


def library_path(cxx=None):
    """Where the library for this source, TensorFlow, compiler and CPU is
    (or will be) built."""
    cxx = cxx or compiler() or "g++"
    digest = hashlib.sha256()
    with open(SOURCE, "rb") as f:
        digest.update(f.read())
    for part in (" ".join(_command(cxx, "", "")), tf.__version__,
                 sys.version, _cpu_key()):
        digest.update(part.encode())
    return os.path.join(cache_dir(),
                        f"tfs_kernels_{digest.hexdigest()[:16]}.so")


def build(force=False):
    """Compiles the library if it is not in the cache; returns its path.

    Raises BuildError (no compiler, or the compiler failed, with its
    output)."""
    cxx = compiler()
    if cxx is None:
        raise BuildError(
            f"no C++ compiler ({os.environ.get('CXX', 'g++')}) on PATH; "
            "install g++ or set CXX")
    path = library_path(cxx)
    if os.path.exists(path) and not force:
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if os.path.exists(path) and not force:
                return path
            fd, tmp = tempfile.mkstemp(suffix=".so",
                                       dir=os.path.dirname(path))
            os.close(fd)
            try:
                result = subprocess.run(
                    _command(cxx, SOURCE, tmp), capture_output=True,
                    text=True, check=False)
                if result.returncode != 0:
                    raise BuildError(
                        f"compiling {SOURCE} failed ({result.returncode}): "
                        f"{(result.stderr or result.stdout)[-2000:]}")
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return path


def _load_compiled():
    path = build()
    try:
        return tf.load_op_library(path)
    except (tf.errors.NotFoundError, OSError) as error:
        raise BuildError(f"loading {path} failed: {error}") from error


def load():
    """The loaded op module, or None when sparse compute runs TensorFlow
    ops (mode "tf", or "auto" and the kernels are unavailable; then a
    one-line `KernelsUnavailableWarning` is issued once). Mode "compiled"
    raises BuildError instead of returning None."""
    current = mode()
    if current == "tf":
        return None
    with _LOCK:
        if not _STATE["loaded"]:
            try:
                _STATE["module"] = _load_compiled()
                _STATE["reason"] = None
            except BuildError as error:
                _STATE["module"] = None
                _STATE["reason"] = str(error)
            _STATE["loaded"] = True
            if _STATE["module"] is None and current == "auto":
                first = _STATE["reason"].splitlines()[0][:300]
                warnings.warn(
                    "tf_sparse sparse compute: compiled kernels unavailable "
                    f"({first}); using TensorFlow ops (slower).",
                    KernelsUnavailableWarning, stacklevel=3)
    if _STATE["module"] is None and current == "compiled":
        raise BuildError(_STATE["reason"])
    return _STATE["module"]


def status():
    """One line: which kernels sparse compute uses here, and why."""
    current = mode()
    if current == "tf":
        return f"TensorFlow ops ({ENV_MODE}=tf)"
    module = load() if current == "compiled" else _quiet_load()
    if module is not None:
        return f"compiled kernels ({library_path()})"
    return f"TensorFlow ops (compiled kernels unavailable: {_STATE['reason']})"


def _quiet_load():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KernelsUnavailableWarning)
        return load()


def reset():
    """Forgets the loaded state so the next `load` tries again (tests)."""
    with _LOCK:
        _STATE.update(loaded=False, module=None, reason=None)


def main(argv=None):
    """`python -m tf_sparse.sparse_compute.build [--force]`: builds the
    library now and prints where it is."""
    args = list(sys.argv[1:] if argv is None else argv)
    unknown = [a for a in args if a != "--force"]
    if unknown:
        print(f"unknown arguments {unknown}; accepted: --force",
              file=sys.stderr)
        return 2
    try:
        path = build(force="--force" in args)
        tf.load_op_library(path)
    except BuildError as error:
        print(f"build failed: {error}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
