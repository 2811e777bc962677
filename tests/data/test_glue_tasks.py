"""GLUE readers on small files written here in the GLUE download's formats;
the word vocabulary and BERT-style packing by hand; the run engine's GLUE
data object."""

import os

import numpy as np
import pytest

from tf_sparse.data import glue_tasks
from tf_sparse.data import text_packing
from tf_sparse.data.errors import DataNotFoundError
from tf_sparse.runs import config as config_lib
from tf_sparse.runs import data as data_lib


def write(path, lines, bom=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8-sig" if bom else "utf-8",
              newline="") as f:
        f.write("\n".join(lines) + "\n")


def write_glue(root):
    """A tiny GLUE download: one folder per task, its own columns."""
    write(os.path.join(root, "CoLA", "train.tsv"), [
        "gj04\t1\t\tThe cat sat.",
        "gj04\t0\t*\tCat the sat.",
        "gj04\t1\t\tDogs bark \"loudly\"."])
    write(os.path.join(root, "CoLA", "dev.tsv"), ["gj04\t0\t*\tSat cat."])
    write(os.path.join(root, "SST-2", "train.tsv"), [
        "sentence\tlabel", "a gripping film \t1", "dull and slow \t0"])
    write(os.path.join(root, "SST-2", "dev.tsv"), [
        "sentence\tlabel", "not bad \t1"])
    write(os.path.join(root, "MRPC", "train.tsv"), [
        "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",
        "1\t11\t12\tHe left early .\tHe went home early .",
        "0\t13\t14\tPrices rose .\tThe sky is blue ."], bom=True)
    write(os.path.join(root, "MRPC", "dev.tsv"), [
        "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",
        "1\t15\t16\tIt rained .\tThere was rain ."])
    write(os.path.join(root, "QQP", "train.tsv"), [
        "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
        "0\t1\t2\tHow old is Bob?\tWhat is Bob's age?\t1",
        "1\t3\t4\tWhat is AI?",            # a truncated row, as QQP has
        "2\t5\t6\tWhy?\tWhere?\t0"])
    write(os.path.join(root, "QQP", "dev.tsv"), [
        "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
        "3\t7\t8\tA?\tB?\t0"])
    mnli_header = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\t"
                   "sentence2_binary_parse\tsentence1_parse\tsentence2_parse"
                   "\tsentence1\tsentence2\tlabel1\tgold_label")
    write(os.path.join(root, "MNLI", "train.tsv"), [
        mnli_header,
        "0\t1\t1n\tgov\t( a )\t( b )\t(a)\t(b)\tA man sleeps.\tA man rests."
        "\tentailment\tentailment",
        "1\t2\t2c\tgov\t( a )\t( b )\t(a)\t(b)\tIt is day.\tIt is night."
        "\tcontradiction\tcontradiction",
        "2\t3\t3n\tgov\t( a )\t( b )\t(a)\t(b)\tShe sings.\tShe is happy."
        "\tneutral\tneutral"])
    for name in ("dev_matched.tsv", "dev_mismatched.tsv"):
        write(os.path.join(root, "MNLI", name), [
            mnli_header,
            "9\t9\t9n\tgov\t( a )\t( b )\t(a)\t(b)\tX.\tY.\tneutral\tneutral"])
    for folder, column in (("RTE", "label"), ("QNLI", "label")):
        first, second = (("question", "sentence") if folder == "QNLI"
                         else ("sentence1", "sentence2"))
        write(os.path.join(root, folder, "train.tsv"), [
            f"index\t{first}\t{second}\t{column}",
            "0\tParis is in France.\tParis is French.\tentailment",
            "1\tIt snowed.\tIt was hot.\tnot_entailment"])
        write(os.path.join(root, folder, "dev.tsv"), [
            f"index\t{first}\t{second}\t{column}",
            "0\tA b.\tC d.\tnot_entailment"])
    write(os.path.join(root, "STS-B", "train.tsv"), [
        "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\t"
        "sentence1\tsentence2\tscore",
        "0\tnews\tf\t2012\t1\tnone\tnone\tA plane takes off.\t"
        "An air plane is taking off.\t5.000"])
    write(os.path.join(root, "STS-B", "dev.tsv"), [
        "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\t"
        "sentence1\tsentence2\tscore",
        "0\tnews\tf\t2012\t1\tnone\tnone\tA.\tB.\t0.5"])


@pytest.fixture
def glue_dir(tmp_path):
    write_glue(str(tmp_path))
    return str(tmp_path)


def test_every_format_reads_exact_texts_and_labels(glue_dir):
    cola = glue_tasks.load_glue("cola", glue_dir)
    assert list(cola["train"].texts[0]) == [
        "The cat sat.", "Cat the sat.", 'Dogs bark "loudly".']
    assert cola["train"].labels.tolist() == [1, 0, 1]
    assert cola["validation"].labels.tolist() == [0]
    sst2 = glue_tasks.load_glue("glue/sst2", glue_dir)
    assert list(sst2["train"].texts[0]) == ["a gripping film ",
                                            "dull and slow "]
    assert sst2["train"].labels.tolist() == [1, 0]
    mrpc = glue_tasks.load_glue("MRPC", glue_dir)     # with a BOM
    assert [list(t) for t in mrpc["train"].texts] == [
        ["He left early .", "Prices rose ."],
        ["He went home early .", "The sky is blue ."]]
    assert mrpc["train"].labels.tolist() == [1, 0]
    with pytest.warns(UserWarning, match="1 rows with a missing field"):
        qqp = glue_tasks.load_glue("qqp", glue_dir)
    assert qqp["train"].skipped == 1 and len(qqp["train"]) == 2
    assert list(qqp["train"].texts[1]) == ["What is Bob's age?", "Where?"]
    mnli = glue_tasks.load_glue("mnli", glue_dir)
    assert sorted(mnli) == ["train", "validation_matched",
                            "validation_mismatched"]
    # tfds's order: entailment 0, neutral 1, contradiction 2.
    assert mnli["train"].labels.tolist() == [0, 2, 1]
    assert list(mnli["train"].texts[0]) == ["A man sleeps.", "It is day.",
                                            "She sings."]
    rte = glue_tasks.load_glue("rte", glue_dir)
    assert rte["train"].labels.tolist() == [0, 1]
    qnli = glue_tasks.load_glue("qnli", glue_dir, source="tsv")
    assert list(qnli["train"].texts[0]) == ["Paris is in France.",
                                            "It snowed."]
    stsb = glue_tasks.load_glue("sts-b", glue_dir)
    assert stsb["train"].labels.dtype == np.float32
    assert stsb["validation"].labels.tolist() == [0.5]


def test_one_task_folder_can_be_given_directly(glue_dir):
    rte = glue_tasks.load_glue("rte", os.path.join(glue_dir, "RTE"))
    assert len(rte["train"]) == 2


def test_bad_files_and_names_are_reported(glue_dir, tmp_path):
    path = os.path.join(glue_dir, "RTE", "train.tsv")
    write(path, ["index\tsentence1\tsentence2\tlabel", "0\ta\tb\tentailment",
                 "1\tc\td\tmaybe"])
    with pytest.raises(ValueError, match=r"train.tsv:3: label 'maybe' is not "
                       "one of entailment, not_entailment"):
        glue_tasks.load_glue("rte", glue_dir)
    write(path, ["idx\ttext\tlabel", "0\ta\tentailment"])
    with pytest.raises(ValueError, match=r"lacks the rte column\(s\) "
                       r"\['sentence1', 'sentence2'\]"):
        glue_tasks.load_glue("rte", glue_dir)
    with pytest.raises(ValueError, match="Unknown GLUE task 'squad'; "
                       "accepted: cola, sst2"):
        glue_tasks.load_glue("squad", glue_dir)
    with pytest.raises(ValueError, match="GLUE source 'csv' is not accepted"):
        glue_tasks.load_glue("rte", glue_dir, source="csv")
    with pytest.raises(ValueError, match=r"no split\(s\) \['validation'\]"):
        glue_tasks.load_glue("mnli", glue_dir, splits=["validation"])
    empty = str(tmp_path / "empty")
    os.makedirs(empty)
    with pytest.raises(DataNotFoundError, match="no train.tsv in"):
        glue_tasks.load_glue("rte", empty, source="tsv")
    with pytest.raises(DataNotFoundError, match="no TSV files in .* and "
                       "tfds has no prepared glue/rte"):
        glue_tasks.load_glue("rte", empty)


def test_word_vocabulary_and_packing_by_hand():
    vocab = text_packing.WordVocabulary.build(
        [("The cat sat.", "the dog"), ("A cat!",)], size=8)
    # Counts: the 2, cat 2, then 1 each, ties by the word: ! . a dog sat.
    assert vocab.tokens == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "cat", "the",
                            "!", "."]
    assert vocab.encode("The bird sat!") == [5, 1, 1, 6]
    single = text_packing.pack([4, 5], None, 6)
    np.testing.assert_array_equal(single, [[2, 4, 5, 3, 0, 0],
                                           [0, 0, 0, 0, 0, 0],
                                           [1, 1, 1, 1, 0, 0]])
    # A pair over the budget: the longer (second) sentence loses tokens.
    pair = text_packing.pack([4], [5, 6, 7, 7], 7)
    np.testing.assert_array_equal(pair, [[2, 4, 3, 5, 6, 7, 3],
                                         [0, 0, 0, 1, 1, 1, 1],
                                         [1, 1, 1, 1, 1, 1, 1]])
    x = text_packing.pack_texts((np.array(["the cat"]), np.array(["sat"])),
                                6, vocabulary=vocab)
    np.testing.assert_array_equal(x[0, 0], [2, 5, 4, 3, 1, 3])
    with pytest.raises(ValueError, match="vocabulary size 4 must be >= 5"):
        text_packing.WordVocabulary.build(["a"], 4)
    with pytest.raises(ValueError, match="sequence length 2 leaves no room"):
        text_packing.pack([4], None, 2)
    with pytest.raises(ValueError, match="same length"):
        text_packing.pack_texts((["a", "b"], ["c"]), 6, vocabulary=vocab)


def test_engine_data_for_keras_hub_and_for_the_zoo_encoder(glue_dir):
    config = config_lib.default_config("fashion_mnist")
    with config.unlocked():
        config.dataset = "glue/mnli"
        config.data_dir = glue_dir
        config.model = "hub:bert"
        config.vocab_size = 30
        config.sequence_length = 12
        config.validation_fraction = 0.0
    data = data_lib.make_data(config, global_batch_size=2)
    assert data.input_shape == (3, 12) and data.num_classes == 3
    assert data.num_train == 3 and data.num_test == 1
    x, _ = next(iter(data.train(seed=0, start_step=0)))
    assert x.shape == (2, 3, 12) and x.dtype.name == "int32"
    # The zoo's encoder reads one sentence as word ids, not pairs.
    with config.unlocked():
        config.model = "bert_encoder"
    with pytest.raises(ValueError, match="mnli has 2 text field"):
        data_lib.make_data(config, global_batch_size=2)
    with config.unlocked():
        config.dataset = "glue/sst2"
    data = data_lib.make_data(config, global_batch_size=2)
    assert data.input_shape == (12,) and data.num_classes == 2
    with config.unlocked():
        config.dataset = "glue/stsb"
    with pytest.raises(ValueError, match="regression task"):
        data_lib.make_data(config, global_batch_size=1)
