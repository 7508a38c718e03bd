"""Pre-training objectives: the language-modelling losses of GPT, ELMo and BERT.

Labels use -100 (``IGNORE_INDEX``) for positions that carry no target, the Hugging Face convention.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["IGNORE_INDEX", "backward_lm_loss", "causal_lm_loss", "masked_lm_loss"]

IGNORE_INDEX = -100


def masked_lm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of (B, T, V) logits against (B, T) labels at the same positions (BERT's MLM)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX)


def causal_lm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Left-to-right LM loss: position t predicts label t+1 (labels are the unshifted input ids)."""
    return masked_lm_loss(logits[:, :-1], labels[:, 1:])  # (B, T-1, V) vs (B, T-1)


def backward_lm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Right-to-left LM loss: position t predicts label t-1 (ELMo's backward direction)."""
    return masked_lm_loss(logits[:, 1:], labels[:, :-1])  # (B, T-1, V) vs (B, T-1)
