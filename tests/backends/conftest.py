"""Makes tests/backends/backend_testlib.py importable (the suite runs with
--import-mode=importlib, which does not put test directories on sys.path).

These tests run on whichever Keras backend the process was started with:
TensorFlow in the normal suite, JAX and PyTorch through tests/test_backends.py
(`KERAS_BACKEND=<name> python -m pytest tests/backends`)."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
