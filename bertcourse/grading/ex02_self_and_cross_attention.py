"""Checks for exercise 02 (self- and cross-attention): where the queries, keys and values come from.

Inputs break symmetries: batch 2, L_q != L_k for cross-attention (plus one input with T == S, where
keys taken from the wrong sequence have the right shape), D != d_k != d_v, random weights. The oracle
is PyTorch's ``F.scaled_dot_product_attention`` on ``x @ w`` projections. Masks are judged by
behaviour as well as by value: changing a token the mask hides must move no output, and in
cross-attention a query's output depends on its own position of ``x`` and on the context only.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from bertcourse.grading.framework import Answers, Exercise, Task, compare, randn
from bertcourse.grading.kit import attend, attention_oracle, bumped, expect_tensors, leaks, output_and_weights

__all__ = ["EXERCISE", "check_cross_attention", "check_self_attention"]

EXERCISE = Exercise("02_self_and_cross_attention.ipynb")

B, T, S, D, D_K, D_V = 2, 4, 6, 6, 4, 3
"""Batch, query length, context length, model width, query/key size, value size: all different."""


def _attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, scale: float | None = None, dim: int = -1,
            fill: float = -math.inf) -> tuple[Tensor, Tensor]:  # fmt: skip
    """(output, weights) of softmax(q k^T * scale) v; the knobs reproduce the usual mistakes."""
    return attend(q, k, v, mask, scale, dim, fill, zero_empty=False)


def _judge_pair(
    result: object, expected: tuple[Tensor, Tensor], mistakes: list[tuple[str, tuple[Tensor, Tensor]]]
) -> str | None:
    """Compare (output, weights) with the oracle; the hint of the first mistake whose output *and* weights match."""
    output, weights = output_and_weights(result)
    if weights is None:
        return f"expected a pair (output, weights), got {type(output).__name__}"
    problems = [compare(weights, expected[1]), compare(output, expected[0])]
    if problems == [None, None]:
        return None
    for hint, (wrong_output, wrong_weights) in mistakes:
        if compare(weights, wrong_weights) is None and compare(output, wrong_output) is None:
            return hint
    for hint, (_, wrong_weights) in mistakes:  # the weights alone may already name the mistake
        if problems[0] and compare(weights, wrong_weights) is None:
            return f"weights: {hint}"
    part, problem = ("weights", problems[0]) if problems[0] else ("output", problems[1])
    return f"{part}: {problem}"


def _scale_mistakes(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, width: int
) -> list[tuple[str, tuple[Tensor, Tensor]]]:
    """Wrong scales and a wrong softmax axis, each alone, with ``mask`` applied the right way."""
    d_k, d_v = q.shape[-1], v.shape[-1]
    return [
        ("the scores are not scaled: which factor keeps Q K^T from growing with d_k?", _attend(q, k, v, mask, 1.0)),
        ("the scores are divided by sqrt(D), the width of x; Q K^T sums d_k products, one per query/key feature",
         _attend(q, k, v, mask, 1.0 / math.sqrt(width))),
        ("the scores are divided by sqrt(d_v), the size of the values", _attend(q, k, v, mask, 1.0 / math.sqrt(d_v))),
        ("the scores are divided by d_k; the paper's scale is a square root", _attend(q, k, v, mask, 1.0 / d_k)),
        ("softmax normalises over the queries (each column sums to 1); each query's row must sum to 1 over the keys",
         _attend(q, k, v, mask, dim=-2)),
    ]  # fmt: skip


def _mask_mistakes(q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> list[tuple[str, tuple[Tensor, Tensor]]]:
    """The usual ways to get a boolean key mask wrong."""
    after = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1) * mask
    return [
        ("the mask is inverted: True means 'may attend'", _attend(q, k, v, ~mask)),
        ("the mask is ignored", _attend(q, k, v)),
        ("masked scores are set to 0, and exp(0) = 1, so masked keys still get weight; which score does softmax "
         "turn into exactly 0?", _attend(q, k, v, mask, fill=0.0)),
        ("masked keys are zeroed after the softmax, so rows no longer sum to 1; mask the scores", (after @ v, after)),
    ]  # fmt: skip


# ------------------------------------------------------------------------------------------ self-attention


@EXERCISE.task("self_attention", points=4)
def self_attention_task(t: Task) -> None:
    x = randn(B, T, D, seed=20)
    w_q, w_k, w_v = randn(D, D_K, seed=21), randn(D, D_K, seed=22), randn(D, D_V, seed=23)
    q, k, v = x @ w_q, x @ w_k, x @ w_v  # (B, T, d_k), (B, T, d_k), (B, T, d_v)
    on = f"x (B={B}, T={T}, D={D}), w_q and w_k (D, d_k={D_K}), w_v (D, d_v={D_V}), float64"
    mask = torch.rand(B, T, T, generator=torch.Generator().manual_seed(24)) < 0.6  # (B, T, T)
    mask[..., 0] = True  # every query may attend to something
    mask[..., -1] = False
    lengths = torch.tensor([T, 2])
    key_padding = (torch.arange(T) < lengths[:, None])[:, None, :]  # (B, 1, T): broadcasts over the queries
    causal = torch.ones(T, T, dtype=torch.bool).tril()  # (T, T): broadcasts over the batch
    t.error_hint(
        r"mat1 and mat2 shapes cannot be multiplied|must match the size|Expected size for first two dimensions",
        "the shapes do not fit: x (B, T, D) @ w (D, d) projects; w_q/w_k have d_k columns and w_v has d_v",
    )

    t.query("float32", x.float(), w_q.float(), w_k.float(), w_v.float())
    t.query("plain", x, w_q, w_k, w_v)
    t.query("masked", x, w_q, w_k, w_v, mask=mask)
    t.query("key_padding", x, w_q, w_k, w_v, mask=key_padding)
    t.query("causal", x, w_q, w_k, w_v, mask=causal)
    for j in range(1, T):
        t.query(f"causal_changed_{j}", bumped(x, (slice(None), j)), w_q, w_k, w_v, mask=causal)  # token j only

    specs = {
        "weights": ((B, T, T), torch.float32),
        "output": ((B, T, D_V), torch.float32, {
            (B, T, D_K): "d_k columns: the weights are applied to the keys or queries; they weigh the values",
            (B, T, D): "D columns: the weights are applied to x itself; they weigh the values x @ w_v",
        }),
    }  # fmt: skip
    t.property("returns (output (B, T, d_v), weights (B, T, T)), keeping float32", on=on.replace("float64", "float32"),
               gated=True)(lambda a: expect_tensors(a["float32"], ("output", "weights"), specs))  # fmt: skip
    output, weights = attention_oracle(q, k, v)
    mistakes = [
        *_scale_mistakes(q, k, v, None, D),
        ("queries and keys are swapped (the scores are K Q^T): row i must hold query i's scores", _attend(k, q, v)),
        ("the weights are applied to x itself, not to the values x @ w_v", _attend(q, k, x)),
        ("the weights are transposed: row i must hold query i's weights over the keys", (output, weights.mT)),
    ]
    t.property("equals softmax((x W_q)(x W_k)^T / sqrt(d_k)) (x W_v)", on=on)(
        lambda a: _judge_pair(a["plain"], (output, weights), mistakes)
    )
    t.property("a boolean (B, T, T) mask hides keys (True = may attend)", on=f"{on}, mask (B, T, T)")(
        lambda a: _judge_pair(a["masked"], attention_oracle(q, k, v, mask),
                              [*_mask_mistakes(q, k, v, mask), *_scale_mistakes(q, k, v, mask, D)])
    )  # fmt: skip
    t.property("a (B, 1, T) key-padding mask broadcasts: padded tokens get no weight",
               on=f"{on}, lengths {lengths.tolist()} as a (B, 1, T) mask")(
        lambda a: _judge_pair(a["key_padding"], attention_oracle(q, k, v, key_padding),
                              _mask_mistakes(q, k, v, key_padding))
    )  # fmt: skip

    @t.property("with a causal (T, T) mask, changing a token never moves an earlier output", on=f"{on}, causal mask")
    def causal_behaviour(a: Answers) -> str | None:
        base = output_and_weights(a["causal"])[0]
        changed = [output_and_weights(a[f"causal_changed_{j}"])[0] for j in range(1, T)]
        problem = leaks(base, changed, lambda diff, j: diff[:, :j], "token")
        if problem or base.dim() != 3:
            return problem or "the output is not a (B, T, d_v) tensor"
        for j, moved in enumerate(changed, start=1):
            if not (moved.double() - base.double())[:, j].abs().amax() > 1e-9:
                return f"changing token {j} did not move its own output: does each position read itself?"
        return None


check_self_attention = EXERCISE.check("self_attention")

# ----------------------------------------------------------------------------------------- cross-attention


@EXERCISE.task("cross_attention", points=4)
def cross_attention_task(t: Task) -> None:
    x, context = randn(B, T, D, seed=30), randn(B, S, D, seed=31)
    x_same = randn(B, S, D, seed=32)  # as long as the context: keys from the wrong sequence keep their shape
    w_q, w_k, w_v = randn(D, D_K, seed=33), randn(D, D_K, seed=34), randn(D, D_V, seed=35)
    q, k, v = x @ w_q, context @ w_k, context @ w_v
    q_same = x_same @ w_q
    lengths = torch.tensor([S, 3])
    real = torch.arange(S) < lengths[:, None]  # (B, S): True = real context token
    keys = real[:, None, :]  # (B, 1, S): hides context columns for every query
    on = f"x (B={B}, T={T}, D={D}), context (B, S={S}, D), w_q/w_k (D, d_k={D_K}), w_v (D, d_v={D_V})"
    on_same = on.replace(f"T={T}", f"T={S}")
    masked_on = f"{on}, context_mask (B, S) of 1/0 with lengths {lengths.tolist()}"
    t.error_hint(
        r"masked_fill_? only supports boolean masks|expected .*Bool",
        "context_mask holds 1/0 integers: turn it into booleans (True = real token) before using it as a mask",
    )
    t.error_hint(
        r"mat1 and mat2 shapes cannot be multiplied|must match the size|Expected size for first two dimensions",
        "the shapes do not fit: queries are x @ w_q (B, T, d_k); keys and values come from context (B, S, D); "
        "a (B, S) context_mask must broadcast against scores (B, T, S)",
    )

    t.query("float32", x.float(), context.float(), w_q.float(), w_k.float(), w_v.float())
    t.query("plain", x, context, w_q, w_k, w_v)
    t.query("same_length", x_same, context, w_q, w_k, w_v)
    t.query("masked_int", x, context, w_q, w_k, w_v, context_mask=real.long())
    t.query("masked_bool", x, context, w_q, w_k, w_v, context_mask=real)
    t.query("same_length_masked", x_same, context, w_q, w_k, w_v, context_mask=real)
    changed_pad, changed_real = (
        bumped(context, (1, slice(3, None))),
        bumped(context, (1, 0)),
    )  # 1's padding; a real token
    t.query("pad_changed", x, changed_pad, w_q, w_k, w_v, context_mask=real)
    t.query("real_changed", x, changed_real, w_q, w_k, w_v, context_mask=real)
    t.query("query_changed", bumped(x, (slice(None), 1)), context, w_q, w_k, w_v)  # query position 1 only

    specs = {
        "weights": ((B, T, S), torch.float32, {
            (B, T, T): "T x T: the keys come from x; in cross-attention they come from the context",
            (B, S, S): "S x S: the queries come from the context; in cross-attention they come from x",
            (B, S, T): "S x T: queries and keys are swapped: one row per query of x, one column per context token",
        }),
        "output": ((B, T, D_V), torch.float32,
                   {(B, S, D_V): "one row per context token: the queries come from the context, not from x"}),
    }  # fmt: skip
    t.property("returns (output (B, T, d_v), weights (B, T, S)), keeping float32", on=f"{on}, float32 (T != S)",
               gated=True)(lambda a: expect_tensors(a["float32"], ("output", "weights"), specs))  # fmt: skip
    t.property("equals softmax((x W_q)(C W_k)^T / sqrt(d_k)) (C W_v)", on=f"{on}, float64")(
        lambda a: _judge_pair(a["plain"], attention_oracle(q, k, v), _scale_mistakes(q, k, v, None, D))
    )
    k_x, v_x = x_same @ w_k, x_same @ w_v
    sources = [
        ("the keys and values come from x: that is self-attention; here they come from the context",
         _attend(q_same, k_x, v_x)),
        ("the keys come from x; in cross-attention they come from the context", _attend(q_same, k_x, v)),
        ("the values come from x; in cross-attention they come from the context", _attend(q_same, k, v_x)),
        ("queries and keys trade places: the queries come from the context, the keys from x",
         _attend(context @ w_q, k_x, v)),
    ]  # fmt: skip
    t.property("keys and values come from the context, queries from x", on=f"{on_same} (T == S), float64")(
        lambda a: _judge_pair(a["same_length"], attention_oracle(q_same, k, v), sources)
    )

    @t.property("a (B, S) context_mask of 1/0 or booleans hides padded context tokens", on=masked_on)
    def masked(a: Answers) -> str | None:
        expected = attention_oracle(q, k, v, keys)
        mistakes = [*_mask_mistakes(q, k, v, keys), *_scale_mistakes(q, k, v, keys, D)]
        for name in ("masked_int", "masked_bool"):
            problem = _judge_pair(a[name], expected, mistakes)
            if problem:
                kind = "1/0 integers" if name == "masked_int" else "booleans"
                return f"with context_mask as {kind}: {problem}"
        return None

    @t.property(
        "the context mask hides columns (context tokens), never rows (queries)", on=f"{on_same}, context_mask (B, S)"
    )
    def mask_axis(a: Answers) -> str | None:
        rows = real[:, :, None]  # (B, S, 1): the mistake hides queries instead of keys
        mistakes = [
            ("the context mask is applied on the query axis: it must hide context tokens (the columns, keys), "
             "for every query", _attend(q_same, k, v, rows.expand(B, S, S))),
            *_mask_mistakes(q_same, k, v, real[:, None, :]),
        ]  # fmt: skip
        return _judge_pair(a["same_length_masked"], attention_oracle(q_same, k, v, real[:, None, :]), mistakes)

    @t.property(
        "changing padded context tokens moves no output; changing a real one does",
        on=f"{masked_on}, change one context token",
    )
    def padding_behaviour(a: Answers) -> str | None:
        base, _ = output_and_weights(a["masked_bool"])
        pad, _ = output_and_weights(a["pad_changed"])
        moved, _ = output_and_weights(a["real_changed"])
        if any(type(o) is not Tensor or o.shape != (B, T, D_V) for o in (base, pad, moved)):
            return f"the output is not a (B, T, d_v) = {(B, T, D_V)} tensor"
        leak = (pad.double() - base.double()).abs().amax()
        if not leak <= 1e-9:
            return f"changing padded context tokens moved the output (by {leak.item():.3g}): padding is read"
        if not (moved.double() - base.double())[1].abs().amax(dim=-1).min() > 1e-9:
            return "changing a real context token left some query's output unchanged: every query reads the context"
        return None

    @t.property("each query's output depends on its own position of x only", on=f"{on}, change x at position 1")
    def query_independence(a: Answers) -> str | None:
        base, _ = output_and_weights(a["plain"])
        moved, _ = output_and_weights(a["query_changed"])
        if any(type(o) is not Tensor or o.shape != (B, T, D_V) for o in (base, moved)):
            return f"the output is not a (B, T, d_v) = {(B, T, D_V)} tensor"
        change = (moved.double() - base.double()).abs().amax(dim=(0, 2))  # (T,)
        others = [i for i in range(T) if i != 1 and change[i] > 1e-9]
        if others:
            return f"changing x at position 1 moved the outputs of positions {others}: queries do not read each other"
        if not change[1] > 1e-9:
            return "changing x at position 1 left its output unchanged: the queries come from x"
        return None


check_cross_attention = EXERCISE.check("cross_attention")
