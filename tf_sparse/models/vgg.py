"""CIFAR VGGs: the SNIP-style VGG16 variants and the lottery-ticket VGGs.

Two families, both conv(bias) + BatchNorm + ReLU stacks with 2x2 max pools:

* `vgg16_c`, `vgg16_d`, `vgg16_like` (sparse-momentum paper; reference
  `VGG16(config)` in TimDettmers/sparse_learning). The classifier is
  FC-512-512-C (C, D) or FC-512-C (like), each hidden FC followed by ReLU
  then BatchNorm1d. In config C the third conv of blocks 3-5 is a 1x1 conv
  that keeps PyTorch `padding=1`, growing the map by 2 pixels, so the
  classifier input is 2x2x512 = 2048. PyTorch default initialisation.
* `vgg16_lmc`, `vgg19` (and `cifar_vgg(11|13)`) of the lottery-ticket papers
  (reference open_lth `cifar_vgg_N`): convs, global average pool, a single
  FC 512->C named `fc`. Kaiming-normal (fan-in) weights, PyTorch-default
  biases and BatchNorm gammas drawn from U(0, 1) (open_lth's defaults).

Layer names: `block<b>_conv<c>` / `block<b>_bn<c>` / `block<b>_relu<c>`,
`block<b>_pool`, then `fc1`, `fc2`, ... (SNIP variants) or `fc` (open_lth).
Outputs are logits.

Example:

    model = vgg16_d()
    logits = model(np.zeros((2, 32, 32, 3)))  # shape (2, 10)
"""

import keras

from tf_sparse.models import layers as L

# Plans: ints are 3x3 convs, (k, filters) other kernel sizes, "M" max pool.
_SNIP_PLANS = {
    "like": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
             512, 512, 512, "M", 512, 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
          512, 512, 512, "M", 512, 512, 512, "M"],
    "C": [64, 64, "M", 128, 128, "M", 256, 256, (1, 256), "M",
          512, 512, (1, 512), "M", 512, 512, (1, 512), "M"],
}
_SNIP_HIDDEN_FCS = {"like": 1, "D": 2, "C": 2}

_LTH_PLANS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M",
         512, 512],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
         512, 512, 512],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
         512, 512, 512, 512, "M", 512, 512, 512, 512],
}


def _conv_stack(x, plan, *, kernel_initializer, gamma_initializer):
    """conv(bias, padding 1) + BN + ReLU per entry, max pool per "M"."""
    block, conv = 1, 1
    for spec in plan:
        if spec == "M":
            x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
            block, conv = block + 1, 1
            continue
        kernel, filters = spec if isinstance(spec, tuple) else (3, spec)
        # PyTorch padding=1 for every conv, including the 1x1 ones.
        x = L.conv2d(x, filters, kernel, padding=1,
                     kernel_initializer=kernel_initializer(),
                     name=f"block{block}_conv{conv}")
        x = L.batch_norm(x, name=f"block{block}_bn{conv}",
                         gamma_initializer=gamma_initializer())
        x = L.relu(x, name=f"block{block}_relu{conv}")
        conv += 1
    return x


def vgg16_snip(config, num_classes=10, input_shape=(32, 32, 3), name=None):
    """A SNIP-style VGG16 variant; `config` is "C", "D" or "like".

    Example:

        model = vgg16_snip("C")  # same as vgg16_c()
    """
    if config not in _SNIP_PLANS:
        raise ValueError(f"VGG16 config must be one of {sorted(_SNIP_PLANS)},"
                         f" got {config!r}")
    L.check_num_classes(num_classes)
    inputs = keras.Input(shape=input_shape, name="input")
    x = _conv_stack(inputs, _SNIP_PLANS[config],
                    kernel_initializer=L.torch_default_kernel,
                    gamma_initializer=lambda: "ones")
    x = keras.layers.Flatten(name="flatten")(x)
    n_hidden = _SNIP_HIDDEN_FCS[config]
    for i in range(1, n_hidden + 1):
        x = L.dense(x, 512, name=f"fc{i}")
        x = L.relu(x, name=f"fc{i}_relu")
        x = L.batch_norm(x, name=f"fc{i}_bn")  # BN instead of dropout
    outputs = L.dense(x, num_classes, name=f"fc{n_hidden + 1}")
    return keras.Model(inputs, outputs,
                       name=name or f"vgg16_{config.lower()}")


def vgg16_c(num_classes=10, input_shape=(32, 32, 3), name="vgg16_c"):
    """VGG16-C (1x1 convs, FC 2048-512-512-C). 11,307,712 / 11,323,466."""
    return vgg16_snip("C", num_classes, input_shape, name)


def vgg16_d(num_classes=10, input_shape=(32, 32, 3), name="vgg16_d"):
    """VGG16-D (all 3x3, FC 512-512-512-C). 15,239,872 / 15,255,626."""
    return vgg16_snip("D", num_classes, input_shape, name)


def vgg16_like(num_classes=10, input_shape=(32, 32, 3), name="vgg16_like"):
    """VGG16-like (all 3x3, FC 512-512-C). 14,977,728 / 14,991,946."""
    return vgg16_snip("like", num_classes, input_shape, name)


def cifar_vgg(depth, num_classes=10, input_shape=(32, 32, 3), name=None):
    """open_lth's `cifar_vgg_<depth>`, depth in {11, 13, 16, 19}.

    Example:

        model = cifar_vgg(19)  # same as vgg19()
    """
    if depth not in _LTH_PLANS:
        raise ValueError(f"cifar_vgg depth must be one of "
                         f"{sorted(_LTH_PLANS)}, got {depth!r}")
    L.check_num_classes(num_classes)
    inputs = keras.Input(shape=input_shape, name="input")
    x = _conv_stack(
        inputs, _LTH_PLANS[depth],
        kernel_initializer=lambda: L.kaiming_normal("fan_in"),
        gamma_initializer=lambda: keras.initializers.RandomUniform(0.0, 1.0))
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = L.dense(x, num_classes, name="fc",
                      kernel_initializer=L.kaiming_normal("fan_in"))
    return keras.Model(inputs, outputs, name=name or f"cifar_vgg{depth}")


def vgg16_lmc(num_classes=10, input_shape=(32, 32, 3), name="vgg16_lmc"):
    """VGG-16 of the LMC paper (open_lth cifar_vgg_16): 14,728,266 params."""
    return cifar_vgg(16, num_classes, input_shape, name)


def vgg19(num_classes=10, input_shape=(32, 32, 3), name="vgg19"):
    """VGG-19 of the lottery-ticket papers (open_lth cifar_vgg_19).

    20,040,522 trainable parameters for 10 classes.
    """
    return cifar_vgg(19, num_classes, input_shape, name)
