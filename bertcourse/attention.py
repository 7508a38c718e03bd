"""Scaled dot-product attention and multi-head attention: the core GPT and BERT share.

Vaswani et al. (2017), "Attention Is All You Need", equation (1):

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V

Shapes: B batch, h heads, L_q query length, L_k key length, d_k query/key size, d_v value size.
Masks are boolean with True = "this query may attend to this key" (the PyTorch convention) and
broadcast to (..., L_q, L_k). A query row that may attend to nothing returns zeros, never NaN.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertcourse.validation import (
    check_attention_inputs,
    check_cache_pair,
    check_int,
    check_multi_head_inputs,
    check_probability,
    deprecated_alias,
    tracing,
)

Backend = Literal["auto", "math", "torch"]
KVCache = tuple[Tensor, Tensor]
"""Keys and values of the positions seen so far, each (B, h, T_past, d)."""

__all__ = [
    "KVCache",
    "MultiHeadAttention",
    "MultiHeadAttentionOutput",
    "cache_to",
    "causal_mask",
    "padding_mask",
    "padding_or_none",
    "scaled_dot_product_attention",
]


def causal_mask(L_q: int, L_k: int | None = None, device: torch.device | str | None = None) -> Tensor:
    """Boolean (L_q, L_k) mask, True where query i may attend to key j.

    Queries are aligned with the *last* L_q keys, so query i sits at absolute position
    ``L_k - L_q + i`` and may attend to keys ``j <= L_k - L_q + i``. With ``L_k == L_q`` this is the
    usual lower triangle; with a key/value cache (``L_k > L_q``) it lets new tokens see the whole
    past, which makes cached decoding equal to recomputing the full sequence.
    """
    L_k = L_q if L_k is None else L_k
    if L_q < 0 or L_k < 0:
        raise ValueError(f"causal_mask: lengths must be non-negative, got L_q={L_q}, L_k={L_k}")
    if L_k < L_q:
        raise ValueError(f"causal_mask: L_k={L_k} must be >= L_q={L_q} (queries are the last L_q positions)")
    ones = torch.ones(L_q, L_k, dtype=torch.bool, device=device)
    return torch.tril(ones, diagonal=L_k - L_q)


def padding_mask(attention_mask: Tensor) -> Tensor:
    """Turn a Hugging Face ``attention_mask`` (B, T), 1 = token and 0 = padding, into a boolean key mask.

    Returns (B, 1, 1, T): it broadcasts over heads and query positions, so padded keys are hidden
    from every query.
    """
    if not isinstance(attention_mask, Tensor) or attention_mask.dim() != 2:
        shape = tuple(attention_mask.shape) if isinstance(attention_mask, Tensor) else type(attention_mask)
        raise ValueError(f"attention_mask must be a (B, T) tensor, got {shape}")
    if attention_mask.dtype != torch.bool and attention_mask.is_floating_point():
        raise ValueError(f"attention_mask must hold 0/1 integers or booleans, got dtype {attention_mask.dtype}")
    return attention_mask.bool()[:, None, None, :]  # (B, T) -> (B, 1, 1, T)


def padding_or_none(attention_mask: Tensor | None) -> Tensor | None:
    """Return ``attention_mask`` (B, T), or None when it marks every position as a token.

    The fused kernels run fastest with no mask at all (a causal model then takes the Flash kernel's
    built-in causal path), so a model calls this once per forward pass, not once per layer. On a GPU it
    costs one host-device sync, like Hugging Face's same check.
    """
    if attention_mask is not None and not tracing() and bool(attention_mask.all()):
        return None  # (under torch.compile the mask is kept: reading it would split the graph)
    return attention_mask


def _expand(q: Tensor, k: Tensor, v: Tensor, batch: torch.Size | None) -> tuple[Tensor, Tensor, Tensor]:
    """Expand q, k, v to one batch shape when they differ (the fused kernel does not broadcast them all)."""
    if batch is None:
        return q, k, v
    return q.expand(*batch, *q.shape[-2:]), k.expand(*batch, *k.shape[-2:]), v.expand(*batch, *v.shape[-2:])


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask: Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
    dropout_p: float = 0.0,
    backend: Backend = "auto",
    return_weights: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Compute 'Scaled Dot-Product Attention': softmax(Q K^T * scale) V.

    Args:
        q: queries (..., L_q, d_k). k: keys (..., L_k, d_k). v: values (..., L_k, d_v).
        attn_mask: boolean, True = may attend, broadcastable to (..., L_q, L_k).
        is_causal: also hide future keys, aligned as in :func:`causal_mask`.
        scale: multiplies the scores; default ``1 / sqrt(d_k)``.
        dropout_p: dropout on the attention weights (pass 0.0 at evaluation).
        backend: ``"math"`` is the explicit five-step computation the course teaches; ``"torch"``
            calls ``torch.nn.functional.scaled_dot_product_attention`` (fused Flash / memory-efficient
            kernels on GPU); ``"auto"`` uses ``"torch"`` unless ``return_weights`` is set.
        return_weights: also return the attention weights (..., L_q, L_k); needs the math path.

    Returns:
        output (..., L_q, d_v), or ``(output, weights)`` when ``return_weights`` is set.
    """
    _check_backend(backend, return_weights)
    expand = check_attention_inputs(q, k, v, attn_mask, scale, dropout_p)  # ValueError naming the argument
    q, k, v = _expand(q, k, v, expand)
    return _attend(q, k, v, attn_mask, is_causal, scale, dropout_p, backend, return_weights)


def _check_backend(backend: Backend, return_weights: bool) -> None:
    if backend not in ("auto", "math", "torch"):
        raise ValueError(f"backend must be 'auto', 'math' or 'torch', got {backend!r}")
    if backend == "torch" and return_weights:
        raise ValueError("backend='torch' (the fused kernel) cannot return weights; use backend='math' or 'auto'")


def _attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask: Tensor | None,
    is_causal: bool,
    scale: float | None,
    dropout_p: float,
    backend: Backend,
    return_weights: bool,
) -> Tensor | tuple[Tensor, Tensor]:
    """:func:`scaled_dot_product_attention` on arguments already checked (and q, k, v of one batch shape)."""
    L_q, L_k = q.shape[-2], k.shape[-2]
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    use_math = backend == "math" or (backend == "auto" and return_weights)
    if is_causal and L_q == 1:
        is_causal = False  # one query, the last position: it may attend to every key, so no mask at all
    if not use_math and is_causal and attn_mask is None and L_q == L_k:
        # The plain causal case: the fused kernel builds the mask itself (Flash-eligible).
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True, scale=scale)

    mask = attn_mask
    if is_causal:
        causal = causal_mask(L_q, L_k, device=q.device)
        mask = causal if mask is None else mask & causal
    # Rows that may attend to nothing: let them see every key (so softmax stays finite), then zero them.
    empty_rows: Tensor | None = None
    if mask is not None:
        empty_rows = ~mask.any(dim=-1, keepdim=True)  # (..., L_q, 1)
        if mask.device.type == "cpu" and not tracing() and not bool(empty_rows.any()):
            empty_rows = None  # none (the usual case, and a free check on a CPU): nothing to fix up
        else:
            mask = mask | empty_rows

    if use_math:
        scores = q @ k.transpose(-2, -1) * scale  # (..., L_q, d_k) @ (..., d_k, L_k) -> (..., L_q, L_k)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # each row sums to 1 over the keys
        if empty_rows is not None:
            weights = weights.masked_fill(empty_rows, 0.0)
        attended = F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights
        output = attended @ v  # (..., L_q, L_k) @ (..., L_k, d_v) -> (..., L_q, d_v)
        return (output, weights) if return_weights else output

    output = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, scale=scale)
    if empty_rows is not None:
        output = output.masked_fill(empty_rows, 0.0)
    return output


def cache_to(past_key_value: KVCache, dtype: torch.dtype) -> KVCache:
    """One layer's key/value cache converted to ``dtype`` (bfloat16, say), each in a growing buffer as the
    cache's own (room for as many positions again), so the next decoding steps append in place instead of
    first copying the converted cache into a buffer of its own."""
    pair = check_cache_pair(past_key_value)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    with torch.no_grad():
        key, value = (_extend(None, t, dtype) for t in pair)
    return key, value


def _extend(past: Tensor | None, new: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """Keys (or values) of the past positions followed by the new ones: (B, h, T_past + T, d).

    This is ``torch.cat([past, new], dim=2)``, but decoding appends a position at every step and a
    concatenation copies the whole cache each time, so a step would cost more the longer the context.
    Without autograd the cache is instead a view of a buffer with room to spare (twice what it holds
    when it is made): the new positions are written after the old ones and a longer view is returned,
    so a step costs the same at any length. The buffer records how much of it is handed out; continuing
    an older, shorter view of it (two continuations of one prompt) or a slice of its rows copies into a
    new buffer, so no view ever sees its positions overwritten. A cache in another float dtype than
    ``new`` (bfloat16 for a float32 model: :meth:`GPT.generate`'s ``cache_dtype``) keeps its dtype; a new
    cache takes ``dtype`` (default: ``new``'s).
    """
    if past is not None:
        dtype = past.dtype  # a lower-precision cache keeps its own dtype
    elif dtype is None:
        dtype = new.dtype
    if torch.is_grad_enabled() and (new.requires_grad or (past is not None and past.requires_grad)):
        return new.to(dtype) if past is None else torch.cat([past, new.to(dtype)], dim=2)
    T_past = 0 if past is None else past.shape[2]
    T_total = T_past + new.shape[2]
    buffer = None if past is None else past._base
    if (
        buffer is not None
        and getattr(buffer, "_cache_length", None) == T_past
        and buffer.shape[2] >= T_total
        and past.data_ptr() == buffer.data_ptr()  # type: ignore[union-attr]
        and past.stride() == buffer.stride()  # type: ignore[union-attr]
        and past.shape[:2] == buffer.shape[:2]  # type: ignore[union-attr]  # not a slice of the rows or heads
    ):
        buffer[:, :, T_past:T_total].copy_(new)  # copy_ converts to the cache's dtype
    else:
        B, h, _, d = new.shape
        buffer = new.new_empty(B, h, 2 * T_total, d, dtype=dtype)
        if past is not None:
            buffer[:, :, :T_past].copy_(past)
        buffer[:, :, T_past:T_total].copy_(new)
    buffer._cache_length = T_total  # type: ignore[attr-defined]
    return buffer[:, :, :T_total]


class MultiHeadAttentionOutput(NamedTuple):
    """What :class:`MultiHeadAttention` returns: the output, the key/value cache, the weights (the order of
    every output in the package: main tensor, cache, attention weights)."""

    output: Tensor  # (B, L_q, d_model)
    past_key_value: KVCache | None  # keys and values (B, h, L_k, d) when use_cache, else None
    weights: Tensor | None  # (B, h, L_q, L_k) when return_weights, else None


class MultiHeadAttention(nn.Module):
    """Multi-head attention: h attentions in parallel on d_model / h-sized projections.

    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O, head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V).

    Self-attention (``context=None``) projects queries, keys and values from ``x`` with one fused
    (d_model, 3 d_model) matrix. Cross-attention takes queries from ``x`` and keys/values from
    ``context`` (an encoder's output, say), using the same three blocks of that matrix.
    """

    def __init__(
        self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True, backend: Backend = "auto"
    ) -> None:
        super().__init__()
        check_int(d_model, "d_model", minimum=1)
        check_int(n_heads, "n_heads", minimum=1)
        if d_model % n_heads != 0:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        check_probability(dropout, "dropout")
        if backend not in ("auto", "math", "torch"):
            raise ValueError(f"backend must be 'auto', 'math' or 'torch', got {backend!r}")
        self.d_model = d_model
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.dropout_p = dropout  # a probability, applied to the weights inside the attention call
        self.backend: Backend = backend
        self.in_proj = nn.Linear(d_model, 3 * d_model, bias=bias)  # [W^Q; W^K; W^V] stacked on the output axis
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)  # W^O

    def _split_heads(self, x: Tensor) -> Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.n_heads, self.d_head).transpose(1, 2)  # (B, T, H) -> (B, h, T, d)

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        attention_mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
        is_causal: bool = False,
        past_key_value: KVCache | None = None,
        use_cache: bool = False,
        return_weights: bool = False,
        need_weights: bool | None = None,
    ) -> MultiHeadAttentionOutput:
        """Attend from ``x`` (B, L_q, d_model) to itself, or to ``context`` (B, L_k, d_model).

        Args:
            attention_mask: (B, L_k) key padding mask, 1 = token, 0 = padding. With a cache it covers
                past and new keys together.
            attn_mask: boolean, True = may attend, broadcastable to (B, h, L_q, L_k).
            is_causal: hide future keys (self-attention only).
            past_key_value: keys and values of earlier positions, a previous call's ``past_key_value``.
                It may be in a lower-precision float dtype than the weights (bfloat16, say): new keys and
                values are then stored, and attention over the cache computed, in that dtype.
            use_cache: return keys and values (past + new) for the next decoding step.
            return_weights: also return the attention weights (uses the math path), as in
                :func:`scaled_dot_product_attention`. ``need_weights`` is its deprecated old name.
        """
        return_weights = deprecated_alias(need_weights, "need_weights", return_weights, "return_weights")
        check_multi_head_inputs(
            x, context, attention_mask, is_causal, past_key_value, self.n_heads, self.in_proj.weight
        )
        _check_backend(self.backend, return_weights)
        if context is None:
            q, k, v = self.in_proj(x).split(self.d_model, dim=-1)  # (B, L, 3H) -> 3 x (B, L, H)
        else:  # queries from x, keys and values from the context: the W^Q block, then the [W^K; W^V] blocks
            W_q, W_kv = self.in_proj.weight.split([self.d_model, 2 * self.d_model])
            bias = self.in_proj.bias
            b_q, b_kv = (None, None) if bias is None else bias.split([self.d_model, 2 * self.d_model])
            q = F.linear(x, W_q, b_q)
            k, v = F.linear(context, W_kv, b_kv).split(self.d_model, dim=-1)
        q, k, v = self._split_heads(q), self._split_heads(k), self._split_heads(v)  # each (B, h, T, d)
        if past_key_value is not None or use_cache:
            past_k, past_v = (None, None) if past_key_value is None else past_key_value
            k, v = _extend(past_k, k), _extend(past_v, v)  # (B, h, T_past + T, d)
        cache = (k, v) if use_cache else None

        mask = attn_mask
        if attention_mask is not None:
            keys = padding_mask(attention_mask)  # (B, 1, 1, L_k)
            mask = keys if mask is None else mask & keys
        dropout_p = self.dropout_p if self.training else 0.0
        if attn_mask is not None:  # a caller's mask: checked as scaled_dot_product_attention checks it
            check_attention_inputs(q, k, v, attn_mask, None, 0.0)
        query_dtype = q.dtype
        if k.dtype != query_dtype:  # a lower-precision cache: attend in its dtype, read it at its size
            q = q.to(k.dtype)
        # q, k, v are built here from checked inputs: attend without checking them again.
        result = _attend(q, k, v, mask, is_causal, None, dropout_p, self.backend, return_weights)
        out, weights = result if return_weights else (result, None)
        if out.dtype != query_dtype:  # back from the cache's dtype
            out = out.to(query_dtype)
            weights = None if weights is None else weights.to(query_dtype)
        B, _, L_q, _ = out.shape
        out = out.transpose(1, 2).reshape(B, L_q, self.d_model)  # (B, h, L_q, d) -> (B, L_q, H)
        return MultiHeadAttentionOutput(self.out_proj(out), cache, weights)
