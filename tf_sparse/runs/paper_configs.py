"""The settings one paper's configs share, written once.

A config under configs/ that names a paper's experiment sets only what is
its own (the model, the density of its table row, its model's
initialisation) and takes the rest from here, so every row of a table
follows the reference code in the same way.

Example:

    from tf_sparse.runs import paper_configs
    config = paper_configs.sparse_momentum("cifar10", "vgg16_c", density,
                                           default_density=0.05)
"""

from tf_sparse.runs import config as config_lib

# The Fashion-MNIST tables' algorithms with their papers' defaults:
# SET (Mocanu et al. 2018): each epoch but the last, every layer drops
#   zeta = 0.3 of its active weights with the smallest |w| and regrows as
#   many at random positions, new weights at 0 with zeroed slots (rigl's SET
#   baseline, peers_dynamic_sparse.md section 1);
# RigL (Evci et al. 2020; rigl's MNIST flags, peers_dynamic_sparse.md
#   section 3): drop fraction 0.3 decayed by cosine to 0 at 75% of training,
#   an update every 100 steps, growth by the dense gradient's magnitude;
# SNIP (Lee et al. 2019): |g * w| on one batch of 100 (the run's first) at
#   the dense initialisation, a global exact-count ranking, then static;
# sparse momentum (papers.md A.1/A.2): prune rate 0.5 cosine-annealed to
#   0.005, momentum redistribution and growth, an update every epoch but
#   the last, momentum read from the SGD buffer.
SPARSE_MOMENTUM = dict(drop_fraction=0.5, final_drop_fraction=0.005,
                       decay="cosine")
FASHION_MNIST_ALGORITHMS = {
    "set": dict(drop_fraction=0.3, decay="constant"),
    "rigl": dict(drop_fraction=0.3, decay="cosine", update_every=100,
                 update_end=0.75),
    "snip": dict(snip_batch_size=100),
    "sparse_momentum": dict(SPARSE_MOMENTUM, growth="momentum",
                            redistribution="momentum"),
}


def fashion_mnist_row(algorithm, model, sparsity=0.95):
    """A row of the Fashion-MNIST tables: `model` ("lenet300_100",
    "lenet5_caffe") at `sparsity` on the `fashion_mnist` preset (sparse
    momentum's MNIST reference: batch 100, PyTorch's SGD with Nesterov,
    momentum 0.9, lr 0.1 and coupled weight decay 5e-4, lr x0.1 every
    25,000 iterations, 100 epochs, 10% held out, PyTorch's default
    initialisation, no rescaling, uniform density, seed 17;
    docs/paper_configs.md), trained by `algorithm` with its paper's
    defaults (`FASHION_MNIST_ALGORITHMS`).

    >>> fashion_mnist_row("rigl", "lenet5_caffe").algorithm_params.update_every
    100
    """
    if algorithm not in FASHION_MNIST_ALGORITHMS:
        raise ValueError(
            f"fashion_mnist_row: algorithm={algorithm!r} has no paper "
            f"defaults here; accepted: {sorted(FASHION_MNIST_ALGORITHMS)}.")
    config = config_lib.default_config("fashion_mnist")
    config.model = model
    config.sparsity = sparsity
    config.algorithm = algorithm
    for key, value in FASHION_MNIST_ALGORITHMS[algorithm].items():
        config.algorithm_params[key] = value
    return config


def sparse_momentum(preset, model, density=None, default_density=0.1,
                    init=None):
    """A sparse momentum run with the algorithm of the paper's reference
    code (papers.md A.1/A.2): magnitude pruning at a prune rate of 0.5
    decayed by cosine to 0.005 over training, momentum redistribution and
    momentum growth (the algorithm's defaults), masks updated at the end of
    every epoch (its default cadence), on `preset`'s training recipe
    (`runs.default_config(preset)`: the reference optimizer, weight-decay
    coupling, schedule, split and seed; docs/paper_configs.md) with uniform
    density. For CIFAR-10 that is batch 100, Nesterov SGD lr 0.1, momentum
    0.9, coupled L2 5e-4, 100 epochs, lr x0.1 every 25,000 iterations, 10%
    of the training set held out, seed 17, pad-crop-flip augmentation and
    per-channel normalisation (`--config.epochs=250` is the author's advice
    for better accuracy, papers.md A.2, ISSUE #10). The CIFAR-10 table's
    densities are UNCONFIRMED (papers.md A.4: "10% for the AlexNets, 5% for
    VGG16-C/D and the WRNs, 3% for VGG-like", to check against the PDF).

    Args:
      preset: "fashion_mnist", "cifar10" or "imagenet".
      model: a zoo model name.
      density: the fraction of weights kept, a float or its string (the
        `--config=<file>:<density>` argument), or None for
        `default_density`.
      default_density: the density of the config's table row.
      init: the model's own initialisation ("wrn"), or None for the
        preset's.

    >>> sparse_momentum("cifar10", "wrn16_8", "0.1", init="wrn").sparsity
    0.9
    """
    config = config_lib.default_config(preset)
    config.model = model
    density = float(density) if density else default_density
    config.sparsity = round(1.0 - density, 6)
    config.algorithm = "sparse_momentum"
    if init is not None:
        config.init = init
    for key, value in SPARSE_MOMENTUM.items():
        config.algorithm_params[key] = value
    return config
