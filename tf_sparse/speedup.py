"""The sparse-momentum paper's speed-up ESTIMATE, next to MEASURED speed.

Dettmers & Zettlemoyer (2019) report "up to 5.61x faster training". That
number is an estimate, not a measurement (`SparseSpeedupBench` in their
code; reference/papers.md A.4):

* each convolution's forward pass is timed dense (the masked model);
* its "sparse" time is dense time x weight density x input-activation
  density (the fraction of nonzero inputs): what an ideal sparse kernel that
  skips every zero operand would take;
* a "channel-sparse" variant multiplies by (1 - share of input channels
  whose weights are all zero) x (1 - share of input channels whose
  activations are all zero): what a dense kernel could skip;
* speed-up = sum of dense times / sum of estimated times, convolutions only
  (no fully connected layers, no backward pass, no weight update).

`estimate` reproduces that on a batch; `measure` times whole forward passes
of real models (the masked Keras model, and any faster form such as the CSR
inference form of `tf_sparse.sparse_inference`). `format_report` prints both,
labelled, so the estimate is never read as a measured speed.

Example:

    est = tfs.speedup.estimate(model, x_test[:128])
    meas = tfs.speedup.measure({"keras (masked)": model}, x_test[:128])
    print(tfs.speedup.format_report(est, meas))
"""

import dataclasses
import time

import keras
import numpy as np
import tensorflow as tf

from tf_sparse import masking

CONV_TYPES = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)


@dataclasses.dataclass(frozen=True)
class LayerEstimate:
    name: str
    layer_type: str
    dense_ms: float
    weight_density: float
    activation_density: float
    zero_weight_channels: float      # share of input channels, weights all 0
    zero_activation_channels: float  # share of input channels, inputs all 0

    @property
    def sparse_ms(self):
        return self.dense_ms * self.weight_density * self.activation_density

    @property
    def channel_sparse_ms(self):
        return (self.dense_ms * (1 - self.zero_weight_channels)
                * (1 - self.zero_activation_channels))

    def as_dict(self):
        d = dataclasses.asdict(self)
        d.update(sparse_ms=self.sparse_ms,
                 channel_sparse_ms=self.channel_sparse_ms)
        return d


@dataclasses.dataclass(frozen=True)
class Estimate:
    layers: list
    batch: int

    @property
    def dense_ms(self):
        return sum(w.dense_ms for w in self.layers)

    @property
    def sparse_ms(self):
        return sum(w.sparse_ms for w in self.layers)

    @property
    def channel_sparse_ms(self):
        return sum(w.channel_sparse_ms for w in self.layers)

    @property
    def speedup(self):
        return self.dense_ms / self.sparse_ms if self.sparse_ms else None

    @property
    def channel_speedup(self):
        return (self.dense_ms / self.channel_sparse_ms
                if self.channel_sparse_ms else None)

    def as_dict(self):
        return {"kind": "ESTIMATE (sparse momentum's SparseSpeedupBench method)",
                "batch": self.batch, "dense_ms": self.dense_ms,
                "sparse_ms": self.sparse_ms,
                "channel_sparse_ms": self.channel_sparse_ms,
                "speedup": self.speedup,
                "channel_speedup": self.channel_speedup,
                "layers": [w.as_dict() for w in self.layers]}


def _is_target(layer, include_dense):
    if isinstance(layer, CONV_TYPES) and not isinstance(
            layer, (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
                    keras.layers.Conv3DTranspose)) and hasattr(layer, "kernel"):
        return True
    return include_dense and type(layer) is keras.layers.Dense


def _leaf_layers(model):
    return [layer for _, layer in masking.iter_layers(model)]


def capture_inputs(model, x, layers):
    """Runs `model` on `x` eagerly and returns each layer's first input."""
    captured = {}

    def recorder(layer, original):
        def call(inputs, *args, **kwargs):
            captured.setdefault(id(layer), inputs)
            return original(inputs, *args, **kwargs)
        return call

    try:
        for layer in layers:
            layer.call = recorder(layer, layer.call)
        model(x, training=False)
    finally:
        for layer in layers:
            if "call" in layer.__dict__:
                del layer.call
    missing = [l.name for l in layers if id(l) not in captured]
    if missing:
        raise ValueError(f"Layers {missing} were not called by the model.")
    return {id(l): keras.ops.convert_to_numpy(captured[id(l)])
            for l in layers}


def _channel_axis(layer):
    return 1 if getattr(layer, "data_format", "channels_last") == (
        "channels_first") else -1


def _densities(layer, inputs):
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    weight_density = np.count_nonzero(kernel) / kernel.size
    activation_density = np.count_nonzero(inputs) / inputs.size
    in_axis = kernel.ndim - 2  # (..., in, out) for Keras kernels
    other = tuple(i for i in range(kernel.ndim) if i != in_axis)
    zero_w = float(np.mean(~np.any(kernel != 0, axis=other)))
    axis = _channel_axis(layer) % inputs.ndim
    act_other = tuple(i for i in range(inputs.ndim) if i != axis)
    zero_a = float(np.mean(~np.any(inputs != 0, axis=act_other)))
    return float(weight_density), float(activation_density), zero_w, zero_a


def _interleaved_medians(fns, repeats):
    """Median seconds per call of each of `fns`, timed round-robin.

    Each function is called twice untimed first (tracing, warm-up); then
    every round calls each one once, so a slow spell of the machine falls
    on all of them alike.
    """
    for f in fns:
        f()
        f()
    samples = [[] for _ in fns]
    for _ in range(repeats):
        for i, f in enumerate(fns):
            start = time.perf_counter()
            f()
            samples[i].append(time.perf_counter() - start)
    return [float(np.median(s)) for s in samples]


def _default_timer(layers_inputs, repeats):
    """Interleaved median forward time (seconds) of each (layer, input)."""
    fns = []
    for layer, inputs in layers_inputs:
        f = tf.function(lambda a, layer=layer: layer(a), autograph=False)
        t = tf.constant(inputs)
        fns.append(lambda f=f, t=t: f(t).numpy())
    return _interleaved_medians(fns, repeats)


def estimate(model, x, include_dense=False, repeats=20, timer=None):
    """The paper's estimated forward speed-up of `model` on batch `x`.

    Args:
      model: a built Keras model (masked or stripped; zeros are counted from
        the weights themselves).
      x: an input batch; activation densities are measured on it, so use
        real data.
      include_dense: also count Dense layers (the paper counts convolutions
        only).
      repeats: timing repetitions per layer (interleaved; medians).
      timer: optional `f(list of (layer, input)) -> list of seconds`, to
        replace the clock (tests).
    """
    layers = [l for l in _leaf_layers(model) if _is_target(l, include_dense)]
    if not layers:
        raise ValueError(
            f"Model {model.name!r} has no convolution"
            f"{'' if include_dense else ' (pass include_dense=True to count Dense layers)'}"
            "; the estimate has nothing to time.")
    inputs = capture_inputs(model, x, layers)
    pairs = [(l, inputs[id(l)]) for l in layers]
    times = (timer or (lambda p: _default_timer(p, repeats)))(pairs)
    result = []
    for (layer, inp), seconds in zip(pairs, times):
        wd, ad, zw, za = _densities(layer, inp)
        result.append(LayerEstimate(
            name=layer.name, layer_type=type(layer).__name__,
            dense_ms=seconds * 1e3, weight_density=wd, activation_density=ad,
            zero_weight_channels=zw, zero_activation_channels=za))
    return Estimate(layers=result, batch=int(np.shape(x)[0]))


def measure(forms, x, repeats=20):
    """MEASURED median forward time (ms per batch) of each named model.

    `forms` maps a label to a Keras model or any callable on `x`. Calls are
    compiled with `tf.function` and interleaved.
    """
    fns = []
    t = tf.constant(x)
    for label, form in forms.items():
        f = tf.function(lambda a, form=form: form(a, training=False)
                        if isinstance(form, keras.Model) else form(a),
                        autograph=False)
        fns.append(lambda f=f: np.asarray(f(t)))
    return {label: seconds * 1e3 for label, seconds
            in zip(forms, _interleaved_medians(fns, repeats))}


def format_report(est, measured=None, baseline=None):
    """Text with the ESTIMATE and the MEASURED speeds, clearly apart."""
    lines = [
        f"ESTIMATE, not a measurement (sparse-momentum paper's method: dense "
        f"time of each {'layer' if any(l.layer_type == 'Dense' for l in est.layers) else 'convolution'}"
        " x weight density x input-activation density; forward pass only; "
        f"batch {est.batch}):"]
    header = ("layer", "dense ms", "weight dens", "act dens", "est ms",
              "chan-est ms")
    rows = [(w.name, f"{w.dense_ms:.3f}", f"{w.weight_density:.4f}",
             f"{w.activation_density:.4f}", f"{w.sparse_ms:.3f}",
             f"{w.channel_sparse_ms:.3f}") for w in est.layers]
    widths = [max(len(r[i]) for r in rows + [header])
              for i in range(len(header))]
    lines.append("  " + "  ".join(c.ljust(n) for c, n in zip(header, widths)))
    lines.extend("  " + "  ".join(c.ljust(n) for c, n in zip(r, widths))
                 for r in rows)
    sp = est.speedup
    csp = est.channel_speedup
    lines.append(
        f"  estimated speed-up: {sp:.2f}x (ideal sparse kernels), "
        f"{csp:.2f}x (channel-sparse)" if sp and csp else
        "  estimated speed-up: undefined (no nonzeros)")
    if measured:
        baseline = baseline or next(iter(measured))
        base = measured[baseline]
        lines.append(
            f"MEASURED on this machine (whole forward pass, median ms per "
            f"batch of {est.batch}; speed-up against {baseline!r}):")
        for label, ms in measured.items():
            lines.append(f"  {label}: {ms:.3f} ms  ({base / ms:.2f}x)")
    return "\n".join(lines)
