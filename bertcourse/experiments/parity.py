"""Why the `both` cue is hard: the same network, trained on "and"/"but" alone, through two heads.

The conjunction of "ADJ [and/but] ADJ" is the XOR of the two adjectives' polarities, and either adjective
alone says nothing about it. :func:`train_conjunction` takes the encoder of the head-to-head's BERT
(``registry.VARIANTS``), puts a fresh model of it to a *supervised* version of that one cloze, every
example a coordinated sentence with its conjunction [MASK]ed and its answer known, and reads it through

* ``head="linear"``: a fresh two-way linear map of the blank's state (and vs but), or
* ``head="mlm"``: BERT's own masked-LM head over the whole vocabulary, as in pre-training,

for the same steps, batch, optimizer and learning rate; it returns the held-out accuracy as it trains.
If the linear head learns the XOR and the MLM head does not, the encoder has the capacity and the
difficulty lies in how the MLM head's gradient reaches it (chapter 08, section "The `both` cue").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from bertcourse.bert import BertConfig, BertForPreTraining
from bertcourse.data.collators import pad_sequences
from bertcourse.data.toylang import ClozeItem
from bertcourse.experiments.cloze import encode_cloze
from bertcourse.tokenizers import Tokenizer

__all__ = ["train_conjunction"]

Head = Literal["linear", "mlm"]


def _batch(ids: Sequence[list[int]], pad: int) -> tuple[Tensor, Tensor]:
    """Right-padded (B, T) ids and their (B, T) attention mask."""
    padded = pad_sequences(ids, pad)
    return padded, (padded != pad).long()


def train_conjunction(
    config: BertConfig,
    train_items: Sequence[ClozeItem],
    test_items: Sequence[ClozeItem],
    tokenizer: Tokenizer,
    *,
    head: Head,
    steps: int,
    lr: float = 3e-3,
    batch_size: int = 32,
    eval_every: int = 50,
    seed: int = 0,
) -> dict[int, float]:
    """Train a fresh ``BertForPreTraining(config)`` on the `both` items ``train_items`` (conjunction masked)
    through ``head``; return ``{step: held-out accuracy on test_items}`` at step 0 and every ``eval_every``.

    The accuracy compares the two candidates' scores at the blank: the linear map's two logits, or the
    MLM head's logits of "and" and "but". AdamW, constant ``lr``, batches drawn with ``seed``.
    """
    if head not in ("linear", "mlm"):
        raise ValueError(f"head must be 'linear' or 'mlm', got {head!r}")
    if not train_items or not test_items or any(it.cue != "both" for it in [*train_items, *test_items]):
        raise ValueError("train_items and test_items must be non-empty lists of `both` cloze items")
    torch.manual_seed(seed)
    model = BertForPreTraining(config)
    probe = nn.Linear(config.d_model, 2)  # used by head="linear" only
    trained = [model.bert, probe if head == "linear" else model.mlm_head]
    params = list({id(p): p for m in trained for p in m.parameters()}.values())  # a tied decoder's weight once
    optimizer = torch.optim.AdamW(params, lr=lr)
    mask_id = tokenizer.mask_token_id

    def encoded(items: Sequence[ClozeItem]) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        ids, positions, candidates = encode_cloze(items, tokenizer)
        for sequence, t in zip(ids, positions, strict=True):
            sequence[t] = mask_id  # the blank: "[CLS] ... good [MASK] nice ... [SEP]"
        x, attention = _batch(ids, tokenizer.pad_token_id)  # (N, T), (N, T)
        answer = torch.tensor([it.candidates.index(it.answer) for it in items])  # (N,): 0 or 1
        return x, attention, torch.tensor(positions), torch.tensor(candidates), answer

    def blank(x: Tensor, attention: Tensor, at: Tensor) -> Tensor:
        return model.bert(x, attention).last_hidden_state[torch.arange(len(x)), at]  # (B, T, H) -> (B, H)

    def scores(x: Tensor, attention: Tensor, at: Tensor, candidates: Tensor) -> Tensor:
        hidden = blank(x, attention, at)  # (B, H)
        if head == "linear":
            return probe(hidden)  # (B, 2)
        return model.mlm_head(hidden).gather(1, candidates)  # (B, V) -> (B, 2): the two candidates' logits

    train_set, test_set = encoded(train_items), encoded(test_items)
    generator = torch.Generator().manual_seed(seed)
    curve: dict[int, float] = {}
    for step in range(steps + 1):
        if step % eval_every == 0 or step == steps:
            model.eval()
            with torch.no_grad():
                x, attention, at, candidates, answer = test_set
                curve[step] = float((scores(x, attention, at, candidates).argmax(-1) == answer).float().mean())
            model.train()
        if step == steps:
            break
        pick = torch.randint(len(train_set[0]), (batch_size,), generator=generator)
        x, attention, at, candidates, answer = (t[pick] for t in train_set)
        if head == "linear":
            loss = nn.functional.cross_entropy(scores(x, attention, at, candidates), answer)
        else:  # the masked-LM loss over the whole vocabulary, the target the conjunction's token id
            target = candidates.gather(1, answer[:, None])[:, 0]  # (B,): the conjunction's token id
            loss = nn.functional.cross_entropy(model.mlm_head(blank(x, attention, at)), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return curve
