"""Sparse compute: training that spends compute on the nonzeros only.

`tfs.sparsify(model, sparsity=0.95, compute="sparse")` (or
`to_sparse_compute(model)` on a masked model) makes every masked Dense,
EinsumDense (one 2-D matmul: `einsum.EinsumPlan`), 1x1 Conv2D and
Embedding layer hold its nonzero weights in a compressed
form (values trainable, CSR structure non-trainable) and compute with them:
forward `Y = X W`, input gradient `dX = dY W^T` and the weight gradient at
the nonzeros only. The optimizer's slots then have one entry per nonzero.

Modules: `structure` (the compressed form), `einsum` (an EinsumDense
equation as a matmul), `ops` (the differentiable
product: compiled kernels, TensorFlow's CSR kernel, or a dense scatter
under XLA), `build` (compiling `kernels.cc`), `layers` (converting a layer
in place), `convert` (a whole model), `saving` (.keras files).

TensorFlow backend only: under JAX or PyTorch `compute="sparse"` raises.

Example:

    model = tfs.sparsify(model, sparsity=0.95, compute="sparse")
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss="sparse_categorical_crossentropy")
    model.fit(x, y)
    print(tfs.sparse_compute.build.status())   # which kernels ran
    plain = tfs.strip(model)                   # the same as for the masked
"""

from tf_sparse.sparse_compute.build import KernelsUnavailableWarning
from tf_sparse.sparse_compute.convert import MaskedLayersKeptWarning
from tf_sparse.sparse_compute.convert import to_sparse_compute
from tf_sparse.sparse_compute.layers import is_sparse_compute
from tf_sparse.sparse_compute.layers import plain_copy
from tf_sparse.sparse_compute.layers import sparse_kernels
from tf_sparse.sparse_compute.saving import is_sparse_compute_file
from tf_sparse.sparse_compute.saving import load_model
from tf_sparse.sparse_compute.saving import save_model
