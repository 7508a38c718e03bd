"""Exercise 05 answers: the correct ones (``CORRECT``) and one mutant per typical mistake (``MUTANTS``).

``MUTANTS`` maps a name to (the learner function it stands for, the mutant, a phrase the failing hint
must contain).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def causal_lm_loss(
    logits: Tensor, input_ids: Tensor, attention_mask: Tensor | None = None, shift: int = 1, on_targets: bool = True
) -> Tensor:
    """The right answer; ``shift`` and ``on_targets`` let mutants change one thing."""
    if shift == 1:
        preds, targets = logits[:, :-1], input_ids[:, 1:]  # (B, T-1, V), (B, T-1)
    elif shift == -1:
        preds, targets = logits[:, 1:], input_ids[:, :-1]
    else:
        preds, targets = logits, input_ids
    if attention_mask is not None:
        keep = attention_mask[:, 1:] if on_targets else attention_mask[:, :-1]
        targets = targets.masked_fill(keep == 0, -100)
    return F.cross_entropy(preds.reshape(-1, preds.shape[-1]), targets.reshape(-1), ignore_index=-100)


def top_k_filter(logits: Tensor, k: int, keep: int | None = None, fill: float = -math.inf) -> Tensor:
    kth = logits.topk(k if keep is None else keep, dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, fill)


def sample_next_token(
    logits: Tensor, temperature: float = 1.0, top_k: int | None = None, generator: torch.Generator | None = None
) -> Tensor:
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    probs = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def generate_greedy(model: torch.nn.Module, input_ids: Tensor, max_new_tokens: int) -> Tensor:
    tokens = input_ids
    for _ in range(max_new_tokens):
        next_token = model(tokens).logits[:, -1].argmax(dim=-1, keepdim=True)  # (B, 1)
        tokens = torch.cat([tokens, next_token], dim=1)
    return tokens


# --------------------------------------------------------------------------------- causal_lm_loss mutants


def loss_no_shift(logits: Tensor, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
    return causal_lm_loss(logits, input_ids, attention_mask, shift=0)


def loss_wrong_shift(logits: Tensor, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
    return causal_lm_loss(logits, input_ids, attention_mask, shift=-1)


def loss_padding_counted(logits: Tensor, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
    return causal_lm_loss(logits, input_ids)


def loss_mask_on_predictions(logits: Tensor, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
    return causal_lm_loss(logits, input_ids, attention_mask, on_targets=False)


def loss_summed(logits: Tensor, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
    targets = (
        input_ids[:, 1:] if attention_mask is None else input_ids[:, 1:].masked_fill(attention_mask[:, 1:] == 0, -100)
    )
    flat = logits[:, :-1].reshape(-1, logits.shape[-1])
    return F.cross_entropy(flat, targets.reshape(-1), ignore_index=-100, reduction="sum")


def loss_per_position(logits: Tensor, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
    return F.cross_entropy(logits[:, :-1].transpose(1, 2), input_ids[:, 1:], reduction="none")  # (B, T-1)


def loss_divides_by_all_positions(logits: Tensor, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
    keep = torch.ones_like(input_ids[:, 1:]) if attention_mask is None else attention_mask[:, 1:]
    per_token = F.cross_entropy(logits[:, :-1].transpose(1, 2), input_ids[:, 1:], reduction="none")  # (B, T-1)
    return (per_token * keep).sum() / per_token.numel()


def loss_per_sequence_mean(logits: Tensor, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
    keep = torch.ones_like(input_ids[:, 1:]) if attention_mask is None else attention_mask[:, 1:]
    per_token = F.cross_entropy(logits[:, :-1].transpose(1, 2), input_ids[:, 1:], reduction="none")  # (B, T-1)
    return ((per_token * keep).sum(1) / keep.sum(1)).mean()


# ----------------------------------------------------------------------------------- top_k_filter mutants


def top_k_keeps_one_more(logits: Tensor, k: int) -> Tensor:
    return top_k_filter(logits, k, keep=min(k + 1, logits.shape[-1]))


def top_k_keeps_one_less(logits: Tensor, k: int) -> Tensor:
    return top_k_filter(logits, k, keep=max(k - 1, 1)) if k > 1 else top_k_filter(logits, k)


def top_k_fills_zero(logits: Tensor, k: int) -> Tensor:
    return top_k_filter(logits, k, fill=0.0)


def top_k_fills_large_negative(logits: Tensor, k: int) -> Tensor:
    return top_k_filter(logits, k, fill=-1e9)


def top_k_smallest(logits: Tensor, k: int) -> Tensor:
    kth = logits.topk(k, dim=-1, largest=False).values[..., -1:]
    return logits.masked_fill(logits > kth, -math.inf)


def top_k_over_batch(logits: Tensor, k: int) -> Tensor:
    kth = logits.flatten().topk(k * logits.shape[0]).values[-1]
    return logits.masked_fill(logits < kth, -math.inf)


def top_k_returns_values(logits: Tensor, k: int) -> Tensor:
    return logits.topk(k, dim=-1).values


def top_k_in_place(logits: Tensor, k: int) -> Tensor:
    kth = logits.topk(k, dim=-1).values[..., -1:]
    return logits.masked_fill_(logits < kth, -math.inf)


# ------------------------------------------------------------------------------ sample_next_token mutants


def sample_argmax(
    logits: Tensor, temperature: float = 1.0, top_k: int | None = None, generator: torch.Generator | None = None
) -> Tensor:
    return logits.argmax(dim=-1)


def sample_temperature_multiplied(
    logits: Tensor, temperature: float = 1.0, top_k: int | None = None, generator: torch.Generator | None = None
) -> Tensor:
    return sample_next_token(logits * temperature**2, temperature, top_k, generator)  # net effect: logits * T


def sample_temperature_ignored(
    logits: Tensor, temperature: float = 1.0, top_k: int | None = None, generator: torch.Generator | None = None
) -> Tensor:
    return sample_next_token(logits, 1.0, top_k, generator)


def sample_top_k_ignored(
    logits: Tensor, temperature: float = 1.0, top_k: int | None = None, generator: torch.Generator | None = None
) -> Tensor:
    return sample_next_token(logits, temperature, None, generator)


def sample_top_k_off_by_one(
    logits: Tensor, temperature: float = 1.0, top_k: int | None = None, generator: torch.Generator | None = None
) -> Tensor:
    return sample_next_token(logits, temperature, None if top_k is None else top_k + 1, generator)


def sample_ignores_generator(
    logits: Tensor, temperature: float = 1.0, top_k: int | None = None, generator: torch.Generator | None = None
) -> Tensor:
    return sample_next_token(logits, temperature, top_k, None)


def sample_first_row_only(
    logits: Tensor, temperature: float = 1.0, top_k: int | None = None, generator: torch.Generator | None = None
) -> Tensor:
    return sample_next_token(logits[:1].expand_as(logits), temperature, top_k, generator)


def sample_keeps_axis(
    logits: Tensor, temperature: float = 1.0, top_k: int | None = None, generator: torch.Generator | None = None
) -> Tensor:
    return sample_next_token(logits, temperature, top_k, generator)[:, None]


# -------------------------------------------------------------------------------- generate_greedy mutants


@torch.no_grad()
def greedy_first_position(model: torch.nn.Module, input_ids: Tensor, max_new_tokens: int) -> Tensor:
    tokens = input_ids
    for _ in range(max_new_tokens):
        tokens = torch.cat([tokens, model(tokens).logits[:, 0].argmax(dim=-1, keepdim=True)], dim=1)
    return tokens


@torch.no_grad()
def greedy_no_feedback(model: torch.nn.Module, input_ids: Tensor, max_new_tokens: int) -> Tensor:
    tokens = input_ids
    for _ in range(max_new_tokens):
        tokens = torch.cat([tokens, model(input_ids).logits[:, -1].argmax(dim=-1, keepdim=True)], dim=1)
    return tokens


@torch.no_grad()
def greedy_new_tokens_only(model: torch.nn.Module, input_ids: Tensor, max_new_tokens: int) -> Tensor:
    return generate_greedy(model, input_ids, max_new_tokens)[:, input_ids.shape[1] :]


@torch.no_grad()
def greedy_one_extra(model: torch.nn.Module, input_ids: Tensor, max_new_tokens: int) -> Tensor:
    return generate_greedy(model, input_ids, max_new_tokens + 1)


CORRECT: dict[str, Callable[..., object]] = {
    "causal_lm_loss": causal_lm_loss,
    "top_k_filter": top_k_filter,
    "sample_next_token": sample_next_token,
    "generate_greedy": generate_greedy,
}

MUTANTS: dict[str, tuple[str, Callable[..., object], str]] = {
    "loss_no_shift": ("causal_lm_loss", loss_no_shift, "no shift"),
    "loss_wrong_shift": ("causal_lm_loss", loss_wrong_shift, "shifted the wrong way"),
    "loss_padding_counted": ("causal_lm_loss", loss_padding_counted, "padding is not ignored"),
    "loss_mask_on_predictions": ("causal_lm_loss", loss_mask_on_predictions, "applied to the predicting positions"),
    "loss_summed": ("causal_lm_loss", loss_summed, "summed over the targets"),
    "loss_per_position": ("causal_lm_loss", loss_per_position, "one loss per position"),
    "loss_divides_by_all_positions": ("causal_lm_loss", loss_divides_by_all_positions, "divided by all"),
    "loss_per_sequence_mean": ("causal_lm_loss", loss_per_sequence_mean, "averaged per sequence"),
    "top_k_keeps_one_more": ("top_k_filter", top_k_keeps_one_more, "k + 1 entries"),
    "top_k_keeps_one_less": ("top_k_filter", top_k_keeps_one_less, "k - 1 entries"),
    "top_k_fills_zero": ("top_k_filter", top_k_fills_zero, "set to 0"),
    "top_k_fills_large_negative": ("top_k_filter", top_k_fills_large_negative, "large negative"),
    "top_k_smallest": ("top_k_filter", top_k_smallest, "*smallest*"),
    "top_k_over_batch": ("top_k_filter", top_k_over_batch, "over the whole batch"),
    "top_k_returns_values": ("top_k_filter", top_k_returns_values, "return all V entries"),
    "top_k_in_place": ("top_k_filter", top_k_in_place, "in place"),
    "sample_argmax": ("sample_next_token", sample_argmax, "greedy decoding"),
    "sample_temperature_multiplied": ("sample_next_token", sample_temperature_multiplied, "multiplies the logits"),
    "sample_temperature_ignored": ("sample_next_token", sample_temperature_ignored, "no effect"),
    "sample_top_k_ignored": ("sample_next_token", sample_top_k_ignored, "top_k was ignored"),
    "sample_top_k_off_by_one": ("sample_next_token", sample_top_k_off_by_one, "off by one"),
    "sample_ignores_generator": ("sample_next_token", sample_ignores_generator, "ignore the generator"),
    "sample_first_row_only": ("sample_next_token", sample_first_row_only, "other row's distribution"),
    "sample_keeps_axis": ("sample_next_token", sample_keeps_axis, "squeeze"),
    "greedy_first_position": ("generate_greedy", greedy_first_position, "first position"),
    "greedy_no_feedback": ("generate_greedy", greedy_no_feedback, "not fed back"),
    "greedy_new_tokens_only": ("generate_greedy", greedy_new_tokens_only, "not the new tokens alone"),
    "greedy_one_extra": ("generate_greedy", greedy_one_extra, "expected shape"),
}
