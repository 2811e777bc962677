"""Packaging: no global state on import, BUILD in sync, no machine paths."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_import_changes_no_environment_or_keras_state():
    code = (
        "import os, json, keras\n"
        "before = dict(os.environ)\n"
        "floatx, fmt = keras.config.floatx(), keras.config.image_data_format()\n"
        "import tf_sparse\n"
        "after = dict(os.environ)\n"
        "assert before == after, set(after.items()) ^ set(before.items())\n"
        "assert 'TF_USE_LEGACY_KERAS' not in after\n"
        "assert keras.config.floatx() == floatx\n"
        "assert keras.config.image_data_format() == fmt\n"
        "assert keras.version().startswith('3.')\n"
        "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("ok")


def test_build_file_lists_every_module_binary_and_test():
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "update_build.py"),
         "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
    build = open(os.path.join(ROOT, "BUILD")).read()
    for module in ("tf_sparse/masking.py", "tf_sparse/sparsification.py",
                   "tools/train.py", "tests/test_package.py"):
        assert f'"{module}"' in build


def test_no_absolute_paths_of_this_machine_in_the_repo():
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True,
                            text=True).stdout.split()
    bad = []
    for path in listed:
        if path.endswith((".png", ".gz")) or path == "tests/test_package.py":
            continue
        try:
            text = open(os.path.join(ROOT, path), encoding="utf-8").read()
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        for marker in ("/work/", "/root/", "/tmp/"):
            if marker in text:
                bad.append(f"{path}: {marker}")
    assert not bad, bad
