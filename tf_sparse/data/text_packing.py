"""Text to the packed int32 form keras-hub models read: `[n, 3, length]` =
token ids, segment ids, padding mask (`tf_sparse.models.hub.TextInputs`).

Two tokenizers:

- `WordVocabulary.build(texts, size)`: a small word vocabulary built from
  the training texts (lower-cased words and punctuation marks, the `size -
  4` most frequent, ties by the word), for models built from their config
  without a preset. Ids 0-3 are `[PAD]`, `[UNK]`, `[CLS]`, `[SEP]`.
  `pack` lays a sentence, or a pair, out as BERT does: `[CLS] a [SEP]` or
  `[CLS] a [SEP] b [SEP]`, segment 0 up to the first `[SEP]` and 1 after
  it, truncating the longer of the two sentences first.
- `preset_pack(preset, texts, length)`: the keras-hub preset's own
  preprocessor (`TextClassifierPreprocessor.from_preset`: its tokenizer,
  special tokens and packer), for models whose weights come from that
  preset.

Example:

    vocab = WordVocabulary.build(train_sentences, size=8000)
    x = pack_texts((sentences,), 64, vocabulary=vocab)   # [n, 3, 64] int32
"""

import collections
import re

import numpy as np

SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
PAD, UNK, CLS, SEP = range(4)
_WORD = re.compile(r"\w+|[^\w\s]")


def words(text):
    """Lower-cased words and punctuation marks of `text`.

    >>> words("It's fine, really!")
    ['it', "'", 's', 'fine', ',', 'really', '!']
    """
    return _WORD.findall(str(text).lower())


class WordVocabulary:
    """Words to ids; unknown words map to `[UNK]` (1)."""

    def __init__(self, tokens):
        tokens = list(tokens)
        if tokens[:4] != list(SPECIAL):
            raise ValueError(f"a vocabulary starts with {SPECIAL}, got "
                             f"{tokens[:4]}.")
        self.tokens = tokens
        self.index = {t: i for i, t in enumerate(tokens)}

    @classmethod
    def build(cls, texts, size):
        """The `size - 4` most frequent words of `texts` (an iterable of
        strings, or of tuples of strings) after the special tokens."""
        if int(size) < 5:
            raise ValueError(f"vocabulary size {size} must be >= 5 (4 special "
                             "tokens and at least one word).")
        counts = collections.Counter()
        for item in texts:
            for text in (item if isinstance(item, tuple) else (item,)):
                counts.update(words(text))
        ranked = sorted(counts, key=lambda w: (-counts[w], w))
        return cls(list(SPECIAL) + ranked[:int(size) - 4])

    def __len__(self):
        return len(self.tokens)

    def encode(self, text):
        return [self.index.get(w, UNK) for w in words(text)]


def pack(first, second, length):
    """`[3, length]` int32: ids, segments, mask of one example (lists of
    word ids); the longer sentence is truncated first to fit."""
    budget = length - (2 if second is None else 3)
    if budget < 1:
        raise ValueError(f"sequence length {length} leaves no room for a "
                         "token after the special tokens.")
    first, second = list(first), None if second is None else list(second)
    while len(first) + len(second or ()) > budget:
        if second is not None and len(second) >= len(first):
            second.pop()
        else:
            first.pop()
    ids = [CLS] + first + [SEP]
    segments = [0] * len(ids)
    if second is not None:
        ids += second + [SEP]
        segments += [1] * (len(second) + 1)
    out = np.zeros((3, length), np.int32)
    out[0, :len(ids)] = ids
    out[1, :len(ids)] = segments
    out[2, :len(ids)] = 1
    return out


def _check_texts(texts):
    texts = tuple(texts)
    if len(texts) not in (1, 2) or len({len(t) for t in texts}) != 1:
        raise ValueError("texts must be one or two arrays of strings of the "
                         f"same length; got {len(texts)} arrays of lengths "
                         f"{[len(t) for t in texts]}.")
    return texts


def pack_texts(texts, length, *, vocabulary):
    """`[n, 3, length]` int32 of `texts` (one or two string arrays) with a
    `WordVocabulary`."""
    texts = _check_texts(texts)
    second = texts[1] if len(texts) == 2 else [None] * len(texts[0])
    rows = [pack(vocabulary.encode(a),
                 None if b is None else vocabulary.encode(b), length)
            for a, b in zip(texts[0], second)]
    return (np.stack(rows) if rows
            else np.zeros((0, 3, length), np.int32))


def preset_pack(preset, texts, length, batch_size=1024):
    """`[n, 3, length]` int32 of `texts` through the keras-hub preset's text
    classifier preprocessor (its tokenizer and packer). Models without
    segment ids get zeros there."""
    from tf_sparse.models import hub  # pylint: disable=import-outside-toplevel
    texts = _check_texts(texts)
    preprocessor = hub.keras_hub().models.TextClassifierPreprocessor.from_preset(
        preset, sequence_length=int(length))
    pieces = []
    for start in range(0, len(texts[0]), batch_size):
        batch = tuple(np.asarray(t[start:start + batch_size]).astype(str)
                      for t in texts)
        # x= as a keyword: a positional tuple would read as (x, y).
        out = preprocessor(x=batch)
        ids = np.asarray(out["token_ids"], np.int32)
        segments = np.asarray(out.get("segment_ids", np.zeros_like(ids)),
                              np.int32)
        mask = np.asarray(out["padding_mask"], np.int32)
        pieces.append(np.stack([ids, segments, mask], axis=1))
    return (np.concatenate(pieces) if pieces
            else np.zeros((0, 3, length), np.int32))
