"""Datasets that tokenize once, and collators that pad each batch to its own longest sequence.

A dataset item ("feature") is a dict of Python ints and lists; a collator turns a list of them into
a dict of tensors whose keys are the models' keyword arguments, so ``model(**batch)`` works:

=========================  =======================================  ===============================
collator                   adds                                      for
=========================  =======================================  ===============================
:class:`PadCollator`       ``attention_mask``; pads ``labels`` -100  sequence / token classification
:class:`LMCollator`        ``labels`` = ``input_ids``, padding -100  GPT (causal) and ELMo (both ways)
:class:`MLMCollator`       masked ``input_ids``, ``labels``          BERT (masked LM, + NSP fields)
=========================  =======================================  ===============================

Dynamic padding: a batch is padded to its longest member, not to a global ``max_length``, so short
batches cost less. Padding is on the right; ``attention_mask`` is 1 on tokens and 0 on padding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from bertcourse.data.toylang import TaskItem
from bertcourse.objectives import IGNORE_INDEX, mask_tokens, next_sentence_pairs
from bertcourse.tokenizers import Tokenizer  # the base of CharTokenizer and WordPieceTokenizer

__all__ = [
    "ClassificationDataset",
    "LMCollator",
    "MLMCollator",
    "NSPDataset",
    "PadCollator",
    "TextDataset",
    "TokenClassificationDataset",
    "pad_sequences",
]

Feature = dict[str, Any]


def pad_sequences(sequences: Sequence[Sequence[int]], value: int) -> Tensor:
    """Right-pad integer sequences with ``value`` to the longest one: (B, T_max) int64."""
    if len(sequences) == 0:
        raise ValueError("sequences must not be empty")
    longest = max(len(s) for s in sequences)
    out = torch.full((len(sequences), longest), value, dtype=torch.long)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    return out


def _truncate(ids: list[int], max_length: int | None) -> list[int]:
    if max_length is not None and max_length < 1:
        raise ValueError(f"max_length must be >= 1 or None, got {max_length}")
    return ids if max_length is None else ids[:max_length]


def _encode_framed(tokenizer: Tokenizer, text: str, pair: str | None, max_length: int | None) -> Feature:
    """``input_ids`` and ``token_type_ids`` of ``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``, within ``max_length``.

    Truncation is the tokenizer's own (``Tokenizer.__call__``): the special tokens always stay, and a pair
    loses tokens from the end of its longer segment, one at a time (BERT's ``_truncate_seq_pair``), so
    both sentences and the final [SEP] survive. Cutting the framed ids from the tail instead would drop
    B and its [SEP] while an NSP or pair-classification label still describes the pair.
    """
    out = tokenizer(
        text, pair, padding=False, truncation=max_length is not None, max_length=max_length, return_tensors=None
    )
    return {"input_ids": out["input_ids"][0], "token_type_ids": out["token_type_ids"][0]}


class _FeatureDataset(Dataset):
    """A list of pre-computed features."""

    features: list[Feature]

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> Feature:
        return self.features[index]


class TextDataset(_FeatureDataset):
    """Texts for language modelling: ``{"input_ids"}`` with [CLS] ... [SEP] (they act as BOS/EOS)."""

    def __init__(self, texts: Sequence[str], tokenizer: Tokenizer, max_length: int | None = None) -> None:
        self.features = [{"input_ids": _truncate(tokenizer.encode(t), max_length)} for t in texts]


class ClassificationDataset(_FeatureDataset):
    """One label per text (or text pair): ``{"input_ids", "labels"}``, plus ``"token_type_ids"`` for pairs.

    ``max_length`` truncates as the tokenizer does: [CLS] and [SEP] stay, pairs lose tokens longest-first.
    """

    def __init__(
        self,
        texts: Sequence[str],
        labels: Sequence[int],
        tokenizer: Tokenizer,
        text_pairs: Sequence[str] | None = None,
        max_length: int | None = None,
    ) -> None:
        if len(texts) != len(labels) or (text_pairs is not None and len(text_pairs) != len(texts)):
            pairs = None if text_pairs is None else len(text_pairs)
            raise ValueError(
                f"texts, labels and text_pairs must have one length, got {len(texts)}, {len(labels)}, {pairs}"
            )
        self.features = []
        for i, (text, label) in enumerate(zip(texts, labels, strict=True)):
            pair = None if text_pairs is None else text_pairs[i]
            feature = _encode_framed(tokenizer, text, pair, max_length)
            if pair is None:
                del feature["token_type_ids"]  # GPT and ELMo take no segments
            self.features.append({**feature, "labels": int(label)})

    @classmethod
    def from_items(
        cls, items: Sequence[TaskItem], tokenizer: Tokenizer, max_length: int | None = None
    ) -> ClassificationDataset:
        """From toy-language task items (``text``, ``label`` and, for NSP, ``text_pair``)."""
        pairs = [i.text_pair for i in items] if items and items[0].text_pair is not None else None
        return cls([i.text for i in items], [int(i.label) for i in items], tokenizer, pairs, max_length)


class TokenClassificationDataset(_FeatureDataset):
    """Word-level tags aligned to tokens: ``{"input_ids", "labels"}``.

    Each word is encoded on its own; its tag goes on its *first* sub-token and -100 on the rest, on
    [CLS]/[SEP], and on whatever the tokenizer puts between words (a space, for characters). The ids
    equal ``tokenizer.encode(" ".join(words))`` for a tokenizer that splits on whitespace first.
    """

    def __init__(
        self,
        words: Sequence[Sequence[str]],
        tags: Sequence[Sequence[int]],
        tokenizer: Tokenizer,
        max_length: int | None = None,
    ) -> None:
        if len(words) != len(tags):
            raise ValueError(f"words and tags must have one length, got {len(words)} and {len(tags)}")
        joiner = tokenizer.encode(" ", add_special_tokens=False)  # [] for WordPiece, [id(" ")] for characters
        self.features = []
        for n, (sentence, sentence_tags) in enumerate(zip(words, tags, strict=True)):
            if len(sentence) != len(sentence_tags):
                raise ValueError(f"sentence {n} has {len(sentence)} words but {len(sentence_tags)} tags")
            ids, labels = [tokenizer.cls_token_id], [IGNORE_INDEX]
            for i, (word, tag) in enumerate(zip(sentence, sentence_tags, strict=True)):
                pieces = tokenizer.encode(word, add_special_tokens=False)
                if not pieces:
                    raise ValueError(f"word {word!r} of sentence {n} encodes to no tokens")
                if i > 0:
                    ids += joiner
                    labels += [IGNORE_INDEX] * len(joiner)
                ids += pieces
                labels += [int(tag)] + [IGNORE_INDEX] * (len(pieces) - 1)
            ids.append(tokenizer.sep_token_id)
            labels.append(IGNORE_INDEX)
            self.features.append({"input_ids": _truncate(ids, max_length), "labels": _truncate(labels, max_length)})

    @classmethod
    def from_items(
        cls, items: Sequence[TaskItem], tokenizer: Tokenizer, max_length: int | None = None
    ) -> TokenClassificationDataset:
        """From toy-language ``pos_task`` items: their words and per-word tag ids."""
        return cls([i.words for i in items], [i.label for i in items], tokenizer, max_length)


class NSPDataset(_FeatureDataset):
    """Next-sentence pairs "[CLS] A [SEP] B [SEP]" from documents (lists of sentences).

    Features: ``{"input_ids", "token_type_ids", "next_sentence_label"}`` (0 = B follows A, 1 = random),
    drawn once with ``objectives.next_sentence_pairs`` and ``seed``. Batch them with :class:`MLMCollator`.
    ``max_length`` truncates longest-first, as the tokenizer does, so every pair keeps A, B and both [SEP]s.
    """

    def __init__(
        self,
        documents: Sequence[Sequence[str]],
        tokenizer: Tokenizer,
        seed: int = 0,
        max_length: int | None = None,
    ) -> None:
        pairs = next_sentence_pairs(documents, seed=seed)
        self.features = [
            {**_encode_framed(tokenizer, a, b, max_length), "next_sentence_label": int(label)} for a, b, label in pairs
        ]


class PadCollator:
    """Pad list fields to the batch's longest and stack scalar fields; add ``attention_mask``.

    Padding values: ``input_ids`` -> ``pad_token_id``, ``labels`` -> -100, anything else -> 0.
    Returns (B, T_max) tensors for list fields and (B,) tensors for scalar fields, all int64.
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.pad_token_id = tokenizer.pad_token_id

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Tensor]:
        if len(features) == 0 or "input_ids" not in features[0]:
            raise ValueError("features must be a non-empty list of dicts with 'input_ids'")
        keys = set(features[0])
        if any(set(f) != keys for f in features):
            raise ValueError(f"features must all have the same keys, got {[sorted(f) for f in features]}")
        pad_values = {"input_ids": self.pad_token_id, "labels": IGNORE_INDEX}
        batch = {}
        for key in features[0]:
            values = [f[key] for f in features]
            if isinstance(values[0], (list, tuple)):
                batch[key] = pad_sequences(values, pad_values.get(key, 0))
            else:
                batch[key] = torch.tensor(values, dtype=torch.long)
        if "attention_mask" not in batch:
            batch["attention_mask"] = pad_sequences([[1] * len(f["input_ids"]) for f in features], 0)
        return batch


class LMCollator(PadCollator):
    """Language modelling: ``labels`` = ``input_ids`` with -100 on padding, *unshifted*.

    The model does the shifting: GPT scores position t against label t+1, ELMo's forward LM does the
    same and its backward LM scores t against t-1. One collator therefore serves both.
    """

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Tensor]:
        batch = super().__call__(features)
        batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, IGNORE_INDEX)
        return batch


class MLMCollator(PadCollator):
    """BERT's masked LM: pad, then ``objectives.mask_tokens`` (15 % of tokens; 80/10/10).

    Special tokens and padding are never chosen. Every sequence with a maskable token gets at least one
    target (``mask_tokens(at_least_one=True)``, as BERT's data script does), so that a short last batch
    never arrives without any: the chosen share is then a little above ``mlm_probability`` on short
    sequences. ``labels`` hold the original id at chosen positions
    and -100 elsewhere. NSP fields (``token_type_ids``, ``next_sentence_label``) pass through.
    With ``seed=None`` the draws come from torch's global generator (so ``bertcourse.train(seed=...)``
    makes them repeatable); an int seeds a generator of the collator's own.
    """

    def __init__(self, tokenizer: Tokenizer, mlm_probability: float = 0.15, seed: int | None = None) -> None:
        super().__init__(tokenizer)
        if not 0.0 < mlm_probability < 1.0:
            raise ValueError(f"mlm_probability must lie in (0, 1), got {mlm_probability}")
        self.vocab_size = tokenizer.vocab_size
        self.mask_token_id = tokenizer.mask_token_id
        self.special_token_ids = tuple(tokenizer.special_token_ids)
        self.mlm_probability = mlm_probability
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Tensor]:
        batch = super().__call__(features)
        batch["input_ids"], batch["labels"] = mask_tokens(
            batch["input_ids"],
            vocab_size=self.vocab_size,
            mask_token_id=self.mask_token_id,
            special_token_ids=self.special_token_ids,
            attention_mask=batch["attention_mask"],
            mlm_probability=self.mlm_probability,
            generator=self.generator,
            at_least_one=True,
        )
        return batch
