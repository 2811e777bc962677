"""`EinsumPlan`: an EinsumDense equation as one 2-D matmul.

An EinsumDense layer computes `einsum(equation, x, kernel)`. When every
kernel axis is either contracted with the input or kept in the output (the
attention query/key/value/output projections, keras-hub's feed-forward
projections), that is one product of two matrices: the input transposed to
(ellipsis, batch letters, contracted letters) and flattened to `[M, K]`,
times the kernel transposed to (contracted, free letters) and flattened to
`[K, N]`; the `[M, N]` result is reshaped and transposed to the output's
order. Sparse compute (`layers`) stores that `[K, N]` kernel matrix as it
stores a Dense kernel; the CSR inference form (`tf_sparse.sparse_inference`)
runs it with TensorFlow's CSR kernel.

Example:

    plan = EinsumPlan("abc,cde->abde", kernel_shape=(16, 2, 8))
    matrix = plan.kernel_2d(kernel)                  # [16, 16]
    y = plan.apply(x, lambda flat: tf.matmul(flat, matrix))
"""

import numpy as np
import tensorflow as tf


class EinsumPlan:
    """An EinsumDense equation as one 2-D matmul: `x` is transposed to
    (ellipsis, batch letters, contracted letters) and flattened to
    `[M, K]`, the kernel to `[K, N]` (contracted, then free letters), and
    the `[M, N]` product reshaped and transposed to the output's order.

    Raises ValueError for equations with no such form (a kernel axis shared
    with the output and the input, an axis summed out of one operand, an
    ellipsis anywhere but at the front).

    >>> p = EinsumPlan("abc,cde->abde", (16, 2, 8))
    >>> p.contracted, p.free, p.batch, (p.k, p.n)
    ('c', 'de', 'ab', (16, 16))
    """

    def __init__(self, equation, kernel_shape):
        self.equation = str(equation)
        try:
            lhs, out = self.equation.replace(" ", "").split("->")
            inp, ker = lhs.split(",")
        except ValueError:
            raise ValueError(f"EinsumDense equation {equation!r} is not of "
                             "the form 'in,kernel->out'.") from None
        self.ellipsis = inp.startswith("...")
        if self.ellipsis != out.startswith("..."):
            raise ValueError(f"{equation!r}: '...' must start both the input "
                             "and the output.")
        inp, out = inp.replace("...", "", 1), out.replace("...", "", 1)
        if "." in inp + out + ker:
            raise ValueError(f"{equation!r}: '...' is supported only at the "
                             "front of the input and the output.")
        kernel_shape = tuple(int(d) for d in kernel_shape)
        if len(ker) != len(kernel_shape):
            raise ValueError(f"{equation!r}: kernel has {len(kernel_shape)} "
                             f"axes, the equation {len(ker)}.")
        bad = [c for c in ker if (c in inp) == (c in out)]
        bad += [c for c in inp if c not in ker and c not in out]
        if bad:
            raise ValueError(
                f"{equation!r} has no 2-D matmul form (axes {sorted(set(bad))}"
                " are batched over the kernel or summed out of one operand).")
        size = dict(zip(ker, kernel_shape))
        self.input_letters, self.output_letters = inp, out
        self.kernel_letters = ker
        self.kernel_shape = kernel_shape
        self.contracted = "".join(c for c in inp if c in ker)
        self.free = "".join(c for c in out if c in ker)
        self.batch = "".join(c for c in inp if c not in ker)
        self.kernel_perm = [ker.index(c) for c in self.contracted + self.free]
        self.k = int(np.prod([size[c] for c in self.contracted]))
        self.n = int(np.prod([size[c] for c in self.free]))
        self.free_shape = [size[c] for c in self.free]
        staged = self.batch + self.free
        self.output_perm = [staged.index(c) for c in out]

    def kernel_2d(self, kernel):
        """The `[K, N]` matrix of a kernel of the layer's shape."""
        return np.transpose(np.asarray(kernel), self.kernel_perm).reshape(
            self.k, self.n)

    def kernel_nd(self, matrix):
        """The kernel (the layer's shape) of a `[K, N]` matrix: the inverse
        of `kernel_2d`."""
        staged = [self.kernel_shape[i] for i in self.kernel_perm]
        return np.transpose(np.asarray(matrix).reshape(staged),
                            np.argsort(self.kernel_perm))

    def flatten_input(self, x):
        """`x` as `[M, K]` and what `unflatten_output` needs: x transposed
        to (leading, batch letters, contracted letters) and reshaped."""
        lead = len(x.shape) - len(self.input_letters)
        perm = list(range(lead)) + [
            lead + self.input_letters.index(c)
            for c in self.batch + self.contracted]
        x = tf.transpose(x, perm)
        outer = tf.shape(x)[:lead + len(self.batch)]
        return tf.reshape(x, [-1, self.k]), (lead, outer)

    def unflatten_output(self, y, context):
        """The `[M, N]` product in the output's shape and order."""
        lead, outer = context
        y = tf.reshape(y, tf.concat([outer, self.free_shape], 0))
        return tf.transpose(
            y, list(range(lead)) + [lead + i for i in self.output_perm])

    def apply(self, x, matmul):
        """`einsum(equation, x, kernel)` with `matmul([M, K]) -> [M, N]`."""
        flat, context = self.flatten_input(x)
        return self.unflatten_output(matmul(flat), context)
