"""Checks for exercise 05 (GPT): the shifted LM loss, top-k filtering, sampling, greedy generation.

Inputs break symmetries (batch > 1, rows that differ, right padding of different lengths); the loss
is compared with ``F.cross_entropy`` on explicitly shifted tensors, greedy generation with
``GPT.generate`` on a seeded course model. Sampling is random, so it is judged by exact invariants
(shape, dtype, tokens outside the top k never drawn, the same generator seed gives the same draws) and
by frequencies over thousands of rows within five standard errors of the target probabilities, never
by one seed's draws. Hints come from evaluating the usual mistakes on the same inputs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from bertcourse.gpt import GPT, GPTConfig
from bertcourse.grading import kit
from bertcourse.grading.codec import Seed
from bertcourse.grading.framework import Answers, Exercise, Task, compare, expect_tensor, randn

__all__ = ["EXERCISE", "check_causal_lm_loss", "check_generate_greedy", "check_sample_next_token", "check_top_k_filter"]

EXERCISE = Exercise("05_gpt.ipynb")
IGNORE = -100


def _ids(shape: tuple[int, ...], vocab: int, seed: int) -> Tensor:
    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(seed))


def _ce(logits: Tensor, targets: Tensor, keep: Tensor | None = None, reduction: str = "mean") -> Tensor:
    """Cross-entropy of (B, T, V) logits against (B, T) targets over the positions where ``keep`` is True."""
    keep = torch.ones_like(targets, dtype=torch.bool) if keep is None else keep.bool()
    return F.cross_entropy(logits[keep], targets[keep], reduction=reduction)


# ------------------------------------------------------------------------------------------ causal_lm_loss


@EXERCISE.task("causal_lm_loss", points=3)
def causal_lm_loss_task(t: Task) -> None:
    B, T, V = 3, 6, 11
    logits = randn(B, T, V, seed=50) * 2
    ids = _ids((B, T), V, seed=51)
    lengths = torch.tensor([6, 4, 2])
    mask = (torch.arange(T) < lengths[:, None]).long()  # (B, T), right padding of different lengths
    noisy_ids = torch.where(mask.bool(), ids, _ids((B, T), V, seed=52))  # other ids on the padding only
    noisy_logits = torch.where(mask.bool()[..., None], logits, randn(B, T, V, seed=53) * 5)  # at padded positions
    on = "logits (3, 6, 11) float64, input_ids (3, 6)"
    on_mask = f"{on}, attention_mask with lengths 6, 4, 2 (right padding)"
    t.query("plain", logits, ids)
    t.query("float32", logits.float(), ids)
    t.query("masked", logits, ids, attention_mask=mask)
    t.query("masked_noise", noisy_logits, noisy_ids, attention_mask=mask)

    hints = {(B, T - 1): "one loss per position: average them", (B,): "one loss per sequence: average over all targets"}
    t.shape("returns a scalar (0-dimensional) float tensor", "float32", (), torch.float32, hints,
            on="float32 logits (3, 6, 11)")  # fmt: skip
    shift = [
        ("no shift: position t is scored against its own token, which it can already see", _ce(logits, ids)),
        ("shifted the wrong way: position t must predict the *next* token, input_ids[:, t + 1]",
         _ce(logits[:, 1:], ids[:, :-1])),
        ("summed over the targets instead of averaged", _ce(logits[:, :-1], ids[:, 1:], reduction="sum")),
    ]  # fmt: skip
    t.equals("position t is scored against input_ids[:, t + 1], mean over targets", "plain",
             _ce(logits[:, :-1], ids[:, 1:]), shift, on=on, read=kit.scalar)  # fmt: skip

    kept = mask[:, 1:]  # (B, T-1): a target counts when the token it names is real
    padding = [
        ("padding is not ignored: targets where attention_mask is 0 were counted", _ce(logits[:, :-1], ids[:, 1:])),
        ("the mask was applied to the predicting positions (attention_mask[:, :-1]); it belongs to the targets, "
         "the tokens being predicted", _ce(logits[:, :-1], ids[:, 1:], mask[:, :-1])),
        ("divided by all B * (T - 1) positions: the mean is over the counted targets only",
         _ce(logits[:, :-1], ids[:, 1:], kept, "sum") / (B * (T - 1))),
        ("averaged per sequence, then over the batch: average over all counted targets at once",
         torch.stack([_ce(logits[b : b + 1, :-1], ids[b : b + 1, 1:], kept[b : b + 1]) for b in range(B)]).mean()),
    ]  # fmt: skip
    t.equals("targets where attention_mask is 0 are ignored (mean over the counted ones)", "masked",
             _ce(logits[:, :-1], ids[:, 1:], kept), padding, on=on_mask, read=kit.scalar)  # fmt: skip
    t.same("padded tokens and their logits do not change the loss", "masked_noise", "masked",
           "changing the ids or logits at padded positions changed your loss: padding still takes part",
           on=f"{on_mask}, padding changed", read=kit.scalar)  # fmt: skip


check_causal_lm_loss = EXERCISE.check("causal_lm_loss")

# -------------------------------------------------------------------------------------------- top_k_filter


def _top_k(logits: Tensor, k: int) -> Tensor:
    kth = logits.topk(k, dim=-1).values[..., -1:]  # (B, 1): the k-th largest of each row
    return logits.masked_fill(logits < kth, -math.inf)


def _smallest(logits: Tensor, k: int) -> Tensor:
    kth = logits.topk(k, dim=-1, largest=False).values[..., -1:]  # (B, 1): the k-th smallest of each row
    return logits.masked_fill(logits > kth, -math.inf)


@EXERCISE.task("top_k_filter", points=2)
def top_k_filter_task(t: Task) -> None:
    logits = randn(3, 8, seed=54) * 2  # distinct values in every row
    on = "logits (3, 8) float64, k=3"
    t.query("k3", logits, 3)
    t.query("k1", logits, 1)
    t.query("k_all", logits, 8)
    t.query("float32", logits.float(), 3)
    t.query("in_place", logits, 3, keep_inputs=True)

    t.shape("returns a tensor of the input's shape and dtype", "float32", (3, 8), torch.float32,
            {(3, 3): "return all V entries, not only the top k"}, on="logits (3, 8) float32, k=3")  # fmt: skip
    kth_all = logits.flatten().topk(3 * 3).values[-1]
    mistakes = [
        ("kept k + 1 entries per row: top-k is off by one", _top_k(logits, 4)),
        ("kept k - 1 entries per row: top-k is off by one", _top_k(logits, 2)),
        ("kept the k *smallest* entries instead of the largest", _smallest(logits, 3)),
        ("the others were set to 0, which still has probability; they must become -inf",
         _top_k(logits, 3).nan_to_num(neginf=0.0)),
        ("the others were set to a large negative number; use -inf so their probability is exactly 0",
         _top_k(logits, 3).nan_to_num(neginf=-1e9)),
        ("the top entries were chosen over the whole batch; choose k per row",
         logits.masked_fill(logits < kth_all, -math.inf)),
    ]  # fmt: skip
    t.equals("keeps the k largest entries of each row and sets the others to -inf", "k3", _top_k(logits, 3), mistakes,
             on=on)  # fmt: skip
    t.property("k=1 keeps only each row's maximum; k=V keeps everything", on="logits (3, 8), k=1 and k=8")(
        lambda a: kit.first(
            (label, compare(a[query], expected))
            for label, query, expected in (
                ("with k=1", "k1", _top_k(logits, 1)), ("with k=V=8 nothing should be filtered", "k_all", logits)
            )
        )
    )  # fmt: skip

    t.unchanged("in_place", {"logits": logits}, on=on, hint="masked_fill_ writes into its tensor")


check_top_k_filter = EXERCISE.check("top_k_filter")

# --------------------------------------------------------------------------------------- sample_next_token

Z = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -3.0], dtype=torch.float64)  # one row of logits, V = 6
N = 6000  # rows per frequency query: the standard error of a rate p is sqrt(p (1 - p) / 6000) <= 0.0065


def _probs(temperature: float = 1.0, top_k: int | None = None, z: Tensor = Z) -> Tensor:
    logits = z if top_k is None else _top_k(z[None], top_k)[0]
    return torch.softmax(logits / temperature, dim=-1)


def _fits(draws: object, p: Tensor) -> bool:
    """Do the draws' frequencies match ``p``? Every count within 5 standard errors; zero-probability tokens never."""
    if type(draws) is not Tensor or draws.dim() != 1 or draws.is_floating_point() or draws.dtype == torch.bool:
        return False
    if draws.numel() == 0 or int(draws.min()) < 0 or int(draws.max()) >= len(p):
        return False
    n = draws.numel()
    counts = torch.bincount(draws.long(), minlength=len(p)).double()
    spread = 5 * (n * p * (1 - p)).sqrt() + 1e-9
    return bool(((counts - n * p).abs() <= spread).all() and (counts[p == 0] == 0).all())


def _judge_rates(draws: object, expected: Tensor, mistakes: list[tuple[str, Tensor]]) -> str | None:
    if type(draws) is not Tensor or draws.shape != (N,):
        return f"expected {N} draws, one per row, got {getattr(draws, 'shape', type(draws).__name__)}"
    if _fits(draws, expected):
        return None
    for hint, p in mistakes:
        if _fits(draws, p):
            return hint
    counts = torch.bincount(draws.long().clamp(0, len(expected) - 1), minlength=len(expected)).double() / N
    return (
        f"the frequencies of the tokens {counts.numpy().round(3).tolist()} are not the target distribution "
        "(checked over 6000 rows, within 5 standard errors)"
    )


@EXERCISE.task("sample_next_token", points=3)
def sample_next_token_task(t: Task) -> None:
    rows = Z.repeat(N, 1)  # (N, V): the same distribution in every row
    two = torch.stack([Z, Z.flip(0)]).repeat(N // 2, 1)  # (N, V): rows alternate between two distributions
    t.query("shape", randn(4, 7, seed=55), generator=Seed(0))
    t.query("plain", rows, generator=Seed(1))
    t.query("cold", rows, temperature=0.5, generator=Seed(2))
    t.query("hot", rows, temperature=2.0, generator=Seed(3))
    t.query("top2", rows, top_k=2, generator=Seed(4))
    t.query("top3_hot", rows, temperature=2.0, top_k=3, generator=Seed(5))
    t.query("two_rows", two, generator=Seed(6))
    t.query("seed7", rows[:500], generator=Seed(7))
    t.query("seed7_again", rows[:500], generator=Seed(7))
    t.query("seed8", rows[:500], generator=Seed(8))
    on = f"{N} rows of the logits {Z.tolist()}"
    argmax = torch.zeros(6, dtype=torch.float64)
    argmax[0] = 1.0

    hints = {(4, 1): "squeeze the sample axis: one id per row, shape (B,)"}
    t.shape("returns one int64 token id per row", "shape", (4,), torch.int64, hints, on="logits (4, 7), generator")
    greedy = "always the most likely token: that is greedy decoding; draw from the distribution instead"
    t.property("draws from softmax(logits) (temperature 1)", on=on)(
        lambda a: _judge_rates(a["plain"], _probs(), [(greedy, argmax)])
    )

    def temperature(tau: float) -> list[tuple[str, Tensor]]:
        return [
            ("the temperature multiplies the logits; it divides them (a low temperature sharpens)", _probs(1 / tau)),
            ("the temperature has no effect on your draws", _probs()),
            (greedy, argmax),
        ]

    t.property("divides the logits by the temperature (0.5 sharpens, 2 flattens)", on=f"{on}, temperature 0.5 and 2")(
        lambda a: kit.first((f"with temperature {tau}", _judge_rates(a[name], _probs(tau), temperature(tau)))
                            for name, tau in (("cold", 0.5), ("hot", 2.0)))
    )  # fmt: skip

    def top_k(k: int, tau: float) -> list[tuple[str, Tensor]]:
        return [
            ("top_k was ignored: tokens outside the k most likely were drawn", _probs(tau)),
            ("top-k is off by one: k + 1 tokens were drawn", _probs(tau, k + 1)),
            ("top-k is off by one: k - 1 tokens were drawn", _probs(tau, k - 1)),
            ("the temperature multiplies the logits; it divides them", _probs(1 / tau, k)),
            (greedy, argmax),
        ]

    t.property("with top_k, draws only among the k most likely tokens, in proportion",
               on=f"{on}, top_k=2; top_k=3 with temperature 2")(
        lambda a: kit.first((f"with top_k={k}, temperature {tau}", _judge_rates(a[name], _probs(tau, k), top_k(k, tau)))
                            for name, k, tau in (("top2", 2, 1.0), ("top3_hot", 3, 2.0)))
    )  # fmt: skip

    @t.property(
        "each row is sampled from its own logits", on=f"{N} rows alternating between two different rows of logits"
    )
    def per_row(a: Answers) -> str | None:
        draws = a["two_rows"]
        if type(draws) is not Tensor or draws.shape != (N,):
            return f"expected {N} draws, one per row, got {getattr(draws, 'shape', type(draws).__name__)}"
        for start, z in ((0, Z), (1, Z.flip(0))):
            if not _fits(draws[start::2], _probs(z=z)):
                if _fits(draws[start::2], _probs(z=Z if start else Z.flip(0))):
                    return "rows were given the other row's distribution: each row must be sampled from its own logits"
                return f"the rows like row {start} are not drawn from their own softmax"
        return None

    @t.property(
        "the draws come from generator: the same seed repeats them, another seed changes them",
        on="500 rows, seeds 7, 7 and 8",
    )
    def generator(a: Answers) -> str | None:
        return kit.reproducible(a["seed7"], a["seed7_again"], a["seed8"], "draw with generator=generator")


check_sample_next_token = EXERCISE.check("sample_next_token")

# ----------------------------------------------------------------------------------------- generate_greedy


def _model() -> GPT:
    """A seeded course GPT, in eval mode, whose greedy continuations vary from step to step and row to row.

    At the default initialisation a tiny GPT echoes its last token (the tied embedding dominates);
    larger position embeddings and block weights give it clear maxima (gaps > 0.1) that change with
    the step, so a loop that never feeds its tokens back cannot pass by luck.
    """
    with torch.random.fork_rng():
        torch.manual_seed(6)
        model = GPT(GPTConfig(vocab_size=23, d_model=16, n_layers=2, n_heads=2, d_ff=32, max_len=24, dropout=0.1))
    with torch.no_grad():
        model.embeddings.position_embeddings.weight.mul_(10.0)
        model.embeddings.word_embeddings.weight.mul_(4.0)
        for block in model.blocks:
            for p in block.parameters():
                if p.dim() >= 2:
                    p.mul_(4.0)
    return model.eval()


@torch.no_grad()
def _greedy_variant(model: GPT, ids: Tensor, n: int, position: int = -1, feed_back: bool = True) -> Tensor:
    """Greedy decoding, or a typical mistake: read another ``position``, or never feed the new token back."""
    tokens = ids
    for _ in range(n):
        source = tokens if feed_back else ids
        nxt = model(source).logits[:, position].argmax(-1, keepdim=True)  # (B, 1)
        tokens = torch.cat([tokens, nxt], dim=1)
    return tokens


@EXERCISE.task("generate_greedy", points=2)
def generate_greedy_task(t: Task) -> None:
    model = _model()
    ids = _ids((2, 3), 23, seed=56)  # (B=2, T=3): two different prompts
    t.query("five", model, ids, 5)
    t.query("none", model, ids, 0)
    on = "a seeded course GPT (V=23, 2 layers), two prompts of 3 tokens, 5 new tokens"
    expected = model.generate(ids, 5, do_sample=False)

    @t.property("returns (B, T + max_new_tokens) int64 ids that start with the prompt", on=on)
    def shape(a: Answers) -> str | None:
        hints = {(2, 5): "return the prompt followed by the new tokens, not the new tokens alone"}
        problem = expect_tensor(a["five"], (2, 8), torch.int64, hints)
        if problem:
            return problem
        return None if torch.equal(a["five"][:, :3], ids) else "the first T tokens must be the prompt, unchanged"

    mistakes = [
        ("read the prediction of the first position, logits[:, 0]; the next token comes from the last",
         _greedy_variant(model, ids, 5, 0)),
        ("the new tokens were not fed back: each step must see the tokens generated so far",
         _greedy_variant(model, ids, 5, feed_back=False)),
    ]  # fmt: skip
    t.equals("equals model.generate(input_ids, max_new_tokens, do_sample=False)", "five", expected, mistakes, on=on)
    once = [("one token too many: the loop ran once with max_new_tokens=0", _greedy_variant(model, ids, 1))]
    t.property("max_new_tokens=0 returns the prompt itself", on=f"{on}; 0 new tokens")(
        lambda a: kit.first([("with max_new_tokens=0", compare(a["none"], ids, once))])
    )


check_generate_greedy = EXERCISE.check("generate_greedy")
