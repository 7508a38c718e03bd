"""Task heads that fit on any course encoder: ELMo, GPT and BERT compared under the same head.

An *encoder* is any module with ``encode(input_ids, attention_mask=None) -> (B, T, H)``. A head adds
a linear classifier and the loss; nothing else differs between the models it is put on.

* Fine-tuning (``freeze_encoder=False``): encoder and head learn together (BERT, GPT).
* Feature-based (``freeze_encoder=True``): the encoder is fixed and kept in eval mode, only the head
  learns (how ELMo's representations were used).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertcourse.objectives import token_cross_entropy
from bertcourse.outputs import SequenceClassifierOutput, TokenClassifierOutput, check_labels
from bertcourse.validation import check_bool, check_int, check_probability

__all__ = ["SequenceClassifier", "TokenClassifier", "mean_pool", "pool"]

Pooling = Literal["mean", "first", "last"]


def mean_pool(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    """Average the token states of each sequence over its real tokens, padding excluded.

        e_b = sum_t m_bt h_bt / sum_t m_bt,   hidden (B, T, H), attention_mask (B, T) -> (B, H)

    A row without tokens gives zeros (its count is clamped to 1e-9, as in sentence-transformers).
    """
    if hidden.dim() != 3:
        raise ValueError(f"hidden must be (B, T, H), got {tuple(hidden.shape)}")
    if attention_mask.shape != hidden.shape[:2]:
        raise ValueError(
            f"attention_mask must be (B, T) = {tuple(hidden.shape[:2])}, the first two dims of hidden, "
            f"got {tuple(attention_mask.shape)}"
        )
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, T) -> (B, T, 1)
    total = (hidden * mask).sum(dim=1)  # (B, H)
    count = mask.sum(dim=1).clamp(min=1e-9)  # (B, 1)
    return total / count


def pool(hidden: Tensor, attention_mask: Tensor | None, pooling: Pooling) -> Tensor:
    """One vector per sequence from states (B, T, H) -> (B, H).

    ``mean``: sum_t m_t h_t / sum_t m_t over real tokens only (padding never counts);
    ``first``: h_0 (BERT's [CLS]); ``last``: h at the last real token (what a left-to-right GPT has
    read the whole sequence by). Padding is assumed on the right.
    """
    if attention_mask is None:
        attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
    if pooling == "mean":
        return mean_pool(hidden, attention_mask)
    if pooling == "first":
        return hidden[:, 0]
    if pooling == "last":
        last = (attention_mask.sum(1) - 1).clamp(min=0)  # (B,) index of the last real token
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise ValueError(f"pooling must be 'mean', 'first' or 'last', got {pooling!r}")


def classify(
    features: Tensor, dropout: nn.Module, classifier: nn.Linear, labels: Tensor | None = None
) -> tuple[Tensor, Tensor | None]:
    """The core of every classification head, the course's and BERT's: logits = Dropout(features) W + b.

    ``features`` (B, H) give one prediction per sequence, (B, T, H) one per token: logits (B, C) or
    (B, T, C). With ``labels`` of the leading shape the loss is the cross-entropy, -100 ignored; with a
    single output (``C = 1``) it is a regression, as in Hugging Face: float ``labels``, mean squared error.
    """
    logits = classifier(dropout(features))  # (..., H) -> (..., C)
    if labels is None:
        return logits, None
    shape, num_labels = tuple(features.shape[:-1]), classifier.out_features
    if num_labels == 1:
        if not isinstance(labels, Tensor) or not labels.is_floating_point() or tuple(labels.shape) != shape:
            got = f"{labels.dtype} {tuple(labels.shape)}" if isinstance(labels, Tensor) else type(labels).__name__
            raise ValueError(f"labels of a 1-label (regression) head must be {shape} floats, got {got}")
        return logits, F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))  # (..., 1) -> (...)
    check_labels(labels, "labels", shape, num_labels)
    return logits, token_cross_entropy(logits, labels)  # one cross-entropy per sequence or token, -100 ignored


class _Head(nn.Module):
    """The encoder, its freezing, and the check of its output width."""

    def __init__(self, encoder: nn.Module, hidden_size: int, num_labels: int, dropout: float, freeze: bool) -> None:
        super().__init__()
        if not callable(getattr(encoder, "encode", None)):
            raise ValueError(f"encoder must have encode(input_ids, attention_mask); {type(encoder).__name__} has not")
        check_int(hidden_size, "hidden_size", minimum=1)
        check_int(num_labels, "num_labels", minimum=1)
        check_probability(dropout, "dropout")
        check_bool(freeze, "freeze_encoder")
        self.encoder = encoder
        self.hidden_size, self.num_labels, self.freeze_encoder = hidden_size, num_labels, freeze
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_labels)
        if freeze:
            encoder.requires_grad_(False)

    def train(self, mode: bool = True) -> _Head:
        """Like ``nn.Module.train``, but a frozen encoder stays in eval mode (no dropout in features)."""
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()
        return self

    def _encode(self, input_ids: Tensor, attention_mask: Tensor | None) -> Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            hidden = self.encoder.encode(input_ids, attention_mask)  # (B, T, H)
        if hidden.dim() != 3 or hidden.shape[-1] != self.hidden_size:
            raise ValueError(
                f"encoder returned states {tuple(hidden.shape)}; expected (B, T, hidden_size={self.hidden_size})"
            )
        return hidden


class SequenceClassifier(_Head):
    """One label per sequence: logits = Dropout(pool(encode(x))) W + b, (B, num_labels).

    ``pooling``: ``mean`` over real tokens (default, fair to every model), ``first`` (BERT's [CLS]) or
    ``last`` (the only position of a left-to-right model that has read everything).
    """

    def __init__(
        self,
        encoder: nn.Module,
        hidden_size: int,
        num_labels: int,
        pooling: Pooling = "mean",
        dropout: float = 0.1,
        freeze_encoder: bool = False,
    ) -> None:
        super().__init__(encoder, hidden_size, num_labels, dropout, freeze_encoder)
        if pooling not in ("mean", "first", "last"):
            raise ValueError(f"pooling must be 'mean', 'first' or 'last', got {pooling!r}")
        self.pooling: Pooling = pooling

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, labels: Tensor | None = None
    ) -> SequenceClassifierOutput:
        """Class logits (B, C); ``loss`` is the cross-entropy against ``labels`` (B,) (-100 ignored)."""
        pooled = pool(self._encode(input_ids, attention_mask), attention_mask, self.pooling)  # (B, H)
        return SequenceClassifierOutput(*classify(pooled, self.dropout, self.classifier, labels))  # (B, C)


class TokenClassifier(_Head):
    """One label per token: logits = Dropout(encode(x)) W + b, (B, T, num_labels)."""

    def __init__(
        self,
        encoder: nn.Module,
        hidden_size: int,
        num_labels: int,
        dropout: float = 0.1,
        freeze_encoder: bool = False,
    ) -> None:
        super().__init__(encoder, hidden_size, num_labels, dropout, freeze_encoder)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, labels: Tensor | None = None
    ) -> TokenClassifierOutput:
        """Tag logits (B, T, C); ``loss`` is the cross-entropy against ``labels`` (B, T) (-100 ignored)."""
        hidden = self._encode(input_ids, attention_mask)  # (B, T, H)
        return TokenClassifierOutput(*classify(hidden, self.dropout, self.classifier, labels))  # (B, T, C)
