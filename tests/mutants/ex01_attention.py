"""Exercise 01 answers: the correct ones (``CORRECT``) and one mutant per typical mistake (``MUTANTS``).

``MUTANTS`` maps a name to (the learner function it stands for, the mutant, a phrase the failing hint
must contain).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    e = (x - x.amax(dim=dim, keepdim=True)).exp()
    return e / e.sum(dim=dim, keepdim=True)


def scaled_dot_product_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, scale: float | None = None, fill: float = -math.inf
) -> tuple[Tensor, Tensor]:
    """The right answer; ``scale`` and ``fill`` let mutants change one thing."""
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = q @ k.transpose(-2, -1) * scale  # (..., L_q, L_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, fill)
    weights = softmax(scores, dim=-1)
    if mask is not None:
        weights = weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    return weights @ v, weights


def causal_mask(seq_len: int) -> Tensor:
    return torch.ones(seq_len, seq_len, dtype=torch.bool).tril()


def padding_mask(lengths: Tensor, max_len: int) -> Tensor:
    return (torch.arange(max_len) < lengths[:, None])[:, None, None, :]  # (B, T) -> (B, 1, 1, T)


# ---------------------------------------------------------------------------------------- softmax mutants


def softmax_no_max_subtraction(x: Tensor, dim: int = -1) -> Tensor:
    e = x.exp()
    return e / e.sum(dim=dim, keepdim=True)


def softmax_global_max(x: Tensor, dim: int = -1) -> Tensor:
    e = (x - x.max()).exp()
    return e / e.sum(dim=dim, keepdim=True)


def softmax_ignores_dim(x: Tensor, dim: int = -1) -> Tensor:
    return softmax(x, dim=-1)


def softmax_in_place(x: Tensor, dim: int = -1) -> Tensor:
    x -= x.amax(dim=dim, keepdim=True)
    e = x.exp()
    return e / e.sum(dim=dim, keepdim=True)


def softmax_unnormalised(x: Tensor, dim: int = -1) -> Tensor:
    return (x - x.amax(dim=dim, keepdim=True)).exp()


# ------------------------------------------------------------------------------------ attention mutants


def sdpa_missing_scale(q, k, v, mask=None):
    return scaled_dot_product_attention(q, k, v, mask, scale=1.0)


def sdpa_scale_by_d_k(q, k, v, mask=None):
    return scaled_dot_product_attention(q, k, v, mask, scale=1.0 / q.shape[-1])


def sdpa_multiply_by_sqrt_d_k(q, k, v, mask=None):
    return scaled_dot_product_attention(q, k, v, mask, scale=math.sqrt(q.shape[-1]))


def sdpa_scale_by_sqrt_d_v(q, k, v, mask=None):
    return scaled_dot_product_attention(q, k, v, mask, scale=1.0 / math.sqrt(v.shape[-1]))


def sdpa_k_transpose_all(q, k, v, mask=None):
    scores = q @ k.T / math.sqrt(q.shape[-1])  # .T reverses every axis of a (B, h, L, d) tensor
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf)
    weights = softmax(scores, dim=-1)
    return weights @ v, weights


def sdpa_softmax_wrong_axis(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf)
    weights = torch.softmax(scores, dim=-2).nan_to_num(0.0)
    return weights @ v, weights


def sdpa_inverted_mask(q, k, v, mask=None):
    return scaled_dot_product_attention(q, k, v, None if mask is None else ~mask)


def sdpa_unscaled_inverted_mask(q, k, v, mask=None):
    return scaled_dot_product_attention(q, k, v, None if mask is None else ~mask, scale=1.0)


def sdpa_zero_fill(q, k, v, mask=None):
    return scaled_dot_product_attention(q, k, v, mask, fill=0.0)


def sdpa_large_negative_fill(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, -1e9)  # a row with no allowed key becomes uniform
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def sdpa_nan_rows(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf)
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def sdpa_weights_times_keys(q, k, v, mask=None):
    _, weights = scaled_dot_product_attention(q, k, v, mask)
    return weights @ k, weights


def sdpa_transposed_output(q, k, v, mask=None):
    output, weights = scaled_dot_product_attention(q, k, v, mask)
    return output.transpose(-2, -1), weights


def sdpa_no_max_subtraction(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf)
    weights = softmax_no_max_subtraction(scores)
    if mask is not None:
        weights = weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    return weights @ v, weights


def sdpa_four_d_only(q, k, v, mask=None):
    scores = q @ k.permute(0, 1, 3, 2) / math.sqrt(q.shape[-1])  # assumes (B, h, L, d)
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf)
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return weights @ v, weights


def sdpa_float32(q, k, v, mask=None):
    output, weights = scaled_dot_product_attention(q.float(), k.float(), v.float(), mask)
    return output.double(), weights.double()


def sdpa_output_only(q, k, v, mask=None):
    return scaled_dot_product_attention(q, k, v, mask)[0]


def sdpa_mask_after_softmax(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights * mask
    return weights @ v, weights


def sdpa_forgot_transpose(q, k, v, mask=None):
    scores = q @ k / math.sqrt(q.shape[-1])  # (L_q, d_k) @ (L_k, d_k): a shape error
    return scores @ v


# ----------------------------------------------------------------------------------------- mask mutants


def causal_mask_off_by_one(seq_len: int) -> Tensor:
    return torch.ones(seq_len, seq_len, dtype=torch.bool).tril(-1)


def causal_mask_sees_next(seq_len: int) -> Tensor:
    return torch.ones(seq_len, seq_len, dtype=torch.bool).tril(1)


def causal_mask_upper(seq_len: int) -> Tensor:
    return torch.ones(seq_len, seq_len, dtype=torch.bool).triu()


def causal_mask_inverted(seq_len: int) -> Tensor:
    return ~causal_mask(seq_len)


def causal_mask_float(seq_len: int) -> Tensor:
    return torch.ones(seq_len, seq_len).tril()


def padding_mask_inverted(lengths: Tensor, max_len: int) -> Tensor:
    return ~padding_mask(lengths, max_len)


def padding_mask_off_by_one(lengths: Tensor, max_len: int) -> Tensor:
    return (torch.arange(max_len) <= lengths[:, None])[:, None, None, :]


def padding_mask_clamped(lengths: Tensor, max_len: int) -> Tensor:
    last = (lengths - 1).clamp(min=0)  # the last real position, but a length-0 sequence has none
    return (torch.arange(max_len) <= last[:, None])[:, None, None, :]


def padding_mask_one_hot(lengths: Tensor, max_len: int) -> Tensor:
    last = F.one_hot(lengths - 1, max_len)  # (B, T): marks the last real token; raises for length 0
    return (last.flip(-1).cumsum(-1).flip(-1) > 0)[:, None, None, :]


def padding_mask_2d(lengths: Tensor, max_len: int) -> Tensor:
    return torch.arange(max_len) < lengths[:, None]


CORRECT: dict[str, Callable[..., object]] = {
    "softmax": softmax,
    "scaled_dot_product_attention": scaled_dot_product_attention,
    "causal_mask": causal_mask,
    "padding_mask": padding_mask,
}

MUTANTS: dict[str, tuple[str, Callable[..., object], str]] = {
    "softmax_no_max_subtraction": ("softmax", softmax_no_max_subtraction, "overflow"),
    "softmax_global_max": ("softmax", softmax_global_max, "one maximum for the whole tensor"),
    "softmax_ignores_dim": ("softmax", softmax_ignores_dim, "was ignored"),
    "softmax_in_place": ("softmax", softmax_in_place, "in place"),
    "softmax_unnormalised": ("softmax", softmax_unnormalised, "do not sum to 1"),
    "sdpa_missing_scale": ("scaled_dot_product_attention", sdpa_missing_scale, "not scaled"),
    "sdpa_scale_by_d_k": ("scaled_dot_product_attention", sdpa_scale_by_d_k, "divided by d_k"),
    "sdpa_multiply_by_sqrt_d_k": ("scaled_dot_product_attention", sdpa_multiply_by_sqrt_d_k, "multiplied by sqrt"),
    "sdpa_scale_by_sqrt_d_v": ("scaled_dot_product_attention", sdpa_scale_by_sqrt_d_v, "divided by sqrt(d_v)"),
    "sdpa_k_transpose_all": ("scaled_dot_product_attention", sdpa_k_transpose_all, "`k.T` reverses *all* axes"),
    "sdpa_softmax_wrong_axis": ("scaled_dot_product_attention", sdpa_softmax_wrong_axis, "over the queries"),
    "sdpa_inverted_mask": ("scaled_dot_product_attention", sdpa_inverted_mask, "inverted"),
    "sdpa_unscaled_inverted_mask": (
        "scaled_dot_product_attention",
        sdpa_unscaled_inverted_mask,
        "the scores are not scaled: which factor keeps Q K^T from growing with d_k?; and the mask is inverted",
    ),
    "sdpa_zero_fill": ("scaled_dot_product_attention", sdpa_zero_fill, "exp(0) = 1"),
    "sdpa_large_negative_fill": ("scaled_dot_product_attention", sdpa_large_negative_fill, "spread its weight"),
    "sdpa_nan_rows": ("scaled_dot_product_attention", sdpa_nan_rows, "NaN"),
    "sdpa_weights_times_keys": ("scaled_dot_product_attention", sdpa_weights_times_keys, "applied to the keys"),
    "sdpa_transposed_output": ("scaled_dot_product_attention", sdpa_transposed_output, "transposed"),
    "sdpa_no_max_subtraction": ("scaled_dot_product_attention", sdpa_no_max_subtraction, "overflow"),
    "sdpa_four_d_only": ("scaled_dot_product_attention", sdpa_four_d_only, "your function raised RuntimeError"),
    "sdpa_float32": ("scaled_dot_product_attention", sdpa_float32, "values differ"),
    "sdpa_output_only": ("scaled_dot_product_attention", sdpa_output_only, "expected a pair"),
    "sdpa_mask_after_softmax": ("scaled_dot_product_attention", sdpa_mask_after_softmax, "after the softmax"),
    "sdpa_forgot_transpose": ("scaled_dot_product_attention", sdpa_forgot_transpose, "scores = q @ k /"),
    "causal_mask_off_by_one": ("causal_mask", causal_mask_off_by_one, "diagonal is missing"),
    "causal_mask_sees_next": ("causal_mask", causal_mask_sees_next, "next token"),
    "causal_mask_upper": ("causal_mask", causal_mask_upper, "upper triangle"),
    "causal_mask_inverted": ("causal_mask", causal_mask_inverted, "inverted"),
    "causal_mask_float": ("causal_mask", causal_mask_float, "torch.bool"),
    "padding_mask_inverted": ("padding_mask", padding_mask_inverted, "inverted"),
    "padding_mask_off_by_one": ("padding_mask", padding_mask_off_by_one, "off by one"),
    "padding_mask_clamped": ("padding_mask", padding_mask_clamped, "length 0 has True in its row"),
    "padding_mask_one_hot": ("padding_mask", padding_mask_one_hot, "a sequence of length 0"),
    "padding_mask_2d": ("padding_mask", padding_mask_2d, "singleton axes"),
}
