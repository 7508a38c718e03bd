"""The position-wise feed-forward network of a Transformer block.

    FFN(x) = Dropout(GELU(x W_1 + b_1) W_2 + b_2),   W_1: (H, d_ff), W_2: (d_ff, H)

Paper vs code: Vaswani et al. (2017) used ReLU; GPT and BERT use GELU (Hendrycks & Gimpel 2016),
GELU(x) = x Phi(x) with Phi the standard normal CDF. Hugging Face's BERT ("gelu") computes Phi exactly
with erf; GPT-2 ("gelu_new") uses the tanh approximation
0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as did Google's original TensorFlow BERT. The two
differ by at most about 5e-4 (near x = -2.7): small, but each model keeps its own variant so that
converted Hugging Face weights give the same numbers.
"""

from __future__ import annotations

from typing import Literal, get_args

from torch import Tensor, nn

from bertcourse.validation import check_int, check_probability

__all__ = ["ACTIVATIONS", "Activation", "FeedForward"]

Activation = Literal["gelu", "gelu_tanh"]
ACTIVATIONS: tuple[str, ...] = get_args(Activation)


def gelu(activation: Activation) -> nn.GELU:
    """The GELU module for ``"gelu"`` (exact, erf; BERT) or ``"gelu_tanh"`` (tanh approximation; GPT-2)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    return nn.GELU(approximate="tanh" if activation == "gelu_tanh" else "none")


class FeedForward(nn.Module):
    """Two linear maps with a GELU between them, applied to every position independently.

    Shapes: (B, T, H) -> (B, T, d_ff) -> (B, T, H).
    """

    def __init__(
        self, d_model: int, d_ff: int, dropout: float = 0.0, activation: Activation = "gelu", bias: bool = True
    ) -> None:
        super().__init__()
        check_int(d_model, "d_model", minimum=1)
        check_int(d_ff, "d_ff", minimum=1)
        check_probability(dropout, "dropout")
        self.fc1 = nn.Linear(d_model, d_ff, bias=bias)  # W_1: expand H -> d_ff (GPT-2 "c_fc", BERT "intermediate")
        self.activation = gelu(activation)
        self.fc2 = nn.Linear(d_ff, d_model, bias=bias)  # W_2: project d_ff -> H (GPT-2 "c_proj", BERT "output")
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """FFN(x) for x of shape (B, T, H)."""
        return self.dropout(self.fc2(self.activation(self.fc1(x))))
