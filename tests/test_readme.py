"""The README's library example runs as written (on tiny stand-in data)."""

import os
import re

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_readme_python_example_runs(tmp_path, monkeypatch):
    readme = open(os.path.join(ROOT, "README.md")).read()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "README has no python example"
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    scope = {"x": rng.random((32, 28, 28, 1), dtype=np.float32),
             "y": rng.integers(0, 10, 32).astype("int32")}
    exec(compile(blocks[0], "README.md", "exec"), scope)  # noqa: S102
    tfs = scope["tfs"]
    assert not tfs.is_sparse(scope["plain"])
    np.testing.assert_array_equal(
        scope["plain"].predict(scope["x"], verbose=0),
        scope["model"].predict(scope["x"], verbose=0))
    assert os.path.exists(tmp_path / "sparse.keras")
