"""Static sparse training: a fixed mask from initialisation to the end.

The baseline of every dynamic-sparse paper (sparse momentum's "static
sparse", RigL's "Static"): `sparsify` draws the mask, nothing ever changes
it, and the mask constraint keeps pruned weights at zero.

Example:

    model = tfs.sparsify(model, sparsity=0.95, seed=0)
    model.fit(x, y, callbacks=[tfs.callbacks.MaskUpdate(tfs.algorithms.Static())])
"""

from tf_sparse.algorithms import base


class Static(base.MaskAlgorithm):
    """Never updates the masks."""

    name = "static"
