"""Datasets and collators: dynamic padding, -100 on padding, tag alignment, masked-LM invariants."""

from __future__ import annotations

import pytest
import torch

from bertcourse.data.collators import (
    ClassificationDataset,
    LMCollator,
    MLMCollator,
    NSPDataset,
    PadCollator,
    TextDataset,
    TokenClassificationDataset,
    pad_sequences,
)
from bertcourse.data.toylang import ToyLanguage
from bertcourse.objectives import IGNORE_INDEX
from bertcourse.tokenizers import CharTokenizer, WordPieceTokenizer


@pytest.fixture(scope="module")
def documents() -> list[list[str]]:
    return [d.texts for d in ToyLanguage(0).corpus(60)]


@pytest.fixture(scope="module")
def texts(documents: list[list[str]]) -> list[str]:
    return [s for doc in documents for s in doc]


@pytest.fixture(scope="module")
def wordpiece(texts: list[str]) -> WordPieceTokenizer:
    return WordPieceTokenizer.train(texts, vocab_size=150)  # small: many words split into pieces


@pytest.fixture(scope="module")
def chars(texts: list[str]) -> CharTokenizer:
    return CharTokenizer.from_texts(texts)


def test_pad_sequences() -> None:
    out = pad_sequences([[1, 2, 3], [4], []], value=-7)
    assert out.dtype == torch.long
    assert out.tolist() == [[1, 2, 3], [4, -7, -7], [-7, -7, -7]]
    with pytest.raises(ValueError, match="empty"):
        pad_sequences([], 0)


def test_lm_collator_pads_to_the_longest_and_ignores_padding(chars: CharTokenizer, texts: list[str]) -> None:
    data = TextDataset(texts[:6], chars)
    batch = LMCollator(chars)([data[i] for i in range(6)])
    lengths = [len(data[i]["input_ids"]) for i in range(6)]
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert batch["input_ids"].shape == (6, max(lengths))  # dynamic: the batch's longest, no more
    assert batch["attention_mask"].sum(1).tolist() == lengths
    pad = batch["attention_mask"] == 0
    assert bool((batch["labels"][pad] == IGNORE_INDEX).all())
    assert bool((batch["input_ids"][pad] == chars.pad_token_id).all())
    assert torch.equal(batch["labels"][~pad], batch["input_ids"][~pad])
    assert chars.decode(batch["input_ids"][0]) == texts[0]


def test_text_dataset_truncates(chars: CharTokenizer, texts: list[str]) -> None:
    assert [len(f["input_ids"]) for f in TextDataset(texts[:5], chars, max_length=7)] == [7] * 5
    with pytest.raises(ValueError, match="max_length"):
        TextDataset(texts[:1], chars, max_length=0)


def test_classification_dataset_single_and_pairs(wordpiece: WordPieceTokenizer) -> None:
    single = ClassificationDataset(["the dog runs .", "a cat"], [1, 0], wordpiece)
    batch = PadCollator(wordpiece)(list(single))
    assert batch["labels"].tolist() == [1, 0] and batch["labels"].shape == (2,)
    assert "token_type_ids" not in batch  # GPT and ELMo take no segments
    pairs = ClassificationDataset(["the dog runs .", "a cat"], [1, 0], wordpiece, text_pairs=["it sleeps .", "an owl"])
    feature = pairs[0]
    assert feature["input_ids"] == wordpiece.encode("the dog runs .", "it sleeps .")
    first_sep = feature["input_ids"].index(wordpiece.sep_token_id)
    assert feature["token_type_ids"] == [0] * (first_sep + 1) + [1] * (len(feature["input_ids"]) - first_sep - 1)
    batch = PadCollator(wordpiece)(list(pairs))
    assert batch["token_type_ids"].shape == batch["input_ids"].shape
    assert bool((batch["token_type_ids"][batch["attention_mask"] == 0] == 0).all())
    with pytest.raises(ValueError, match="one length"):
        ClassificationDataset(["a"], [0, 1], wordpiece)
    nsp = ToyLanguage(0).nsp_task(6)
    from_items = ClassificationDataset.from_items(nsp, wordpiece)
    assert from_items[0]["input_ids"] == wordpiece.encode(nsp[0].text, nsp[0].text_pair)
    assert [f["labels"] for f in from_items] == [i.label for i in nsp]


@pytest.mark.parametrize("kind", ["wordpiece", "chars"])
def test_token_classification_tags_sit_on_first_sub_tokens(kind: str, request: pytest.FixtureRequest) -> None:
    tok = request.getfixturevalue(kind)
    items = ToyLanguage(4).pos_task(40)
    data = TokenClassificationDataset.from_items(items, tok)
    split_words = 0
    for item, feature in zip(items, data, strict=True):
        ids, labels = feature["input_ids"], feature["labels"]
        assert ids == tok.encode(item.text)  # aligned ids are the ordinary encoding of the sentence
        starts = [i for i, label in enumerate(labels) if label != IGNORE_INDEX]
        assert [labels[i] for i in starts] == list(item.label)
        for word, start, end in zip(item.words, starts, [*starts[1:], len(ids) - 1], strict=True):
            pieces = tok.encode(word, add_special_tokens=False)
            assert ids[start : start + len(pieces)] == pieces  # the tag is on the word's first token
            split_words += len(pieces) > 1
            assert all(label == IGNORE_INDEX for label in labels[start + 1 : end])
    assert split_words > 40  # the property was tested on multi-token words
    batch = PadCollator(tok)([data[0], data[1]])
    assert bool((batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all())
    with pytest.raises(ValueError, match="tags"):
        TokenClassificationDataset([["a", "dog"]], [[0]], tok)


def test_mlm_collator_invariants(wordpiece: WordPieceTokenizer, texts: list[str]) -> None:
    data = TextDataset(texts, wordpiece)
    features = list(data)
    plain = PadCollator(wordpiece)(features)
    batch = MLMCollator(wordpiece, seed=0)(features)
    original, masked, labels = plain["input_ids"], batch["input_ids"], batch["labels"]
    chosen = labels != IGNORE_INDEX
    special = torch.isin(original, torch.tensor(wordpiece.special_token_ids))
    assert torch.equal(batch["attention_mask"], plain["attention_mask"])
    assert not bool((chosen & special).any())  # never special tokens or padding
    assert torch.equal(labels[chosen], original[chosen])  # labels hold the original ids
    assert torch.equal(masked[~chosen], original[~chosen])  # untouched elsewhere
    rate = chosen.sum() / (~special).sum()
    assert 0.12 < float(rate) < 0.18  # 15 % of the real tokens
    masked_share = float((masked[chosen] == wordpiece.mask_token_id).float().mean())
    assert 0.7 < masked_share < 0.9  # 80 % of the chosen become [MASK]
    again = MLMCollator(wordpiece, seed=0)(features)
    assert torch.equal(again["input_ids"], masked) and torch.equal(again["labels"], labels)
    with pytest.raises(ValueError, match="mlm_probability"):
        MLMCollator(wordpiece, mlm_probability=1.5)


def test_mlm_collator_gives_every_sequence_a_target(wordpiece: WordPieceTokenizer, texts: list[str]) -> None:
    """Even at a tiny rate, each sequence keeps one target, so a short last batch never has none (no 0/0 loss)."""
    collate = MLMCollator(wordpiece, mlm_probability=0.01, seed=0)
    for start in range(0, 200, 2):  # 100 two-sentence batches, like an epoch's last one
        labels = collate([{"input_ids": wordpiece.encode(t)} for t in texts[start : start + 2]])["labels"]
        assert bool((labels != IGNORE_INDEX).any(1).all())


def test_nsp_dataset_and_mlm_collator_carry_segments_and_labels(
    wordpiece: WordPieceTokenizer, documents: list[list[str]]
) -> None:
    data = NSPDataset(documents, wordpiece, seed=0)
    assert {f["next_sentence_label"] for f in data} == {0, 1}
    for feature in list(data)[:20]:
        ids, types = feature["input_ids"], feature["token_type_ids"]
        assert ids[0] == wordpiece.cls_token_id and ids[-1] == wordpiece.sep_token_id
        assert ids.count(wordpiece.sep_token_id) == 2
        first_sep = ids.index(wordpiece.sep_token_id)
        assert types == [0] * (first_sep + 1) + [1] * (len(ids) - first_sep - 1)
    batch = MLMCollator(wordpiece, seed=0)(list(data)[:8])
    assert set(batch) == {"input_ids", "token_type_ids", "next_sentence_label", "attention_mask", "labels"}
    assert batch["next_sentence_label"].shape == (8,)
    assert NSPDataset(documents, wordpiece, seed=0).features == data.features  # seeded


def _segments(ids: list[int], sep: int) -> tuple[list[int], list[int]]:
    """Split ``[CLS] A [SEP] B [SEP]`` into (A, B)."""
    first_sep = ids.index(sep)
    assert ids[-1] == sep and ids.count(sep) == 2, ids
    return ids[1:first_sep], ids[first_sep + 1 : -1]


def test_pair_truncation_keeps_both_segments_longest_first(
    wordpiece: WordPieceTokenizer, documents: list[list[str]]
) -> None:
    """A truncated pair keeps [CLS] A [SEP] B [SEP]: the longer segment loses its tail, as the tokenizer does."""
    full = NSPDataset(documents, wordpiece, seed=0)
    short = NSPDataset(documents, wordpiece, seed=0, max_length=8)
    assert [f["next_sentence_label"] for f in short] == [f["next_sentence_label"] for f in full]
    cut = 0
    for whole, part in zip(full, short, strict=True):
        ids, sep = part["input_ids"], wordpiece.sep_token_id
        assert len(ids) == min(8, len(whole["input_ids"]))
        a, b = _segments(ids, sep)
        full_a, full_b = _segments(whole["input_ids"], sep)
        assert full_a[: len(a)] == a and full_b[: len(b)] == b  # each segment keeps its head
        assert min(len(a), len(b)) == min(len(full_a), len(full_b), (8 - 3) // 2)  # the shorter one is cut last
        assert part["token_type_ids"] == [0] * (len(a) + 2) + [1] * (len(b) + 1)
        cut += len(ids) < len(whole["input_ids"])
    assert cut > 100  # most toy pairs are longer than 8 tokens: the property was exercised
    a, b = "the dog that the cats see runs .", "it sleeps ."
    pair = ClassificationDataset([a], [1], wordpiece, text_pairs=[b], max_length=9)[0]
    reference = wordpiece(a, b, max_length=9, return_tensors=None)
    assert pair["input_ids"] == reference["input_ids"][0] and pair["token_type_ids"] == reference["token_type_ids"][0]
    kept_b = _segments(pair["input_ids"], wordpiece.sep_token_id)[1]
    assert kept_b and wordpiece.encode(b, add_special_tokens=False)[: len(kept_b)] == kept_b
    single = ClassificationDataset([a], [1], wordpiece, max_length=5)[0]
    assert single["input_ids"][-1] == wordpiece.sep_token_id and len(single["input_ids"]) == 5
    with pytest.raises(ValueError, match="max_length"):
        NSPDataset(documents, wordpiece, max_length=3)  # no room for a token of A and of B


def test_pad_collator_rejects_mixed_features(wordpiece: WordPieceTokenizer) -> None:
    collate = PadCollator(wordpiece)
    with pytest.raises(ValueError, match="same keys"):
        collate([{"input_ids": [1, 2]}, {"input_ids": [1], "labels": 0}])
    with pytest.raises(ValueError, match="input_ids"):
        collate([])
