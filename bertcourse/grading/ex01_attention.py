"""Checks for exercise 01 (attention): softmax, scaled dot-product attention, causal and padding masks.

Inputs break symmetries (batch > 1, heads > 1, L_q != L_k, d_k != d_v); oracles are PyTorch's own
``torch.softmax``, ``F.scaled_dot_product_attention`` and ``torch.tril``; masks are judged by
behaviour (change a token the mask hides, and no output may move). A failed property's hint comes
from evaluating the usual mistakes (a wrong scale, the wrong softmax axis, an inverted mask, ...) on
the same input and naming the one the learner's output matches.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from bertcourse.grading import kit
from bertcourse.grading.framework import Answers, Exercise, Mistake, Task, compare, randn
from bertcourse.grading.kit import attend, attention_oracle, describe_attention, first, leaks
from bertcourse.grading.kit import output_and_weights as pair

__all__ = ["EXERCISE", "check_causal_mask", "check_padding_mask", "check_scaled_dot_product_attention", "check_softmax"]

EXERCISE = Exercise("01_attention.ipynb")
TRANSPOSE_ALL = (
    r"x\.T` on tensors|\bk\.T\b",
    "`k.T` reverses *all* axes of a tensor with batch or head axes; only the last two should swap",
)

# ---------------------------------------------------------------------------------------------- softmax


@EXERCISE.task("softmax", points=2)
def softmax_task(t: Task) -> None:
    x = randn(2, 3, 5, seed=0) * 3  # (B, L_q, L_k): rows of scores
    on = "x of shape (2, 3, 5), float64"
    big = x.float() * 1e4  # exp(89) already overflows float32
    shifted = x + torch.tensor([0.0, -3e3, 3e3], dtype=torch.float64)[:, None]  # (L_q, 1): rows far apart
    t.query("float32", x.float(), dim=-1)
    t.query("rows", x, dim=-1)
    t.query("dim1", x, dim=1)
    t.query("dim0", x, dim=0)
    t.query("big", big, dim=-1)
    t.query("far", shifted, dim=-1)
    t.query("in_place", x, dim=-1, keep_inputs=True)

    t.shape("returns a tensor of the input's shape and dtype", "float32", (2, 3, 5), torch.float32,
            on="x of shape (2, 3, 5), float32")  # fmt: skip

    @t.property("equals torch.softmax along the last axis (each row sums to 1)", on=on)
    def last_axis(a: Answers) -> str | None:
        got, e = a["rows"], x.exp()
        if type(got) is Tensor and got.shape == x.shape and got.is_floating_point() and torch.isfinite(got).all():
            sums = got.double().sum(dim=-1)
            if not torch.allclose(sums, torch.ones_like(sums)):
                return f"the rows do not sum to 1 (their sums range from {sums.min():.4g} to {sums.max():.4g})"
        mistakes = [
            ("normalised over the whole tensor instead of along dim: only each row must sum to 1", e / e.sum()),
            *[(f"normalised along axis {d} instead of along dim=-1", torch.softmax(x, dim=d)) for d in (0, 1)],
        ]
        return compare(got, torch.softmax(x, dim=-1), mistakes)

    def along(a: Answers, d: int) -> str | None:
        ignored = f"dim={d} was ignored: the result is normalised along the last axis"
        return compare(a[f"dim{d}"], torch.softmax(x, dim=d), [(ignored, torch.softmax(x, -1))])

    t.property("normalises along the axis given by dim", on=f"{on}, dim=1 and dim=0")(
        lambda a: first((f"with dim={d}", along(a, d)) for d in (1, 0))
    )

    @t.property("stays finite and exact for large scores (x · 1e4)", on="x · 1e4 of shape (2, 3, 5), float32")
    def large_scores(a: Answers) -> str | None:
        got = a["big"]
        if type(got) is Tensor and got.shape == big.shape and got.is_floating_point() and not got.isfinite().all():
            return (
                "NaN/inf for large scores: exp overflows (exp(89) is inf in float32, exp(710) in float64). "
                "Softmax does not change when the same constant is subtracted from every score it normalises; "
                "which constant keeps exp away from overflow?"
            )
        return compare(got, torch.softmax(big, dim=-1), rtol=1e-4)

    global_max = (shifted - shifted.max()).exp()
    one_max = (
        "rows far below the largest score became 0/0 = NaN: one maximum for the whole tensor was subtracted; "
        "each slice along dim needs its own"
    )
    t.equals("handles rows whose scores are far apart (offsets of ±3000)", "far", torch.softmax(shifted, dim=-1),
             [(one_max, global_max / global_max.sum(dim=-1, keepdim=True))], on=on)  # fmt: skip
    t.unchanged("in_place", {"x": x}, on=on, hint="x -= ... or x.exp_()")


check_softmax = EXERCISE.check("softmax")

# ------------------------------------------------------------------------------ scaled dot-product attention

SCALES = [  # (hint, the scale it uses, from d_k and d_v): the right one first
    ("", lambda d_k, d_v: 1.0 / math.sqrt(d_k)),
    ("the scores are not scaled: which factor keeps Q K^T from growing with d_k?", lambda d_k, d_v: 1.0),
    ("the scores are divided by d_k; the paper's scale is a square root", lambda d_k, d_v: 1.0 / d_k),
    ("the scores are multiplied by sqrt(d_k) instead of divided by it", lambda d_k, d_v: math.sqrt(d_k)),
    ("the scores are divided by sqrt(d_v), the size of the values; Q K^T sums d_k products",
     lambda d_k, d_v: 1.0 / math.sqrt(d_v)),
]  # fmt: skip
WEIGHTS = [  # (hint, the weights it gives, from q, k, mask and the scale): the right ones first
    ("", lambda q, k, mask, s: attend(q, k, k, mask, s)[1]),
    ("softmax normalises over the queries (each column sums to 1); each query's row must sum to 1 over the keys",
     lambda q, k, mask, s: attend(q, k, k, mask, s, dim=-2)[1]),
    ("the weights are the raw scores: they are never normalised", lambda q, k, mask, s: q @ k.transpose(-2, -1) * s),
]  # fmt: skip
MASKED_WEIGHTS = [  # the same with a mask
    ("the mask is inverted: True means 'may attend'", lambda q, k, mask, s: attend(q, k, k, ~mask, s)[1]),
    ("masked scores are set to 0, and exp(0) = 1, so masked keys still get weight; which score does softmax turn "
     "into exactly 0?", lambda q, k, mask, s: attend(q, k, k, mask, s, fill=0.0)[1]),
    ("masked keys are zeroed after the softmax, so rows no longer sum to 1; mask the scores instead",
     lambda q, k, mask, s: torch.softmax(q @ k.transpose(-2, -1) * s, dim=-1) * mask),
    ("the mask is ignored", lambda q, k, mask, s: attend(q, k, k, None, s)[1]),
]  # fmt: skip


def _weight_mistakes(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> list[Mistake]:
    """The usual wrong attention weights, alone and paired with a wrong scale, each with a hint naming the mistake.

    A hint names the mistake, never the fix. Pairs matter: a learner who forgot the scale *and*
    inverted the mask should hear about both, not get a bare "values differ".
    """
    return [
        ("; and ".join(h for h in (scale_hint, hint) if h), weights(q, k, mask, scale(q.shape[-1], v.shape[-1])))
        for scale_hint, scale in SCALES
        for hint, weights in WEIGHTS + (MASKED_WEIGHTS if mask is not None else [])
        if scale_hint or hint
    ]


def _check_pair(result: object, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> str | None:
    """Compare the learner's (output, weights) on one input with the oracle; hint at the mistake if not equal."""
    if kit.unpack(result) is None:
        return f"expected a pair (output, weights), got {type(result).__name__}"
    output, weights = kit.unpack(result)
    expected_output, expected_weights = attention_oracle(q, k, v, mask)
    output_mistakes = [
        ("the weights are applied to the keys; they weigh the values", expected_weights @ k),
        ("the output is transposed: one row per query, one column per value feature", expected_output.mT),
    ]
    return first(
        (part, compare(got, want, wrong))
        for part, got, want, wrong in (
            ("weights", weights, expected_weights, lambda: _weight_mistakes(q, k, v, mask)),
            ("output", output, expected_output, output_mistakes),
        )
    )


@EXERCISE.task("scaled_dot_product_attention", points=4)
def attention_task(t: Task) -> None:
    B, h, L_q, L_k, d_k, d_v = 2, 3, 4, 6, 8, 5
    q, k, v = randn(B, h, L_q, d_k, seed=1), randn(B, h, L_k, d_k, seed=2), randn(B, h, L_k, d_v, seed=3)
    on = describe_attention(q, k, v)
    # A mask with a few hidden keys in every row and no row all True or all False (so inverting it is visible).
    mask = torch.rand(B, 1, L_q, L_k, generator=torch.Generator().manual_seed(4)) < 0.6
    mask[..., 0], mask[..., -1] = True, False
    empty = mask.clone()
    empty[0, :, 1, :] = False  # query 1 of the first sequence may attend to nothing
    L = 5
    causal = torch.ones(L, L, dtype=torch.bool).tril()  # (L, L) broadcasts over B and h
    qc, kc, vc = randn(B, h, L, d_k, seed=5), randn(B, h, L, d_k, seed=6), randn(B, h, L, d_v, seed=7)
    t.error_hint(*TRANSPOSE_ALL)

    t.query("float32", q.float(), k.float(), v.float(), mask=None)
    t.query("plain", q, k, v, mask=None)
    t.query("large", q * 1e4, k, v, mask=None)
    t.query("masked", q, k, v, mask=mask)
    t.query("empty", q, k, v, mask=empty)
    t.query("causal", qc, kc, vc, mask=causal)
    for j in range(1, L):  # change token j's key and value, nothing else
        token = (..., j, slice(None))
        t.query(f"causal_changed_{j}", qc, kit.bumped(kc, token), kit.bumped(vc, token), mask=causal)
    t.query("no_heads", q[:, 0], k[:, 0], v[:, 0], mask=mask[:, 0])  # (B, h, L, d) -> (B, L, d)

    transposed = "transposed: one row per query, one column per "
    specs = {
        "weights": ((B, h, L_q, L_k), torch.float32, {(B, h, L_k, L_q): transposed + "key"}),
        "output": ((B, h, L_q, d_v), torch.float32, {
            (B, h, L_q, d_k): "d_k columns: the weights are applied to the keys; they weigh the values",
            (B, h, d_v, L_q): transposed + "value feature",
        }),
    }  # fmt: skip
    t.property("returns (output, weights) of the right shapes, keeping float32", on=describe_attention(q.float(), k, v),
               gated=True)(lambda a: kit.expect_tensors(a["float32"], ("output", "weights"), specs))  # fmt: skip
    t.property("equals softmax(Q K^T / sqrt(d_k)) V (F.scaled_dot_product_attention)", on=on)(
        lambda a: _check_pair(a["plain"], q, k, v)
    )

    @t.property("stays finite and exact for large scores (q · 1e4)", on=f"{on}, q · 1e4")
    def large(a: Answers) -> str | None:
        for name, got in zip(("output", "weights"), pair(a["large"]), strict=True):
            if type(got) is Tensor and got.is_floating_point() and not torch.isfinite(got).all():
                return (
                    f"{name} holds NaN/inf for large scores: exp overflows (exp(710) is inf in float64). Softmax "
                    "does not change when one constant is subtracted from a row of scores; which constant avoids "
                    "overflow?"
                )
        return _check_pair(a["large"], q * 1e4, k, v)

    t.property("a boolean mask hides keys (True = may attend)", on=describe_attention(q, k, v, mask))(
        lambda a: _check_pair(a["masked"], q, k, v, mask)
    )

    @t.property("a query that may attend to nothing returns zeros", on=describe_attention(q, k, v, empty))
    def empty_row(a: Answers) -> str | None:
        output, weights = pair(a["empty"])
        if type(output) is Tensor and output.shape == (B, h, L_q, d_v) and output[0, :, 1].isnan().any():
            return (
                "a query that may attend to nothing gave NaN: softmax over a row of -inf is 0/0. "
                "Detect such rows and return zeros for them"
            )
        usable = type(weights) is Tensor and weights.shape == (B, h, L_q, L_k) and weights.is_floating_point()
        if usable and torch.allclose(weights[0, :, 1], torch.full_like(weights[0, :, 1], 1.0 / L_k)):
            return (
                "a query that may attend to nothing spread its weight evenly over keys it may not see "
                "(a finite fill value); such rows must be all zeros"
            )
        return _check_pair(a["empty"], q, k, v, empty)

    @t.property(
        "changing a key/value the mask hides never moves an output",
        on=f"causal mask ({L}, {L}), B={B}, h={h}, d_k={d_k}, d_v={d_v}",
        gated=True,
    )
    def hidden_keys(a: Answers) -> str | None:
        changed = [pair(a[f"causal_changed_{j}"])[0] for j in range(1, L)]
        return leaks(pair(a["causal"])[0], changed, lambda diff, j: diff[..., :j, :], "key/value")

    t.property(
        "works without a heads axis: (B, L, d) inputs", on=describe_attention(q[:, 0], k[:, 0], v[:, 0], mask[:, 0])
    )(lambda a: _check_pair(a["no_heads"], q[:, 0], k[:, 0], v[:, 0], mask[:, 0]))


check_scaled_dot_product_attention = EXERCISE.check("scaled_dot_product_attention")

# ------------------------------------------------------------------------------------------------ masks


def _leaks(mask: Tensor, sees: Tensor) -> str | None:
    """Use ``mask`` in F.scaled_dot_product_attention, change one token's key and value at a time, see what moves.

    ``sees`` (L_q, L_k) is the truth: ``sees[i, j]`` True = query i may see token j, so changing token j
    must move output i; False = output i must not move. ``None`` if the mask behaves so.
    """
    L_q, L_k = sees.shape
    q, k, v = randn(1, 2, L_q, 4, seed=8), randn(1, 2, L_k, 4, seed=9), randn(1, 2, L_k, 3, seed=10)
    base = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    for j in range(L_k):
        token = (..., j, slice(None))  # change token j's key and value, nothing else
        output = F.scaled_dot_product_attention(q, kit.bumped(k, token), kit.bumped(v, token), attn_mask=mask)
        moved = (output - base).abs().amax(dim=(0, 1, -1))  # (L_q,)
        moved = moved.nan_to_num(0.0) > 1e-9
        for i in range(L_q):
            if moved[i] and not sees[i, j]:
                return f"changing token {j} moved the output of query {i}, which may not see it"
            if not moved[i] and sees[i, j]:
                return f"changing token {j} left the output of query {i} unchanged, but query {i} may see it"
    return None


CAUSAL_MISTAKES = [  # (hint, the mask it gives, from a (n, n) tensor of ones)
    ("inverted: True must mark the keys a query MAY attend to (the past and itself)", lambda ones: ~ones.tril()),
    ("the upper triangle: that lets each query see the future and hides the past", lambda ones: ones.triu()),
    ("the diagonal is missing: a token may attend to itself", lambda ones: ones.tril(-1)),
    ("off by one: each query also sees the next token", lambda ones: ones.tril(1)),
]


def _causal_values(got: object, n: int) -> str | None:
    if type(got) is Tensor and got.dtype != torch.bool:
        return f"expected dtype torch.bool (True = may attend), got {got.dtype}"
    ones = torch.ones(n, n, dtype=torch.bool)
    return compare(got, ones.tril(), [(hint, wrong(ones)) for hint, wrong in CAUSAL_MISTAKES])


@EXERCISE.task("causal_mask", points=2)
def causal_mask_task(t: Task) -> None:
    T = 6
    for n in (T, 2, 1):
        t.query(f"seq_len_{n}", n)

    t.shape("returns a (seq_len, seq_len) torch.bool tensor", f"seq_len_{T}", (T, T), torch.bool, on=f"seq_len={T}")
    t.property("True exactly on and below the diagonal (equals torch.tril)", on=f"seq_len={T}, 2, 1")(
        lambda a: first((f"seq_len={n}", _causal_values(a[f"seq_len_{n}"], n)) for n in (T, 2, 1))
    )

    @t.property(
        "in F.scaled_dot_product_attention: a token moves its own and later outputs only",
        on=f"seq_len={T}, change one token at a time",
    )
    def behaviour(a: Answers) -> str | None:
        mask = a[f"seq_len_{T}"]
        if type(mask) is not Tensor or mask.dtype != torch.bool or mask.shape != (T, T):
            return "cannot be used as attn_mask: it must be a (seq_len, seq_len) torch.bool tensor"
        return _leaks(mask, torch.ones(T, T, dtype=torch.bool).tril())


check_causal_mask = EXERCISE.check("causal_mask")


@EXERCISE.task("padding_mask", points=2)
def padding_mask_task(t: Task) -> None:
    lengths, max_len = torch.tensor([3, 5, 1, 4]), 6
    B = len(lengths)
    positions = torch.arange(max_len)
    expected = (positions < lengths[:, None])[:, None, None, :]  # (B, T) -> (B, 1, 1, T)
    on = f"lengths={lengths.tolist()}, max_len={max_len}"
    edge = torch.tensor([0, max_len])
    t.query("lengths", lengths, max_len)
    t.query("edge", edge, max_len)
    t.error_hint(".", "this input has a sequence of length 0: no real token at all, only padding", query="edge")

    hints = {
        (B, max_len): "it needs singleton axes for heads and queries to broadcast against (B, h, L_q, L_k)",
        (B, 1, max_len, 1): "padding hides keys, so positions belong on the last (key) axis",
    }
    t.shape("returns a (B, 1, 1, max_len) torch.bool tensor", "lengths", (B, 1, 1, max_len), torch.bool, hints, on=on)

    @t.property("True at real tokens (position < length), False at padding", on=on)
    def values(a: Answers) -> str | None:
        got = a["lengths"]
        if type(got) is not Tensor or got.numel() != expected.numel():
            return f"expected {expected.numel()} entries, got {getattr(got, 'shape', type(got).__name__)}"
        mistakes = [
            ("inverted: True must mark the real tokens (may attend), False the padding", ~expected),
            ("off by one: position `length` is already padding", (positions <= lengths[:, None])[:, None, None, :]),
        ]  # the values are judged apart from the shape and dtype
        return compare(got.reshape(expected.shape).to(torch.bool), expected, mistakes)

    @t.property("handles length 0 and length max_len", on=f"lengths=[0, {max_len}], max_len={max_len}")
    def zero_and_full(a: Answers) -> str | None:
        got = a["edge"]
        want = (positions < edge[:, None])[:, None, None, :]  # (2, T) -> (2, 1, 1, T)
        if type(got) is Tensor and got.numel() == want.numel():
            row = got.reshape(want.shape)[0].reshape(-1)
            if row.dtype == torch.bool and row.any():
                return (
                    "the sequence of length 0 has True in its row: with no real token, every position "
                    "(position 0 too) is padding"
                )
        return compare(got, want)

    @t.property(
        "in F.scaled_dot_product_attention: padding never moves an output, real tokens do",
        on=f"{on}, change one token at a time",
    )
    def behaviour(a: Answers) -> str | None:
        mask = a["lengths"]
        if type(mask) is not Tensor or mask.dtype != torch.bool or mask.shape != expected.shape:
            return "cannot be used as attn_mask: it must be a (B, 1, 1, max_len) torch.bool tensor"
        return first(
            (
                f"sequence {b} (length {lengths[b].item()})",
                _leaks(mask[b : b + 1], expected[b, 0].expand(max_len, max_len)),
            )
            for b in range(B)
        )  # (1, T) -> (T, T): every query sees the real keys


check_padding_mask = EXERCISE.check("padding_mask")
