"""The model of a run: built from the zoo (or a given builder) and sparsified.

`build(config, data)` makes the dense network exactly as every kind of run
did: `keras.utils.set_random_seed(config.seed)` first, so a seed gives the
same initial weights, then the zoo model in the run's dtype policy (mixed
precision), its weights redrawn as the PyTorch reference draws them if
`config.init` says so, synchronised batch norm across replicas if asked,
and the starting weights of `config.init_weights` if given. `sparsify(config,
model, ...)` then attaches the masks the algorithm starts from.

Example:

    model = build(config, data)
    model = sparsify(config, model, gradual=False)
"""

import keras

from tf_sparse import distribute
from tf_sparse import models as models_lib
from tf_sparse import sparsification
from tf_sparse.models import initialization


def build(config, data, *, policy="float32", sync_batch_norm=False,
          model_fn=None, seed=None):
    """The dense model of `config` for `data` (input shape and classes).

    `model_fn()`, if given, builds the model instead of the zoo (tests,
    custom architectures); it runs after the seed is set, inside the dtype
    policy. `seed` overrides `config.seed` (a fresh re-initialisation).
    """
    keras.utils.set_random_seed(config.seed if seed is None else int(seed))
    with distribute.dtype_policy(policy):
        if model_fn is not None:
            model = model_fn()
        elif config.model == "bert_encoder":
            from tf_sparse.models import transformer
            model = transformer.bert_encoder(
                vocab_size=config.vocab_size,
                sequence_length=data.input_shape[0],
                num_classes=data.num_classes, **config.model_kwargs.to_dict())
        elif str(config.model).startswith("hub:"):
            # keras-hub (tf_sparse.models.hub): text models size their
            # embedding by the run's vocabulary.
            model = models_lib.get_model(
                config.model, num_classes=data.num_classes,
                input_shape=data.input_shape, vocab_size=config.vocab_size,
                **config.model_kwargs.to_dict())
        else:
            model = models_lib.get_model(
                config.model, num_classes=data.num_classes,
                input_shape=data.input_shape, **config.model_kwargs.to_dict())
    if config.init != "keras":
        initialization.reinitialize(model, config.init,
                                    config.seed if seed is None else seed)
    if sync_batch_norm:
        for layer in model._flatten_layers():  # pylint: disable=protected-access
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = True
    if config.init_weights:
        model.set_weights(init_weights(config.init_weights, model))
    return model


def init_weights(path, model):
    """The weights of the `.keras` file `path` (`config.init_weights`), for
    `model`. A missing, damaged or foreign file, or one for another
    architecture, is a ValueError naming the key, the file and the fix."""
    fix = ("point config.init_weights at a .keras file saved from this "
           "model (model.save or tfs.save_model), or set it to ''")
    try:
        source = keras.saving.load_model(path, compile=False)
    except Exception as error:  # pylint: disable=broad-except
        # Keras raises ValueError, OSError, zipfile.BadZipFile, EOFError,
        # KeyError... for missing, truncated or foreign files.
        raise ValueError(
            f"config.init_weights={path!r} cannot be loaded "
            f"({type(error).__name__}: {error}); {fix}.") from error
    weights = source.get_weights()
    shapes = [tuple(w.shape) for w in weights]
    expected = [tuple(w.shape) for w in model.get_weights()]
    if shapes != expected:
        raise ValueError(
            f"config.init_weights={path!r} holds the weights of another "
            f"model ({len(shapes)} arrays, first shapes {shapes[:3]}; this "
            f"run's model has {len(expected)}, first shapes "
            f"{expected[:3]}); {fix}.")
    return weights


def sparsify(config, model, *, gradual, masks=None):
    """Attaches the masks a run starts from.

    `gradual` algorithms (GMP, AC/DC) start from all-ones masks and prune
    towards `config.sparsity` themselves; the others start at
    `config.sparsity` (or with `masks`, e.g. SNIP's). `config.prune`
    restricts pruning to the named layers; `config.pattern` is the
    structured pattern (`tf_sparse.patterns`) the masks follow.
    """
    start = 0.0 if gradual else config.sparsity
    if config.prune:
        sparsity = {pattern: start for pattern in config.prune}
    else:
        sparsity = start
    return sparsification.sparsify(
        model, sparsity=sparsity, distribution=config.distribution,
        keep_dense=list(config.keep_dense), seed=config.seed,
        rescale_weights=config.rescale_init, masks=masks,
        pattern=pattern(config))


def pattern(config):
    """The run's sparsity pattern spec ("unstructured" for configs of
    kinds without the key)."""
    return config.pattern if "pattern" in config else "unstructured"
