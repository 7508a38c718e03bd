"""The optimiser's set-up: which tensors decay, and the learning-rate schedule (warm-up, then decay).

Weight decay (Loshchilov & Hutter, 2019) applies to every matrix (``p.dim() >= 2``): linear and LSTM
weights *and* embeddings. Biases, LayerNorm gains and ELMo's scalar-mix weights (all 1-D) are not
decayed: shrinking them toward 0 has no regularising meaning. Embeddings are decayed, as in BERT's and
nanoGPT's recipes, because GPT and BERT tie the token embedding to the output layer: the same matrix is
the softmax classifier, which decay should regularise like any other.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

from torch import nn

__all__ = ["Schedule", "lr_lambda", "param_groups"]

Schedule = Literal["cosine", "linear", "constant"]


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: matrices (``dim >= 2``: linear, LSTM, embedding weights) decay; 1-D tensors do not."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_lambda(warmup_steps: int, max_steps: int, schedule: Schedule = "cosine") -> Callable[[int], float]:
    """Multiplier of the peak learning rate at step s (0-based).

    Warm-up: (s + 1) / warmup_steps for s < warmup_steps. Then, with progress
    p = (s - warmup_steps) / (max_steps - warmup_steps): cosine 0.5 (1 + cos(pi p)), linear 1 - p, or
    constant 1 (a learning curve that flattens then shows convergence, not a schedule gone to zero).
    """
    if schedule not in ("cosine", "linear", "constant"):
        raise ValueError(f"schedule must be 'cosine', 'linear' or 'constant', got {schedule!r}")
    if not 0 <= warmup_steps <= max_steps:
        raise ValueError(f"warmup_steps must lie in [0, max_steps={max_steps}], got {warmup_steps}")

    def multiplier(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = (step - warmup_steps) / max(1, max_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * progress)) if schedule == "cosine" else 1.0 - progress

    return multiplier
