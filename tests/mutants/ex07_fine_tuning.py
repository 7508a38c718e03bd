"""Exercise 07 answers: the correct ones (``CORRECT``) and one mutant per typical mistake (``MUTANTS``).

``MUTANTS`` maps a name to (the learner function it stands for, the mutant, a phrase the failing hint
must contain).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor


def mean_pool(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def warmup_cosine_lr(step: int, warmup_steps: int, total_steps: int, peak_lr: float, min_lr: float = 0.0) -> float:
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + (peak_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


def accuracy_by_group(predictions: Tensor, labels: Tensor, groups: Sequence[str]) -> dict[str, float]:
    correct = (predictions == labels).tolist()
    result = {}
    for group in dict.fromkeys(groups):
        mine = [c for c, g in zip(correct, groups, strict=True) if g == group]
        result[group] = sum(mine) / len(mine)
    result["all"] = sum(correct) / len(correct)
    return result


# -------------------------------------------------------------------------------------- mean_pool mutants


def pool_over_all_positions(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    return hidden.mean(dim=1)


def pool_sum(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    return (hidden * attention_mask.unsqueeze(-1)).sum(dim=1)


def pool_divide_by_length(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    return (hidden * attention_mask.unsqueeze(-1)).sum(dim=1) / hidden.shape[1]


def pool_batch_count(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    return (hidden * attention_mask.unsqueeze(-1)).sum(dim=1) / attention_mask.sum()


def pool_no_clamp(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1)


def pool_in_place(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    hidden *= attention_mask.unsqueeze(-1)
    return hidden.sum(dim=1) / attention_mask.sum(dim=1, keepdim=True).clamp(min=1)


def pool_mask_not_expanded(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    return (hidden * attention_mask).sum(dim=1) / attention_mask.sum(dim=1, keepdim=True)  # (B, T, H) * (B, T)


def pool_over_hidden_too(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    return mean_pool(hidden, attention_mask).mean(dim=-1)


def pool_float64_always(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    return mean_pool(hidden.double(), attention_mask)


# ------------------------------------------------------------------------------------- schedule mutants


def lr_off_by_one(step: int, warmup_steps: int, total_steps: int, peak_lr: float, min_lr: float = 0.0) -> float:
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    return warmup_cosine_lr(step, warmup_steps, total_steps, peak_lr, min_lr)


def lr_linear_decay(step: int, warmup_steps: int, total_steps: int, peak_lr: float, min_lr: float = 0.0) -> float:
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    if step >= total_steps:
        return min_lr
    return min_lr + (peak_lr - min_lr) * (1 - (step - warmup_steps) / (total_steps - warmup_steps))


def lr_progress_from_zero(step: int, warmup_steps: int, total_steps: int, peak_lr: float, min_lr: float = 0.0) -> float:
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    if step >= total_steps:
        return min_lr
    return min_lr + (peak_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * step / total_steps))


def lr_plain_cosine(step: int, warmup_steps: int, total_steps: int, peak_lr: float, min_lr: float = 0.0) -> float:
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    if step >= total_steps:
        return min_lr
    return min_lr + (peak_lr - min_lr) * math.cos(math.pi * (step - warmup_steps) / (total_steps - warmup_steps))


def lr_quarter_cosine(step: int, warmup_steps: int, total_steps: int, peak_lr: float, min_lr: float = 0.0) -> float:
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    if step >= total_steps:
        return min_lr
    return min_lr + (peak_lr - min_lr) * math.cos(math.pi / 2 * (step - warmup_steps) / (total_steps - warmup_steps))


def lr_min_added(step: int, warmup_steps: int, total_steps: int, peak_lr: float, min_lr: float = 0.0) -> float:
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    if step >= total_steps:
        return min_lr
    return min_lr + peak_lr * 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / (total_steps - warmup_steps)))


def lr_min_clipped(step: int, warmup_steps: int, total_steps: int, peak_lr: float, min_lr: float = 0.0) -> float:
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    return max(min_lr, warmup_cosine_lr(step, warmup_steps, total_steps, peak_lr))


def lr_ignores_min(step: int, warmup_steps: int, total_steps: int, peak_lr: float, min_lr: float = 0.0) -> float:
    return warmup_cosine_lr(step, warmup_steps, total_steps, peak_lr)


def lr_cosine_goes_on(step: int, warmup_steps: int, total_steps: int, peak_lr: float, min_lr: float = 0.0) -> float:
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + (peak_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


def lr_zero_after(step: int, warmup_steps: int, total_steps: int, peak_lr: float, min_lr: float = 0.0) -> float:
    return 0.0 if step > total_steps else warmup_cosine_lr(step, warmup_steps, total_steps, peak_lr, min_lr)


def lr_divides_by_warmup(step: int, warmup_steps: int, total_steps: int, peak_lr: float, min_lr: float = 0.0) -> float:
    warm = step / warmup_steps  # ZeroDivisionError when there is no warm-up
    if warm < 1:
        return peak_lr * warm
    return warmup_cosine_lr(step, warmup_steps, total_steps, peak_lr, min_lr)


def lr_returns_tensor(step: int, warmup_steps: int, total_steps: int, peak_lr: float, min_lr: float = 0.0) -> Tensor:
    return torch.tensor(warmup_cosine_lr(step, warmup_steps, total_steps, peak_lr, min_lr), dtype=torch.float64)


# ----------------------------------------------------------------------------------- accuracy mutants


def accuracy_counts(predictions: Tensor, labels: Tensor, groups: Sequence[str]) -> dict[str, float]:
    result = accuracy_by_group(predictions, labels, groups)
    correct = (predictions == labels).tolist()
    return {
        **{g: float(sum(c for c, h in zip(correct, groups, strict=True) if h == g)) for g in dict.fromkeys(groups)},
        "all": result["all"],
    }


def accuracy_over_all_items(predictions: Tensor, labels: Tensor, groups: Sequence[str]) -> dict[str, float]:
    correct = (predictions == labels).tolist()
    result = {
        g: sum(c for c, h in zip(correct, groups, strict=True) if h == g) / len(groups) for g in dict.fromkeys(groups)
    }
    return {**result, "all": sum(correct) / len(correct)}


def accuracy_macro_all(predictions: Tensor, labels: Tensor, groups: Sequence[str]) -> dict[str, float]:
    result = accuracy_by_group(predictions, labels, groups)
    per_group = [v for k, v in result.items() if k != "all"]
    return {**result, "all": sum(per_group) / len(per_group)}


def accuracy_no_all(predictions: Tensor, labels: Tensor, groups: Sequence[str]) -> dict[str, float]:
    result = accuracy_by_group(predictions, labels, groups)
    del result["all"]
    return result


def accuracy_tensor_values(predictions: Tensor, labels: Tensor, groups: Sequence[str]) -> dict[str, object]:
    correct = (predictions == labels).double()
    mask = {g: torch.tensor([h == g for h in groups]) for g in dict.fromkeys(groups)}
    return {**{g: correct[m].mean() for g, m in mask.items()}, "all": correct.mean()}


def accuracy_error_rate(predictions: Tensor, labels: Tensor, groups: Sequence[str]) -> dict[str, float]:
    return {k: 1 - v for k, v in accuracy_by_group(predictions, labels, groups).items()}


def accuracy_in_place(predictions: Tensor, labels: Tensor, groups: Sequence[str]) -> dict[str, float]:
    result = accuracy_by_group(predictions, labels, groups)
    predictions.zero_()
    return result


CORRECT: dict[str, Callable[..., object]] = {
    "mean_pool": mean_pool,
    "warmup_cosine_lr": warmup_cosine_lr,
    "accuracy_by_group": accuracy_by_group,
}

MUTANTS: dict[str, tuple[str, Callable[..., object], str]] = {
    "pool_over_all_positions": ("mean_pool", pool_over_all_positions, "padding was averaged in"),
    "pool_sum": ("mean_pool", pool_sum, "summed, not averaged"),
    "pool_divide_by_length": ("mean_pool", pool_divide_by_length, "divided by T"),
    "pool_batch_count": ("mean_pool", pool_batch_count, "whole batch"),
    "pool_no_clamp": ("mean_pool", pool_no_clamp, "0 / 0"),
    "pool_in_place": ("mean_pool", pool_in_place, "in place"),
    "pool_mask_not_expanded": ("mean_pool", pool_mask_not_expanded, "broadcasting aligns the *last* axes"),
    "pool_over_hidden_too": ("mean_pool", pool_over_hidden_too, "hidden axis too"),
    "pool_float64_always": ("mean_pool", pool_float64_always, "expected dtype torch.float32"),
    "lr_off_by_one": ("warmup_cosine_lr", lr_off_by_one, "off by one"),
    "lr_linear_decay": ("warmup_cosine_lr", lr_linear_decay, "linear, not a cosine"),
    "lr_progress_from_zero": ("warmup_cosine_lr", lr_progress_from_zero, "counts from step 0"),
    "lr_plain_cosine": ("warmup_cosine_lr", lr_plain_cosine, "not halved and shifted"),
    "lr_quarter_cosine": ("warmup_cosine_lr", lr_quarter_cosine, "quarter cosine"),
    "lr_min_added": ("warmup_cosine_lr", lr_min_added, "added on top"),
    "lr_min_clipped": ("warmup_cosine_lr", lr_min_clipped, "clipped at min_lr"),
    "lr_ignores_min": ("warmup_cosine_lr", lr_ignores_min, "min_lr is ignored"),
    "lr_cosine_goes_on": ("warmup_cosine_lr", lr_cosine_goes_on, "climbs back up"),
    "lr_zero_after": ("warmup_cosine_lr", lr_zero_after, "rate is 0, not min_lr"),
    "lr_divides_by_warmup": ("warmup_cosine_lr", lr_divides_by_warmup, "no warm-up phase to divide by"),
    "lr_returns_tensor": ("warmup_cosine_lr", lr_returns_tensor, "expected a float"),
    "accuracy_counts": ("accuracy_by_group", accuracy_counts, "numbers of correct items"),
    "accuracy_over_all_items": ("accuracy_by_group", accuracy_over_all_items, "divided by all items"),
    "accuracy_macro_all": ("accuracy_by_group", accuracy_macro_all, "mean of the groups"),
    "accuracy_no_all": ("accuracy_by_group", accuracy_no_all, 'under the key "all"'),
    "accuracy_tensor_values": ("accuracy_by_group", accuracy_tensor_values, "Python floats"),
    "accuracy_error_rate": ("accuracy_by_group", accuracy_error_rate, "error rate"),
    "accuracy_in_place": ("accuracy_by_group", accuracy_in_place, "modified predictions"),
}
