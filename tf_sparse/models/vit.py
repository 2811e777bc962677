"""A small Vision-Transformer-style encoder for 28x28 images.

The sparse fine-tuning case of the recipes: pretrain it dense on
Fashion-MNIST, then prune its attention projections and feed-forward kernels
during fine-tuning (GMP or AC/DC, with distillation from the dense model),
leaving the embeddings and the classifier dense. Layer names follow
`tf_sparse.models.transformer`, so `layer_type_sparsity` applies.

Architecture of `vit_tiny` (defaults): non-overlapping 7x7 patches (a 7x7
stride-7 `patch_embed` convolution, 16 tokens of width 64), a learned
`pos_embed`, 4 pre-norm blocks (4 heads, MLP 128, GELU), `final_ln`, mean
pooling over tokens and a `head` giving logits. 138,890 parameters for 10
classes; 131,072 of them in the attention and feed-forward kernels.

Example:

    model = vit_tiny()
    logits = model(np.zeros((2, 28, 28, 1)))   # (2, 10)
"""

import keras

from tf_sparse.models import layers as L
from tf_sparse.models import transformer


def vit(num_classes=10, input_shape=(28, 28, 1), patch_size=7, dim=64,
        depth=4, heads=4, mlp_dim=128, dropout=0.0, name="vit"):
    """A ViT-style classifier; see the module doc for the layer names."""
    L.check_num_classes(num_classes)
    transformer.check_encoder_size(dim, heads, depth)
    height, width = input_shape[0], input_shape[1]
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"patch_size={patch_size} must divide the image size "
            f"{height}x{width}.")
    inputs = keras.Input(shape=input_shape, name="input")
    x = keras.layers.Conv2D(dim, patch_size, strides=patch_size,
                            name="patch_embed")(inputs)
    x = keras.layers.Reshape(
        ((height // patch_size) * (width // patch_size), dim),
        name="tokens")(x)
    x = transformer.PositionEmbedding(
        initializer=keras.initializers.RandomNormal(stddev=0.02),
        name="pos_embed")(x)
    for i in range(depth):
        x = transformer.encoder_block(x, dim=dim, heads=heads,
                                      mlp_dim=mlp_dim, dropout=dropout,
                                      index=i)
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="final_ln")(x)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    outputs = keras.layers.Dense(num_classes, name="head")(x)
    return keras.Model(inputs, outputs, name=name)


def vit_tiny(num_classes=10, input_shape=(28, 28, 1), name="vit_tiny",
             **kwargs):
    """`vit` with the defaults above (7x7 patches, width 64, 4 blocks)."""
    return vit(num_classes=num_classes, input_shape=input_shape, name=name,
               **kwargs)
