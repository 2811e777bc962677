"""Transformer encoders for sparse training: shared blocks, a BERT-style
encoder, and per-layer-type sparsity.

Every encoder here is a plain functional Keras model built from standard
layers, with fixed layer names so that sparsity can be given per layer type:

    <...>_embed           embeddings (token, patch and position)
    block{i}_attn/query, key, value, attention_output
                          the MultiHeadAttention projections (EinsumDense)
    block{i}_ffn1, _ffn2  the feed-forward kernels (Dense)
    head                  the classifier
    block{i}_ln1, _ln2, final_ln   layer norms (never pruned)

`layer_type_sparsity(attention=0.9, ffn=0.9, embedding=None)` turns this into
the `{pattern: sparsity}` dict that `tfs.sparsify` and the GMP / AC/DC
algorithms accept; a type given as None is left out (dense).

Example:

    model = bert_encoder(vocab_size=20000, sequence_length=64)
    targets = layer_type_sparsity(attention=0.9, ffn=0.9)   # embeddings dense
    tfs.sparsify(model, sparsity={k: 0.0 for k in targets}) # all-ones masks
    gmp = tfs.algorithms.GMP(targets, total_steps=T)
"""

import keras

from tf_sparse.models import layers as L

#: fnmatch patterns (against layer paths) of each layer type.
LAYER_TYPES = {
    "embedding": "*_embed",
    "attention": "*_attn/*",
    "ffn": "*_ffn[12]",
    "head": "head",
}


def layer_type_sparsity(attention=None, ffn=None, embedding=None, head=None):
    """`{pattern: sparsity}` for the encoders' layer types; None = dense.

    Example:

        >>> layer_type_sparsity(attention=0.9, ffn=0.95)
        {'*_attn/*': 0.9, '*_ffn[12]': 0.95}
    """
    chosen = {"attention": attention, "ffn": ffn, "embedding": embedding,
              "head": head}
    result = {}
    for kind in ("embedding", "attention", "ffn", "head"):
        value = chosen[kind]
        if value is not None:
            result[LAYER_TYPES[kind]] = value
    if not result:
        raise ValueError(
            "layer_type_sparsity: give a sparsity for at least one of "
            "attention, ffn, embedding, head.")
    return result


@keras.saving.register_keras_serializable(package="tf_sparse")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned position embedding to a (batch, length, dim) input.

    The table is the attribute `embeddings` (prunable through
    `get_prunable_weights`, like `keras.layers.Embedding`). Keras masks pass
    through.
    """

    def __init__(self, initializer="random_normal", **kwargs):
        super().__init__(**kwargs)
        self.initializer = keras.initializers.get(initializer)
        self.supports_masking = True

    def build(self, input_shape):
        length, dim = input_shape[-2], input_shape[-1]
        self.embeddings = self.add_weight(
            shape=(length, dim), initializer=self.initializer,
            name="embeddings")

    def call(self, inputs):
        return inputs + keras.ops.cast(self.embeddings, inputs.dtype)

    def get_prunable_weights(self):
        return [self.embeddings]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_mask(self, inputs, mask=None):
        return mask

    def get_config(self):
        config = super().get_config()
        config["initializer"] = keras.initializers.serialize(self.initializer)
        return config


@keras.saving.register_keras_serializable(package="tf_sparse")
class MaskedMeanPooling(keras.layers.Layer):
    """Mean over the non-padding tokens of (batch, length, dim) inputs.

    Like `GlobalAveragePooling1D` with a mask, but an all-padding row gives
    zeros instead of 0 / 0.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return keras.ops.mean(inputs, axis=1)
        weights = keras.ops.cast(mask, inputs.dtype)[..., None]
        total = keras.ops.sum(inputs * weights, axis=1)
        count = keras.ops.maximum(keras.ops.sum(weights, axis=1), 1.0)
        return total / count

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


def encoder_block(x, *, dim, heads, mlp_dim, dropout=0.0, index=0,
                  activation="gelu"):
    """A pre-norm transformer block: x + MHA(LN(x)); x + FFN(LN(x))."""
    p = f"block{index}"
    h = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{p}_ln1")(x)
    h = keras.layers.MultiHeadAttention(
        num_heads=heads, key_dim=dim // heads, dropout=dropout,
        name=f"{p}_attn")(h, h)
    if dropout:
        h = keras.layers.Dropout(dropout, name=f"{p}_drop1")(h)
    x = keras.layers.Add(name=f"{p}_add1")([x, h])
    h = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{p}_ln2")(x)
    h = keras.layers.Dense(mlp_dim, activation=activation,
                           name=f"{p}_ffn1")(h)
    h = keras.layers.Dense(dim, name=f"{p}_ffn2")(h)
    if dropout:
        h = keras.layers.Dropout(dropout, name=f"{p}_drop2")(h)
    return keras.layers.Add(name=f"{p}_add2")([x, h])


def check_encoder_size(dim, heads, depth):
    """Raises ValueError unless `heads` divides `dim` and `depth` >= 1.

    The encoders' attention uses `key_dim = dim // heads` per head, so the
    heads together are as wide as the model only when `heads` divides `dim`.

    Example:

        check_encoder_size(dim=128, heads=4, depth=2)   # fine
        check_encoder_size(dim=100, heads=3, depth=2)   # ValueError
    """
    if dim % heads:
        raise ValueError(
            f"dim={dim} must be a multiple of heads={heads} (key_dim = "
            "dim / heads).")
    if depth < 1:
        raise ValueError(f"depth={depth} must be >= 1.")


def bert_encoder(vocab_size=20000, sequence_length=64, num_classes=2,
                 dim=128, depth=2, heads=4, mlp_dim=256, dropout=0.1,
                 input_shape=None, name="bert_encoder"):
    """A small BERT-style text classifier (logits).

    Token ids (0 = padding, masked out of attention and pooling) ->
    `token_embed` + `pos_embed` -> `depth` pre-norm blocks -> `final_ln` ->
    masked mean pooling -> `head`. Defaults give a ~0.4M-parameter encoder
    (2 blocks, width 128), small enough for SST-2 on a CPU.

    Example:

        model = bert_encoder(vocab_size=1000, sequence_length=16)
        logits = model(np.ones((2, 16), "int32"))   # (2, 2)
    """
    L.check_num_classes(num_classes)
    check_encoder_size(dim, heads, depth)
    if input_shape is not None:  # the zoo's common keyword: (length,)
        sequence_length = int(tuple(input_shape)[0])
    tokens = keras.Input(shape=(sequence_length,), dtype="int32",
                         name="tokens")
    x = keras.layers.Embedding(vocab_size, dim, mask_zero=True,
                               name="token_embed")(tokens)
    x = PositionEmbedding(name="pos_embed")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="embed_drop")(x)
    for i in range(depth):
        x = encoder_block(x, dim=dim, heads=heads, mlp_dim=mlp_dim,
                          dropout=dropout, index=i)
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="final_ln")(x)
    x = MaskedMeanPooling(name="pool")(x)
    outputs = keras.layers.Dense(num_classes, name="head")(x)
    return keras.Model(tokens, outputs, name=name)
