"""tools/lottery.py and tools/stability.py end to end on real Fashion-MNIST."""

import json
import os
import subprocess
import sys

from fashion_data import needs_fashion_mnist

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "configs", "lottery", "lenet300_fashion_mnist.py")
STABILITY = os.path.join(ROOT, "configs", "lottery", "stability.py")


def cli(tool, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", tool),
                           *args], capture_output=True, text=True, env=env,
                          timeout=900, cwd=ROOT)


@needs_fashion_mnist
def test_lottery_then_stability_cli(tmp_path):
    workdir = str(tmp_path / "lth")
    run = cli("lottery.py", f"--config={CONFIG}", f"--workdir={workdir}",
              "--verbose=0", "--config.epochs=2", "--config.steps_per_epoch=8",
              "--config.levels=1", "--config.rewind=3it",
              "--config.eval_every_epochs=0",
              "--config.baselines=('random_prune',)")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "| 1 | 80.08% |" in run.stdout       # fc3's 1,000 stay: 213,160
    metrics = json.load(open(os.path.join(workdir, "level_01",
                                          "metrics.json")))
    assert metrics["nonzeros"] == 212160 + 1000
    assert metrics["test_accuracy"] > 0.3           # 13 real steps of SGD
    for name in ("report.md", "accuracy.png", "run.json",
                 os.path.join("rewind", "rewind.npz")):
        assert os.path.exists(os.path.join(workdir, name)), name

    stab = cli("stability.py", f"--config={STABILITY}",
               f"--workdir={workdir}", "--verbose=0",
               "--config.levels=(1,)", "--config.alphas=3",
               "--config.train_eval_examples=500")
    assert stab.returncode == 0, stab.stderr[-3000:]
    assert "| 1 | 80.08% | imp | 3 |" in stab.stdout
    assert "| 1 | 80.08% | random | 3 |" in stab.stdout
    for name in ("results.json", "report.md", "distance.png",
                 "instability.png"):
        assert os.path.exists(os.path.join(workdir, "stability", name)), name


def test_cli_bad_input_is_a_one_line_error(tmp_path):
    workdir = str(tmp_path / "bad")
    run = cli("lottery.py", f"--config={CONFIG}", f"--workdir={workdir}",
              "--config.prune_fraction=1.5")
    assert run.returncode == 1
    assert "prune_fraction=1.5 is outside (0, 1)" in run.stderr
    assert not os.path.exists(workdir)
    stab = cli("stability.py", f"--workdir={workdir}")
    assert stab.returncode == 1
    assert "is not a lottery workdir" in stab.stderr
