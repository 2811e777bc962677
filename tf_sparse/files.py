"""Files written whole or not at all.

`write_atomically(path, write)` calls `write(file)` on a temporary file in
the destination's folder and renames it into place, so a kill (or a full
disk) leaves the old file or the new one, never half of one; the temporary
file is removed when writing fails, and the `OSError` is raised as it is
(callers that own a folder turn it into their own error: see
`tf_sparse.runs.workdir`). `write_json_atomically` does that for a JSON
value.

Example:

    write_json_atomically("runs/sm/history.json", [{"step": 0, "loss": 2.3}])
    write_atomically("weights.npz", lambda f: np.savez(f, w=w), binary=True)
"""

import json
import os
import tempfile


def write_atomically(path, write, binary=False):
    """Writes `path` through `write(file)` on a temporary file, then renames
    it over `path` (folders are created). Raises the `OSError` of a failed
    write with `path` left as it was."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        suffix = os.path.splitext(path)[1]
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=folder)
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
        os.replace(tmp, path)
        tmp = None
    finally:
        if tmp is not None and os.path.exists(tmp):
            try:
                os.remove(tmp)
            except OSError:
                pass


def write_json_atomically(path, value, indent=2, sort_keys=False):
    """Writes `value` as JSON (then a newline) to `path` atomically."""
    def write(f):
        json.dump(value, f, indent=indent, sort_keys=sort_keys, default=str)
        f.write("\n")
    write_atomically(path, write)
