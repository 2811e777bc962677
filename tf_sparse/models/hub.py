"""keras-hub transformers as run-engine models, and which of their weights
the papers prune.

Keras users take their transformers from keras-hub. This module builds them
from their config classes (no weights; small sizes by default, so tests and
CPU benchmarks can train them) or from a preset (`preset=`: a keras-hub
preset name found in the local cache, or a directory written by
`save_to_preset`), and gives them the interface of the zoo's models: one
input tensor, class logits out.

- Text models (BERT, DistilBERT, RoBERTa, GPT-2, Gemma) take one int32
  tensor `[batch, 3, sequence_length]`: token ids, segment ids and the
  padding mask (1 = token, 0 = padding), as `tf_sparse.data.text_packing`
  and the presets' preprocessors produce them; `TextInputs` turns it into
  the dict the backbone reads. Encoders use keras-hub's own task model
  (`BertTextClassifier`, ...) with `preprocessor=None`; decoders, which have
  no classifier in keras-hub, get the last real token's features and a
  Dense head (as GPT-style sequence classifiers do).
- Vision (ViT) is keras-hub's `ViTImageClassifier` on the images as they are.

What is pruned: `projection_paths(model)` finds every Dense / EinsumDense
projection of the attention and feed-forward blocks (query, key, value,
attention output, intermediate and output dense; Gemma's gating and linear
projections), structurally: a Dense or EinsumDense that lies inside a layer
holding an attention layer. Embeddings, layer norms, the pooler and the
classifier head stay dense; `token_embedding=True` also prunes the token
embedding. `sparsity_map` turns that into the dict `tfs.sparsify` takes,
and `prune_patterns(family)` gives the same choice as name patterns for a
run config (`config.prune`), before any model exists.

Example:

    model = get_model("bert", num_classes=2, input_shape=(3, 64),
                      vocab_size=1000)
    tfs.sparsify(model, sparsity_map(model, 0.9))
    # or from a preset in the local cache, with its weights:
    model = get_model("bert", num_classes=2, input_shape=(3, 128),
                      preset="bert_tiny_en_uncased")
"""

import dataclasses
import fnmatch

import keras

from tf_sparse import masking

FAMILIES_TEXT = ("bert", "distil_bert", "roberta", "gpt2", "gemma")
FAMILIES = FAMILIES_TEXT + ("vit",)
INSTALL = ("keras-hub is not installed; install it with "
           "`pip install 'tf-sparse[hub]'` (keras-hub and what it imports).")


@dataclasses.dataclass(frozen=True)
class Family:
    """How one keras-hub architecture is built and what it prunes."""
    backbone: str            # keras_hub.models class name
    task: str                # its classifier task class, "" for decoders
    inputs: tuple            # the backbone's input names, in packed order
    blocks: str              # fnmatch pattern of its transformer blocks
    token_embedding: str     # fnmatch pattern of its token embedding
    tiny: dict               # config of the small default model


_FAMILIES = {
    "bert": Family(
        "BertBackbone", "BertTextClassifier",
        ("token_ids", "segment_ids", "padding_mask"), "*transformer_layer_*",
        "*token_embedding",
        dict(num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64)),
    "distil_bert": Family(
        "DistilBertBackbone", "DistilBertTextClassifier",
        ("token_ids", "padding_mask"), "*transformer_layer_*",
        "*token_embedding",
        dict(num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64)),
    "roberta": Family(
        "RobertaBackbone", "RobertaTextClassifier",
        ("token_ids", "padding_mask"), "*transformer_layer_*",
        "*token_embedding",
        dict(num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64)),
    "gpt2": Family(
        "GPT2Backbone", "", ("token_ids", "padding_mask"),
        "*transformer_layer_*", "*token_embedding",
        dict(num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64)),
    "gemma": Family(
        "GemmaBackbone", "", ("token_ids", "padding_mask"),
        "*decoder_block_*", "*token_embedding",
        dict(num_layers=2, num_query_heads=2, num_key_value_heads=1,
             hidden_dim=32, intermediate_dim=64, head_dim=16)),
    "vit": Family(
        "ViTBackbone", "ViTImageClassifier", (), "*transformer_block_*", "",
        dict(patch_size=7, num_layers=2, num_heads=2, hidden_dim=32,
             mlp_dim=64)),
}
# Packed text: channel of each input name in the [batch, 3, length] tensor.
CHANNELS = {"token_ids": 0, "segment_ids": 1, "padding_mask": 2}


def keras_hub():
    """The keras_hub module, or an ImportError saying how to install it."""
    try:
        import keras_hub as module  # pylint: disable=import-outside-toplevel
    except ImportError as error:
        raise ImportError(INSTALL) from error
    return module


def family(name):
    """The `Family` of `name` ("bert", "distil_bert", "roberta", "gpt2",
    "gemma", "vit"; "-" and case ignored)."""
    key = str(name).strip().lower().replace("-", "_")
    key = {"distilbert": "distil_bert", "gpt_2": "gpt2"}.get(key, key)
    if key not in _FAMILIES:
        raise ValueError(f"Unknown keras-hub model family {name!r}; accepted: "
                         f"{', '.join(FAMILIES)}.")
    return key, _FAMILIES[key]


def backbone(name, *, preset=None, load_weights=True, **config):
    """A keras-hub backbone: the family's small config changed by `config`
    (no weights), or `from_preset(preset)`.

    Text backbones need `vocabulary_size` and `max_sequence_length` (or
    `sequence_length`), a ViT `image_shape`, unless a preset gives them.
    """
    key, fam = family(name)
    cls = getattr(keras_hub().models, fam.backbone)
    if preset:
        if config:
            raise ValueError(
                f"backbone({key!r}, preset={preset!r}) takes its config from "
                f"the preset; do not also pass {sorted(config)}.")
        return cls.from_preset(preset, load_weights=load_weights)
    full = {"name": f"{key}_backbone", **fam.tiny, **config}
    if "sequence_length" in full:
        length = full.pop("sequence_length")
        if key != "gemma":
            full.setdefault("max_sequence_length", length)
    if key == "vit":
        full.pop("vocabulary_size", None)
    return cls(**full)


@keras.saving.register_keras_serializable(package="tf_sparse")
class TextInputs(keras.layers.Layer):
    """Splits packed text `[batch, 3, length]` into a backbone's dict.

    Channels: 0 token ids, 1 segment ids, 2 padding mask. `names` are the
    backbone's input names (e.g. `("token_ids", "padding_mask")`).
    """

    def __init__(self, names, **kwargs):
        super().__init__(**kwargs)
        unknown = [n for n in names if n not in CHANNELS]
        if unknown or not names:
            raise ValueError(f"TextInputs names {list(names)!r}: accepted "
                             f"are {', '.join(CHANNELS)}.")
        self.names = tuple(names)

    def call(self, inputs):
        inputs = keras.ops.cast(inputs, "int32")
        return {n: inputs[:, CHANNELS[n], :] for n in self.names}

    def compute_output_spec(self, inputs):
        shape = (inputs.shape[0], inputs.shape[2])
        return {n: keras.KerasTensor(shape, dtype="int32")
                for n in self.names}

    def get_config(self):
        return {**super().get_config(), "names": list(self.names)}


@keras.saving.register_keras_serializable(package="tf_sparse")
class LastTokenPooling(keras.layers.Layer):
    """Features of each sequence's last real token (padding mask 1):
    `(sequence [b, t, d], padding_mask [b, t]) -> [b, d]`. A row with no
    real token gives the first position."""

    def call(self, sequence, padding_mask):
        mask = keras.ops.cast(padding_mask, "int32")
        positions = keras.ops.arange(keras.ops.shape(mask)[1], dtype="int32")
        last = keras.ops.max(mask * positions[None, :], axis=1)
        return keras.ops.take_along_axis(
            sequence, last[:, None, None], axis=1)[:, 0, :]

    def compute_output_shape(self, sequence_shape, padding_mask_shape):
        del padding_mask_shape
        return (sequence_shape[0], sequence_shape[2])


def _check_text_shape(key, input_shape):
    shape = tuple(input_shape)
    if len(shape) != 2 or shape[0] != 3 or not shape[1]:
        raise ValueError(
            f"keras-hub {key} takes packed text of shape (3, sequence_length)"
            f" (token ids, segment ids, padding mask); got input_shape "
            f"{shape}. Use a text data set with a keras-hub model "
            "(tf_sparse.data.text_packing).")
    return int(shape[1])


def _decoder_classifier(bb, num_classes, dropout, name):
    sequence = keras.Input((None,), dtype="int32", name="token_ids")
    mask = keras.Input((None,), dtype="int32", name="padding_mask")
    features = bb({"token_ids": sequence, "padding_mask": mask})
    pooled = LastTokenPooling(name="last_token")(features, mask)
    if dropout:
        pooled = keras.layers.Dropout(dropout, name="head_dropout")(pooled)
    logits = keras.layers.Dense(num_classes, name="logits")(pooled)
    return keras.Model({"token_ids": sequence, "padding_mask": mask},
                       logits, name=name)


def get_model(name, /, *, num_classes, input_shape, vocab_size=None,
              preset=None, dropout=None, name_prefix="hub", **config):
    """A keras-hub classifier with the zoo's interface (one input, logits).

    Args:
      name: the family ("bert", "distil_bert", "roberta", "gpt2", "gemma",
        "vit").
      num_classes: classes of the head.
      input_shape: `(3, sequence_length)` for text, `(h, w, c)` for images.
      vocab_size: vocabulary of a config-built text model (ignored with a
        preset, whose tokenizer fixes it).
      preset: a keras-hub preset in the local cache or a preset directory
        (weights loaded); None builds from the config class, no weights.
      dropout: of the classifier head (None: keras-hub's default; decoders
        0.1).
      config: changes to the family's small config (`num_layers`,
        `hidden_dim`, ...).
    """
    key, fam = family(name)
    hub = keras_hub()
    if key == "vit":
        if len(tuple(input_shape)) != 3:
            raise ValueError(f"keras-hub vit takes images (h, w, c); got "
                             f"input_shape {tuple(input_shape)}.")
        if not preset:
            config.setdefault("image_shape", tuple(input_shape))
        bb = backbone(key, preset=preset, **config)
        head = {} if dropout is None else {"dropout": dropout}
        return hub.models.ViTImageClassifier(
            bb, num_classes, preprocessor=None, name=f"{name_prefix}_vit",
            **head)
    length = _check_text_shape(key, input_shape)
    if not preset:
        if not vocab_size:
            raise ValueError(f"keras-hub {key} built from its config needs "
                             f"vocab_size (got {vocab_size!r}).")
        config.setdefault("vocabulary_size", int(vocab_size))
        config.setdefault("sequence_length", length)
    bb = backbone(key, preset=preset, **config)
    if fam.task:
        head = {} if dropout is None else {"dropout": dropout}
        core = getattr(hub.models, fam.task)(
            bb, num_classes, preprocessor=None, name=f"{key}_classifier",
            **head)
    else:
        core = _decoder_classifier(bb, num_classes,
                                   0.1 if dropout is None else dropout,
                                   f"{key}_classifier")
    packed = keras.Input((3, length), dtype="int32", name="packed_text")
    logits = core(TextInputs(fam.inputs, name="text_inputs")(packed))
    return keras.Model(packed, logits, name=f"{name_prefix}_{key}")


# --------------------------------------------------------------------------
# What is pruned.


def _is_attention(layer):
    return isinstance(layer, keras.layers.MultiHeadAttention) or (
        "Attention" in type(layer).__name__)


def _contains_attention(layer):
    return any(_is_attention(sub) for sub in layer._flatten_layers(  # pylint: disable=protected-access
        include_self=True, recursive=True))


def projection_paths(model):
    """Layer paths (as `tfs.sparsify` names them) of the Dense / EinsumDense
    projections inside attention and feed-forward blocks of `model`: those
    nested in a layer (not a model) that holds an attention layer."""
    by_path = dict(masking.iter_layers(model))
    blocks = {path for path, layer in by_path.items()
              if not isinstance(layer, keras.Model)
              and _contains_attention(layer)}
    found = []
    for path, layer in by_path.items():
        if not isinstance(layer, (keras.layers.Dense,
                                  keras.layers.EinsumDense)):
            continue
        parts = path.split("/")
        ancestors = {"/".join(parts[:i]) for i in range(1, len(parts))}
        if ancestors & blocks:
            found.append(path)
    return found


def token_embedding_paths(model):
    """Layer paths of the token embeddings (keras-hub's
    `ReversibleEmbedding`s and layers named `token_embedding`)."""
    return [path for path, layer in masking.iter_layers(model)
            if isinstance(layer, keras.layers.Embedding) and (
                type(layer).__name__ == "ReversibleEmbedding"
                or layer.name == "token_embedding")]


def sparsity_map(model, sparsity, *, token_embedding=False):
    """`{layer path: sparsity}` for `tfs.sparsify`: every block projection
    (and the token embedding if asked) at `sparsity`; the rest stays dense.

    Raises:
      ValueError: when `model` has no attention block projections.
    """
    paths = projection_paths(model)
    if not paths:
        raise ValueError(
            f"Model {model.name!r} has no Dense/EinsumDense projections inside "
            "attention blocks; sparsity_map is for transformers.")
    if token_embedding:
        paths += token_embedding_paths(model)
    return {path: sparsity for path in paths}


def prune_patterns(name, *, token_embedding=False):
    """Layer-name patterns (`config.prune`) that select exactly what
    `sparsity_map` selects, for a model of family `name`."""
    key, fam = family(name)
    patterns = [f"{fam.blocks}/*"]
    if token_embedding:
        if not fam.token_embedding:
            raise ValueError(f"keras-hub {key} has no token embedding.")
        patterns.append(fam.token_embedding)
    return tuple(patterns)
