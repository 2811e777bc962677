"""keras-hub models: what is pruned, exact counts and zeros through fit with
AdamW, save/load, strip, summary, export, presets from a directory."""

import os

import keras
import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")

import tf_sparse as tfs  # noqa: E402
from tf_sparse import distributions  # noqa: E402
from tf_sparse import export  # noqa: E402
from tf_sparse import masking  # noqa: E402
from tf_sparse import sparsification  # noqa: E402
from tf_sparse.data import text_packing  # noqa: E402
from tf_sparse.models import hub  # noqa: E402

LENGTH = 8
VOCAB = 40
# 2 layers, hidden 16: every test model is tiny (model building is slow on
# a loaded 2-core machine).
TINY = {
    "bert": dict(num_layers=2, num_heads=2, hidden_dim=16,
                 intermediate_dim=32),
    "distil_bert": dict(num_layers=2, num_heads=2, hidden_dim=16,
                        intermediate_dim=32),
    "roberta": dict(num_layers=2, num_heads=2, hidden_dim=16,
                    intermediate_dim=32),
    "gpt2": dict(num_layers=2, num_heads=2, hidden_dim=16,
                 intermediate_dim=32),
    "gemma": dict(num_layers=2, num_query_heads=2, num_key_value_heads=1,
                  hidden_dim=16, intermediate_dim=32, head_dim=8),
    "vit": dict(patch_size=7, num_layers=2, num_heads=2, hidden_dim=16,
                mlp_dim=32),
}
# Projections per block: q, k, v, attention output + the feed-forward
# layers (2; Gemma's gated feed-forward has 3).
PER_BLOCK = {"gemma": 7}


def build(family, num_classes=3, seed=0):
    keras.utils.set_random_seed(seed)
    if family == "vit":
        return hub.get_model(family, num_classes=num_classes,
                             input_shape=(28, 28, 1), **TINY[family])
    return hub.get_model(family, num_classes=num_classes,
                         input_shape=(3, LENGTH), vocab_size=VOCAB,
                         **TINY[family])


def batch(family, n=8, seed=0):
    rng = np.random.default_rng(seed)
    if family == "vit":
        return rng.random((n, 28, 28, 1)).astype("float32")
    ids = rng.integers(4, VOCAB, (n, LENGTH))
    mask = (np.arange(LENGTH)[None, :] < rng.integers(3, LENGTH + 1, (n, 1))
            ).astype(np.int32)
    segments = (np.arange(LENGTH)[None, :] >= 4).astype(np.int32) * mask
    return np.stack([ids * mask, segments, mask], axis=1).astype("int32")


def expected_nonzeros(model, sparsity):
    return {mw.path: distributions.round_half_up((1 - sparsity) * int(
        np.prod(mw.variable.shape))) for mw in masking.masked_weights(model)}


def check_counts_and_zeros(model, counts):
    for mw in masking.masked_weights(model):
        mask = keras.ops.convert_to_numpy(mw.mask)
        value = keras.ops.convert_to_numpy(mw.variable)
        assert int(mask.sum()) == counts[mw.path], mw.path
        assert np.count_nonzero(value[mask == 0]) == 0, mw.path
        assert np.count_nonzero(value) <= counts[mw.path], mw.path


@pytest.mark.parametrize("family", hub.FAMILIES)
def test_every_projection_of_every_block_is_pruned_and_nothing_else(family):
    model = build(family)
    chosen = hub.sparsity_map(model, 0.9)
    per_block = PER_BLOCK.get(family, 6)
    assert len(chosen) == 2 * per_block
    # The config patterns select exactly the structural choice.
    patterns = hub.prune_patterns(family)
    by_pattern = {t.layer_path for t in sparsification.find_targets(model)
                  if any(t.matches(p) for p in patterns)}
    assert by_pattern == set(chosen)
    tfs.sparsify(model, chosen, seed=1)
    masked = masking.masked_weights(model)
    assert {mw.path.rpartition("/")[0] for mw in masked} == set(chosen)
    for mw in masked:
        layer = mw.path.split("/")[-2]
        assert layer in ("query", "key", "value", "attention_output",
                         "feedforward_intermediate_dense",
                         "feedforward_output_dense", "dense_1", "dense_2",
                         "ffw_gating", "ffw_gating_2", "ffw_linear"), mw.path
    # Embeddings, norms, pooler and head stay dense.
    assert not any("embedding" in mw.path or "logits" in mw.path
                   or "pooled" in mw.path or "predictions" in mw.path
                   for mw in masked)
    check_counts_and_zeros(model, expected_nonzeros(model, 0.9))


def test_token_embedding_is_pruned_on_request():
    model = build("bert")
    chosen = hub.sparsity_map(model, 0.5, token_embedding=True)
    embedding = [p for p in chosen if p.endswith("token_embedding")]
    assert embedding == ["bert_classifier/bert_backbone/token_embedding"]
    assert hub.prune_patterns("bert", token_embedding=True) == (
        "*transformer_layer_*/*", "*token_embedding")
    tfs.sparsify(model, chosen)
    weights = {mw.path: mw for mw in masking.masked_weights(model)}
    mask = weights["bert_classifier/bert_backbone/token_embedding/embeddings"]
    assert int(keras.ops.convert_to_numpy(mask.mask).sum()) == VOCAB * 16 // 2
    with pytest.raises(ValueError, match="vit has no token embedding"):
        hub.prune_patterns("vit", token_embedding=True)


@pytest.mark.parametrize("family", ["bert", "vit", "gpt2"])
def test_90_percent_keeps_exact_counts_and_zeros_through_fit_with_adamw(
        family):
    model = build(family)
    tfs.sparsify(model, hub.sparsity_map(model, 0.9), seed=3)
    counts = expected_nonzeros(model, 0.9)
    before = [keras.ops.convert_to_numpy(mw.variable).copy()
              for mw in masking.masked_weights(model)]
    model.compile(optimizer=keras.optimizers.AdamW(1e-2, weight_decay=0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True))
    x = batch(family, 16)
    y = np.arange(16) % 3
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    check_counts_and_zeros(model, counts)
    after = [keras.ops.convert_to_numpy(mw.variable)
             for mw in masking.masked_weights(model)]
    # The kept weights trained.
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))


def test_save_load_strip_summary_and_exports(tmp_path):
    model = build("bert")
    tfs.sparsify(model, hub.sparsity_map(model, 0.9), seed=0)
    x = batch("bert", 4)
    expected = keras.ops.convert_to_numpy(model(x))
    path = str(tmp_path / "bert.keras")
    tfs.save_model(model, path)
    loaded = tfs.load_model(path, compile=False)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x)),
                                  expected)
    masks = {mw.path: keras.ops.convert_to_numpy(mw.mask)
             for mw in masking.masked_weights(model)}
    again = {mw.path: keras.ops.convert_to_numpy(mw.mask)
             for mw in masking.masked_weights(loaded)}
    assert masks.keys() == again.keys() and len(masks) == 12
    assert all(np.array_equal(masks[k], again[k]) for k in masks)
    plain = tfs.strip(model)
    assert not masking.is_sparse(plain)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(plain(x)),
                                  expected)
    text = tfs.summary(model)
    assert "transformer_layer_1/self_attention_layer/query/kernel" in text
    assert export.export_keras(model, str(tmp_path / "plain.keras"),
                               x).max_abs_diff == 0.0
    assert export.export_saved_model(model, str(tmp_path / "sm"),
                                     x).max_abs_diff <= 1e-5


def test_a_keras_hub_task_model_itself_strips_and_round_trips(tmp_path):
    keras.utils.set_random_seed(0)
    backbone = hub.backbone("vit", image_shape=(28, 28, 1), **TINY["vit"])
    task = keras_hub.models.ViTImageClassifier(backbone, 4,
                                               preprocessor=None)
    tfs.sparsify(task, hub.sparsity_map(task, 0.75))
    x = batch("vit", 2)
    plain = tfs.strip(task)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(plain(x)),
                                  keras.ops.convert_to_numpy(task(x)))
    tfs.save_model(task, str(tmp_path / "vit.keras"))
    loaded = tfs.load_model(str(tmp_path / "vit.keras"), compile=False)
    assert type(loaded).__name__ == "ViTImageClassifier"
    assert len(masking.masked_weights(loaded)) == 12


def test_text_inputs_and_last_token_pooling_by_hand():
    packed = np.array([[[5, 6, 7, 0], [0, 0, 1, 0], [1, 1, 1, 0]]], "int32")
    out = hub.TextInputs(("token_ids", "padding_mask"))(packed)
    assert sorted(out) == ["padding_mask", "token_ids"]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(
        out["token_ids"]), [[5, 6, 7, 0]])
    sequence = np.arange(2 * 4 * 3, dtype="float32").reshape(2, 4, 3)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]])
    pooled = keras.ops.convert_to_numpy(
        hub.LastTokenPooling()(sequence, mask))
    np.testing.assert_array_equal(pooled, [sequence[0, 1], sequence[1, 3]])
    with pytest.raises(ValueError, match="accepted are token_ids"):
        hub.TextInputs(("tokens",))


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="Unknown keras-hub model family "
                       "'bart'; accepted: bert, distil_bert"):
        hub.family("bart")
    with pytest.raises(ValueError, match=r"got input_shape \(8,\)"):
        hub.get_model("bert", num_classes=2, input_shape=(8,), vocab_size=9)
    with pytest.raises(ValueError, match="needs vocab_size"):
        hub.get_model("gpt2", num_classes=2, input_shape=(3, 8))
    with pytest.raises(ValueError, match="no Dense/EinsumDense projections"):
        mlp = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        hub.sparsity_map(mlp, 0.5)
    with pytest.raises(ValueError, match="Unknown model name 'nope'"):
        tfs.models.get_model("nope")


def test_preset_directory_gives_weights_and_tokenizer(tmp_path):
    """A preset saved to disk (what from_preset reads from the local cache)
    builds the model with its weights; its preprocessor packs the text."""
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat",
                  "sat", "dog", "ran", "."]
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer, sequence_length=LENGTH)
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary), max_sequence_length=LENGTH,
        **TINY["bert"])
    keras_hub.models.BertTextClassifier(
        backbone, 2, preprocessor=preprocessor).save_to_preset(
            str(tmp_path / "preset"))
    model = hub.get_model("bert", num_classes=3, input_shape=(3, LENGTH),
                          preset=str(tmp_path / "preset"))
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.get_layer(
            "bert_classifier").backbone.token_embedding.embeddings),
        keras.ops.convert_to_numpy(backbone.token_embedding.embeddings))
    packed = text_packing.preset_pack(
        str(tmp_path / "preset"), (np.array(["the cat sat."]),
                                   np.array(["a dog ran"])), LENGTH)
    # [CLS] the cat sat . [SEP] | [UNK] dog ... truncated to 8 tokens.
    assert packed.shape == (1, 3, LENGTH)
    assert packed[0, 0, 0] == 2 and packed[0, 2].sum() == LENGTH
    assert list(packed[0, 1]) == [0] * int(np.argmax(packed[0, 0] == 3) + 1) \
        + [1] * (LENGTH - int(np.argmax(packed[0, 0] == 3) + 1))
    logits = model(packed)
    assert tuple(logits.shape) == (1, 3)
    with pytest.raises(ValueError, match="takes its config from the preset"):
        hub.backbone("bert", preset=str(tmp_path / "preset"), num_layers=1)
    assert os.path.isdir(tmp_path / "preset")


def test_2_4_on_the_projections_holds_through_fit_with_adamw():
    from tf_sparse import patterns
    model = build("bert")
    tfs.sparsify(model, hub.sparsity_map(model, 0.5), pattern="2:4")
    model.compile(optimizer=keras.optimizers.AdamW(1e-2, weight_decay=0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True))
    model.fit(batch("bert", 8), np.arange(8) % 3, batch_size=4, verbose=0)
    masked = masking.masked_weights(model)
    assert len(masked) == 12
    for mw in masked:
        mask = keras.ops.convert_to_numpy(mw.mask)
        value = keras.ops.convert_to_numpy(mw.variable)
        layout = patterns.layout_of("2:4", mw.layer, mw.name,
                                    tuple(mw.variable.shape))
        assert layout.misfit(mask) is None, mw.path
        assert int(mask.sum()) * 2 == mask.size, mw.path
        assert np.count_nonzero(value[mask == 0]) == 0, mw.path
