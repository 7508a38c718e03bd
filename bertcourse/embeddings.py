"""The input representation of a Transformer: token + position (+ segment) embeddings.

    E_t = Dropout(LN(W_tok[x_t] + W_seg[s_t] + W_pos[t]))

GPT-2 adds token and position embeddings only and normalises nothing here (each pre-LN block
normalises its own input). BERT adds a segment ("token type") embedding for sentence A / B and a
LayerNorm (Devlin et al. 2019, Figure 2). Both learn their position table, unlike the sinusoids of
Vaswani et al. (2017), so neither can read a sequence longer than ``max_len``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bertcourse.validation import check_int, check_probability

__all__ = ["Embeddings"]


class Embeddings(nn.Module):
    """Token + learned position (+ segment) embeddings, an optional LayerNorm, then dropout.

    Args:
        vocab_size: number of token ids V.
        d_model: embedding size H.
        max_len: number of learned positions; inputs may not reach past it.
        type_vocab_size: number of segments (BERT: 2, sentence A and B); 0 = no segment embedding (GPT).
        dropout: dropout on the summed embeddings.
        layer_norm_eps: epsilon of a LayerNorm on the sum (BERT: 1e-12); ``None`` = no LayerNorm (GPT-2).
        padding_idx: token id whose embedding starts at zero and gets no gradient (BERT's ``[PAD]``).
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        max_len: int,
        type_vocab_size: int = 0,
        dropout: float = 0.0,
        layer_norm_eps: float | None = None,
        padding_idx: int | None = None,
    ) -> None:
        super().__init__()
        check_int(vocab_size, "vocab_size", minimum=1)
        check_int(d_model, "d_model", minimum=1)
        check_int(max_len, "max_len", minimum=1)
        check_int(type_vocab_size, "type_vocab_size", minimum=0)
        check_probability(dropout, "dropout")
        self.max_len = max_len
        self.word_embeddings = nn.Embedding(vocab_size, d_model, padding_idx=padding_idx)  # (V, H)
        self.position_embeddings = nn.Embedding(max_len, d_model)  # (max_len, H)
        self.token_type_embeddings = nn.Embedding(type_vocab_size, d_model) if type_vocab_size > 0 else None
        self.layer_norm = nn.LayerNorm(d_model, eps=layer_norm_eps) if layer_norm_eps is not None else None
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        position_offset: int = 0,
        position_ids: Tensor | None = None,
    ) -> Tensor:
        """Embed (B, T) token ids into (B, T, H).

        Args:
            input_ids: (B, T) token ids.
            token_type_ids: (B, T) segment ids; zeros (sentence A) when omitted.
            position_offset: absolute position of the first token: the number of tokens already in a
                key/value cache while decoding, so the new token gets position ``T_past``.
            position_ids: (B, T) explicit positions, instead of ``position_offset + 0..T-1``: a
                left-padded prompt counts its positions from its first real token.
        """
        T = input_ids.shape[1]
        if position_ids is not None:
            if not isinstance(position_ids, Tensor) or position_ids.shape != input_ids.shape:
                got = tuple(position_ids.shape) if isinstance(position_ids, Tensor) else type(position_ids).__name__
                raise ValueError(f"position_ids must have the shape of input_ids {tuple(input_ids.shape)}, got {got}")
            if position_ids.is_floating_point() or position_ids.dtype == torch.bool:
                raise ValueError(f"position_ids must be integers, got dtype {position_ids.dtype}")
            if position_ids.numel() and (int(position_ids.min()) < 0 or int(position_ids.max()) >= self.max_len):
                raise ValueError(f"position_ids must lie in [0, max_len={self.max_len})")
        elif position_offset < 0 or position_offset + T > self.max_len:
            raise ValueError(
                f"positions {position_offset}..{position_offset + T - 1} do not fit max_len={self.max_len} "
                f"(position_offset={position_offset}, length={T})"
            )
        if token_type_ids is not None and self.token_type_embeddings is None:
            raise ValueError("token_type_ids given, but this model has no segment embeddings (type_vocab_size=0)")
        if position_ids is None:
            positions = torch.arange(position_offset, position_offset + T, device=input_ids.device)  # (T,)
        else:
            positions = position_ids  # (B, T)
        x = self.word_embeddings(input_ids)  # (B, T) -> (B, T, H)
        if self.token_type_embeddings is not None:
            segments = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
            x = x + self.token_type_embeddings(segments)  # (B, T, H)
        x = x + self.position_embeddings(positions)  # (B, T, H) + (T, H) or (B, T, H)
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        return self.dropout(x)
