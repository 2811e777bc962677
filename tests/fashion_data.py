"""Whether the real Fashion-MNIST files are here, for the tests that train
on them through the binaries.

Outside CI a machine without the Debian package skips those tests; in CI
(`CI` set) the set-up installs the data, so a missing package fails
instead of silently skipping the end-to-end runs.

    from fashion_data import needs_fashion_mnist

    @needs_fashion_mnist
    def test_a_real_run(tmp_path): ...
"""

import os

import pytest

from tf_sparse.data import fashion_mnist


def have_fashion_mnist():
    """True when the IDX files are found; raises in CI when they are not."""
    try:
        fashion_mnist.find_fashion_mnist_dir()
        return True
    except FileNotFoundError:
        if os.environ.get("CI"):
            raise  # CI installs the data: a missing package is a failure.
        return False


needs_fashion_mnist = pytest.mark.skipif(
    not have_fashion_mnist(), reason="Fashion-MNIST not installed "
    "(Debian package dataset-fashion-mnist; bash tools/run.sh installs it)")
