"""The binaries never show a traceback for a user error: one line
`<program>: error: <message>` naming the flag, key or file, the value and
what is accepted (or what to do), and a non-zero exit. `--verbosity=1`
shows the traceback; an exception that is not the user's (a bug) always
does."""

import glob
import json
import os
import subprocess
import sys
import textwrap

from fashion_data import needs_fashion_mnist

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
TRAIN_CONFIG = os.path.join(ROOT, "configs", "fashion_mnist",
                            "lenet300_static.py")
SHORT = ["--config.epochs=1", "--config.steps_per_epoch=2",
         "--config.eval_every_epochs=0"]


def run(args, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, *args], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=ROOT)


def tool(binary, *args):
    return run([os.path.join(ROOT, "tools", binary), *args])


def train(workdir, *args):
    return tool("train.py", f"--config={TRAIN_CONFIG}",
                f"--workdir={workdir}", "--verbose=0", *args)


def error_line(proc, program):
    """The one error line of a failed binary; asserts there is no
    traceback and exactly one such line."""
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    lines = [line for line in proc.stderr.splitlines()
             if line.startswith(f"{program}: error: ")]
    assert len(lines) == 1, proc.stderr[-4000:]
    return lines[0]


# --- config values and keys ----------------------------------------------------


def test_a_value_out_of_range_names_key_value_and_range(tmp_path):
    proc = train(tmp_path / "run", "--config.sparsity=1.5")
    assert error_line(proc, "train") == (
        "train: error: sparsity=1.5 is not accepted: it must be a number in "
        "[0.0, 1.0).")
    assert not os.path.exists(tmp_path / "run")


def test_an_unknown_key_names_the_flag_and_the_nearest_key(tmp_path):
    proc = train(tmp_path / "run", "--config.sparsty=0.9")
    assert error_line(proc, "train") == (
        "train: error: --config.sparsty=0.9: the config has no key "
        "'sparsty'; did you mean 'sparsity'? Every key is listed with its "
        "meaning in tf_sparse/runs/config.py.")


def test_a_batch_of_zero_is_refused(tmp_path):
    proc = train(tmp_path / "run", "--config.batch_size=0")
    assert error_line(proc, "train") == (
        "train: error: batch_size=0 is not accepted: it must be an int >= 1.")


def test_a_missing_config_file_lists_the_configs(tmp_path):
    proc = tool("train.py", "--config=configs/fashion_mnist/lenet301.py",
                f"--workdir={tmp_path}")
    line = error_line(proc, "train")
    assert line.startswith("train: error: --config=configs/fashion_mnist/"
                           "lenet301.py: no such config file; configs/"
                           "fashion_mnist/ holds ")
    assert "lenet300_static.py" in line


def test_verbosity_1_shows_the_traceback(tmp_path):
    proc = train(tmp_path / "run", "--config.sparsity=1.5", "--verbosity=1")
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr
    assert "sparsity=1.5 is not accepted" in proc.stderr


def test_a_bug_keeps_its_traceback(tmp_path):
    """Only user errors are one line: an unexpected exception type is
    shown in full."""
    script = tmp_path / "binary.py"
    script.write_text(textwrap.dedent("""
        import sys
        from tf_sparse import cli

        def main(argv):
            if sys.argv[-1] == "bug":
                raise KeyError("internal")
            raise ValueError("value=3 is not accepted; accepted: 1, 2.")

        cli.run_main(main, "binary")
    """))
    user = run([str(script), "--", "user"])
    assert error_line(user, "binary") == (
        "binary: error: value=3 is not accepted; accepted: 1, 2.")
    bug = run([str(script), "--", "bug"])
    assert bug.returncode != 0 and "Traceback" in bug.stderr
    assert "KeyError: 'internal'" in bug.stderr


# --- files in the workdir ------------------------------------------------------


def test_a_damaged_run_json_is_named(tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "run.json").write_text('{"format": "tf_sparse.run", "conf')
    proc = train(workdir, *SHORT)
    line = error_line(proc, "train")
    assert line.startswith(f"train: error: {workdir}/run.json is unreadable "
                           "or damaged: it is not valid JSON (")
    assert "restore it from a copy, or use another --workdir" in line
    assert sorted(os.listdir(workdir)) == ["run.json"]


def test_a_full_disk_is_named_with_the_file(tmp_path):
    """The workdir's atomic writer fails as on a full disk (root may write
    into read-only folders, so the failure is injected)."""
    workdir = tmp_path / "run"
    script = tmp_path / "full_disk.py"
    script.write_text(textwrap.dedent(f"""
        import errno, os, runpy, sys
        from tf_sparse.runs import workdir

        def full(path, write, binary=False):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

        workdir.write_atomically = full
        sys.argv = [{os.path.join(ROOT, "tools", "train.py")!r},
                    *sys.argv[1:]]
        sys.path.insert(0, os.path.dirname(sys.argv[0]))   # as `python` does
        runpy.run_path(sys.argv[0], run_name="__main__")
    """))
    proc = run([str(script), f"--config={TRAIN_CONFIG}",
                f"--workdir={workdir}", "--verbose=0", *SHORT])
    assert error_line(proc, "train") .startswith(
        f"train: error: Cannot write {workdir}/run.json: No space left on "
        "device; nothing was written there. Free space on that disk")


@needs_fashion_mnist
def test_a_truncated_checkpoint_is_named_and_previous_falls_back(tmp_path):
    workdir = tmp_path / "run"
    first = train(workdir, *SHORT, "--config.checkpoint_every_steps=1")
    assert first.returncode == 0, first.stderr[-3000:]
    data = glob.glob(str(workdir / "checkpoints" / "ckpt-2.data-*"))[0]
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 2)

    longer = [arg.replace("epochs=1", "epochs=2") for arg in SHORT]
    proc = train(workdir, *longer)
    line = error_line(proc, "train")
    assert line.startswith(f"train: error: Checkpoint data file {data} is "
                           "damaged or truncated (")
    assert ("run again with --config.on_bad_checkpoint=previous" in line
            and "(ckpt-1)" in line)

    again = train(workdir, *longer, "--config.on_bad_checkpoint=previous",
                  "--verbose=1")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Resuming" in again.stdout and "ckpt-1" in again.stdout
    with open(workdir / "results.json") as f:
        results = json.load(f)
    assert results["steps"] == 4 and results["steps_run"] == 3
    assert os.path.exists(data + ".damaged")


# --- the other binaries ----------------------------------------------------------


def test_every_binary_reports_user_errors_as_one_line(tmp_path):
    cases = [
        ("train_cifar10.py", "train_cifar10",
         [f"--config={ROOT}/configs/cifar10/resnet20_dense.py",
          "--config.batch_size=0"],
         "batch_size=0 is not accepted: it must be an int >= 1."),
        ("train_imagenet.py", "train_imagenet",
         [f"--config={ROOT}/configs/imagenet/resnet50_dense.py",
          "--config.lr_boundarys=(0.5,)"],
         "--config.lr_boundarys=(0.5,): the config has no key "
         "'lr_boundarys'; did you mean 'lr_boundaries'?"),
        ("lottery.py", "lottery",
         [f"--config={ROOT}/configs/lottery/lenet300_fashion_mnist.py",
          "--config.levls=3"],
         "--config.levls=3: the config has no key 'levls'; did you mean "
         "'levels'? Every key is listed with its meaning in "
         "tf_sparse/lottery/config.py."),
        ("recipe.py", "recipe",
         [f"--config={ROOT}/configs/recipes/lenet5_gmp.py",
          "--config.sparsity=1.5"],
         "sparsity=1.5 is not accepted: it must be a number in [0.0, 1.0)."),
    ]
    for binary, program, args, expected in cases:
        proc = tool(binary, *args, f"--workdir={tmp_path / program}")
        line = error_line(proc, program)
        assert expected in line, (binary, line)
        assert not os.path.exists(tmp_path / program)


def test_export_names_a_truncated_keras_file(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"PK\x03\x04 truncated")
    proc = tool("export.py", f"--model={path}",
                f"--output_dir={tmp_path / 'out'}")
    line = error_line(proc, "export")
    assert line.startswith(f"export: error: {path} is not a readable .keras "
                           "file: File is not a zip file")
