"""Transformer encoders: per-layer-type sparsity, attention masks hold their
exact counts through training, a BERT-style encoder on made-up token data,
and the GLUE loader fails fast."""

import time

import keras
import numpy as np
import pytest

import tf_sparse as tfs
from tf_sparse.data import errors
from tf_sparse.data import glue
from tf_sparse.models import transformer
from tf_sparse.models import vit


def kept(sparsity, size):
    return int(np.floor((1 - sparsity) * size + 0.5))


def test_vit_gmp_per_layer_type_counts_hold_through_training():
    keras.utils.set_random_seed(0)
    model = vit.vit(depth=2, dim=16, heads=2, mlp_dim=32)
    targets = transformer.layer_type_sparsity(attention=0.9, ffn=0.75)
    tfs.sparsify(model, sparsity={k: 0.0 for k in targets})
    paths = [mw.path for mw in tfs.masked_weights(model)]
    assert len(paths) == 2 * 6           # q, k, v, o, ffn1, ffn2 per block
    assert not any("embed" in p or p.startswith("head") for p in paths)
    algorithm = tfs.algorithms.GMP(targets, begin=0, end=4, frequency=2,
                                   total_steps=10)
    model.compile(keras.optimizers.Adam(1e-2),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.random((40, 28, 28, 1)).astype("float32")
    y = rng.integers(0, 10, 40)
    seen = []

    def check(batch, logs):
        step = int(model.optimizer.iterations.numpy())
        for mw in tfs.masked_weights(model):
            mask = mw.mask.numpy()
            assert np.all(mw.variable.numpy()[mask == 0] == 0.0)
            if step >= 4:
                target = 0.9 if "_attn/" in mw.path else 0.75
                assert int(mask.sum()) == kept(target, mw.size), mw.path
        seen.append(step)

    model.fit(x, y, batch_size=4, verbose=0, callbacks=[
        tfs.callbacks.MaskUpdate(algorithm),
        keras.callbacks.LambdaCallback(on_train_batch_end=check)])
    assert seen == list(range(1, 11))
    query = model.get_layer("block0_attn")._query_dense
    assert tfs.masking.ATTR in vars(query) or hasattr(query, tfs.masking.ATTR)


def token_data(n=96, length=12, vocab=40, seed=0):
    """Label 1 iff token 7 occurs; random lengths with padding 0."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(2, vocab, size=(n, length)).astype("int32")
    ids[ids == 7] = 8
    lengths = rng.integers(3, length + 1, size=n)
    labels = rng.integers(0, 2, size=n).astype("int32")
    for i in range(n):
        ids[i, lengths[i]:] = 0
        if labels[i]:
            ids[i, rng.integers(0, lengths[i])] = 7
    return ids, labels


def test_bert_encoder_acdc_attention_counts_and_padding():
    keras.utils.set_random_seed(0)
    model = transformer.bert_encoder(vocab_size=40, sequence_length=12,
                                     dim=16, depth=1, heads=2, mlp_dim=32,
                                     dropout=0.0)
    # Padding is masked out: the 12-token model on [a, b, c, 0, ...] equals
    # a 3-token model with the same weights on [a, b, c].
    ids, labels = token_data()
    short = transformer.bert_encoder(vocab_size=40, sequence_length=3,
                                     dim=16, depth=1, heads=2, mlp_dim=32,
                                     dropout=0.0)
    short.set_weights([w[:3] if w.shape != v.shape else w
                       for w, v in zip(model.get_weights(), short.weights)])
    padded = np.zeros((2, 12), "int32")
    padded[:, :3] = ids[:2, :3]
    np.testing.assert_allclose(model(padded), short(padded[:, :3]),
                               atol=1e-5)
    targets = transformer.layer_type_sparsity(attention=0.8, ffn=0.8)
    tfs.sparsify(model, sparsity={k: 0.0 for k in targets})
    algorithm = tfs.algorithms.ACDC(0.8, warmup=4, phase_length=4,
                                    end_sparse=4, total_steps=24)
    model.compile(keras.optimizers.Adam(3e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(ids, labels, batch_size=4, epochs=1, verbose=0,
              callbacks=[tfs.callbacks.MaskUpdate(algorithm)])
    weights = tfs.masked_weights(model)
    total = sum(mw.size for mw in weights)
    assert sum(mw.nonzeros() for mw in weights) == kept(0.8, total)
    assert {mw.path.split("/")[0] for mw in weights} == {
        "block0_attn", "block0_ffn1", "block0_ffn2"}
    for mw in weights:
        assert np.all(mw.variable.numpy()[mw.mask.numpy() == 0] == 0.0)


def test_text_pipeline_on_made_up_sentences():
    sentences = ["a good film", "a bad film", "great fun", "dull and bad"] * 5
    labels = [1, 0, 1, 0] * 5
    train, evaluation, info = glue.text_classification_datasets(
        (sentences, labels), (["good fun", "bad"], [1, 0]), batch_size=4,
        seed=0, vocab_size=30, sequence_length=5)
    ids, y = next(iter(train))
    assert ids.shape == (4, 5) and ids.dtype == "int32"
    assert info["num_classes"] == 2 and info["steps_per_epoch"] == 5
    ids_eval, y_eval = next(iter(evaluation))
    assert ids_eval.numpy()[1, 1] == 0          # padded
    assert ids_eval.numpy()[0, 0] not in (0, 1)  # "good" is in vocabulary


def test_sst2_fails_fast_without_data(tmp_path):
    start = time.time()
    with pytest.raises(errors.DataNotFoundError, match="glue/sst2"):
        glue.load_sst2(str(tmp_path))
    assert time.time() - start < 30


def test_layer_type_sparsity_needs_a_type():
    with pytest.raises(ValueError, match="at least one"):
        transformer.layer_type_sparsity()
    assert transformer.layer_type_sparsity(embedding=0.5, head=0.1) == {
        "*_embed": 0.5, "head": 0.1}
