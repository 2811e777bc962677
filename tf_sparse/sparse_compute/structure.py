"""The compressed form of one sparse kernel matrix, in NumPy and in graph.

A kernel matrix `K [inputs, outputs]` (a Dense kernel; a 1x1 convolution's
or an EinsumDense's kernel seen as a matrix) is stored by output unit, CSR
of `K^T`:

* `row_ptr [outputs + 1]` int32: the entries of output unit `j` are
  `row_ptr[j] .. row_ptr[j + 1] - 1`;
* `cols [capacity]` int32: the input index of each entry, increasing within
  a unit;
* `values [capacity]`: the weights.

`capacity >= nnz = row_ptr[-1]`; entries past `nnz` are unused (column 0,
value 0, never read, gradient 0), so a layer can hold a varying number of
weights in variables of one shape.

Example:

    s = from_mask(mask)                    # mask [inputs, outputs] of 0/1
    values = gather(kernel, s)             # kernel[cols[e], row(e)]
    dense = to_dense(s, values)            # kernel with zeros in place
"""

import dataclasses

import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Structure:
    """A CSR-of-K^T structure in NumPy (see the module docstring)."""
    row_ptr: np.ndarray
    cols: np.ndarray
    shape: tuple

    @property
    def nnz(self):
        return int(self.row_ptr[-1])

    @property
    def capacity(self):
        return int(self.cols.shape[0])

    def rows(self):
        """The output unit of each used entry, `[nnz]`."""
        return np.repeat(np.arange(self.shape[1], dtype=np.int32),
                         np.diff(self.row_ptr))

    def positions(self):
        """Flat row-major positions in `K [inputs, outputs]` of the used
        entries, in storage order."""
        return (self.cols[:self.nnz].astype(np.int64) * self.shape[1]
                + self.rows())


def check_capacity(capacity, nnz, where):
    """The capacity as an int >= nnz; raises ValueError naming `where`."""
    if capacity is None:
        return int(nnz)
    if isinstance(capacity, bool) or not isinstance(
            capacity, (int, np.integer)) or capacity < nnz:
        raise ValueError(
            f"{where}: capacity must be an int >= the number of nonzeros "
            f"{nnz}, got {capacity!r}.")
    return int(capacity)


def from_mask(mask, capacity=None):
    """The `Structure` of a 0/1 mask `[inputs, outputs]`, padded to
    `capacity` entries (default: exactly the nonzeros).

    >>> s = from_mask(np.array([[1, 0], [1, 1]]))
    >>> s.row_ptr.tolist(), s.cols.tolist()
    ([0, 2, 3], [0, 1, 1])
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D [inputs, outputs], got shape "
                         f"{mask.shape}.")
    rows, cols = np.nonzero(mask.T)          # sorted by unit, then input
    counts = np.bincount(rows, minlength=mask.shape[1])
    row_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    capacity = check_capacity(capacity, len(cols), "from_mask")
    padded = np.zeros(capacity, np.int32)
    padded[:len(cols)] = cols
    return Structure(row_ptr, padded, tuple(int(d) for d in mask.shape))


def from_positions(positions, shape, capacity=None):
    """The `Structure` of the flat row-major positions in a `shape` matrix.

    >>> from_positions([3, 0], (2, 2)).cols.tolist()
    [0, 1]
    """
    mask = np.zeros(int(np.prod(shape)), np.uint8)
    mask[np.asarray(positions, np.int64)] = 1
    return from_mask(mask.reshape(shape), capacity)


def gather(matrix, structure):
    """The stored values of `matrix [inputs, outputs]` at the structure's
    entries, padded with zeros to the capacity."""
    matrix = np.asarray(matrix)
    values = np.zeros(structure.capacity, matrix.dtype)
    values[:structure.nnz] = matrix.reshape(-1)[structure.positions()]
    return values


def to_dense(structure, values):
    """The `[inputs, outputs]` matrix with `values` at the entries and +0.0
    elsewhere (NumPy)."""
    values = np.asarray(values)
    dense = np.zeros(int(np.prod(structure.shape)), values.dtype)
    dense[structure.positions()] = values[:structure.nnz]
    return dense.reshape(structure.shape)


def mask_of(structure):
    """The 0/1 float32 mask `[inputs, outputs]` of a structure."""
    mask = np.zeros(int(np.prod(structure.shape)), np.float32)
    mask[structure.positions()] = 1.0
    return mask.reshape(structure.shape)


# --------------------------------------------------------------------------
# In graph (static shapes, so it also compiles with XLA).


def entry_rows(row_ptr, capacity):
    """The output unit of every entry `[capacity]` (int32) from `row_ptr`;
    unused entries get the last unit. A cumulative count of row ends: static
    shapes, no searchsorted."""
    n_out = tf.shape(row_ptr)[0] - 1
    ends = row_ptr[1:-1]
    marks = tf.scatter_nd(tf.expand_dims(ends, 1),
                          tf.ones_like(ends), [capacity + 1])
    rows = tf.cumsum(marks)[:capacity]
    return tf.minimum(rows, tf.maximum(n_out - 1, 0))


def used_entries(row_ptr, capacity):
    """Boolean `[capacity]`: which entries are in use."""
    return tf.range(capacity) < row_ptr[-1]


def dense_in_graph(row_ptr, cols, values, shape):
    """The dense `[inputs, outputs]` matrix in graph; differentiable in
    `values` (the gradient is the dense gradient gathered at the entries,
    0 at unused ones)."""
    capacity = values.shape[0]
    used = used_entries(row_ptr, capacity)
    rows = entry_rows(row_ptr, capacity)
    indices = tf.stack([cols, rows], axis=1)
    kept = tf.where(used, values, tf.zeros_like(values))
    return tf.scatter_nd(indices, kept, shape)
