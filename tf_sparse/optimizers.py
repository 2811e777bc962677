"""PyTorch's optimizers in Keras: what the papers' reference code trains with.

`TorchSGD` is `torch.optim.SGD(lr, momentum, weight_decay, nesterov)`, step
for step:

    g   = grad + weight_decay * w        # coupled: momentum sees the decay
    buf = momentum * buf + g             # buf starts at 0 (PyTorch: buf = g)
    g   = g + momentum * buf   if nesterov else   buf
    w   = w - lr * g

Keras's SGD keeps `m = momentum * m - lr * grad` instead, which gives the
same steps while the learning rate is constant but not after a decay (its
buffer still carries the old rate), and its `weight_decay` is decoupled
(`w -= lr * wd * w`, outside the momentum). `TorchSGD.momentums` holds
PyTorch's buffer, which is what sparse momentum ranks by in the reference.

`CoupledAdam` is Keras's Adam with `weight_decay * w` added to the gradient
before the moments, as PyTorch's `Adam(weight_decay=...)`.

Variables whose path matches a `weight_decay_exclude` pattern (fnmatch) get
no decay. Masked weights stay exactly zero: Keras applies the mask
constraint after these updates as after any other (`tf_sparse.masking`).

`Adafactor` is Keras's Adafactor without its NaN on sparse models (see its
docstring); mask algorithms refuse Keras's own with a sparse model.

Example:

    opt = TorchSGD(0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    model.compile(optimizer=opt, loss=...)
"""

import fnmatch

import keras
from keras import ops


class _CoupledDecay:
    """Adds `weight_decay * w` to the gradient of every decayed variable."""

    def _init_decay(self, weight_decay, weight_decay_exclude):
        if weight_decay < 0:
            raise ValueError(f"weight_decay={weight_decay!r} must be >= 0")
        self.coupled_weight_decay = float(weight_decay)
        self.weight_decay_exclude = tuple(weight_decay_exclude)
        self._undecayed = set()

    def build(self, variables):
        # Paths are known here; update_step may see the backend variable.
        self._undecayed = {
            self._var_key(v) for v in variables
            if any(fnmatch.fnmatchcase(v.path, p)
                   for p in self.weight_decay_exclude)}
        super().build(variables)

    def decayed_gradient(self, gradient, variable):
        gradient = ops.cast(gradient, variable.dtype)
        if (not self.coupled_weight_decay
                or self._var_key(variable) in self._undecayed):
            return gradient
        return ops.add(gradient, ops.multiply(
            ops.cast(self.coupled_weight_decay, variable.dtype), variable))

    def _decay_config(self):
        return {"weight_decay": self.coupled_weight_decay,
                "weight_decay_exclude": list(self.weight_decay_exclude)}


@keras.saving.register_keras_serializable(package="tf_sparse")
class TorchSGD(_CoupledDecay, keras.optimizers.SGD):
    """PyTorch's SGD (see the module docstring)."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False,
                 weight_decay=0.0, weight_decay_exclude=(), name="torch_sgd",
                 **kwargs):
        super().__init__(learning_rate=learning_rate, momentum=momentum,
                         nesterov=nesterov, name=name, **kwargs)
        self._init_decay(weight_decay, weight_decay_exclude)

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = self.decayed_gradient(gradient, variable)
        if self.momentum:
            buf = self.momentums[self._get_variable_index(variable)]
            momentum = ops.cast(self.momentum, variable.dtype)
            self.assign(buf, ops.add(ops.multiply(buf, momentum), gradient))
            if self.nesterov:
                gradient = ops.add(gradient, ops.multiply(buf, momentum))
            else:
                gradient = buf
        self.assign_sub(variable, ops.multiply(gradient, learning_rate))

    def get_config(self):
        return {**super().get_config(), **self._decay_config()}


@keras.saving.register_keras_serializable(package="tf_sparse")
class CoupledAdam(_CoupledDecay, keras.optimizers.Adam):
    """Keras's Adam with PyTorch's coupled weight decay."""

    def __init__(self, learning_rate=0.001, weight_decay=0.0,
                 weight_decay_exclude=(), name="coupled_adam", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._init_decay(weight_decay, weight_decay_exclude)

    def update_step(self, gradient, variable, learning_rate):
        super().update_step(self.decayed_gradient(gradient, variable),
                            variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), **self._decay_config()}


@keras.saving.register_keras_serializable(package="tf_sparse")
class Adafactor(keras.optimizers.Adafactor):
    """Keras's Adafactor, safe on sparse models (same arguments, same steps).

    Why Keras's gives NaN on a sparse model: for a weight matrix it keeps
    per-row and per-column means of `g^2 + epsilon_1` (`r`, `c`; `epsilon_1`
    is 1e-30 by default) and divides the gradient by the square root of the
    product `v = r / mean(r) * c`. A row (or column) whose gradient is zero
    keeps r (or c) at about `epsilon_1`. Masks make such rows and columns
    common: a unit whose incoming weights are all pruned outputs relu(bias) =
    relu(0) = 0, so its column of the layer's kernel gets zero gradient
    (relu'(0) = 0) and its row of the next layer's kernel too (its input is
    0). Where a zero row of a kernel meets a zero column, v is about
    `1e-30 / mean(r) * 1e-30 ~ 1e-55`, which underflows to 0 in float32
    (smallest positive ~1.4e-45), and `g / sqrt(v)` is `0 / 0 = NaN`; the
    update's RMS clipping (`rms(u)`) then spreads it to the whole kernel, and
    the next forward pass to the whole model: NaN from the first step. A
    dense model rarely has a whole zero row and column at once.

    The fix, as in the paper's reference code (Shazeer & Stern 2018; it
    multiplies by rsqrt of each factor): divide by the square roots of the
    two factors one after the other, `g / sqrt(r / mean(r)) / sqrt(c)`, so
    no product of two tiny numbers is formed: each square root is ~1e-15 or
    more (far above float32's smallest number), the divisions give exact
    zeros where the gradient is zero, and elsewhere the update equals
    Keras's to float rounding. A factor that is exactly 0
    (only with `epsilon_1=0`) gives a zero update instead of NaN. The `v`
    slot is still written as Keras writes it.

    `tf_sparse.algorithms.optimizer_state.check_mask_safe` (run by every
    mask algorithm) refuses `keras.optimizers.Adafactor` with a sparse model
    and names this class.
    """

    def update_step(self, gradient, variable, learning_rate):
        if len(variable.shape) < 2:
            # Unfactored: v >= epsilon_1 * (1 - beta), no product to underflow.
            return super().update_step(gradient, variable, learning_rate)
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        epsilon_2 = ops.cast(self.epsilon_2, variable.dtype)
        one = ops.cast(1.0, variable.dtype)
        local_step = ops.cast(self.iterations + 1, variable.dtype)
        if not callable(self._learning_rate) and self.relative_step:
            lr = ops.minimum(lr, 1 / ops.sqrt(local_step))
        index = self._get_variable_index(variable)
        r, c, v = self._r[index], self._c[index], self._v[index]

        rho_t = ops.minimum(lr, 1 / ops.sqrt(local_step))
        alpha_t = ops.maximum(epsilon_2, self._rms(variable)) * rho_t
        regulated_grad_square = ops.add(ops.square(gradient), self.epsilon_1)
        beta_2_t = ops.subtract(1, ops.power(local_step, self.beta_2_decay))
        self.assign(r, ops.add(
            ops.multiply(beta_2_t, r),
            ops.multiply(ops.subtract(1, beta_2_t),
                         ops.mean(regulated_grad_square, axis=-1))))
        self.assign(c, ops.add(
            ops.multiply(beta_2_t, c),
            ops.multiply(ops.subtract(1, beta_2_t),
                         ops.mean(regulated_grad_square, axis=-2))))
        row = ops.divide(r, ops.mean(r, axis=-1, keepdims=True))
        self.assign(v, ops.multiply(ops.expand_dims(row, axis=-1),
                                    ops.expand_dims(c, -2)))
        u_t = ops.divide_no_nan(gradient,
                                ops.expand_dims(ops.sqrt(row), axis=-1))
        u_t = ops.divide_no_nan(u_t, ops.expand_dims(ops.sqrt(c), axis=-2))
        u_t_hat = ops.divide(
            u_t,
            ops.maximum(one, ops.divide(self._rms(u_t), self.clip_threshold)))
        self.assign_sub(variable, ops.multiply(alpha_t, u_t_hat))
