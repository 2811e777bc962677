"""Shared helpers for benchmark scripts: machine facts and result files.

Every benchmark writes `benchmarks/results/<name>.json` (raw figures plus the
machine and package versions) and `benchmarks/results/<name>.md` (a table).
"""

import datetime
import importlib.util
import json
import os
import platform
import subprocess
import sys

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

# The Keras backends tf-sparse runs on (`tf_sparse.backend.BACKENDS`; not
# imported here: importing Keras would fix this process's backend).
BACKENDS = ("tensorflow", "jax", "torch")
# The two Fashion-MNIST models of the per-backend benchmarks.
LENET_MODELS = ("lenet300_100", "lenet5_caffe")


def machine_info():
    """CPU, cores, Python and package versions, as a dict."""
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    for module in ("tensorflow", "keras", "numpy"):
        try:
            info[module] = __import__(module).__version__
        except Exception:  # pylint: disable=broad-except
            info[module] = None
    commit = git_commit(os.path.dirname(RESULTS))
    if commit is not None:
        info["git_commit"] = commit
    return info


def git_commit(path):
    """The short commit of the git checkout holding `path`, or None."""
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, cwd=path)
    except OSError:
        return None
    return done.stdout.strip() or None


def backend_versions():
    """Versions of the other Keras backends' packages that are installed
    (jax, jaxlib, torch), without importing Keras."""
    return {module: __import__(module).__version__
            for module in ("jax", "jaxlib", "torch")
            if importlib.util.find_spec(module) is not None}


def machine_line(machine, keys=("cpu", "cpu_count", "tensorflow", "keras",
                                "jax", "torch")):
    """The "Machine: ..." line of a results table."""
    return "\nMachine: " + ", ".join(
        f"{k} {machine.get(k)}" for k in keys) + "\n"


def run_backend_worker(script, backend, argv, pythonpath=None):
    """Runs `script --worker *argv` with `KERAS_BACKEND=backend` (Keras
    fixes its backend at import, so each backend gets its own process) and
    returns the JSON the worker prints on its last line of stdout.
    `pythonpath`: a directory put first on the worker's PYTHONPATH (e.g. a
    checkout of another commit, whose tf_sparse the worker then imports)."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            [os.path.abspath(pythonpath)]
            + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    done = subprocess.run(
        [sys.executable, os.path.abspath(script), "--worker", *argv],
        env=env, cwd=os.path.dirname(RESULTS), capture_output=True,
        text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{backend} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_results(name, payload, markdown):
    """Writes results/<name>.json and results/<name>.md; returns their paths."""
    os.makedirs(RESULTS, exist_ok=True)
    json_path = os.path.join(RESULTS, f"{name}.json")
    md_path = os.path.join(RESULTS, f"{name}.md")
    with open(json_path, "w") as f:
        json.dump(payload, f, indent=2, default=str)
    with open(md_path, "w") as f:
        f.write(markdown)
    return json_path, md_path


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines) + "\n"


FAILURES = ("diverged", "collapsed")


def run_in_tempdir(config, prefix, inspect=None, model_file=None):
    """`tf_sparse.runs.run(config)` in a fresh temporary workdir, removed
    afterwards; returns `(results, inspected, seconds)`, where `inspected`
    is `inspect(workdir)` (called before the workdir goes) or None.
    `model_file`: a file name in the workdir where the run saves its
    trained network (`runs.run(model_file=...)`).

    Example:
        results, _, seconds = run_in_tempdir(config, "dst_acc_")
    """
    import shutil
    import tempfile
    import time

    import keras
    from tf_sparse import runs

    workdir = tempfile.mkdtemp(prefix=prefix)
    start = time.perf_counter()
    try:
        keras.backend.clear_session()
        extra = ({"model_file": os.path.join(workdir, model_file)}
                 if model_file else {})
        results = runs.run(config, workdir, verbose=0, **extra)
        inspected = inspect(workdir) if inspect else None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results, inspected, time.perf_counter() - start


def run_fields(results):
    """The fields every accuracy benchmark records of a run's results: test
    accuracy and loss, nonzeros, per-layer density, the resolved config,
    provenance, and the message of a failure ("diverged", "collapsed")."""
    record = {"test_accuracy": results["test_accuracy"],
              "test_loss": results["test_loss"],
              "total_nonzeros": results["total_nonzeros"],
              "layer_density": {p: v["density"]
                                for p, v in results["layers"].items()},
              "config": results["config"],
              "provenance": results["provenance"]}
    for failure in FAILURES:
        if failure in results:
            record[failure] = results[failure]["message"]
    return record
