"""Cached teacher logits: exact lookup, unknown inputs refused, the KD loss
of a Distiller on cached (fixed) logits by hand, files reused only for the
same teacher; and a keras-hub recipe through the recipe binary's path."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_sparse import distillation
from tf_sparse import recipes
from tf_sparse import teacher_cache
from tf_sparse.runs import data as data_lib


def softmax(z):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


X = np.arange(4 * 3, dtype="float32").reshape(4, 3) / 10.0
LOGITS = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0], [2.0, 2.0, 2.0],
                   [-1.0, 0.0, 1.0]], np.float32)


def cache():
    model = teacher_cache.CachedTeacher(4, 3)
    model.set_cache(teacher_cache.fingerprints(X).numpy(), LOGITS)
    return model


def test_lookup_returns_the_stored_rows_in_any_order():
    model = cache()
    order = [2, 0, 3, 1, 2]
    got = keras.ops.convert_to_numpy(model(X[order]))
    np.testing.assert_array_equal(got, LOGITS[order])
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="inputs not in the cache"):
        model(X[:2] + 1.0)


def test_distiller_loss_on_cached_logits_equals_the_hand_computed_mix():
    keras.utils.set_random_seed(0)
    student = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3)])
    distiller = distillation.Distiller(student, cache(), temperature=2.0,
                                       alpha=0.25)
    distiller.compile(loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    y = np.array([1, 2, 0, 2])
    s = keras.ops.convert_to_numpy(student(X))
    hard = -np.log(softmax(s)[np.arange(4), y]).mean()
    p, q = softmax(LOGITS / 2.0), softmax(s / 2.0)
    soft = ((p * (np.log(p) - np.log(q))).sum(-1) * 4.0).mean()
    got = float(distiller.compute_loss(X, y, student(X), training=True))
    assert got == pytest.approx(0.75 * hard + 0.25 * soft, rel=1e-5)


def test_build_cache_matches_the_teacher_and_files_follow_the_teacher(
        tmp_path):
    keras.utils.set_random_seed(1)
    teacher = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    x = np.random.default_rng(0).normal(size=(10, 3)).astype("float32")
    x[7] = x[2]                                   # a duplicate input
    data = data_lib.ArrayData(x, np.zeros(10, np.int32), x[:2],
                              np.zeros(2, np.int32), batch_size=5,
                              eval_batch_size=4, num_classes=4)
    path = str(tmp_path / "teacher.keras")
    teacher.save(path)
    cache_path = str(tmp_path / "new_folder" / "logits.keras")
    assert teacher_cache.cached(path, data, cache_path, 3) == cache_path
    loaded = keras.saving.load_model(cache_path)
    assert loaded.num_examples == 9                # the duplicate once
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)),
                               keras.ops.convert_to_numpy(teacher(x)),
                               atol=1e-6)
    stamp = os.path.getmtime(cache_path)
    teacher_cache.cached(path, data, cache_path)   # same teacher: reused
    assert os.path.getmtime(cache_path) == stamp
    teacher.layers[0].kernel.assign(teacher.layers[0].kernel * 2.0)
    teacher.save(path)
    teacher_cache.cached(path, data, cache_path)   # another teacher: rebuilt
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(keras.saving.load_model(cache_path)(x)),
        keras.ops.convert_to_numpy(teacher(x)), atol=1e-6)
    augmented = data_lib.ArrayData(x, np.zeros(10, np.int32), x[:2],
                                   np.zeros(2, np.int32), batch_size=5,
                                   augment=lambda a, b, seed: (a, b))
    with pytest.raises(ValueError, match="cannot be cached for augmented"):
        teacher_cache.build_cache(teacher, augmented)


def test_keras_hub_bert_recipe_on_glue_tsv_with_cached_teacher(tmp_path):
    """Dense fine-tuning (the teacher), then GMP to 90% of the projections
    with distillation from cached logits, on RTE files written here, through
    the recipe kind with the repository's config."""
    pytest.importorskip("keras_hub")
    import importlib.util
    root = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    spec = importlib.util.spec_from_file_location("hub_bert_cfg", os.path.join(
        root, "configs", "recipes", "hub_bert_glue_gmp_kd.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    rte = tmp_path / "glue" / "RTE"
    rte.mkdir(parents=True)
    rows = ["index\tsentence1\tsentence2\tlabel"] + [
        f"{i}\tthe cat {w} sat\tthe cat sat\t"
        f"{'entailment' if i % 2 else 'not_entailment'}"
        for i, w in enumerate(["big", "small", "red", "old"] * 10)]
    (rte / "train.tsv").write_text("\n".join(rows) + "\n")
    (rte / "dev.tsv").write_text("\n".join(rows[:5]) + "\n")
    with config.unlocked():
        config.data_dir = str(tmp_path / "glue")
        config.model_kwargs.num_layers = 1
        config.model_kwargs.hidden_dim = 16
        config.model_kwargs.intermediate_dim = 32
        config.vocab_size = 20
        config.sequence_length = 10
        config.batch_size = 4
        config.eval_batch_size = 4
        config.pretrain_epochs = 1
        config.epochs = 2
        config.validation_fraction = 0.0
        config.train_eval_examples = 8
        config.entropy_examples = 4
    workdir = str(tmp_path / "run")
    results = recipes.run(config, workdir)
    assert results["finished"] and "diverged" not in results
    assert os.path.exists(os.path.join(workdir, "teacher_logits.keras"))
    assert results["config"]["teacher"].endswith("teacher_logits.keras")
    masked = {k: v for k, v in results["layers"].items() if v["masked"]}
    assert len(masked) == 6 and all("transformer_layer_0" in k
                                    for k in masked)
    total = sum(v["size"] for v in masked.values())
    # Global GMP at its end: floor(0.1 * n + 1/2) weights kept in all.
    assert sum(v["nonzeros"] for v in masked.values()) == int(
        np.floor(0.1 * total + 0.5))
    assert not any(v["masked"] for k, v in results["layers"].items()
                   if "embedding" in k)
