"""Fine-tuning any of the three encoders on a toy task, with one head and one budget for all.

Every model is put under the same head (``heads.SequenceClassifier`` with mean pooling, or
``heads.TokenClassifier`` for part of speech) and trained by the engine (``bertcourse.engine.train``)
for the same steps.
GPT keeps its causal mask, as the BERT paper's left-to-right ablation does: its state at t has read
tokens <= t only. Accuracy is reported overall and by the position of each item's deciding cue.

Paper vs code: BERT feeds sentence pairs (NSP) with segment ids; here no model gets segment ids when
fine-tuned, because GPT and ELMo have none: the [SEP] token marks the boundary for all three.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from bertcourse.data.collators import ClassificationDataset, PadCollator, TokenClassificationDataset
from bertcourse.data.toylang import TaskItem, ToyLanguage
from bertcourse.elmo import ELMo
from bertcourse.engine import train
from bertcourse.experiments.setup import Use
from bertcourse.heads import SequenceClassifier, TokenClassifier
from bertcourse.objectives import IGNORE_INDEX
from bertcourse.tokenizers import Tokenizer

__all__ = ["BiLSTMOnTop", "finetune", "representation_size", "task_items"]


def task_items(task: str, lang: ToyLanguage, n: int) -> list[TaskItem]:
    """``n`` labelled items of ``task``: ``sentiment``, ``acceptability``, ``pos``, ``continuation`` or ``nsp``."""
    makers = {
        "sentiment": lang.sentiment_task,
        "acceptability": lang.acceptability_task,
        "pos": lang.pos_task,
        "continuation": lang.continuation_task,
        "nsp": lang.nsp_task,
    }
    if task not in makers:
        raise ValueError(f"task must be one of {tuple(makers)}, got {task!r}")
    return makers[task](n)


def representation_size(model: nn.Module) -> int:
    """Width H of ``model.encode``'s output: 2 d_model for ELMo (both directions), d_model otherwise."""
    config = model.config
    return 2 * config.d_model if isinstance(model, ELMo) else config.d_model


def _features(task: str, items: Sequence[TaskItem], tokenizer: Tokenizer, max_length: int) -> list[dict[str, Any]]:
    if task == "pos":
        return TokenClassificationDataset.from_items(items, tokenizer, max_length).features
    features = ClassificationDataset.from_items(items, tokenizer, max_length).features
    return [{"input_ids": f["input_ids"], "labels": f["labels"]} for f in features]  # no segment ids (see above)


class BiLSTMOnTop(nn.Module):
    """``encoder`` followed by a fresh one-layer BiLSTM of the same width: the BERT paper's "LTR & No NSP
    + BiLSTM" row, which gives a left-to-right model's states a right-to-left reading when fine-tuned."""

    def __init__(self, encoder: nn.Module, hidden_size: int) -> None:
        super().__init__()
        if hidden_size % 2:
            raise ValueError(f"hidden_size must be even (two directions of hidden_size / 2), got {hidden_size}")
        self.encoder = encoder
        self.lstm = nn.LSTM(hidden_size, hidden_size // 2, batch_first=True, bidirectional=True)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) -> (B, T, H): the encoder's states read both ways by the BiLSTM; padding is skipped."""
        hidden = self.encoder.encode(input_ids, attention_mask)  # (B, T, H)
        if attention_mask is None:
            return self.lstm(hidden)[0]
        lengths = attention_mask.sum(dim=1).cpu()  # (B,)
        packed = nn.utils.rnn.pack_padded_sequence(hidden, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        return nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=hidden.shape[1])[0]


def _prepare(encoder: nn.Module, use: Use, hidden: int) -> nn.Module:
    """The encoder as fine-tuning ``use``-s it (``experiments.setup.Row``)."""
    if use == "bilstm":
        return BiLSTMOnTop(encoder, hidden)
    if use in ("features", "features-bilstm"):  # ELMo's recipe: the biLM frozen, its scalar mix learned
        if not hasattr(encoder, "scalar_mix"):
            raise ValueError(f"use={use!r} needs a model with a scalar_mix (ELMo), got {type(encoder).__name__}")
        encoder.requires_grad_(False)
        encoder.scalar_mix.requires_grad_(True)
        if use == "features-bilstm":  # ... and read by a task model of its own, a fresh BiLSTM
            return BiLSTMOnTop(encoder, hidden)
    elif use != "finetune":
        raise ValueError(f"use must be 'finetune', 'features', 'bilstm' or 'features-bilstm', got {use!r}")
    return encoder


def finetune(
    encoder: nn.Module,
    task: str,
    train_items: Sequence[TaskItem],
    test_items: Sequence[TaskItem],
    tokenizer: Tokenizer,
    *,
    num_labels: int,
    steps: int,
    lr: float,
    batch_size: int = 32,
    seed: int = 0,
    max_length: int = 128,
    device: torch.device | str = "cpu",
    use: Use = "finetune",
) -> dict[str, Any]:
    """Fine-tune ``encoder`` (modified in place) under a fresh head; return test accuracy and its split by cue.

    ``use``: ``finetune`` (every weight trains), ``features`` (ELMo frozen, its scalar mix trained),
    ``bilstm`` (a fresh BiLSTM between encoder and head) or ``features-bilstm`` (both: the frozen ELMo's
    scalar mix read by a fresh BiLSTM); see ``experiments.setup.Row``.

    Returns ``{"accuracy": float, "by_cue": {cue: float}}``. For ``pos`` the accuracy is the tag of each
    item's ambiguous word (``item.target``), the only word whose tag needs its context; for the
    sentence tasks it is the label of the item.
    """
    if not train_items or not test_items:
        raise ValueError("train_items and test_items must not be empty")
    hidden = representation_size(encoder)
    torch.manual_seed(seed)  # the head's (and the BiLSTM's) initialisation
    encoder = _prepare(encoder, use, hidden)
    if task == "pos":
        model: nn.Module = TokenClassifier(encoder, hidden, num_labels)
    else:
        model = SequenceClassifier(encoder, hidden, num_labels, pooling="mean")
    collate = PadCollator(tokenizer)
    loader = DataLoader(
        _features(task, train_items, tokenizer, max_length), batch_size, shuffle=True, collate_fn=collate
    )
    train(model, loader, max_steps=steps, lr=lr, seed=seed, progress=False, device=device)

    test = _features(task, test_items, tokenizer, max_length)
    correct: list[bool] = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(test), 128):
            batch = {k: v.to(device) for k, v in collate(test[start : start + 128]).items()}
            predictions = model(batch["input_ids"], batch["attention_mask"]).logits.argmax(-1)  # (B,) or (B, T)
            labels = batch["labels"]
            for b in range(len(labels)):
                if task == "pos":  # the first sub-token of word `target` is the (target + 1)-th labelled one
                    item = test_items[start + b]
                    position = (labels[b] != IGNORE_INDEX).nonzero().flatten()[item.target]
                    correct.append(bool(predictions[b, position] == labels[b, position]))
                else:
                    correct.append(bool(predictions[b] == labels[b]))
    by_cue: dict[str, list[bool]] = {}
    for item, ok in zip(test_items, correct, strict=True):
        by_cue.setdefault(item.cue, []).append(ok)
    return {
        "accuracy": sum(correct) / len(correct),
        "by_cue": {cue: sum(oks) / len(oks) for cue, oks in sorted(by_cue.items())},
    }
