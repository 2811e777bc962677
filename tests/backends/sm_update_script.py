"""One sparse-momentum update and one RigL update on the backend of this
process; writes the masks, weights and momentum buffers after them to an
.npz file.

    KERAS_BACKEND=jax python tests/backends/sm_update_script.py out.npz

tests/test_backends.py runs it under TensorFlow, JAX and PyTorch and checks
that the masks are equal bit for bit. The starting weights, masks and
batches come from NumPy, so every backend starts from the same bits; their
kernels sum in different orders, so weights and momentum after the two
training steps agree to float32 rounding (about 1e-8 here), and the update
must pick the same masks: none of its choices is that close to a tie for
these numbers, and exact ties go to the lower index on every backend.
"""

import sys

import keras
import numpy as np

import tf_sparse as tfs

SIZES = (8, 16, 8, 4)
BATCH = 16


def build():
    rng = np.random.default_rng(7)
    inputs = keras.Input((SIZES[0],))
    x = inputs
    for i, units in enumerate(SIZES[1:]):
        last = i == len(SIZES) - 2
        x = keras.layers.Dense(units, activation=None if last else "relu",
                               name=f"d{i}")(x)
    model = keras.Model(inputs, x)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32")
                       for w in model.get_weights()])
    masks = {f"d{i}/kernel": (rng.random((a, b)) < 0.3).astype("float32")
             for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:]))}
    model = tfs.sparsify(model, masks=masks)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True))
    x = rng.normal(size=(2 * BATCH, SIZES[0])).astype("float32")
    y = rng.integers(0, SIZES[-1], 2 * BATCH).astype("int32")
    return model, x, y


def main(path):
    model, x, y = build()
    algorithm = tfs.algorithms.SparseMomentum(total_steps=3, every=2,
                                              prune_rate=0.5)
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
              callbacks=[tfs.callbacks.MaskUpdate(algorithm)])
    out = {}
    optimizer = model.optimizer
    for i, mw in enumerate(tfs.masked_weights(model)):
        out[f"mask{i}"] = keras.ops.convert_to_numpy(mw.mask)
        out[f"kernel{i}"] = keras.ops.convert_to_numpy(mw.variable)
        index = optimizer._get_variable_index(mw.variable)  # pylint: disable=protected-access
        out[f"momentum{i}"] = keras.ops.convert_to_numpy(
            optimizer.momentums[index])
    history = algorithm.update_history()
    out["update_steps"] = np.array([h["step"] for h in history])
    out["dropped"] = np.array([h["dropped"] for h in history])
    # RigL on the same start: grows by the dense gradient of step 2's batch
    # at the weights before step 2 (TensorFlow reads it from the optimizer,
    # the other backends recompute it), and skips step 2's optimizer step.
    model, x, y = build()
    rigl = tfs.algorithms.RigL(total_steps=3, every=2, end=1.0)
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
              callbacks=[tfs.callbacks.MaskUpdate(rigl)])
    for i, mw in enumerate(tfs.masked_weights(model)):
        out[f"rigl_mask{i}"] = keras.ops.convert_to_numpy(mw.mask)
        out[f"rigl_kernel{i}"] = keras.ops.convert_to_numpy(mw.variable)
    out["rigl_grown"] = np.array([h["grown"] for h in rigl.update_history()])
    np.savez(path, **out)


if __name__ == "__main__":
    main(sys.argv[1])
