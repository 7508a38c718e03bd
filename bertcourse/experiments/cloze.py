"""Cloze by cue side: which candidate fills the blank, as each model's own pre-training head scores it.

For an item "the dogs [___] ." with candidates ("run", "runs") and the blank at token position t:

* GPT reads the left context only: score(c) = log P(c | x_<t), its next-token distribution at t - 1;
* ELMo adds its two LMs' log-probabilities: score(c) = log P_fwd(c | x_<t) + log P_bwd(c | x_>t), the
  forward LM at t - 1 and the backward LM at t + 1 -- each direction sees one side only;
* BERT replaces x_t by [MASK] and reads its masked-LM distribution at t, which sees both sides jointly.

The prediction is the candidate with the highest score; every candidate must be a single token.

GPT's fairest score (``sentence=True``) is the probability of the *whole* sentence with the candidate in
the blank, score(c) = sum_{s >= t} log P(x_s | x_<s) with x_t = c: the tokens after the blank are
predicted from a left context that now holds c, so a right cue counts through them. A left-to-right LM
can use the right cue when it *scores* a sentence; what it cannot do is put the right context into the
representation of word t that a downstream head reads.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from bertcourse.bert import BertForMaskedLM, BertForPreTraining
from bertcourse.data.collators import pad_sequences
from bertcourse.data.toylang import ClozeItem
from bertcourse.elmo import ELMo
from bertcourse.gpt import GPT
from bertcourse.tokenizers import Tokenizer

__all__ = ["cloze_accuracy", "cloze_correct", "cloze_scores", "encode_cloze"]


def encode_cloze(
    items: Sequence[ClozeItem], tokenizer: Tokenizer
) -> tuple[list[list[int]], list[int], list[list[int]]]:
    """Token ids "[CLS] words [SEP]" of each item, the blank's token position, and the candidates' ids.

    Raises ``ValueError`` when a candidate or the blanked word is not a single token of ``tokenizer``
    (or is ``[UNK]``).
    """
    ids, positions, candidates = [], [], []
    known: dict[str, list[int]] = {}  # word -> its pieces: a toy language repeats a few hundred words
    for n, item in enumerate(items):
        sequence = [tokenizer.cls_token_id]
        for i, word in enumerate(item.words):
            pieces = known.get(word)
            if pieces is None:
                pieces = known[word] = tokenizer.encode(word, add_special_tokens=False)
            if i == item.target:
                if len(pieces) != 1:
                    raise ValueError(f"items[{n}]: the blank {word!r} is {len(pieces)} tokens, not one")
                positions.append(len(sequence))
            sequence += pieces
        ids.append([*sequence, tokenizer.sep_token_id])
        candidate_ids = [known.get(c) or tokenizer.encode(c, add_special_tokens=False) for c in item.candidates]
        if any(len(c) != 1 or c[0] == tokenizer.unk_token_id for c in candidate_ids):
            raise ValueError(f"items[{n}]: every candidate of {item.candidates} must be one known token")
        candidates.append([c[0] for c in candidate_ids])
    return ids, positions, candidates


@torch.no_grad()
def _sentence_scores(
    model: GPT, ids: list[list[int]], positions: list[int], candidates: list[list[int]]
) -> list[Tensor]:
    """GPT's log-probability of each whole sentence from the blank on, one per candidate (module docstring)."""
    device = next(model.parameters()).device
    scores = []
    for sequence, t, options in zip(ids, positions, candidates, strict=True):
        batch = torch.tensor([sequence] * len(options), device=device)  # (C, T): one copy per candidate
        batch[:, t] = torch.tensor(options, device=device)
        log_p = model(batch).logits[:, :-1].float().log_softmax(-1)  # (C, T-1, V): position s predicts s + 1
        taken = log_p.gather(-1, batch[:, 1:, None])[..., 0]  # (C, T-1): log P(x_{s+1} | x_<=s)
        scores.append(taken[:, t - 1 :].sum(-1).cpu())  # from x_t (the candidate) to [SEP]
    return scores


@torch.no_grad()
def cloze_scores(
    model: nn.Module, items: Sequence[ClozeItem], tokenizer: Tokenizer, batch_size: int = 128, sentence: bool = False
) -> list[Tensor]:
    """Each item's candidate scores (log-probabilities, see the module docstring), one (C,) tensor per item.

    ``sentence=True`` (GPT only): the log-probability of the whole sentence with each candidate.
    """
    if not isinstance(model, (GPT, ELMo, BertForPreTraining, BertForMaskedLM)):
        raise ValueError(f"model must be a course GPT, ELMo or BERT with its MLM head, got {type(model).__name__}")
    if sentence and not isinstance(model, GPT):
        raise ValueError(f"sentence=True scores whole sentences with a left-to-right LM, not a {type(model).__name__}")
    ids, positions, candidates = encode_cloze(items, tokenizer)
    if sentence:
        was_training = model.training
        model.eval()
        try:
            return _sentence_scores(model, ids, positions, candidates)  # type: ignore[arg-type]
        finally:
            model.train(was_training)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    scores: list[Tensor] = []
    for start in range(0, len(ids), batch_size):
        chunk = slice(start, start + batch_size)
        input_ids = pad_sequences(ids[chunk], tokenizer.pad_token_id).to(device)  # (B, T)
        attention_mask = pad_sequences([[1] * len(s) for s in ids[chunk]], 0).to(device)  # (B, T)
        t = torch.tensor(positions[chunk], device=device)  # (B,) the blank's position
        rows = torch.arange(len(t), device=device)
        if isinstance(model, GPT):
            log_p = model(input_ids, attention_mask).logits.log_softmax(-1)[rows, t - 1]  # (B, V) from x_<t
        elif isinstance(model, ELMo):
            out = model(input_ids, attention_mask)
            log_p = out.forward_logits.log_softmax(-1)[rows, t - 1] + out.backward_logits.log_softmax(-1)[rows, t + 1]
        else:
            input_ids[rows, t] = tokenizer.mask_token_id
            out = model(input_ids, attention_mask)
            logits = out.prediction_logits if isinstance(model, BertForPreTraining) else out.logits
            log_p = logits.log_softmax(-1)[rows, t]  # (B, V) from both sides
        for b, c in enumerate(candidates[chunk]):
            scores.append(log_p[b, c].float().cpu())
    model.train(was_training)
    return scores


def cloze_correct(
    model: nn.Module, items: Sequence[ClozeItem], tokenizer: Tokenizer, batch_size: int = 128, sentence: bool = False
) -> list[bool]:
    """Whether the model's top-scoring candidate is each item's answer."""
    return [
        item.candidates[int(s.argmax())] == item.answer
        for item, s in zip(items, cloze_scores(model, items, tokenizer, batch_size, sentence), strict=True)
    ]


def cloze_accuracy(
    model: nn.Module, items: Sequence[ClozeItem], tokenizer: Tokenizer, sentence: bool = False
) -> dict[str, float]:
    """Accuracy per cue side (``left``, ``right``, ``far``, ``both``: whichever ``items`` hold)."""
    if not items:
        raise ValueError("items must not be empty")
    correct = cloze_correct(model, items, tokenizer, sentence=sentence)
    by_cue: dict[str, list[bool]] = {}
    for item, ok in zip(items, correct, strict=True):
        by_cue.setdefault(item.cue, []).append(ok)
    return {cue: sum(oks) / len(oks) for cue, oks in by_cue.items()}
