"""ELMo's scalar mix: one learned, softmax-normalised weight per layer, times a learned scale.

Peters et al. (2018), "Deep contextualized word representations", equation (1):

    ELMo_k = γ Σ_j s_j h_{k,j},    s = softmax(w)

over the L + 1 layers j = 0 (token embedding) .. L (top LSTM) of token k. ``w`` starts at zero (an
equal average of the layers) and ``γ`` at one; a downstream task learns both.

Paper vs code: the paper also offers LayerNorm on each layer before mixing; this module does not.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from bertcourse.validation import check_int

__all__ = ["ScalarMix"]


class ScalarMix(nn.Module):
    """γ Σ_j softmax(w)_j h_j over ``num_layers`` tensors of one shape; parameters ``weights`` (w) and ``gamma``."""

    def __init__(self, num_layers: int) -> None:
        super().__init__()
        check_int(num_layers, "ScalarMix: num_layers", minimum=1)
        self.num_layers = num_layers
        self.weights = nn.Parameter(torch.zeros(num_layers))  # w: softmax(0) = equal weights 1 / num_layers
        self.gamma = nn.Parameter(torch.ones(1))  # γ: scales the whole mix

    def layer_weights(self) -> Tensor:
        """s = softmax(w): (num_layers,) non-negative weights summing to one."""
        return torch.softmax(self.weights, dim=0)

    def forward(self, layers: Sequence[Tensor]) -> Tensor:
        """Mix ``num_layers`` tensors of the same shape, e.g. (B, T, H), into one of that shape."""
        if not isinstance(layers, Sequence) or isinstance(layers, Tensor) or len(layers) != self.num_layers:
            got = len(layers) if isinstance(layers, Sequence) else type(layers).__name__
            raise ValueError(f"ScalarMix: layers must be a sequence of {self.num_layers} tensors, got {got}")
        if not all(isinstance(h, Tensor) for h in layers):
            raise ValueError(f"ScalarMix: every layer must be a tensor, got {[type(h).__name__ for h in layers]}")
        shapes = {tuple(h.shape) for h in layers}
        if len(shapes) != 1:
            raise ValueError(f"ScalarMix: all layers must have one shape, got {[tuple(h.shape) for h in layers]}")
        stacked = torch.stack(list(layers), dim=0)  # num_layers x (...) -> (num_layers, ...)
        s = self.layer_weights().to(stacked.dtype).view(-1, *([1] * (stacked.dim() - 1)))  # (L,) -> (L, 1, ..., 1)
        return self.gamma.to(stacked.dtype) * (s * stacked).sum(dim=0)
