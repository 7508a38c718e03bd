"""Checks for exercise 06 (BERT): 80/10/10 masking, the masked-LM loss, the next-sentence input layout.

``mask_tokens`` is random, so it is judged by exact invariants (shapes, the input left alone, special
and padding tokens never chosen, labels = the original id exactly where chosen, unchosen positions
untouched, random replacements never special, the same generator seed repeating the draws) and by
rates over tens of thousands of tokens within five standard errors of BERT's 15 / 80 / 10 / 10, never
by one seed's draws. The loss is compared with ``F.cross_entropy(..., ignore_index=-100)`` and the
layout with the ids and segments BERT uses. Hints come from the usual mistakes on the same inputs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from bertcourse.grading import kit
from bertcourse.grading.codec import Seed
from bertcourse.grading.framework import Answers, Exercise, Task, compare, randn

__all__ = ["EXERCISE", "check_mask_tokens", "check_masked_lm_loss", "check_nsp_input"]

EXERCISE = Exercise("06_bert.ipynb")
IGNORE = -100
PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
SPECIAL = [PAD, UNK, CLS, SEP, MASK]
VOCAB = 30  # ids 5..29 are ordinary tokens: 25 a random replacement may take


def _batch(B: int, T: int, seed: int) -> Tensor:
    """[CLS] tokens [SEP] [PAD]...: right-padded rows of different lengths, ordinary ids 5..29 in between."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (B, T), generator=g)
    lengths = torch.randint(T // 2, T + 1, (B,), generator=g)
    ids[:, 0] = CLS
    ids[torch.arange(B), lengths - 1] = SEP
    ids[torch.arange(T) >= lengths[:, None]] = PAD
    return ids


def _within(count: float, n: int, p: float, sigmas: float = 5.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1e-9


# --------------------------------------------------------------------------------------------- mask_tokens


def _pair(a: Answers, name: str, names: tuple[str, str], specs: dict[str, tuple]) -> tuple[Tensor, Tensor]:
    """The pair ``names`` of query ``name``; a malformed one fails the property that reads it, saying what is wrong."""
    problem = kit.expect_tensors(a[name], names, specs, not_a_pair=f"return a pair ({', '.join(names)})")
    return kit.fail(problem) if problem else (a[name][0], a[name][1])


@EXERCISE.task("mask_tokens", points=4)
def mask_tokens_task(t: Task) -> None:
    ids = _batch(400, 40, seed=60)  # (400, 40): about 12,000 ordinary tokens
    special = torch.isin(ids, torch.tensor(SPECIAL))
    n_ordinary = int((~special).sum())
    args = {"vocab_size": VOCAB, "mask_token_id": MASK, "special_token_ids": SPECIAL}
    t.query("main", ids, **args, mlm_probability=0.15, generator=Seed(1), keep_inputs=True)
    t.query("p30", ids, **args, mlm_probability=0.3, generator=Seed(2))
    t.query("all", ids, **args, mlm_probability=1.0, generator=Seed(3))  # every ordinary token chosen
    t.query("seed4", ids[:50], **args, generator=Seed(4))
    t.query("seed4_again", ids[:50], **args, generator=Seed(4))
    t.query("seed5", ids[:50], **args, generator=Seed(5))
    on = f"input_ids (400, 40): [CLS] ... [SEP] then [PAD], {n_ordinary} ordinary tokens, mlm_probability 0.15"

    def get(a: Answers, name: str) -> tuple[Tensor, Tensor]:
        shape = (50 if name.startswith("seed") else 400, 40)
        return _pair(a, name, ("inputs", "labels"), dict.fromkeys(("inputs", "labels"), (shape, torch.int64)))

    t.property("returns (inputs, labels), two int64 tensors shaped like input_ids", on=on, gated=True)(
        lambda a: get(a, "main") and None
    )

    @t.property("leaves input_ids unchanged", on=on, gated=True)
    def input_unchanged(a: Answers) -> str | None:
        after = a.inputs_after("main")[0]
        return None if compare(after, ids) is None else "your function modified input_ids in place: work on a copy"

    @t.property("labels hold the original id where chosen and -100 elsewhere; unchosen inputs unchanged", on=on)
    def labels(a: Answers) -> str | None:
        inputs, labels = get(a, "main")
        chosen = labels != IGNORE
        if bool(chosen.all()):
            return "labels hold a target at every position: only the chosen ones get the original id, the rest -100"
        if not torch.equal(labels[chosen], ids[chosen]):
            if bool((labels[chosen] == inputs[chosen]).all()):
                return (
                    "labels hold the corrupted tokens; they must hold the *original* ids, what the model must predict"
                )
            return "at chosen positions, labels must equal the original input_ids"
        if not torch.equal(inputs[~chosen], ids[~chosen]):
            return "positions whose label is -100 were changed in inputs: only chosen positions may be corrupted"
        return None

    @t.property("never chooses special or padding tokens", on=on)
    def never_special(a: Answers) -> str | None:
        inputs, labels = get(a, "all")
        if bool((labels[special] != IGNORE).any()) or not torch.equal(inputs[special], ids[special]):
            return (
                "special or padding tokens ([CLS], [SEP], [PAD]) were chosen: only ids outside special_token_ids may be"
            )
        return None

    @t.property("chooses each ordinary token with mlm_probability", on=f"{on}; and 0.3")
    def rate(a: Answers) -> str | None:
        for name, p in (("main", 0.15), ("p30", 0.3)):
            _, labels = get(a, name)
            count = int((labels[~special] != IGNORE).sum())
            if not _within(count, n_ordinary, p):
                if _within(count, n_ordinary, 0.15) and p != 0.15:
                    return f"with mlm_probability={p} about 15% were chosen: use the argument, not a constant"
                return f"with mlm_probability={p}, {count / n_ordinary:.3f} of the ordinary tokens were chosen"
        return None

    @t.property("a chosen token becomes [MASK] 80%, a random token 10%, stays itself 10%", on="mlm_probability 1.0")
    def split(a: Answers) -> str | None:
        inputs, labels = get(a, "all")
        chosen = labels != IGNORE
        n = int(chosen.sum())
        if n == 0:
            return "no token was chosen with mlm_probability=1.0"
        to_mask = int((inputs[chosen] == MASK).sum())
        kept = int((inputs[chosen] == ids[chosen]).sum())
        if to_mask == n:
            return "every chosen token was replaced by [MASK]: 10% must become a random token and 10% stay unchanged"
        if not _within(to_mask, n, 0.8):
            return f"{to_mask / n:.3f} of the chosen tokens became [MASK], not 0.8"
        p_kept = 0.1 + 0.1 / (VOCAB - len(SPECIAL))  # unchanged, plus random draws that hit the original
        if not _within(kept, n, p_kept):
            return f"{kept / n:.3f} of the chosen tokens stayed unchanged, not 0.1"
        return None

    @t.property("random replacements are uniform over the non-special vocabulary", on="mlm_probability 1.0")
    def random_tokens(a: Answers) -> str | None:
        inputs, labels = get(a, "all")
        chosen = labels != IGNORE
        replaced = inputs[chosen & (inputs != ids) & (inputs != MASK)]
        if replaced.numel() == 0:
            return "no chosen token was replaced by a random one"
        if (
            bool(torch.isin(replaced, torch.tensor(SPECIAL)).any())
            or int(replaced.min()) < 0
            or int(replaced.max()) >= VOCAB
        ):
            return (
                "random replacements were drawn from special tokens (or outside the vocabulary): draw only ordinary ids"
            )
        counts = torch.bincount(replaced, minlength=VOCAB)[len(SPECIAL) :].double()  # ids 5..29
        n, p = counts.sum().item(), 1 / (VOCAB - len(SPECIAL))
        if not all(_within(c, int(n), p * (1 - 1 / (VOCAB - len(SPECIAL))) / (1 - p), 6.0) for c in counts.tolist()):
            return "random replacements are not uniform over the ordinary ids"
        return None

    @t.property(
        "the draws come from generator: the same seed repeats them, another seed changes them",
        on="50 rows, seeds 4, 4, 5",
    )
    def generator(a: Answers) -> str | None:
        first, again, other = (torch.stack(get(a, name)) for name in ("seed4", "seed4_again", "seed5"))
        return kit.reproducible(first, again, other, "draw all with generator")  # (inputs, labels) stacked


check_mask_tokens = EXERCISE.check("mask_tokens")

# ------------------------------------------------------------------------------------------ masked_lm_loss


@EXERCISE.task("masked_lm_loss", points=2)
def masked_lm_loss_task(t: Task) -> None:
    B, T, V = 3, 7, 13
    logits = randn(B, T, V, seed=61) * 2
    g = torch.Generator().manual_seed(62)
    labels = torch.randint(0, V, (B, T), generator=g)
    labels[torch.rand(B, T, generator=g) < 0.6] = IGNORE  # about 40% of the positions are targets
    labels[0, 0] = 3  # every row has at least one target
    keep = labels != IGNORE
    noisy = torch.where(keep[..., None], logits, randn(B, T, V, seed=63) * 5)  # other logits where no target
    t.query("main", logits, labels)
    t.query("float32", logits.float(), labels)
    t.query("noise", noisy, labels)
    on = "logits (3, 7, 13) float64, labels (3, 7) with -100 at about 60% of the positions"

    t.shape("returns a scalar (0-dimensional) float tensor", "float32", (), torch.float32,
            {(B, T): "one loss per position: average the counted ones"}, on="float32 logits")  # fmt: skip
    total = F.cross_entropy(logits[keep], labels[keep], reduction="sum")
    mistakes = [
        ("the positions labelled -100 were scored (as token 0): leave them out of the loss",
         F.cross_entropy(logits.flatten(0, 1), labels.clamp(min=0).flatten())),
        ("divided by all B * T positions: the mean is over the positions with a target", total / (B * T)),
        ("summed instead of averaged over the targets", total),
        ("averaged per sequence, then over the batch: average over all targets at once",
         torch.stack([F.cross_entropy(logits[b][keep[b]], labels[b][keep[b]]) for b in range(B)]).mean()),
    ]  # fmt: skip
    t.equals("the mean cross-entropy over the positions whose label is not -100", "main",
             F.cross_entropy(logits[keep], labels[keep]), mistakes, on=on, read=kit.scalar)  # fmt: skip
    t.same("logits at positions labelled -100 do not change the loss", "noise", "main",
           "changing the logits where the label is -100 changed your loss: those positions must not take part",
           on=f"{on}, those logits changed", read=kit.scalar)  # fmt: skip

    t.error_hint(
        r"out of bounds|Target -100|IndexError|index -100",
        "the labels hold -100 where there is no target: leave those positions out (ignore_index=-100)",
    )


check_masked_lm_loss = EXERCISE.check("masked_lm_loss")

# ----------------------------------------------------------------------------------------------- nsp_input


def _layout(a: list[int], b: list[int], first_sep_type: int = 0, last_type: int = 1) -> tuple[Tensor, Tensor]:
    ids = torch.tensor([CLS, *a, SEP, *b, SEP])
    types = torch.tensor([0] * (len(a) + 1) + [first_sep_type] + [1] * len(b) + [last_type])
    return ids, types


@EXERCISE.task("nsp_input", points=2)
def nsp_input_task(t: Task) -> None:
    cases = {
        "short_long": ([7, 8], [9, 10, 11, 12]),
        "long_short": ([13, 14, 15, 16, 17], [18]),
        "empty_b": ([19, 20], []),
    }
    for name, (a, b) in cases.items():
        t.query(name, a, b, CLS, SEP)
    on = "A of 2 and B of 4 tokens; A of 5 and B of 1; B empty; cls_id=2, sep_id=3"

    names = ("input_ids", "token_type_ids")

    def two(a: Answers, name: str) -> tuple[object, ...]:
        return kit.unpack(a[name]) or kit.fail("return a pair (input_ids, token_type_ids)")

    def shape(a: Answers, name: str, n: int) -> str | None:
        spec = ((n,), torch.int64, {(1, n): "return 1-D tensors, not a batch of one"})
        return kit.expect_tensors(
            a[name], names, dict.fromkeys(names, spec), "return a pair (input_ids, token_type_ids)"
        )

    t.property("returns two 1-D int64 tensors of length len(A) + len(B) + 3", on=on, gated=True)(
        lambda a: kit.first(("", shape(a, name, len(ta) + len(tb) + 3)) for name, (ta, tb) in cases.items())
    )

    def ids(ta: list[int], tb: list[int]) -> list[tuple[str, Tensor]]:
        return [
            ("[CLS] is missing at the start", torch.tensor([*ta, SEP, *tb, SEP])),
            ("the final [SEP] after B is missing", torch.tensor([CLS, *ta, SEP, *tb])),
            ("A and B are in the wrong order", torch.tensor([CLS, *tb, SEP, *ta, SEP])),
        ]

    t.property("input_ids are [CLS] A [SEP] B [SEP]", on=on)(
        lambda a: kit.first(
            ("", compare(two(a, name)[0], _layout(ta, tb)[0], ids(ta, tb))) for name, (ta, tb) in cases.items()
        )
    )

    def types(ta: list[int], tb: list[int]) -> list[tuple[str, Tensor]]:
        return [
            ("the first [SEP] has segment 1: it closes sentence A, so it belongs to segment 0", _layout(ta, tb, 1)[1]),
            ("the final [SEP] has segment 0: it closes sentence B, segment 1", _layout(ta, tb, 0, 0)[1]),
            ("every token has segment 0: B's tokens and its [SEP] are segment 1",
             torch.zeros(len(ta) + len(tb) + 3, dtype=torch.long)),
        ]  # fmt: skip

    t.property("token_type_ids: 0 up to and including the first [SEP], 1 after it", on=on)(
        lambda a: kit.first(
            ("", compare(two(a, name)[1], _layout(ta, tb)[1], types(ta, tb))) for name, (ta, tb) in cases.items()
        )
    )


check_nsp_input = EXERCISE.check("nsp_input")
