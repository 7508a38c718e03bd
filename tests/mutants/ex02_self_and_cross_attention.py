"""Exercise 02 answers: the correct ones (``CORRECT``) and one mutant per typical mistake (``MUTANTS``).

``MUTANTS`` maps a name to (the learner function it stands for, the mutant, a phrase the failing hint
must contain).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor


def _attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, scale: float | None = None, fill=-math.inf):
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = q @ k.transpose(-2, -1) * scale  # (B, L_q, L_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, fill)
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def self_attention(x, w_q, w_k, w_v, mask=None):
    return _attend(x @ w_q, x @ w_k, x @ w_v, mask)


def cross_attention(x, context, w_q, w_k, w_v, context_mask=None):
    mask = None if context_mask is None else context_mask.bool()[:, None, :]  # (B, S) -> (B, 1, S)
    return _attend(x @ w_q, context @ w_k, context @ w_v, mask)


# ------------------------------------------------------------------------------------ self-attention mutants


def self_no_scale(x, w_q, w_k, w_v, mask=None):
    return _attend(x @ w_q, x @ w_k, x @ w_v, mask, scale=1.0)


def self_scale_by_width(x, w_q, w_k, w_v, mask=None):
    return _attend(x @ w_q, x @ w_k, x @ w_v, mask, scale=1 / math.sqrt(x.shape[-1]))


def self_scale_by_d_v(x, w_q, w_k, w_v, mask=None):
    return _attend(x @ w_q, x @ w_k, x @ w_v, mask, scale=1 / math.sqrt(w_v.shape[-1]))


def self_softmax_over_queries(x, w_q, w_k, w_v, mask=None):
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf)
    weights = torch.softmax(scores, dim=-2)
    return weights @ v, weights


def self_q_k_swapped(x, w_q, w_k, w_v, mask=None):
    return _attend(x @ w_k, x @ w_q, x @ w_v, mask)


def self_weights_x(x, w_q, w_k, w_v, mask=None):
    _, weights = _attend(x @ w_q, x @ w_k, x @ w_v, mask)
    return weights @ x, weights


def self_mask_inverted(x, w_q, w_k, w_v, mask=None):
    return _attend(x @ w_q, x @ w_k, x @ w_v, None if mask is None else ~mask)


def self_mask_ignored(x, w_q, w_k, w_v, mask=None):
    return _attend(x @ w_q, x @ w_k, x @ w_v)


def self_mask_fill_zero(x, w_q, w_k, w_v, mask=None):
    return _attend(x @ w_q, x @ w_k, x @ w_v, mask, fill=0.0)


def self_mask_after_softmax(x, w_q, w_k, w_v, mask=None):
    _, weights = _attend(x @ w_q, x @ w_k, x @ w_v)
    if mask is not None:
        weights = weights * mask
    return weights @ (x @ w_v), weights


def self_transposed_weights(x, w_q, w_k, w_v, mask=None):
    out, weights = _attend(x @ w_q, x @ w_k, x @ w_v, mask)
    return out, weights.transpose(-2, -1)


# ----------------------------------------------------------------------------------- cross-attention mutants


def _mask(context_mask):
    return None if context_mask is None else context_mask.bool()[:, None, :]


def cross_keys_values_from_x(x, context, w_q, w_k, w_v, context_mask=None):
    mask = _mask(context_mask) if context_mask is None or x.shape[1] == context.shape[1] else None
    return _attend(x @ w_q, x @ w_k, x @ w_v, mask)


def cross_keys_from_x(x, context, w_q, w_k, w_v, context_mask=None):
    return _attend(x @ w_q, x @ w_k, context @ w_v, _mask(context_mask))


def cross_values_from_x(x, context, w_q, w_k, w_v, context_mask=None):
    return _attend(x @ w_q, context @ w_k, x @ w_v, _mask(context_mask))


def cross_queries_from_context(x, context, w_q, w_k, w_v, context_mask=None):
    return _attend(context @ w_q, x @ w_k, context @ w_v)


def cross_mask_on_query_axis(x, context, w_q, w_k, w_v, context_mask=None):
    mask = None if context_mask is None else context_mask.bool()[:, :, None]  # (B, S, 1): hides rows
    return _attend(x @ w_q, context @ w_k, context @ w_v, mask)


def cross_mask_inverted(x, context, w_q, w_k, w_v, context_mask=None):
    mask = _mask(context_mask)
    return _attend(x @ w_q, context @ w_k, context @ w_v, None if mask is None else ~mask)


def cross_mask_ignored(x, context, w_q, w_k, w_v, context_mask=None):
    return _attend(x @ w_q, context @ w_k, context @ w_v)


def cross_int_mask_not_bool(x, context, w_q, w_k, w_v, context_mask=None):
    mask = None if context_mask is None else context_mask[:, None, :]  # ints stay ints: masked_fill refuses them
    return _attend(x @ w_q, context @ w_k, context @ w_v, mask)


def cross_no_scale(x, context, w_q, w_k, w_v, context_mask=None):
    return _attend(x @ w_q, context @ w_k, context @ w_v, _mask(context_mask), scale=1.0)


def cross_mask_fill_zero(x, context, w_q, w_k, w_v, context_mask=None):
    return _attend(x @ w_q, context @ w_k, context @ w_v, _mask(context_mask), fill=0.0)


CORRECT: dict[str, Callable[..., object]] = {"self_attention": self_attention, "cross_attention": cross_attention}

MUTANTS: dict[str, tuple[str, Callable[..., object], str]] = {
    "self_no_scale": ("self_attention", self_no_scale, "not scaled"),
    "self_scale_by_width": ("self_attention", self_scale_by_width, "sqrt(D), the width of x"),
    "self_scale_by_d_v": ("self_attention", self_scale_by_d_v, "sqrt(d_v)"),
    "self_softmax_over_queries": ("self_attention", self_softmax_over_queries, "over the queries"),
    "self_q_k_swapped": ("self_attention", self_q_k_swapped, "queries and keys are swapped"),
    "self_weights_x": ("self_attention", self_weights_x, "D columns"),
    "self_mask_inverted": ("self_attention", self_mask_inverted, "inverted"),
    "self_mask_ignored": ("self_attention", self_mask_ignored, "the mask is ignored"),
    "self_mask_fill_zero": ("self_attention", self_mask_fill_zero, "exp(0) = 1"),
    "self_mask_after_softmax": ("self_attention", self_mask_after_softmax, "after the softmax"),
    "self_transposed_weights": ("self_attention", self_transposed_weights, "transposed"),
    "cross_keys_values_from_x": ("cross_attention", cross_keys_values_from_x, "T x T"),
    "cross_keys_from_x": ("cross_attention", cross_keys_from_x, "the keys come from x"),
    "cross_values_from_x": ("cross_attention", cross_values_from_x, "the values come from x"),
    "cross_queries_from_context": ("cross_attention", cross_queries_from_context, "trade places"),
    "cross_mask_on_query_axis": ("cross_attention", cross_mask_on_query_axis, "query axis"),
    "cross_mask_inverted": ("cross_attention", cross_mask_inverted, "inverted"),
    "cross_mask_ignored": ("cross_attention", cross_mask_ignored, "the mask is ignored"),
    "cross_int_mask_not_bool": ("cross_attention", cross_int_mask_not_bool, "1/0 integers"),
    "cross_no_scale": ("cross_attention", cross_no_scale, "not scaled"),
    "cross_mask_fill_zero": ("cross_attention", cross_mask_fill_zero, "exp(0) = 1"),
}
