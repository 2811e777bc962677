"""Makes tests/runs/runs_testlib.py importable (the suite runs with
--import-mode=importlib, which does not put test directories on sys.path)."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
