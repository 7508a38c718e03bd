"""What the course models return, with Hugging Face's attribute names, and the label checks behind
their losses.

Shapes: B batch, T length, H hidden size, V vocabulary, C classes (``num_labels``), h heads.
``hidden_states`` is a tuple of n_layers + 1 tensors (B, T, H): the embeddings, then each block's output
(GPT: the last one after the final LayerNorm, as in Hugging Face). ``attentions`` is a tuple of n_layers
tensors (B, h, T, T). Both are ``None`` unless requested.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from bertcourse.attention import KVCache
from bertcourse.objectives import IGNORE_INDEX
from bertcourse.validation import tracing

__all__ = [
    "BaseModelOutput",
    "BertForPreTrainingOutput",
    "BertModelOutput",
    "CausalLMOutput",
    "ELMoOutput",
    "MaskedLMOutput",
    "SequenceClassifierOutput",
    "TokenClassifierOutput",
    "check_labels",
]


@dataclass
class BaseModelOutput:
    """A Transformer stack without a head: contextual states (B, T, H), and the key/value cache when asked."""

    last_hidden_state: Tensor
    past_key_values: tuple[KVCache, ...] | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


@dataclass
class CausalLMOutput:
    """GPT: next-token logits (B, T, V); ``loss`` when labels were given; the key/value cache when asked."""

    logits: Tensor
    loss: Tensor | None = None
    past_key_values: tuple[KVCache, ...] | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


@dataclass
class ELMoOutput:
    """Both LMs' logits (B, T, V), their losses when labels were given, and the layer stack.

    ``forward_logits[:, t]`` predicts token t+1 from tokens <= t; ``backward_logits[:, t]`` predicts
    token t-1 from tokens >= t; ``logits`` is ``forward_logits``. ``forward_loss`` and ``backward_loss``
    are each direction's mean cross-entropy over its counted targets, ``loss`` their mean.
    ``hidden_states`` holds n_layers + 1 tensors (B, T, 2 d_model): [x; x], then each layer's
    [forward; backward] states.
    """

    logits: Tensor
    forward_logits: Tensor
    backward_logits: Tensor
    loss: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    forward_loss: Tensor | None = None
    backward_loss: Tensor | None = None


@dataclass
class MaskedLMOutput:
    """BERT masked LM: logits (B, T, V) at every position; ``loss`` over positions whose label is not -100."""

    logits: Tensor
    loss: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


@dataclass
class SequenceClassifierOutput:
    """One prediction per sequence: logits (B, C)."""

    logits: Tensor
    loss: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


@dataclass
class TokenClassifierOutput:
    """One prediction per token: logits (B, T, C)."""

    logits: Tensor
    loss: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


@dataclass
class BertModelOutput:
    """BERT encoder: contextual states (B, T, H) and the pooled [CLS] vector (B, H) (``None`` without a pooler)."""

    last_hidden_state: Tensor
    pooler_output: Tensor | None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


@dataclass
class BertForPreTrainingOutput:
    """BERT pre-training: MLM logits (B, T, V), next-sentence logits (B, 2), and the summed loss."""

    prediction_logits: Tensor
    seq_relationship_logits: Tensor
    loss: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


def check_labels(labels: Tensor, name: str, shape: tuple[int, ...], num_classes: int) -> None:
    """Raise ``ValueError`` unless ``labels`` is an integer tensor of ``shape`` with values in
    [0, num_classes) or -100 (ignored); under ``torch.compile`` the values are not checked."""
    integer = isinstance(labels, Tensor) and not (labels.is_floating_point() or labels.is_complex())
    if not integer or labels.dtype == torch.bool:
        got = labels.dtype if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"{name} must be an integer tensor, got {got}")
    if tuple(labels.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(labels.shape)}")
    if tracing():
        return  # the values are not read under torch.compile (validation.tracing)
    bad = (labels != IGNORE_INDEX) & ((labels < 0) | (labels >= num_classes))
    if bool(bad.any()):
        raise ValueError(
            f"{name} must lie in [0, {num_classes}) or be {IGNORE_INDEX} (ignored), got {labels[bad].unique().tolist()}"
        )
