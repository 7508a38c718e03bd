"""Exercise 03 answers: the correct ones (``CORRECT``) and one mutant per typical mistake (``MUTANTS``).

``MUTANTS`` maps a name to (the learner function it stands for, the mutant, a phrase the failing hint
must contain).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor


def split_heads(x: Tensor, n_heads: int) -> Tensor:
    B, T, H = x.shape
    return x.view(B, T, n_heads, H // n_heads).transpose(1, 2)  # (B, T, H) -> (B, h, T, d)


def merge_heads(x: Tensor) -> Tensor:
    B, h, T, d = x.shape
    return x.transpose(1, 2).reshape(B, T, h * d)  # (B, h, T, d) -> (B, T, H)


def layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    mu = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True, unbiased=False)
    return weight * (x - mu) / torch.sqrt(var + eps) + bias


def multi_head_self_attention(
    x, w_qkv, b_qkv, w_o, b_o, n_heads, mask=None, *, order=(0, 1, 2), scale=None, split=None, merge=None, proj=True
):
    """The right answer; the keyword knobs let mutants change one thing."""
    split = split_heads if split is None else split
    merge = merge_heads if merge is None else merge
    H = x.shape[-1]
    chunks = (x @ w_qkv.T + b_qkv).split(H, dim=-1)
    q, k, v = (split(chunks[i], n_heads) for i in order)
    scale = 1 / math.sqrt(H // n_heads) if scale is None else scale
    scores = q @ k.transpose(-2, -1) * scale
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf)
    z = merge(torch.softmax(scores, dim=-1) @ v)
    return z @ w_o.T + b_o if proj else z


# ----------------------------------------------------------------------------------------- split / merge


def split_bare_view(x, n_heads):
    B, T, H = x.shape
    return x.reshape(B, n_heads, T, H // n_heads)  # right shape, positions mixed


def split_no_transpose(x, n_heads):
    B, T, H = x.shape
    return x.view(B, T, n_heads, H // n_heads)


def split_fixed_heads(x, n_heads):
    return split_heads(x, 3)


def split_swapped_sizes(x, n_heads):
    B, T, H = x.shape
    return x.view(B, T, H // n_heads, n_heads).transpose(1, 2)


def merge_bare_reshape(x):
    B, h, T, d = x.shape
    return x.reshape(B, T, h * d)


def merge_no_concat(x):
    return x.transpose(1, 2)


# -------------------------------------------------------------------------------------------- layer norm


def ln_unbiased(x, weight, bias, eps=1e-5):
    return weight * (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True) + eps) + bias


def ln_wrong_axis(x, weight, bias, eps=1e-5):
    mu, var = x.mean(1, keepdim=True), x.var(1, keepdim=True, unbiased=False)
    return weight * (x - mu) / torch.sqrt(var + eps) + bias


def ln_whole_tensor(x, weight, bias, eps=1e-5):
    return weight * (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + eps) + bias


def ln_no_affine(x, weight, bias, eps=1e-5):
    return layer_norm(x, torch.ones_like(weight), torch.zeros_like(bias), eps)


def ln_swapped_affine(x, weight, bias, eps=1e-5):
    return layer_norm(x, bias, weight, eps)


def ln_eps_outside(x, weight, bias, eps=1e-5):
    return weight * (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True, unbiased=False) + eps) + bias


def ln_eps_ignored(x, weight, bias, eps=1e-5):
    return layer_norm(x, weight, bias, 0.0)


def ln_eps_fixed(x, weight, bias, eps=1e-5):
    return layer_norm(x, weight, bias, 1e-5)


def ln_in_place(x, weight, bias, eps=1e-5):
    x -= x.mean(-1, keepdim=True)
    return weight * x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) + bias


# ------------------------------------------------------------------------------ multi-head self-attention


def mha_bare_view(x, w_qkv, b_qkv, w_o, b_o, n_heads, mask=None):
    return multi_head_self_attention(x, w_qkv, b_qkv, w_o, b_o, n_heads, mask, split=split_bare_view)


def mha_bare_merge(x, w_qkv, b_qkv, w_o, b_o, n_heads, mask=None):
    return multi_head_self_attention(x, w_qkv, b_qkv, w_o, b_o, n_heads, mask, merge=merge_bare_reshape)


def mha_kqv_order(x, w_qkv, b_qkv, w_o, b_o, n_heads, mask=None):
    return multi_head_self_attention(x, w_qkv, b_qkv, w_o, b_o, n_heads, mask, order=(1, 0, 2))


def mha_vkq_order(x, w_qkv, b_qkv, w_o, b_o, n_heads, mask=None):
    return multi_head_self_attention(x, w_qkv, b_qkv, w_o, b_o, n_heads, mask, order=(2, 1, 0))


def mha_scale_sqrt_width(x, w_qkv, b_qkv, w_o, b_o, n_heads, mask=None):
    return multi_head_self_attention(x, w_qkv, b_qkv, w_o, b_o, n_heads, mask, scale=1 / math.sqrt(x.shape[-1]))


def mha_no_out_proj(x, w_qkv, b_qkv, w_o, b_o, n_heads, mask=None):
    return multi_head_self_attention(x, w_qkv, b_qkv, w_o, b_o, n_heads, mask, proj=False)


def mha_no_qkv_bias(x, w_qkv, b_qkv, w_o, b_o, n_heads, mask=None):
    return multi_head_self_attention(x, w_qkv, torch.zeros_like(b_qkv), w_o, b_o, n_heads, mask)


def mha_not_transposed(x, w_qkv, b_qkv, w_o, b_o, n_heads, mask=None):
    return (x @ w_qkv + b_qkv) @ w_o + b_o  # (H, 3H) read as (in, out): fails on shapes


def mha_mask_inverted(x, w_qkv, b_qkv, w_o, b_o, n_heads, mask=None):
    return multi_head_self_attention(x, w_qkv, b_qkv, w_o, b_o, n_heads, None if mask is None else ~mask)


def mha_mask_ignored(x, w_qkv, b_qkv, w_o, b_o, n_heads, mask=None):
    return multi_head_self_attention(x, w_qkv, b_qkv, w_o, b_o, n_heads)


def mha_fixed_heads(x, w_qkv, b_qkv, w_o, b_o, n_heads, mask=None):
    return multi_head_self_attention(x, w_qkv, b_qkv, w_o, b_o, 3, mask)


def mha_bare_view_error(x, w_qkv, b_qkv, w_o, b_o, n_heads, mask=None):
    def split(t, n):
        B, T, H = t.shape
        return t.view(B, n, T, H // n)  # a non-contiguous chunk: view raises

    return multi_head_self_attention(x, w_qkv, b_qkv, w_o, b_o, n_heads, mask, split=split)


CORRECT: dict[str, Callable[..., object]] = {
    "split_heads": split_heads,
    "merge_heads": merge_heads,
    "layer_norm": layer_norm,
    "multi_head_self_attention": multi_head_self_attention,
}

MUTANTS: dict[str, tuple[str, Callable[..., object], str]] = {
    "split_bare_view": ("split_heads", split_bare_view, "bare view"),
    "split_no_transpose": ("split_heads", split_no_transpose, "heads axis must come before"),
    "split_fixed_heads": ("split_heads", split_fixed_heads, "expected shape"),
    "split_swapped_sizes": ("split_heads", split_swapped_sizes, "H // n_heads heads of size n_heads"),
    "merge_bare_reshape": ("merge_heads", merge_bare_reshape, "bare reshape"),
    "merge_no_concat": ("merge_heads", merge_no_concat, "not concatenated"),
    "ln_unbiased": ("layer_norm", ln_unbiased, "unbiased"),
    "ln_wrong_axis": ("layer_norm", ln_wrong_axis, "over the positions"),
    "ln_whole_tensor": ("layer_norm", ln_whole_tensor, "all of x at once"),
    "ln_no_affine": ("layer_norm", ln_no_affine, "not applied"),
    "ln_swapped_affine": ("layer_norm", ln_swapped_affine, "swapped"),
    "ln_eps_outside": ("layer_norm", ln_eps_outside, "standard deviation"),
    "ln_eps_ignored": ("layer_norm", ln_eps_ignored, "eps is ignored"),
    "ln_eps_fixed": ("layer_norm", ln_eps_fixed, "whatever eps is passed"),
    "ln_in_place": ("layer_norm", ln_in_place, "in place"),
    "mha_bare_view": ("multi_head_self_attention", mha_bare_view, "bare view"),
    "mha_bare_view_error": ("multi_head_self_attention", mha_bare_view_error, "view never moves data"),
    "mha_bare_merge": ("multi_head_self_attention", mha_bare_merge, "bare reshape"),
    "mha_kqv_order": ("multi_head_self_attention", mha_kqv_order, "order k, q, v"),
    "mha_vkq_order": ("multi_head_self_attention", mha_vkq_order, "order v, k, q"),
    "mha_scale_sqrt_width": ("multi_head_self_attention", mha_scale_sqrt_width, "sqrt(H)"),
    "mha_no_out_proj": ("multi_head_self_attention", mha_no_out_proj, "output projection"),
    "mha_no_qkv_bias": ("multi_head_self_attention", mha_no_qkv_bias, "b_qkv is not added"),
    "mha_not_transposed": ("multi_head_self_attention", mha_not_transposed, "nn.Linear stores its weight"),
    "mha_mask_inverted": ("multi_head_self_attention", mha_mask_inverted, "inverted"),
    "mha_mask_ignored": ("multi_head_self_attention", mha_mask_ignored, "the mask is ignored"),
    "mha_fixed_heads": ("multi_head_self_attention", mha_fixed_heads, "values differ"),
}
