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
