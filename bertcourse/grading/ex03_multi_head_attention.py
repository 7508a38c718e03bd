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
from bertcourse.grading.framework import Answers, Exercise, Task, randn
from bertcourse.grading.kit import bumped, leaks, variants

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

    hints = {
        (B, T, N_HEADS, D_HEAD): "the heads axis must come before the positions: (B, n_heads, T, d)",
        (B, D_HEAD, T, N_HEADS): "H // n_heads heads of size n_heads: the last axis splits into (n_heads, d)",
    }
    t.shape("returns (B, n_heads, T, H // n_heads), keeping the dtype", "float32", (B, N_HEADS, T, D_HEAD),
            torch.float32, hints, on=f"{ON}, float32")  # fmt: skip
    mistakes = [
        ("a bare view to (B, n_heads, T, d) reads memory row by row: each 'head' mixes positions; cut the "
         "last axis into (n_heads, d) first, then move the heads axis", x.view(B, N_HEADS, T, D_HEAD)),
        ("the features are cut into (d, n_heads) instead of (n_heads, d): head i must be a contiguous block",
         x.view(B, T, D_HEAD, N_HEADS).permute(0, 3, 1, 2)),
    ]  # fmt: skip
    t.equals("head i holds features i*d .. (i+1)*d - 1 of every position", "x", _split(x, N_HEADS), mistakes, on=ON)
    t.equals("uses n_heads, not a fixed number", "two_heads", _split(x, 2),
             on=f"{ON.replace(f'n_heads={N_HEADS}', 'n_heads=2')}")  # fmt: skip


check_split_heads = EXERCISE.check("split_heads")


@EXERCISE.task("merge_heads", points=1)
def merge_heads_task(t: Task) -> None:
    z = randn(B, N_HEADS, T, D_HEAD, seed=41)
    on = f"x (B={B}, n_heads={N_HEADS}, T={T}, d={D_HEAD})"
    z2 = randn(B, 2, T, 6, seed=46)  # 2 heads of size 6: the same H, cut differently
    t.query("float32", z.float())
    t.query("z", z)
    t.query("two_heads", z2)

    hints = {(B, T, N_HEADS, D_HEAD): "the heads are not concatenated yet: (B, T, n_heads, d) -> (B, T, H)"}
    t.shape("returns (B, T, n_heads * d), keeping the dtype", "float32", (B, T, H), torch.float32, hints,
            on=f"{on}, float32")  # fmt: skip
    bare = [("a bare reshape of (B, n_heads, T, d) to (B, T, H) mixes positions: move the heads axis next to the "
             "features first", z.reshape(B, T, H))]  # fmt: skip
    t.equals("is the concatenation of the heads at every position (undoes split_heads)", "z", _merge(z), bare, on=on)
    t.equals("reads the number and size of the heads from x", "two_heads", _merge(z2),
             on=f"x (B={B}, n_heads=2, T={T}, d=6)")  # fmt: skip


check_merge_heads = EXERCISE.check("merge_heads")

# -------------------------------------------------------------------------------------------- layer norm


def _ln(x: Tensor, weight: Tensor, bias: Tensor, eps: float, unbiased: bool = False, dims=(-1,), swap: bool = False,
        affine: bool = True, outside: bool = False) -> Tensor:  # fmt: skip
    """LayerNorm written out; the knobs reproduce the usual mistakes."""
    if swap or not affine:
        weight, bias = (bias, weight) if swap else (torch.ones(H), torch.zeros(H))
    mu = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, correction=1 if unbiased else 0)
    return weight * (x - mu) / (var.sqrt() + eps if outside else torch.sqrt(var + eps)) + bias


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

    t.shape("returns a tensor of x's shape and dtype", "float32", (B, T, H), torch.float32, on=f"{on}, float32")
    outside = "the epsilon is added to the standard deviation; it belongs under the square root"
    wrong_norm = [
        ("the variance is the unbiased one (divided by H - 1); LayerNorm divides by H", {"unbiased": True}),
        ("normalised over the positions (axis 1) instead of the features", {"dims": (1,)}),
        ("normalised over all of x at once instead of each position's features", {"dims": (0, 1, 2)}),
        ("weight and bias are swapped: the weight scales, the bias shifts", {"swap": True}),
        ("the weight and bias are not applied", {"affine": False}),
        (outside, {"outside": True}),
    ]
    t.equals("equals F.layer_norm over the last axis", "x", F.layer_norm(x, (H,), weight, bias, 1e-5),
             lambda: variants(_ln, wrong_norm, x, weight, bias, eps=1e-5), on=on)  # fmt: skip
    wrong_eps = [
        ("eps is ignored: with a small variance it changes the result", {"eps": 0.0}),
        ("eps=1e-5 is used whatever eps is passed", {"eps": 1e-5}),
        (outside, {"eps": 0.01, "outside": True}),
    ]
    t.equals("uses eps inside the square root", "eps", F.layer_norm(small, (H,), weight, bias, 0.01),
             lambda: variants(_ln, wrong_eps, small, weight, bias), on="x with variance 0.0025, eps=0.01")  # fmt: skip

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
    scale: float | str | None = None,
    bare_view: bool = False,
    bare_merge: bool = False,
    out_proj: bool = True,
    qkv_bias: bool = True,
    out_bias: bool = True,
    invert: bool = False,
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
    scale = {None: 1.0 / math.sqrt(d), "sqrt(H)": 1.0 / math.sqrt(h)}.get(scale, scale)
    scores = q @ k.transpose(-2, -1) * scale  # (B, h, T, T)
    if mask is not None:
        scores = scores.masked_fill(mask if invert else ~mask, -math.inf)
    z = torch.softmax(scores, dim=-1) @ v  # (B, h, T, d)
    merged = z.reshape(b, t, h) if bare_merge else _merge(z)
    return merged @ w_o.T + (b_o if out_bias else 0) if out_proj else merged


def _oracle(x: Tensor, w_qkv: Tensor, b_qkv: Tensor, w_o: Tensor, b_o: Tensor, n_heads: int, mask=None) -> Tensor:
    """The course's MultiHeadAttention with these weights (same nn.Linear layout), on its explicit path."""
    attn = MultiHeadAttention(x.shape[-1], n_heads, backend="math").to(x.dtype)
    with torch.no_grad():
        attn.in_proj.weight.copy_(w_qkv)
        attn.in_proj.bias.copy_(b_qkv)
        attn.out_proj.weight.copy_(w_o)
        attn.out_proj.bias.copy_(b_o)
        return attn(x, attn_mask=mask).output


MHSA_MISTAKES = [  # (hint, the knobs of _mhsa that reproduce it)
    ("the heads are split by a bare view to (B, n_heads, T, d) without the transpose: each head mixes positions",
     {"bare_view": True}),
    ("the heads are merged by a bare reshape of (B, n_heads, T, d) to (B, T, H): positions get mixed",
     {"bare_merge": True}),
    ("the scores are divided by sqrt(H) = sqrt({h}); each head's dot products sum d = H // n_heads terms",
     {"scale": "sqrt(H)"}),
    ("the scores are not scaled", {"scale": 1.0}),
    ("the output projection w_o, b_o is missing: the heads are concatenated but not mixed", {"out_proj": False}),
    ("the bias b_qkv is not added to the projections", {"qkv_bias": False}),
    ("the output bias b_o is missing", {"out_bias": False}),
    *[(f"the chunks of w_qkv are taken in the order {name}; the rows are stacked as q, k, v",
       {"order": tuple("qkv".index(c) for c in name.split(", "))})
      for name in ("k, q, v", "q, v, k", "v, k, q", "k, v, q", "v, q, k")],
]  # fmt: skip
MASK_MISTAKES = [
    ("the mask is inverted: True means 'may attend'", {"invert": True}),
    ("the mask is ignored", {"mask": None}),
]


def _mhsa_mistakes(x, w_qkv, b_qkv, w_o, b_o, n_heads, mask=None) -> list[tuple[str, Tensor]]:
    table = MHSA_MISTAKES + (MASK_MISTAKES if mask is not None else [])
    wrong = variants(_mhsa, table, x, w_qkv, b_qkv, w_o, b_o, n_heads, mask=mask)
    return [(hint.format(h=H), output) for hint, output in wrong]


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
        t.query(f"causal_changed_{j}", bumped(x, (slice(None), j)), *weights, N_HEADS, mask=causal)  # token j only

    hints = {(B, N_HEADS, T, D_HEAD): "the heads are not merged back into (B, T, H)"}
    t.shape("returns (B, T, H), keeping float32", "float32", (B, T, H), torch.float32, hints, on=f"{on}, float32")
    for name, query, n, m, where in (
        ("equals the course's MultiHeadAttention with these weights", "plain", N_HEADS, None, f"{on}, float64"),
        ("uses n_heads: the same weights cut into 2 heads of 6", "two_heads", 2, None, f"{on}, n_heads=2"),
        ("a (B, n_heads, T, T) boolean mask hides keys per head (True = may attend)", "masked", N_HEADS, mask,
         f"{on}, mask per head"),
    ):  # fmt: skip
        t.equals(name, query, _oracle(x, *weights, n, m), lambda n=n, m=m: _mhsa_mistakes(x, *weights, n, m), on=where)

    @t.property(
        "with a causal (T, T) mask, changing a token never moves an earlier output", on=f"{on}, causal mask", gated=True
    )
    def causal_behaviour(a: Answers) -> str | None:
        changed = [a[f"causal_changed_{j}"] for j in range(1, T)]
        return leaks(a["causal"], changed, lambda diff, j: diff[:, :j], "token")


check_multi_head_self_attention = EXERCISE.check("multi_head_self_attention")
