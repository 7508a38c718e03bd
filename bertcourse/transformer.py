"""The Transformer block that GPT and BERT share, and the hyper-parameter checks and initialisation
both use. GPT and BERT differ by configuration (LayerNorm placement, GELU variant, causal or not),
never by a copy of this code.

Paper vs code, LayerNorm placement:
- Vaswani et al. (2017) and BERT put LayerNorm *after* each residual sum ("post-LN"):
      x = LN(x + Sublayer(x))
- GPT-2 moved it to the *input* of each sub-layer ("pre-LN") and added a final LayerNorm after the
  last block:
      x = x + Sublayer(LN(x))
  The residual stream then never passes through a normalisation, which keeps gradients well scaled in
  deep stacks and lets pre-LN models train without a learning-rate warm-up (Xiong et al. 2020).
  The annotated-transformer's prose describes post-LN while its code runs pre-LN; here ``norm_first``
  says which one runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from torch import Tensor, nn

from bertcourse.attention import KVCache, MultiHeadAttention, MultiHeadAttentionOutput
from bertcourse.feedforward import ACTIVATIONS, Activation, FeedForward
from bertcourse.validation import (
    check_bool,
    check_int,
    check_parameter_budget,
    check_positive,
    check_probability,
    deprecated_alias,
)

__all__ = [
    "StackOutput",
    "TransformerBlock",
    "TransformerBlockOutput",
    "TransformerConfig",
    "check_transformer_config",
    "init_weights_",
    "run_blocks",
    "transformer_stack",
]


@dataclass
class TransformerConfig:
    """The hyper-parameters GPT and BERT share. :class:`~bertcourse.gpt.GPTConfig` and
    :class:`~bertcourse.bert.BertConfig` subclass it, with their own CPU-sized defaults and a comment
    per field giving the paper's value; ``__post_init__`` checks every field."""

    vocab_size: int  # number of token ids V
    d_model: int = 128  # hidden size H of every position
    n_layers: int = 2  # number of Transformer blocks
    n_heads: int = 4  # attention heads per block (d_model / n_heads per head)
    d_ff: int = 512  # inner size of the feed-forward network
    max_len: int = 128  # number of learned positions, the longest input
    dropout: float = 0.1  # dropout on embeddings and on each sub-layer's output
    attention_dropout: float = 0.1  # dropout on the attention weights
    layer_norm_eps: float = 1e-5  # LayerNorm epsilon
    activation: Activation = "gelu"  # FFN non-linearity: exact GELU or its tanh approximation
    bias: bool = True  # biases in the blocks' linear maps and LayerNorms

    def __post_init__(self) -> None:
        check_transformer_config(self)


class TransformerBlockOutput(NamedTuple):
    """What :class:`TransformerBlock` returns."""

    hidden: Tensor  # (B, T, H)
    past_key_value: KVCache | None  # keys and values (B, h, T_past + T, d) when use_cache, else None
    weights: Tensor | None  # attention weights (B, h, T, T_past + T) when return_weights, else None


class TransformerBlock(nn.Module):
    """Self-attention and a feed-forward network, each wrapped in a residual connection and a LayerNorm.

    Pre-LN (``norm_first=True``, GPT-2)::

        x = x + Dropout(MultiHead(LN_1(x)))
        x = x + FFN(LN_2(x))

    Post-LN (``norm_first=False``, Vaswani et al. and BERT)::

        x = LN_1(x + Dropout(MultiHead(x)))
        x = LN_2(x + FFN(x))

    ``FFN`` ends in its own dropout, so both sub-layers' outputs are dropped out before the residual sum.

    Args:
        d_model: hidden size H. n_heads: number of heads h (H must be divisible by h). d_ff: FFN inner size.
        dropout: dropout on each sub-layer's output. attention_dropout: dropout on the attention weights.
        activation: ``"gelu"`` (exact, BERT) or ``"gelu_tanh"`` (GPT-2). layer_norm_eps: LayerNorm epsilon.
        norm_first: pre-LN when True, post-LN when False. bias: biases in every linear map and LayerNorm.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        activation: Activation = "gelu",
        layer_norm_eps: float = 1e-5,
        norm_first: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        check_probability(dropout, "dropout")
        check_probability(attention_dropout, "attention_dropout")
        self.norm_first = norm_first
        self.attn = MultiHeadAttention(d_model, n_heads, dropout=attention_dropout, bias=bias)
        self.attn_norm = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)  # LN_1
        self.ff = FeedForward(d_model, d_ff, dropout=dropout, activation=activation, bias=bias)
        self.ff_norm = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)  # LN_2
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        attention_mask: Tensor | None = None,
        is_causal: bool = False,
        past_key_value: KVCache | None = None,
        use_cache: bool = False,
        return_weights: bool = False,
        need_weights: bool | None = None,
    ) -> TransformerBlockOutput:
        """Transform x (B, T, H) into (B, T, H).

        Args:
            attention_mask: (B, T_past + T) key padding mask, 1 = token, 0 = padding.
            is_causal: position i attends to positions <= i only (GPT).
            past_key_value: this block's keys and values from earlier decoding steps.
            use_cache: return keys and values for the next step.
            return_weights: return the attention weights (``need_weights``: its deprecated old name).
        """
        return_weights = deprecated_alias(need_weights, "need_weights", return_weights, "return_weights")

        def self_attention(h: Tensor) -> MultiHeadAttentionOutput:
            return self.attn(
                h,
                attention_mask=attention_mask,
                is_causal=is_causal,
                past_key_value=past_key_value,
                use_cache=use_cache,
                return_weights=return_weights,
            )

        if self.norm_first:
            a = self_attention(self.attn_norm(x))
            x = x + self.dropout(a.output)
            x = x + self.ff(self.ff_norm(x))
        else:
            a = self_attention(x)
            x = self.attn_norm(x + self.dropout(a.output))
            x = self.ff_norm(x + self.ff(x))
        return TransformerBlockOutput(x, a.past_key_value, a.weights)


def transformer_stack(config: TransformerConfig, norm_first: bool) -> nn.ModuleList:
    """``config.n_layers`` blocks from the fields GPT and BERT configs share (pre-LN when ``norm_first``)."""
    return nn.ModuleList(
        TransformerBlock(
            config.d_model,
            config.n_heads,
            config.d_ff,
            dropout=config.dropout,
            attention_dropout=config.attention_dropout,
            activation=config.activation,
            layer_norm_eps=config.layer_norm_eps,
            norm_first=norm_first,
            bias=config.bias,
        )
        for _ in range(config.n_layers)
    )


class StackOutput(NamedTuple):
    """What :func:`run_blocks` returns: the last block's states and what each block was asked for."""

    hidden: Tensor  # (B, T, H), the last block's output
    past_key_values: tuple[KVCache, ...] | None  # one (key, value) pair per block when use_cache
    hidden_states: tuple[Tensor, ...] | None  # n_layers + 1 tensors (B, T, H): the input, then each block's
    attentions: tuple[Tensor, ...] | None  # n_layers tensors (B, h, T, T_past + T)


def run_blocks(
    blocks: nn.ModuleList,
    x: Tensor,
    attention_mask: Tensor | None = None,
    is_causal: bool = False,
    past_key_values: tuple[KVCache, ...] | None = None,
    use_cache: bool = False,
    output_attentions: bool = False,
    output_hidden_states: bool = False,
) -> StackOutput:
    """Run x (B, T, H) through every block in turn: h_l = Block_l(h_{l-1}). The one block loop of GPT and BERT."""
    past_key_values_out: list[KVCache] = []
    attentions: list[Tensor] = []
    hidden_states: list[Tensor] = [x]
    for i, block in enumerate(blocks):
        out = block(
            x,
            attention_mask=attention_mask,
            is_causal=is_causal,
            past_key_value=None if past_key_values is None else past_key_values[i],
            use_cache=use_cache,
            return_weights=output_attentions,
        )
        x = out.hidden
        if out.past_key_value is not None:
            past_key_values_out.append(out.past_key_value)
        if out.weights is not None:
            attentions.append(out.weights)
        hidden_states.append(x)
    return StackOutput(
        x,
        tuple(past_key_values_out) if use_cache else None,
        tuple(hidden_states) if output_hidden_states else None,
        tuple(attentions) if output_attentions else None,
    )


def check_transformer_config(config: TransformerConfig) -> None:
    """Raise ``ValueError`` naming the field when a GPT/BERT config holds an impossible value, or one whose
    parameter count (computed, nothing allocated) is absurd."""
    name = type(config).__name__
    for field in ("vocab_size", "d_model", "n_layers", "n_heads", "d_ff", "max_len"):
        check_int(getattr(config, field), f"{name}.{field}", minimum=1)
    if config.d_model % config.n_heads != 0:
        raise ValueError(f"{name}.d_model={config.d_model} must be divisible by {name}.n_heads={config.n_heads}")
    for field in ("dropout", "attention_dropout"):
        check_probability(getattr(config, field), f"{name}.{field}")
    check_positive(config.layer_norm_eps, f"{name}.layer_norm_eps")
    if config.activation not in ACTIVATIONS:
        raise ValueError(f"{name}.activation must be one of {ACTIVATIONS}, got {config.activation!r}")
    check_bool(config.bias, f"{name}.bias")
    H, L = config.d_model, config.n_layers
    per_block = 4 * H * H + 2 * H * config.d_ff  # W^Q, W^K, W^V, W^O and the two FFN maps, biases aside
    check_parameter_budget(
        name, (config.vocab_size + config.max_len) * H + L * per_block, "vocab_size, d_model, n_layers, d_ff, max_len"
    )


def scale_residual_init_(blocks: nn.ModuleList, n_layers: int, std: float = 0.02) -> None:
    """GPT-2's residual scaling, in place: the projections that write into the residual stream (attention's
    ``out_proj`` and the feed-forward's ``fc2``) ~ N(0, (std / sqrt(2 n_layers))^2), so that the variance
    of the stream does not grow with depth (each block adds two of them)."""
    for block in blocks:
        for proj in (block.attn.out_proj, block.ff.fc2):
            nn.init.normal_(proj.weight, mean=0.0, std=std / math.sqrt(2 * n_layers))


def init_weights_(module: nn.Module, std: float = 0.02) -> None:
    """GPT-2 / BERT initialisation, in place: weights of linear maps and embeddings ~ N(0, std^2),
    biases 0, LayerNorm scale 1 and shift 0, and a zero embedding for the padding token."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=std)
            if m.padding_idx is not None:
                nn.init.zeros_(m.weight[m.padding_idx])
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
