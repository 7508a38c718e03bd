"""Checks for exercise 07 (fine-tuning): mean pooling, the warm-up + cosine schedule, accuracy by group.

Oracles: the masked mean written out with tensor sums (never the course's
``heads.mean_pool``, which the learner is asked to write), the schedule's closed form, and counts
over the items. Inputs break symmetries: sequences of different lengths (one of them all padding), a
hidden size unlike the length, a min_lr above 0, groups of unequal sizes (so the mean of the groups'
accuracies differs from the overall one). Pooling is also judged by behaviour: changing a padded
position must not move the result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from bertcourse.grading.framework import Answers, Exercise, Task, compare, randn
from bertcourse.grading.kit import as_number, compare_all

__all__ = ["EXERCISE", "check_accuracy_by_group", "check_mean_pool", "check_warmup_cosine_lr"]

EXERCISE = Exercise("07_fine_tuning.ipynb")

# ---------------------------------------------------------------------------------------------- mean_pool


def oracle_mean_pool(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    """The mean of ``hidden`` (B, T, H) over the positions where ``attention_mask`` (B, T) is set; zeros for none."""
    m = attention_mask.to(hidden.dtype)[..., None]  # (B, T, 1)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)  # (B, H) / (B, 1)


def _mask(lengths: Sequence[int], T: int) -> Tensor:
    """(B, T) int64, 1 at the first lengths[b] positions of row b (padding on the right)."""
    return (torch.arange(T) < torch.tensor(lengths)[:, None]).long()


@EXERCISE.task("mean_pool", points=3)
def mean_pool_task(t: Task) -> None:
    B, T, H = 3, 5, 4
    hidden = randn(B, T, H, seed=70)
    mask = _mask([5, 3, 1], T)  # (B, T): full, padded, one token
    on = "hidden (3, 5, 4), attention_mask int64 with lengths 5, 3, 1"
    noisy = hidden.masked_fill(~mask.bool()[..., None], 0.0) + (1 - mask)[..., None] * randn(B, T, H, seed=71) * 100
    empty_mask = _mask([4, 0], T)
    empty_hidden = randn(2, T, H, seed=72)
    t.query("float32", hidden.float(), mask)
    t.query("plain", hidden, mask, keep_inputs=True)
    t.query("noisy_padding", noisy, mask)
    t.query("bool_mask", hidden, mask.bool())
    t.query("empty", empty_hidden, empty_mask)
    t.error_hint(
        r"size of tensor a \(\d+\) must match the size of tensor b",
        "attention_mask (B, T) and hidden (B, T, H) do not line up: broadcasting aligns the *last* axes",
    )

    hints = {(B,): "the mean was taken over the hidden axis too", (T, H): "the batch axis was averaged away"}
    t.shape("returns a (B, H) tensor of hidden's dtype", "float32", (B, H), torch.float32, hints,
            on="hidden (3, 5, 4) float32")  # fmt: skip

    total = (hidden * mask[..., None].double()).sum(dim=1)  # (B, T, H) * (B, T, 1), summed -> (B, H)
    mistakes = [
        ("padding was averaged in: the mean runs over all T positions", hidden.mean(dim=1)),
        ("the real tokens are summed, not averaged", total),
        ("the sum over real tokens is divided by T, not by each sequence's number of tokens", total / T),
        ("the sum is divided by the number of real tokens in the whole batch, not per sequence", total / mask.sum()),
    ]
    t.equals(
        "averages each sequence over its real tokens only", "plain", oracle_mean_pool(hidden, mask), mistakes, on=on
    )
    leak = "changing the hidden states at padded positions changed the result: padding leaks into the mean"
    t.equals("padded positions have no influence", "noisy_padding", oracle_mean_pool(noisy, mask),
             on=f"{on}; padding replaced by values ~100", atol=1e-6, hint=leak)  # fmt: skip

    t.equals("takes a boolean attention_mask too", "bool_mask", oracle_mean_pool(hidden, mask),
             on="the same input, attention_mask as torch.bool")  # fmt: skip

    @t.property("a sequence with no real token gives zeros, not NaN", on="hidden (2, 5, 4), lengths 4 and 0")
    def empty_row(a: Answers) -> str | None:
        got = a["empty"]
        if type(got) is Tensor and got.shape == (2, H) and got.is_floating_point() and got.isnan().any():
            return "0 / 0: a row without tokens divides by a count of 0 (NaN); the course's convention is zeros"
        return compare(got, oracle_mean_pool(empty_hidden, empty_mask))

    t.unchanged("plain", {"hidden": hidden, "attention_mask": mask}, on=on, hint="hidden *= ..., masked_fill_")


check_mean_pool = EXERCISE.check("mean_pool")

# --------------------------------------------------------------------------------------- warmup_cosine_lr


def _lr(step: float, warmup: int, total: int, peak: float, min_lr: float = 0.0) -> float:
    """The schedule: linear 0 -> peak over the warm-up, cosine peak -> min_lr until total, min_lr after."""
    if step < warmup:
        return peak * step / warmup
    if step >= total:
        return min_lr
    progress = (step - warmup) / (total - warmup)
    return min_lr + (peak - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


def _schedule(a: Answers, steps: Sequence[int], key: str) -> list[object]:
    return [as_number(a[f"{key}{s}"]) for s in steps]


W, TOTAL, PEAK, MIN = 10, 50, 3e-3, 1e-4
MIN_LR = (W, TOTAL, PEAK, MIN)  # the schedule with a floor
WARMUP_STEPS = (0, 1, 4, 9, 10)
DECAY_STEPS = (10, 17, 30, 41, 49)  # the end, total_steps itself, is judged with the steps after it
AFTER_STEPS = (50, 51, 75, 100, 140)


@EXERCISE.task("warmup_cosine_lr", points=4)
def warmup_cosine_lr_task(t: Task) -> None:
    setting = f"warmup_steps={W}, total_steps={TOTAL}, peak_lr={PEAK}"
    for s in sorted({*WARMUP_STEPS, *DECAY_STEPS, *AFTER_STEPS}):
        t.query(f"zero{s}", s, W, TOTAL, PEAK)
        t.query(f"min{s}", s, W, TOTAL, PEAK, min_lr=MIN)
    for s in (0, 5, 20):
        t.query(f"nowarm{s}", s, 0, 20, PEAK)
    t.error_hint("ZeroDivisionError", "with warmup_steps=0 there is no warm-up phase to divide by", query="nowarm0")

    @t.property("returns a Python float", on=f"step 4, {setting}", gated=True)
    def is_float(a: Answers) -> str | None:
        got = a["zero4"]
        if isinstance(got, float):
            return None
        return f"expected a float, got {type(got).__name__}" + (
            ": a 0-d tensor is not a Python float" if type(got) is Tensor else ""
        )

    def rates(steps: Sequence[int], *schedule: float) -> list[float]:
        return [_lr(s, *schedule) for s in steps]

    warmup = [
        ("off by one: the warm-up gives (step + 1) / warmup_steps of the peak, so step 0 is not 0",
         [PEAK * min(1.0, (s + 1) / W) for s in WARMUP_STEPS]),
        ("there is no warm-up: step 0 already gets the peak learning rate", rates(WARMUP_STEPS, 0, TOTAL, PEAK)),
    ]  # fmt: skip
    progress = [(s - W) / (TOTAL - W) for s in DECAY_STEPS]
    cosine = [PEAK * 0.5 * (1 + math.cos(math.pi * p)) for p in progress]  # from the peak to 0
    decay = [
        ("the decay is linear, not a cosine", [PEAK * (1 - p) for p in progress]),
        ("the cosine's progress counts from step 0, not from the end of the warm-up",
         [PEAK * 0.5 * (1 + math.cos(math.pi * s / TOTAL)) for s in DECAY_STEPS]),
        ("the cosine is not halved and shifted: (1 + cos) / 2 runs from 1 to 0, cos alone from 1 to -1",
         [PEAK * math.cos(math.pi * p) for p in progress]),
        ("a quarter cosine, cos(pi/2 * progress), instead of half a cosine (1 + cos(pi * progress)) / 2",
         [PEAK * math.cos(math.pi / 2 * p) for p in progress]),
    ]  # fmt: skip
    floor = [
        ("min_lr is added on top of the full cosine, so the decay starts above peak_lr", [MIN + c for c in cosine]),
        ("the cosine to 0 is clipped at min_lr instead of ending there smoothly", [max(MIN, c) for c in cosine]),
        ("min_lr is ignored", rates(DECAY_STEPS, W, TOTAL, PEAK)),
    ]
    after = [
        ("past total_steps the cosine goes on and the rate climbs back up",
         [MIN + (PEAK - MIN) * 0.5 * (1 + math.cos(math.pi * (s - W) / (TOTAL - W))) for s in AFTER_STEPS]),
        ("past total_steps the rate is 0, not min_lr", [MIN if s == TOTAL else 0.0 for s in AFTER_STEPS]),
    ]  # fmt: skip
    for name, where, (key, steps, expected, mistakes) in (  # the rates at these steps, and their usual mistakes
        ("warm-up: linear from 0 at step 0 to peak_lr at warmup_steps", f"steps {WARMUP_STEPS}, {setting}",
         ("zero", WARMUP_STEPS, rates(WARMUP_STEPS, W, TOTAL, PEAK), warmup)),
        ("decay: half a cosine from peak_lr at warmup_steps to min_lr=0 at total_steps",
         f"steps {DECAY_STEPS}, {setting}", ("zero", DECAY_STEPS, rates(DECAY_STEPS, W, TOTAL, PEAK), decay)),
        ("min_lr: the cosine runs from peak_lr down to min_lr, not to 0",
         f"steps {DECAY_STEPS}, {setting}, min_lr={MIN}", ("min", DECAY_STEPS, rates(DECAY_STEPS, *MIN_LR), floor)),
        ("after total_steps the rate stays at min_lr", f"steps {AFTER_STEPS}, {setting}, min_lr={MIN}",
         ("min", AFTER_STEPS, [MIN] * len(AFTER_STEPS), after)),
        ("warmup_steps=0: no warm-up, the peak at step 0",
         f"steps 0, 5, 20, warmup_steps=0, total_steps=20, peak_lr={PEAK}",
         ("nowarm", (0, 5, 20), rates((0, 5, 20), 0, 20, PEAK), [])),
    ):  # fmt: skip
        t.property(name, on=where)(
            lambda a, k=key, s=steps, e=expected, m=mistakes: compare_all(_schedule(a, s, k), e, m)
        )


check_warmup_cosine_lr = EXERCISE.check("warmup_cosine_lr")

# -------------------------------------------------------------------------------------- accuracy_by_group

GROUPS = ["left", "right", "left", "far", "left", "right", "none", "left", "far", "left", "none", "left"]
LABELS = torch.tensor([1, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1])
PREDICTIONS = torch.tensor([1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1])


def _accuracies(predictions: Tensor, labels: Tensor, groups: Sequence[str]) -> dict[str, float]:
    """The right answer: accuracy within each group, and over all items under "all"."""
    correct = (predictions == labels).tolist()
    result = {
        g: sum(c for c, h in zip(correct, groups, strict=True) if h == g) / groups.count(g)
        for g in dict.fromkeys(groups)
    }
    return {**result, "all": sum(correct) / len(correct)}


def _compare_dict(
    got: object, expected: dict[str, float], mistakes: list[tuple[str, dict[str, float]]], keys: Sequence[str]
) -> str | None:
    """Compare the values under ``keys`` (missing keys and wrong types are judged elsewhere)."""
    if not isinstance(got, dict):
        return f"expected a dict, got {type(got).__name__}"
    wrong = [(hint, [ref[k] for k in keys]) for hint, ref in mistakes]
    labels = [f"group {k!r}" for k in keys]
    return compare_all([as_number(got.get(k)) for k in keys], [expected[k] for k in keys], wrong, labels, rtol=1e-9)


@EXERCISE.task("accuracy_by_group", points=3)
def accuracy_by_group_task(t: Task) -> None:
    n = len(GROUPS)
    on = f"{n} items in 4 groups of sizes 6, 2, 2, 2"
    one_group = ["x"] * 5
    t.query("main", PREDICTIONS, LABELS, GROUPS, keep_inputs=True)
    t.query("one_group", PREDICTIONS[:5], LABELS[:5], one_group)
    expected = _accuracies(PREDICTIONS, LABELS, GROUPS)
    groups = [g for g in expected if g != "all"]

    @t.property('returns a dict: one key per group, plus "all", float values', on=on, gated=True)
    def keys(a: Answers) -> str | None:
        got = a["main"]
        if not isinstance(got, dict):
            return f"expected a dict, got {type(got).__name__}"
        missing = [k for k in expected if k not in got]
        extra = [k for k in got if k not in expected]
        if missing or extra:
            return f"keys missing: {missing}, unexpected keys: {extra}" + (
                ' (the overall accuracy goes under the key "all")' if "all" in missing else ""
            )
        wrong = [k for k, v in got.items() if not isinstance(v, float)]
        return (
            f"values must be Python floats; under {wrong} they are not (use float(...) or .item())" if wrong else None
        )

    @t.property("each group's accuracy counts that group's items only", on=on)
    def per_group(a: Answers) -> str | None:
        correct = (PREDICTIONS == LABELS).tolist()
        counts = {g: float(sum(c for c, h in zip(correct, GROUPS, strict=True) if h == g)) for g in groups}
        mistakes = [
            ("these are the numbers of correct items, not accuracies", counts),
            ("each group's correct count is divided by all items, not by the group's size",
             {g: counts[g] / n for g in groups}),
            ("the error rate (wrong / total), not the accuracy", {g: 1 - expected[g] for g in groups}),
        ]  # fmt: skip
        return _compare_dict(a["main"], expected, mistakes, groups)

    @t.property('"all" is the accuracy over all items', on=on)
    def overall(a: Answers) -> str | None:
        macro = sum(expected[g] for g in groups) / len(groups)
        mistakes = [('"all" is the mean of the groups\' accuracies; with groups of unequal size that differs from '
                     "the accuracy over all items", {"all": macro})]  # fmt: skip
        return _compare_dict(a["main"], expected, mistakes, ["all"])

    t.property("works for a single group", on='5 items, all in group "x"')(
        lambda a: _compare_dict(a["one_group"], _accuracies(PREDICTIONS[:5], LABELS[:5], one_group), [], ["x", "all"])
    )

    t.unchanged("main", {"predictions": PREDICTIONS, "labels": LABELS, "groups": GROUPS}, on=on)


check_accuracy_by_group = EXERCISE.check("accuracy_by_group")
