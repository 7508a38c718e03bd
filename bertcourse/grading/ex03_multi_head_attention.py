"""Checks for exercise 03 (multi-head attention): split and merge heads, LayerNorm, multi-head self-attention.

Inputs break symmetries: batch 2, 3 heads of size 4 (so heads != head size), T != head size, random
weights and biases. Oracles: ``view``/``transpose`` done right, ``F.layer_norm``, and the course's
``MultiHeadAttention`` with the learner's weights copied in (same ``nn.Linear`` layout). Masks are
judged by behaviour too: change a token the mask hides, and no output may move. Hints come from the
usual mistakes (a bare ``view`` without the transpose, q/k/v chunks in the wrong order, a scale by
sqrt(H), a missing output projection, the unbiased variance, the wrong axis) evaluated on the same input.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from bertcourse.attention import MultiHeadAttention
from bertcourse.grading.framework import Answers, Exercise, Task, compare, expect_tensor, randn
from bertcourse.grading.kit import leaks

__all__ = [
    "EXERCISE",
    "check_layer_norm",
    "check_merge_heads",
    "check_multi_head_self_attention",
    "check_split_heads",
]

EXERCISE = Exercise("03_multi_head_attention.ipynb")

B, T, N_HEADS, D_HEAD = 2, 5, 3, 4
H = N_HEADS * D_HEAD  # 12
ON = f"x (B={B}, T={T}, H={H}), n_heads={N_HEADS}"

# ----------------------------------------------------------------------------------------- split / merge


def _split(x: Tensor, n_heads: int) -> Tensor:
    b, t, h = x.shape
    return x.reshape(b, t, n_heads, h // n_heads).transpose(1, 2)  # (B, T, H) -> (B, T, h, d) -> (B, h, T, d)


def _merge(x: Tensor) -> Tensor:
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)  # (B, h, T, d) -> (B, T, h, d) -> (B, T, H)


@EXERCISE.task("split_heads", points=2)
def split_heads_task(t: Task) -> None:
    x = randn(B, T, H, seed=40)
    t.query("float32", x.float(), N_HEADS)
    t.query("x", x, N_HEADS)
    t.query("two_heads", x, 2)

    @t.property("returns (B, n_heads, T, H // n_heads), keeping the dtype", on=f"{ON}, float32", gated=True)
    def shape(a: Answers) -> str | None:
        hints = {
            (B, T, N_HEADS, D_HEAD): "the heads axis must come before the positions: (B, n_heads, T, d)",
            (B, D_HEAD, T, N_HEADS): "H // n_heads heads of size n_heads: the last axis splits into (n_heads, d)",
        }
        return expect_tensor(a["float32"], (B, N_HEADS, T, D_HEAD), torch.float32, hints)

    @t.property("head i holds features i*d .. (i+1)*d - 1 of every position", on=ON)
    def values(a: Answers) -> str | None:
        mistakes = [
            (
                "a bare view to (B, n_heads, T, d) reads memory row by row: each 'head' mixes positions; cut the "
                "last axis into (n_heads, d) first, then move the heads axis",
                x.view(B, N_HEADS, T, D_HEAD),
            ),
            (
                "the features are cut into (d, n_heads) instead of (n_heads, d): head i must be a contiguous block",
                x.view(B, T, D_HEAD, N_HEADS).permute(0, 3, 1, 2),
            ),
        ]
        return compare(a["x"], _split(x, N_HEADS), mistakes)

    @t.property("uses n_heads, not a fixed number", on=f"{ON.replace(f'n_heads={N_HEADS}', 'n_heads=2')}")
    def other_heads(a: Answers) -> str | None:
        return compare(a["two_heads"], _split(x, 2))


check_split_heads = EXERCISE.check("split_heads")


@EXERCISE.task("merge_heads", points=1)
def merge_heads_task(t: Task) -> None:
    z = randn(B, N_HEADS, T, D_HEAD, seed=41)
    on = f"x (B={B}, n_heads={N_HEADS}, T={T}, d={D_HEAD})"
    z2 = randn(B, 2, T, 6, seed=46)  # 2 heads of size 6: the same H, cut differently
    t.query("float32", z.float())
    t.query("z", z)
    t.query("two_heads", z2)

    @t.property("returns (B, T, n_heads * d), keeping the dtype", on=f"{on}, float32", gated=True)
    def shape(a: Answers) -> str | None:
        hints = {(B, T, N_HEADS, D_HEAD): "the heads are not concatenated yet: (B, T, n_heads, d) -> (B, T, H)"}
        return expect_tensor(a["float32"], (B, T, H), torch.float32, hints)

    @t.property("is the concatenation of the heads at every position (undoes split_heads)", on=on)
    def values(a: Answers) -> str | None:
        mistakes = [
            (
                "a bare reshape of (B, n_heads, T, d) to (B, T, H) mixes positions: move the heads axis next to "
                "the features first",
                z.reshape(B, T, H),
            ),
        ]
        return compare(a["z"], _merge(z), mistakes)

    @t.property("reads the number and size of the heads from x", on=f"x (B={B}, n_heads=2, T={T}, d=6)")
    def other_heads(a: Answers) -> str | None:
        return compare(a["two_heads"], _merge(z2))


check_merge_heads = EXERCISE.check("merge_heads")

# -------------------------------------------------------------------------------------------- layer norm


def _ln(x: Tensor, weight: Tensor, bias: Tensor, eps: float, unbiased: bool = False, dims=(-1,)) -> Tensor:
    mu = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, correction=1 if unbiased else 0)
    return weight * (x - mu) / torch.sqrt(var + eps) + bias


@EXERCISE.task("layer_norm", points=2)
def layer_norm_task(t: Task) -> None:
    x = randn(B, T, H, seed=42) * torch.linspace(0.2, 3.0, H, dtype=torch.float64) + 1.5  # features on many scales
    weight, bias = randn(H, seed=43), randn(H, seed=44)
    small = randn(B, T, H, seed=45) * 0.05  # variance 0.0025: the epsilon matters
    on = f"x (B={B}, T={T}, H={H}), random weight and bias (H,)"
    t.query("float32", x.float(), weight.float(), bias.float())
    t.query("x", x, weight, bias)
    t.query("eps", small, weight, bias, eps=0.01)
    t.query("in_place", x, weight, bias, keep_inputs=True)

    @t.property("returns a tensor of x's shape and dtype", on=f"{on}, float32", gated=True)
    def shape(a: Answers) -> str | None:
        return expect_tensor(a["float32"], (B, T, H), torch.float32)

    @t.property("equals F.layer_norm over the last axis", on=on)
    def values(a: Answers) -> str | None:
        eps = 1e-5
        mistakes = [
            (
                "the variance is the unbiased one (divided by H - 1); LayerNorm divides by H",
                _ln(x, weight, bias, eps, unbiased=True),
            ),
            ("normalised over the positions (axis 1) instead of the features", _ln(x, weight, bias, eps, dims=(1,))),
            (
                "normalised over all of x at once instead of each position's features",
                _ln(x, weight, bias, eps, dims=(0, 1, 2)),
            ),
            ("weight and bias are swapped: the weight scales, the bias shifts", _ln(x, bias, weight, eps)),
            ("the weight and bias are not applied", _ln(x, torch.ones(H), torch.zeros(H), eps)),
            (
                "the epsilon is added to the standard deviation; it belongs under the square root",
                weight * (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True, unbiased=False) + eps) + bias,
            ),
        ]
        return compare(a["x"], F.layer_norm(x, (H,), weight, bias, eps), mistakes)

    @t.property("uses eps inside the square root", on="x with variance 0.0025, eps=0.01")
    def epsilon(a: Answers) -> str | None:
        mistakes = [
            ("eps is ignored: with a small variance it changes the result", _ln(small, weight, bias, 0.0)),
            ("eps=1e-5 is used whatever eps is passed", _ln(small, weight, bias, 1e-5)),
            (
                "the epsilon is added to the standard deviation; it belongs under the square root",
                weight * (small - small.mean(-1, keepdim=True)) / (small.std(-1, keepdim=True, unbiased=False) + 0.01)
                + bias,
            ),
        ]
        return compare(a["eps"], F.layer_norm(small, (H,), weight, bias, 0.01), mistakes)

    t.unchanged("in_place", {"x": x}, on=on, hint="x -= ... or x.sub_()")


check_layer_norm = EXERCISE.check("layer_norm")

# ------------------------------------------------------------------------------ multi-head self-attention


def _mhsa(
    x: Tensor,
    w_qkv: Tensor,
    b_qkv: Tensor,
    w_o: Tensor,
    b_o: Tensor,
    n_heads: int,
    mask: Tensor | None = None,
    order: tuple[int, int, int] = (0, 1, 2),
    scale: float | None = None,
    bare_view: bool = False,
    bare_merge: bool = False,
    out_proj: bool = True,
    qkv_bias: bool = True,
) -> Tensor:
    """Multi-head self-attention written out; the knobs reproduce the usual mistakes."""
    b, t, h = x.shape
    d = h // n_heads
    qkv = x @ w_qkv.T + (b_qkv if qkv_bias else 0)  # (B, T, 3H): nn.Linear computes x W^T + b
    chunks = qkv.split(h, dim=-1)
    q, k, v = (chunks[i] for i in order)

    def split(z: Tensor) -> Tensor:
        return z.reshape(b, n_heads, t, d) if bare_view else _split(z, n_heads)

    q, k, v = split(q), split(k), split(v)  # each (B, h, T, d)
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    scores = q @ k.transpose(-2, -1) * scale  # (B, h, T, T)
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf)
    z = torch.softmax(scores, dim=-1) @ v  # (B, h, T, d)
    merged = z.reshape(b, t, h) if bare_merge else _merge(z)
    return merged @ w_o.T + b_o if out_proj else merged


def _oracle(x: Tensor, w_qkv: Tensor, b_qkv: Tensor, w_o: Tensor, b_o: Tensor, n_heads: int, mask=None) -> Tensor:
    """The course's MultiHeadAttention with these weights (same nn.Linear layout), on its explicit path."""
    attn = MultiHeadAttention(x.shape[-1], n_heads, backend="math").to(x.dtype)
    with torch.no_grad():
        attn.in_proj.weight.copy_(w_qkv)
        attn.in_proj.bias.copy_(b_qkv)
        attn.out_proj.weight.copy_(w_o)
        attn.out_proj.bias.copy_(b_o)
        return attn(x, attn_mask=mask).output


def _mhsa_mistakes(x, w_qkv, b_qkv, w_o, b_o, n_heads, mask=None) -> list[tuple[str, Tensor]]:
    args = (x, w_qkv, b_qkv, w_o, b_o, n_heads, mask)
    h = x.shape[-1]
    mistakes = [
        (
            "the heads are split by a bare view to (B, n_heads, T, d) without the transpose: each head mixes positions",
            _mhsa(*args, bare_view=True),
        ),
        (
            "the heads are merged by a bare reshape of (B, n_heads, T, d) to (B, T, H): positions get mixed",
            _mhsa(*args, bare_merge=True),
        ),
        (
            f"the scores are divided by sqrt(H) = sqrt({h}); each head's dot products sum d = H // n_heads terms",
            _mhsa(*args, scale=1.0 / math.sqrt(h)),
        ),
        ("the scores are not scaled", _mhsa(*args, scale=1.0)),
        (
            "the output projection w_o, b_o is missing: the heads are concatenated but not mixed",
            _mhsa(*args, out_proj=False),
        ),
        ("the bias b_qkv is not added to the projections", _mhsa(*args, qkv_bias=False)),
        ("the output bias b_o is missing", _mhsa(*args) - b_o),
    ]
    for order, name in (
        ((1, 0, 2), "k, q, v"),
        ((0, 2, 1), "q, v, k"),
        ((2, 1, 0), "v, k, q"),
        ((1, 2, 0), "k, v, q"),
        ((2, 0, 1), "v, q, k"),
    ):
        mistakes.append(
            (
                f"the chunks of w_qkv are taken in the order {name}; the rows are stacked as q, k, v",
                _mhsa(*args, order=order),
            )
        )
    if mask is not None:
        mistakes += [
            ("the mask is inverted: True means 'may attend'", _mhsa(x, w_qkv, b_qkv, w_o, b_o, n_heads, ~mask)),
            ("the mask is ignored", _mhsa(x, w_qkv, b_qkv, w_o, b_o, n_heads)),
        ]
    return mistakes


@EXERCISE.task("multi_head_self_attention", points=5)
def multi_head_task(t: Task) -> None:
    x = randn(B, T, H, seed=50)
    w_qkv, b_qkv = randn(3 * H, H, seed=51) * 0.5, randn(3 * H, seed=52)
    w_o, b_o = randn(H, H, seed=53) * 0.5, randn(H, seed=54)
    weights = (w_qkv, b_qkv, w_o, b_o)
    on = f"{ON}, w_qkv (3H, H), b_qkv (3H,), w_o (H, H), b_o (H,), random"
    mask = torch.rand(B, N_HEADS, T, T, generator=torch.Generator().manual_seed(55)) < 0.6  # per head
    mask[..., 0] = True  # every query may attend to something
    mask[..., -1] = False
    causal = torch.ones(T, T, dtype=torch.bool).tril()  # (T, T): broadcast over batch and heads
    t.error_hint(
        r"mat1 and mat2 shapes cannot be multiplied|must match the size",
        "the shapes do not fit: w_qkv is stored as nn.Linear stores its weight, (out_features, in_features)",
    )
    t.error_hint(
        r"view size is not compatible",
        "view never moves data: a chunk of the (B, T, 3H) projection viewed as (B, n_heads, T, d) is not laid out "
        "in that order in memory (and would mix positions if it were)",
    )

    t.query("float32", x.float(), *(w.float() for w in weights), N_HEADS)
    t.query("plain", x, *weights, N_HEADS)
    t.query("two_heads", x, *weights, 2)
    t.query("masked", x, *weights, N_HEADS, mask=mask)
    t.query("causal", x, *weights, N_HEADS, mask=causal)
    for j in range(1, T):
        x2 = x.clone()
        x2[:, j] += 1.0  # change token j only
        t.query(f"causal_changed_{j}", x2, *weights, N_HEADS, mask=causal)

    @t.property("returns (B, T, H), keeping float32", on=f"{on}, float32", gated=True)
    def shape(a: Answers) -> str | None:
        hints = {(B, N_HEADS, T, D_HEAD): "the heads are not merged back into (B, T, H)"}
        return expect_tensor(a["float32"], (B, T, H), torch.float32, hints)

    @t.property("equals the course's MultiHeadAttention with these weights", on=f"{on}, float64")
    def plain(a: Answers) -> str | None:
        return compare(a["plain"], _oracle(x, *weights, N_HEADS), lambda: _mhsa_mistakes(x, *weights, N_HEADS))

    @t.property("uses n_heads: the same weights cut into 2 heads of 6", on=f"{on}, n_heads=2")
    def other_heads(a: Answers) -> str | None:
        return compare(a["two_heads"], _oracle(x, *weights, 2), lambda: _mhsa_mistakes(x, *weights, 2))

    @t.property("a (B, n_heads, T, T) boolean mask hides keys per head (True = may attend)", on=f"{on}, mask per head")
    def masked(a: Answers) -> str | None:
        return compare(
            a["masked"], _oracle(x, *weights, N_HEADS, mask), lambda: _mhsa_mistakes(x, *weights, N_HEADS, mask)
        )

    @t.property(
        "with a causal (T, T) mask, changing a token never moves an earlier output", on=f"{on}, causal mask", gated=True
    )
    def causal_behaviour(a: Answers) -> str | None:
        changed = [a[f"causal_changed_{j}"] for j in range(1, T)]
        return leaks(a["causal"], changed, lambda diff, j: diff[:, :j], "token")


check_multi_head_self_attention = EXERCISE.check("multi_head_self_attention")
