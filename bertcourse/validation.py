"""The package's input checks, in one place, so that each model file reads like its equations.

Every check raises ``ValueError`` (``TypeError`` for a config of the wrong class) whose message names the
argument or the config field, before any large allocation and before torch would fail deep inside a
kernel or return a silent NaN. Model files call the few functions here; none of them repeats a check.
"""

from __future__ import annotations

import argparse
import math
import warnings
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "CACHE_DTYPES",
    "MAX_PARAMETERS",
    "TOKEN_ID_DTYPES",
    "check_attention_inputs",
    "check_attention_mask",
    "check_bool",
    "check_cache_pair",
    "check_config_class",
    "check_has_values",
    "check_inputs",
    "check_int",
    "check_multi_head_inputs",
    "check_parameter_budget",
    "check_positive",
    "check_probability",
    "check_token_ids",
    "deprecated_alias",
    "positive_int",
    "tracing",
]

MAX_PARAMETERS = 2**31
"""The most parameters a course config may ask for (about 2.1e9, 8.6 GB in float32): GPT-2 XL has 1.5e9.
A larger count is a typo (``d_model=10**6``) that would otherwise try to allocate terabytes."""

TOKEN_ID_DTYPES = (torch.int64, torch.int32)
"""The integer dtypes ``nn.Embedding`` reads; uint8 or int16 ids fail deep inside it, so they are refused."""


# ---- Python numbers -----------------------------------------------------------------------------------


def check_int(value: Any, name: str, minimum: int | None = None) -> int:
    """``value`` as an int (never a bool or float), at least ``minimum`` when given."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type of every command line's counts (seeds, jobs, steps, rounds, threads): an integer of at
    least 1, so that 0 is refused by the flag's name instead of meaning "none" or failing deep inside a run."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def check_probability(value: Any, name: str) -> float:
    """A dropout-like probability in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1), got {value!r}")
    return float(value)


def check_positive(value: Any, name: str) -> float:
    """A finite number > 0 (a learning rate, an epsilon, a temperature)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a bool, got {value!r}")
    return value


def deprecated_alias(old_value: Any, old_name: str, value: Any, name: str) -> Any:
    """``value``, or ``old_value`` when a caller still passes a renamed keyword (with a ``DeprecationWarning``)."""
    if old_value is None:
        return value
    warnings.warn(f"{old_name} is deprecated, use {name}", DeprecationWarning, stacklevel=3)
    return old_value


# ---- configs --------------------------------------------------------------------------------------------


def check_config_class(config: Any, config_class: type, model: str) -> None:
    """``TypeError`` unless ``config`` is a ``config_class`` (a dict is the usual mistake)."""
    if not isinstance(config, config_class):
        hint = f"; build one with {config_class.__name__}(**fields)" if isinstance(config, dict) else ""
        raise TypeError(f"{model} needs a {config_class.__name__}, got {type(config).__name__}{hint}")


def check_parameter_budget(name: str, parameters: int, fields: str) -> None:
    """Refuse a config whose parameter count (computed from its fields, nothing allocated) is absurd."""
    if parameters > MAX_PARAMETERS:
        raise ValueError(
            f"{name} would have {parameters:.3g} parameters (more than {MAX_PARAMETERS:.3g}, "
            f"{parameters * 4 / 2**30:.0f} GiB in float32): check {fields}"
        )


# ---- model inputs ---------------------------------------------------------------------------------------


def check_has_values(t: Tensor, name: str) -> None:
    """Refuse a tensor on the ``meta`` device: it has a shape but no values to read (``torch.device("meta")``
    builds models without allocating them; their inputs must be real tensors)."""
    if t.device.type == "meta":
        raise ValueError(
            f"{name} is on the meta device (a shape without values): pass a tensor with data, e.g. "
            f"torch.tensor(..., device='cpu'); a model built under torch.device('meta') needs "
            f"model.to_empty(device=...) and real weights first"
        )


def tracing() -> bool:
    """Whether ``torch.compile`` is tracing the caller. The checks of tensor *values* (ids in range, a 0/1
    mask) read them on the host: under compilation that would split the graph (and on a GPU it is a sync
    per call), so they are skipped there; shapes and dtypes are still checked. Eager calls check it all."""
    return torch.compiler.is_compiling()


def check_token_ids(ids: Any, name: str, vocab_size: int, max_len: int | None = None) -> None:
    """(B, T) int64/int32 ids in [0, vocab_size), 1 <= T <= max_len, with values (not on the meta device)."""
    if not isinstance(ids, Tensor) or ids.dim() != 2:
        got = tuple(ids.shape) if isinstance(ids, Tensor) else type(ids).__name__
        raise ValueError(f"{name} must be a (B, T) tensor, got {got}")
    check_has_values(ids, name)
    if ids.dtype not in TOKEN_ID_DTYPES:
        raise ValueError(f"{name} must be integer token ids (torch.long or torch.int32), got dtype {ids.dtype}")
    if ids.shape[1] == 0:
        raise ValueError(f"{name} must hold at least one token per sequence, got shape {tuple(ids.shape)}")
    if ids.numel() > 0 and not tracing():
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= vocab_size:
            raise ValueError(f"{name} must lie in [0, vocab_size={vocab_size}), got values in [{lo}, {hi}]")
    if max_len is not None and ids.shape[1] > max_len:
        raise ValueError(f"{name} has length {ids.shape[1]} > max_len={max_len}")


def check_attention_mask(mask: Any, shape: tuple[int, ...], name: str = "attention_mask") -> None:
    """A Hugging Face mask of ``shape``: booleans or integers, each 1 (token) or 0 (padding)."""
    if not isinstance(mask, Tensor) or tuple(mask.shape) != tuple(shape):
        got = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"{name} must have the shape of input_ids {tuple(shape)}, got {got}")
    check_has_values(mask, name)
    if mask.dtype != torch.bool:
        if mask.is_floating_point() or mask.is_complex():
            raise ValueError(f"{name} must hold 0/1 integers or booleans, got dtype {mask.dtype}")
        if mask.numel() and not tracing() and not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError(f"{name} must hold only 0 (padding) and 1 (token), got {mask.unique().tolist()}")


def check_inputs(
    input_ids: Tensor,
    attention_mask: Tensor | None = None,
    *,
    vocab_size: int,
    max_len: int | None = None,
    token_type_ids: Tensor | None = None,
    type_vocab_size: int | None = None,
) -> None:
    """Raise ``ValueError`` naming the argument when model inputs are malformed.

    ``input_ids`` must be (B, T) int64/int32 in [0, vocab_size), 1 <= T <= max_len; ``attention_mask``
    the same shape, 0/1; ``token_type_ids`` the same shape, integers in [0, type_vocab_size).
    """
    check_token_ids(input_ids, "input_ids", vocab_size, max_len)
    if attention_mask is not None:
        check_attention_mask(attention_mask, tuple(input_ids.shape))
    if token_type_ids is not None:
        if not isinstance(token_type_ids, Tensor) or token_type_ids.shape != input_ids.shape:
            got = tuple(token_type_ids.shape) if isinstance(token_type_ids, Tensor) else type(token_type_ids).__name__
            raise ValueError(f"token_type_ids must have the shape of input_ids {tuple(input_ids.shape)}, got {got}")
        check_has_values(token_type_ids, "token_type_ids")
        if token_type_ids.dtype not in TOKEN_ID_DTYPES:
            raise ValueError(
                f"token_type_ids must be integer segment ids (torch.long), got dtype {token_type_ids.dtype}"
            )
        if type_vocab_size is not None and token_type_ids.numel() > 0 and not tracing():
            lo, hi = int(token_type_ids.min()), int(token_type_ids.max())
            if lo < 0 or hi >= type_vocab_size:
                raise ValueError(f"token_type_ids must lie in [0, type_vocab_size={type_vocab_size}), got [{lo}, {hi}]")


# ---- attention ------------------------------------------------------------------------------------------


def check_attention_inputs(q: Any, k: Any, v: Any, attn_mask: Any, scale: Any, dropout_p: Any) -> torch.Size | None:
    """Validate the arguments of ``scaled_dot_product_attention``; return the common batch shape when
    q, k and v must be expanded to it (the fused kernel does not broadcast them all), else None."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() < 2:
            raise ValueError(f"{name} must have shape (..., L, d), got {tuple(t.shape)}")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k and v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not q.is_floating_point():
        raise ValueError(f"q, k and v must be floating-point tensors, got dtype {q.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k and v must be on one device, got {q.device}, {k.device}, {v.device}")
    qs, ks, vs = q.shape, k.shape, v.shape
    if qs[-1] != ks[-1]:
        raise ValueError(f"q and k must have the same head size d_k, got q {tuple(qs)} and k {tuple(ks)}")
    if qs[-1] == 0:
        raise ValueError(f"q and k must have a head size d_k >= 1, got q {tuple(qs)}")
    if ks[-2] != vs[-2]:
        raise ValueError(f"k and v must have the same length L_k, got k {tuple(ks)} and v {tuple(vs)}")
    if scale is not None and (
        isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale)
    ):
        raise ValueError(f"scale must be None or a finite number, got {scale!r}")
    if isinstance(dropout_p, bool) or not isinstance(dropout_p, (int, float)) or not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p!r}")
    batch = qs[:-2]
    expand = None if batch == ks[:-2] == vs[:-2] else _broadcast_batch(q, k, v)
    if attn_mask is not None:
        _check_attn_mask(attn_mask, q, k, batch if expand is None else expand)
    return expand


def _broadcast_batch(q: Tensor, k: Tensor, v: Tensor) -> torch.Size:
    """The batch shape that q, k and v broadcast to."""
    try:
        return torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"batch dimensions of q {tuple(q.shape)}, k {tuple(k.shape)} and v {tuple(v.shape)} do not broadcast"
        ) from None


def _check_attn_mask(attn_mask: Any, q: Tensor, k: Tensor, batch: torch.Size) -> None:
    """The mask is boolean, on q's device, and broadcasts to (..., L_q, L_k)."""
    if not isinstance(attn_mask, Tensor) or attn_mask.dtype != torch.bool:
        got = attn_mask.dtype if isinstance(attn_mask, Tensor) else type(attn_mask).__name__
        raise ValueError(f"attn_mask must be a boolean tensor (True = may attend), got {got}")
    if attn_mask.device != q.device:
        raise ValueError(f"attn_mask is on {attn_mask.device} but q is on {q.device}")
    target = (*batch, q.shape[-2], k.shape[-2])
    try:
        broadcast = torch.broadcast_shapes(attn_mask.shape, target)
    except RuntimeError:
        broadcast = None
    if broadcast != torch.Size(target):
        raise ValueError(
            f"attn_mask of shape {tuple(attn_mask.shape)} does not broadcast to (..., L_q, L_k) = {target}"
        )


CACHE_DTYPES = (torch.bfloat16, torch.float16)
"""The lower-precision dtypes a key/value cache may have besides the weights' own."""


def check_cache_pair(past_key_value: Any, expected: str = "(B, h, T_past, d)") -> tuple[Tensor, Tensor]:
    """A layer's key/value cache as a (key, value) pair of 4-D tensors, or a ``ValueError`` naming it."""
    pair = past_key_value if isinstance(past_key_value, (tuple, list)) and len(past_key_value) == 2 else None
    if pair is None or not all(isinstance(t, Tensor) and t.dim() == 4 for t in pair):
        raise ValueError(f"past_key_value must be a (key, value) pair of {expected} tensors")
    return pair[0], pair[1]


def check_multi_head_inputs(
    x: Any, context: Any, attention_mask: Any, is_causal: bool, past_key_value: Any, n_heads: int, weight: Tensor
) -> None:
    """Validate ``MultiHeadAttention.forward``'s arguments: (B, L, d_model) inputs of the weights' dtype,
    a (B, L_k) key mask covering past and new keys, and a (key, value) cache of (B, h, T_past, d) tensors
    (one dtype for both: the weights' own or a 16-bit float, :data:`CACHE_DTYPES`)."""
    d_model = weight.shape[1]
    d_head = d_model // n_heads
    for name, t in (("x", x), ("context", context)):
        if t is None:
            continue
        if not isinstance(t, Tensor) or t.dim() != 3 or t.shape[-1] != d_model:
            got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            layout = f"(B, L, d_model={d_model})" if name == "x" else f"(B={x.shape[0]}, L_k, d_model={d_model})"
            raise ValueError(f"{name} must be {layout}, got {got}")
        if t.dtype != weight.dtype:
            raise ValueError(
                f"{name} has dtype {t.dtype} but the weights are {weight.dtype}: "
                f"convert one (module.to({t.dtype}) or {name}.to({weight.dtype}))"
            )
    if context is not None and context.shape[0] != x.shape[0]:
        raise ValueError(f"context must be (B={x.shape[0]}, L_k, d_model={d_model}), got {tuple(context.shape)}")
    if context is not None and is_causal:
        raise ValueError("is_causal applies to self-attention; cross-attention takes attn_mask instead")
    if past_key_value is not None:
        expected = f"(B={x.shape[0]}, h={n_heads}, T_past, d={d_head})"
        dtypes = (weight.dtype, *CACHE_DTYPES)
        pair = check_cache_pair(past_key_value, expected)
        for name, t in (("key", pair[0]), ("value", pair[1])):
            if (t.shape[0], t.shape[1], t.shape[3]) != (x.shape[0], n_heads, d_head) or t.dtype not in dtypes:
                raise ValueError(
                    f"past_key_value {name} must be {expected} {weight.dtype} (or a 16-bit float cache), "
                    f"got {tuple(t.shape)} {t.dtype}"
                )
            if t.device != weight.device:
                raise ValueError(f"past_key_value {name} is on {t.device} but the weights are on {weight.device}")
        if pair[0].dtype != pair[1].dtype:
            raise ValueError(f"past_key_value key and value dtypes differ: {pair[0].dtype} vs {pair[1].dtype}")
        if pair[0].shape[2] != pair[1].shape[2]:
            raise ValueError(f"past_key_value key and value lengths differ: {pair[0].shape[2]} vs {pair[1].shape[2]}")
    if attention_mask is not None:
        L_k = (x if context is None else context).shape[1] + (
            0 if past_key_value is None else past_key_value[0].shape[2]
        )
        if not isinstance(attention_mask, Tensor) or tuple(attention_mask.shape) != (x.shape[0], L_k):
            got = tuple(attention_mask.shape) if isinstance(attention_mask, Tensor) else type(attention_mask).__name__
            raise ValueError(f"attention_mask must be (B, L_k) = {(x.shape[0], L_k)}, got {got}")
