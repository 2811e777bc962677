"""`matmul(x, row_ptr, cols, values)`: dense activations times a sparse
kernel, differentiable in the activations and in the stored values.

Forward `Y = X K`, input gradient `dX = dY K^T`, and the kernel's gradient
only at the stored entries, `dvalues[e] = sum_b X[b, i_e] dY[b, j_e]` (a
sampled dense-dense product). Three ways to run it, chosen per call:

* "compiled": the custom ops of `kernels.cc` (float32, CPU; batch-contiguous
  layout after SparseProp, multithreaded on TensorFlow's intra-op pool).
  Their gradient is registered with `tf.RegisterGradient`, so `fit`,
  `tf.GradientTape` and `tf.function` all work.
* "csr": TensorFlow's CSR kernel (`SparseMatrixMatMul`) forward and for
  the input gradient; the values' gradient is the dense `X^T dY` gathered
  at the entries. Used when the compiled ops are unavailable (float32 and
  float64).
* "dense": the kernel is scattered into a dense matrix and multiplied
  densely (a `tf.scatter_nd` differentiable in the values). Used inside
  XLA (`jit_compile=True`: the compiled ops and the CSR variant have no XLA
  kernels; results are the same, with no sparse speed-up) and for float16 /
  bfloat16.

Example:

    y = matmul(x, row_ptr, cols, values)      # x [..., inputs]
"""

import tensorflow as tf
from tensorflow.python.ops import control_flow_util  # pylint: disable=g-direct-tensorflow-import

from tf_sparse.sparse_compute import build
from tf_sparse.sparse_compute import structure as structure_lib

PATHS = ("auto", "compiled", "csr", "dense")
_REGISTERED = {"done": False}


def in_xla():
    """True while tracing inside an XLA-compiled function."""
    graph = tf.compat.v1.get_default_graph()
    return bool(control_flow_util.GraphOrParentsInXlaContext(graph))


def _register_gradients(lib):
    if _REGISTERED["done"]:
        return

    @tf.RegisterGradient("TfsSparseMatmul")
    def _sparse_matmul_grad(op, dyt):  # pylint: disable=unused-variable
        xt, row_ptr, cols, values = op.inputs
        dxt, dvalues = lib.tfs_sparse_matmul_grad(xt, dyt, row_ptr, cols,
                                                  values)
        return [dxt, None, None, dvalues]

    _REGISTERED["done"] = True


@tf.autograph.experimental.do_not_convert
def compiled_ops():
    """The compiled op module with its gradient registered, or None."""
    lib = build.load()
    if lib is not None:
        _register_gradients(lib)
    return lib


@tf.autograph.experimental.do_not_convert
def choose_path(dtype, path="auto"):
    """Which implementation runs for `dtype` now (see the module
    docstring); raises ValueError for an unknown `path`."""
    if path not in PATHS:
        raise ValueError(f"path must be one of {', '.join(PATHS)}, got "
                         f"{path!r}.")
    dtype = tf.as_dtype(dtype)
    if path != "auto":
        return path
    if in_xla() or dtype not in (tf.float32, tf.float64):
        return "dense"
    if dtype == tf.float32 and compiled_ops() is not None:
        return "compiled"
    return "csr"


def _csr_matrix(row_ptr, cols, values, k_in):
    """The CSR variant of K^T [outputs, inputs] from the used entries."""
    nnz = row_ptr[-1]
    capacity = tf.shape(cols)[0]
    rows = structure_lib.entry_rows(row_ptr, capacity)[:nnz]
    indices = tf.cast(tf.stack([rows, cols[:nnz]], axis=1), tf.int64)
    n_out = tf.shape(row_ptr, out_type=tf.int64)[0] - 1
    return tf.raw_ops.SparseTensorToCSRSparseMatrix(
        indices=indices, values=values[:nnz],
        dense_shape=tf.stack([n_out, tf.cast(k_in, tf.int64)]))


def _csr_matmul(flat, row_ptr, cols, values):
    k_in = flat.shape[-1]

    @tf.custom_gradient
    def run(flat, values):
        csr = _csr_matrix(row_ptr, cols, values, k_in)
        y = tf.raw_ops.SparseMatrixMatMul(a=csr, b=flat, transpose_b=True,
                                          transpose_output=True)

        def grad(dy):
            dx = tf.raw_ops.SparseMatrixMatMul(
                a=csr, b=dy, transpose_a=True, transpose_b=True,
                transpose_output=True)
            dense_grad = tf.matmul(flat, dy, transpose_a=True)
            capacity = tf.shape(cols)[0]
            rows = structure_lib.entry_rows(row_ptr, capacity)
            dv = tf.gather_nd(dense_grad, tf.stack([cols, rows], axis=1))
            used = structure_lib.used_entries(row_ptr, capacity)
            return dx, tf.where(used, dv, tf.zeros_like(dv))

        return y, grad

    return run(flat, values)


def matmul(x, row_ptr, cols, values, n_out=None, path="auto"):
    """`x [..., inputs] @ K` for the sparse `K [inputs, outputs]` held as
    (`row_ptr`, `cols`, `values`) (see `structure`); `[..., outputs]`.

    Raises ValueError when `n_out` disagrees with `row_ptr`."""
    x = tf.convert_to_tensor(x)
    values = tf.convert_to_tensor(values)
    row_ptr = tf.convert_to_tensor(row_ptr, tf.int32)
    cols = tf.convert_to_tensor(cols, tf.int32)
    static_out = row_ptr.shape[0] - 1 if row_ptr.shape[0] is not None \
        else None
    if n_out is not None and static_out is not None and n_out != static_out:
        raise ValueError(f"n_out={n_out} but row_ptr describes {static_out} "
                         "output units.")
    n_out = static_out if static_out is not None else n_out
    k_in = x.shape[-1]
    if k_in is None:
        raise ValueError("the last axis of x must have a static size.")
    lead = tf.shape(x)[:-1]
    flat = tf.reshape(x, [-1, k_in])
    chosen = choose_path(x.dtype, path)
    if chosen == "compiled":
        if x.dtype != tf.float32:
            raise ValueError(f"the compiled kernels take float32, got "
                             f"{x.dtype.name}.")
        lib = compiled_ops()
        if lib is None:
            raise build.BuildError("compiled kernels are not available: "
                                   f"{build.status()}")
        y = tf.transpose(lib.tfs_sparse_matmul(
            tf.transpose(flat), row_ptr, cols, tf.cast(values, tf.float32)))
    elif chosen == "csr":
        y = _csr_matmul(flat, row_ptr, cols, tf.cast(values, x.dtype))
    else:
        dense = structure_lib.dense_in_graph(
            row_ptr, cols, tf.cast(values, x.dtype), [k_in, n_out])
        y = tf.matmul(flat, dense)
    return tf.reshape(y, tf.concat([lead, [n_out]], axis=0))
