"""SR-STE: N:M sparse training with dense weights (Zhou et al., ICLR 2021,
"Learning N:M Fine-grained Structured Sparse Neural Networks From
Scratch").

The paper keeps dense weights `W` and trains them; the forward pass uses
their N:M projection `W~ = proj(W)` (the N largest |w| of every group of M,
recomputed every step), and the update is

    W <- W - lr * (g(W~) + lambda_W * (1 - m) * W)

where `g(W~)` is the gradient at the projected weights passed straight
through to `W` (the straight-through estimator) and `m` the N:M mask of
`W`: the "sparse-refined" term decays exactly the weights the forward pass
drops (paper default `lambda_W = 2e-4`). With any other optimizer the sum
goes through it as the gradient (momentum, Adam moments).

How it fits tf-sparse's invariant. Between steps the layer's kernel holds
`W~` (pruned entries exactly 0, the mask is the N:M mask of `W`), so the
forward pass, evaluation, `summary`, `strip` and every export see the N:M
model. The dense `W` lives in a variable of the algorithm's own (saved in
checkpoints through `checkpoint_items`). Inside the optimizer's update of
each kernel (the instance's `update_step`, the same place the gradient tap
of `optimizer_state` hooks; it receives the gradient at `W~`, i.e. the STE
gradient) the kernel is set back to `W` (with the optimizer's decoupled
weight decay applied to `W`, as Keras applied it to `W~`), the optimizer
applies `g + lambda_W (1 - m) W`, and the result is stored as the new `W`,
projected into the kernel and its mask. So pruned weights are zero after
every step, as for every other algorithm; what differs is that a weight
pruned at one step comes back with its trained dense value when its
magnitude wins again.

Limits: TensorFlow backend, one replica (the dense copy and the mask are
written inside the optimizer's per-variable update); N:M patterns only.

Example:

    model = tfs.sparsify(model, 0.0, pattern="2:4")   # dense start, 2:4
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), loss)
    model.fit(x, y, callbacks=[tfs.callbacks.MaskUpdate(SRSTE())])
    plain = tfs.strip(model)                            # 2:4 weights
"""

import keras
import tensorflow as tf

from tf_sparse import patterns
from tf_sparse.algorithms import base
from tf_sparse.algorithms import optimizer_state

_INSTALLED = "_tf_sparse_sr_ste"


class _DenseCopies(tf.Module):
    """The dense weights `W` (a trackable, so checkpoints hold them)."""

    def __init__(self, variables):
        super().__init__(name="sr_ste_dense")
        self.dense = list(variables)


def project(layout, w):
    """The N:M mask (bool, kernel-shaped) of `w`: the N largest |w| of each
    group (ties to the lower entry), in graph."""
    return layout.select(tf.abs(w), tf.ones(layout.shape, tf.bool),
                         layout.keep)


class SRSTE(base.MaskAlgorithm):
    """Sparse-refined straight-through estimator for N:M masks.

    Args:
      lambda_w: the sparse-refined decay (paper 2e-4); 0 gives the plain
        straight-through estimator.
      sparsity: optional, for configs: must be 1 - N/M of the masks'
        pattern (the engine passes its `sparsity` here).

    Start from `sparsify(model, 0.0, pattern="N:M")` (all-ones masks that
    record the pattern; the engine does this): at `attach` the dense
    weights are copied and the kernels projected. Masks that are already
    N:M work too (their zeros are then the dense start).
    """

    name = "sr_ste"
    # The backward pass needs the gradient of every weight (STE), as
    # sparse momentum's; the forward pass is the N:M one.
    training_flops_rule = "dense_gradient"

    def __init__(self, lambda_w=2e-4, *, sparsity=None):
        super().__init__()
        if isinstance(lambda_w, bool) or not isinstance(
                lambda_w, (int, float)) or not lambda_w >= 0.0:
            raise ValueError(f"SRSTE: lambda_w={lambda_w!r} must be a number "
                             ">= 0 (paper: 2e-4).")
        self.lambda_w = float(lambda_w)
        self.sparsity = None if sparsity is None else float(sparsity)
        self.layouts = []
        self.copies = None
        self._index = {}
        self._decays = []

    def attach(self, model):
        super().attach(model)
        owner = type(self).__name__
        if keras.backend.backend() != "tensorflow":
            raise ValueError(
                f"{owner} updates the dense weights inside TensorFlow's "
                f"optimizer step; this process runs Keras on "
                f"{keras.backend.backend()!r}. Use the TensorFlow backend.")
        if not self.weights:
            raise ValueError(f"{owner}: the model has no masks; call "
                             "tfs.sparsify(model, 0.0, pattern='2:4') first.")
        self.layouts = []
        for mw in self.weights:
            pattern = patterns.parse(mw.pattern)
            if pattern.kind != "n:m":
                raise ValueError(
                    f"{owner} trains N:M masks; the mask of {mw.path} follows "
                    f"{mw.pattern!r}. Use sparsify(..., pattern='2:4') (any "
                    "'N:M').")
            if self.sparsity is not None:
                pattern.check_sparsity(self.sparsity, "SRSTE sparsity")
            self.layouts.append(patterns.layout_of(mw.pattern, mw.layer,
                                                   mw.name, mw.shape))
        optimizer = getattr(model, "optimizer", None)
        if optimizer is None:
            raise ValueError(f"{owner} changes the optimizer's update: compile "
                             "the model before attaching it.")
        if model.distribute_strategy.num_replicas_in_sync > 1:
            raise ValueError(
                f"{owner} runs on one replica: it writes the dense weights "
                "and masks inside the optimizer's per-variable update, "
                f"which {type(model.distribute_strategy).__name__} with "
                f"{model.distribute_strategy.num_replicas_in_sync} replicas "
                "runs once per device copy.")
        self.copies = _DenseCopies(
            tf.Variable(tf.convert_to_tensor(mw.variable), trainable=False,
                        name=f"sr_ste_dense_{i}")
            for i, mw in enumerate(self.weights))
        inner = optimizer_state.unwrap(optimizer)
        self._index = {inner._var_key(mw.variable): i  # pylint: disable=protected-access
                       for i, mw in enumerate(self.weights)}
        decay = inner.weight_decay
        self._decays = [
            decay is not None and bool(inner._use_weight_decay(mw.variable))  # pylint: disable=protected-access
            for mw in self.weights]
        for i in range(len(self.weights)):
            self._project(i)
        self._install(inner)

    def _project(self, i):
        """Kernel and mask of weight i from its dense copy."""
        mw = self.weights[i]
        dense = tf.convert_to_tensor(self.copies.dense[i])
        keep = project(self.layouts[i], dense)
        mw.mask.assign(tf.cast(keep, mw.mask.dtype))
        mw.variable.assign(tf.where(keep, dense, tf.zeros_like(dense)))

    def _install(self, optimizer):
        previous = getattr(optimizer, _INSTALLED, None)
        original = (previous.original if previous is not None
                    else optimizer.update_step)
        self.original = original
        algorithm = self

        def update_step(gradient, variable, learning_rate):
            i = algorithm._index.get(optimizer._var_key(variable))  # pylint: disable=protected-access
            if i is None:
                return original(gradient, variable, learning_rate)
            return algorithm._dense_update(i, original, gradient, variable,
                                           learning_rate, optimizer)

        object.__setattr__(optimizer, "update_step", update_step)
        object.__setattr__(optimizer, _INSTALLED, self)

    def _dense_update(self, i, original, gradient, variable, learning_rate,
                      optimizer):
        """One optimizer update of weight i on its dense copy (see the
        module docstring)."""
        mw = self.weights[i]
        copy = self.copies.dense[i]
        dense = tf.convert_to_tensor(copy)
        pruned = 1.0 - tf.cast(tf.convert_to_tensor(mw.mask), dense.dtype)
        gradient = tf.convert_to_tensor(gradient)
        refined = gradient + tf.cast(self.lambda_w, gradient.dtype) * tf.cast(
            pruned * dense, gradient.dtype)
        start = dense
        if self._decays[i]:
            lr = tf.cast(learning_rate, dense.dtype)
            wd = tf.cast(optimizer.weight_decay, dense.dtype)
            start = dense - dense * wd * lr
        variable.assign(start)
        original(refined, variable, learning_rate)
        new = tf.convert_to_tensor(variable)
        copy.assign(new)
        keep = project(self.layouts[i], new)
        mw.mask.assign(tf.cast(keep, mw.mask.dtype))
        variable.assign(tf.where(keep, new, tf.zeros_like(new)))

    def remove(self):
        """Gives the optimizer its own update back (the kernels keep their
        projected values)."""
        optimizer = optimizer_state.unwrap(getattr(self.model, "optimizer",
                                                   None))
        if getattr(optimizer, _INSTALLED, None) is self:
            object.__setattr__(optimizer, "update_step", self.original)
            object.__delattr__(optimizer, _INSTALLED)

    def dense_weights(self):
        """The dense weights `W` (NumPy, in `masked_weights` order)."""
        return [keras.ops.convert_to_numpy(v) for v in self.copies.dense]

    def checkpoint_items(self):
        return {"sr_ste_dense": self.copies} if self.copies else {}

    def get_config(self):
        return {"name": self.name, "lambda_w": self.lambda_w}
