"""Shared helpers for benchmark scripts: machine facts and result files.

Every benchmark writes `benchmarks/results/<name>.json` (raw figures plus the
machine and package versions) and `benchmarks/results/<name>.md` (a table).
"""

import datetime
import json
import os
import platform
import subprocess

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


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
    try:
        info["git_commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True,
            text=True, cwd=os.path.dirname(RESULTS)).stdout.strip()
    except OSError:
        pass
    return info


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
