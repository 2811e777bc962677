"""Shared set-up of the engine tests (tests/runs, tests/backends): a tiny
Fashion-MNIST-shaped data set.

Example:

    runs.run(config, workdir, data=runs_testlib.tiny_data(), verbose=0)
"""

import numpy as np

from tf_sparse.data import pipelines
from tf_sparse.runs import data as data_lib


def tiny_data():
    """120 random 28x28 uint8 images with 10 classes (the first 40 are the
    test set), batch 20, scaled like Fashion-MNIST."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, size=(120, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, size=120).astype(np.int32)
    return data_lib.ArrayData(x, y, x[:40], y[:40], batch_size=20,
                              preprocess=pipelines.scale_grayscale(),
                              num_classes=10)
