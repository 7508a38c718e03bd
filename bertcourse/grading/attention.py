"""Checks for exercise 01 (attention): softmax, scaled dot-product attention, causal and padding masks.

Each ``check_*`` takes the learner's function object, tests its properties on fixed-seed inputs that
break symmetries (batch > 1, heads > 1, L_q != L_k, d_k != d_v), compares with PyTorch's own
``torch.softmax``, ``F.scaled_dot_product_attention`` and ``torch.tril``, and tests masks by
behaviour: change a token the mask hides, and the outputs must not move. A failed property's hint
comes from evaluating the usual mistakes (a wrong scale, the wrong softmax axis, an inverted mask, ...)
on the same input and naming the one the learner's output matches.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from bertcourse.grading.report import Checker, call_learner

__all__ = ["check_causal_mask", "check_padding_mask", "check_scaled_dot_product_attention", "check_softmax"]

SEED = 0
Mistake = tuple[str, Tensor]
"""A typical mistake: the hint to give, and what the function returns when it makes that mistake."""


def _inputs(*shape: int, dtype: torch.dtype = torch.float64, seed: int = SEED) -> Tensor:
    return torch.randn(*shape, dtype=dtype, generator=torch.Generator().manual_seed(seed))


def _close(actual: Tensor, expected: Tensor, rtol: float = 1e-6, atol: float = 1e-8) -> bool:
    """Same shape and values, NaN where ``expected`` has NaN (a mistake may produce them); dtype is judged elsewhere."""
    if not isinstance(actual, Tensor) or actual.shape != expected.shape:
        return False
    return torch.allclose(actual.to(expected.dtype), expected, rtol=rtol, atol=atol, equal_nan=True)


def _compare(actual: object, expected: Tensor, mistakes: list[Mistake], rtol: float = 1e-6) -> str | None:
    """``None`` if ``actual`` matches ``expected``; else what differs, with the hint of the mistake it matches."""
    if not isinstance(actual, Tensor):
        return f"expected a torch.Tensor, got {type(actual).__name__}"
    if _close(actual, expected, rtol=rtol):
        return None
    for hint, wrong in mistakes:
        if _close(actual, wrong, rtol=rtol):
            return hint
    if actual.shape != expected.shape:
        return f"expected shape {tuple(expected.shape)}, got {tuple(actual.shape)}"
    if not torch.isfinite(actual).all():
        return "the result holds NaN or inf where the reference is finite"
    error = (actual.double() - expected.double()).abs()
    index = tuple(int(i) for i in torch.unravel_index(error.argmax(), error.shape))
    return (
        f"values differ from the reference: largest |difference| {error.max().item():.3g} at index {index} "
        f"(got {actual[index].item():.4g}, expected {expected[index].item():.4g})"
    )


def _shape_dtype(
    actual: object, shape: tuple[int, ...], dtype: torch.dtype, hints: dict[tuple[int, ...], str]
) -> str | None:
    """``None`` if ``actual`` is a tensor of this shape and dtype; else what is wrong (a hint for known shapes)."""
    if not isinstance(actual, Tensor):
        return f"expected a torch.Tensor, got {type(actual).__name__}"
    if tuple(actual.shape) != shape:
        hint = hints.get(tuple(actual.shape), "")
        return f"expected shape {shape}, got {tuple(actual.shape)}" + (f": {hint}" if hint else "")
    if actual.dtype != dtype:
        return f"expected dtype {dtype}, got {actual.dtype}"
    return None


# ---------------------------------------------------------------------------------------------- softmax


def check_softmax(softmax: Callable[..., Tensor]) -> None:
    """Check ``softmax(x, dim=-1)``: softmax along ``dim``, finite for any finite input, input left unchanged.

    Shows one line per property and raises :class:`~bertcourse.grading.report.CheckFailedError` if any failed.
    """
    checker = Checker("softmax", softmax)
    x = _inputs(2, 3, 5) * 3  # (B, L_q, L_k): rows of scores
    on = "x of shape (2, 3, 5), float64"

    def run(t: Tensor, dim: int) -> object:
        return call_learner(softmax, t.clone(), dim=dim)  # a copy: an in-place softmax cannot spoil x

    def shape_dtype() -> str | None:
        x32 = x.float()
        return _shape_dtype(run(x32, -1), tuple(x32.shape), torch.float32, {})

    def last_axis() -> str | None:
        got = run(x, -1)
        if isinstance(got, Tensor) and got.shape == x.shape and torch.isfinite(got).all():
            sums = got.double().sum(dim=-1)
            if not torch.allclose(sums, torch.ones_like(sums)):
                return f"the rows do not sum to 1 (their sums range from {sums.min():.4g} to {sums.max():.4g})"
        scores_exp = x.exp()
        mistakes = [
            (
                "normalised over the whole tensor instead of along dim: only each row must sum to 1",
                scores_exp / scores_exp.sum(),
            ),
            *[
                (f"normalised along axis {d} instead of along dim=-1", torch.softmax(x, dim=d))
                for d in range(x.dim() - 1)
            ],
        ]
        return _compare(got, torch.softmax(x, dim=-1), mistakes)

    def other_axes() -> str | None:
        for dim in (1, 0):
            mistakes = [(f"dim={dim} was ignored: the result is normalised along the last axis", torch.softmax(x, -1))]
            problem = _compare(run(x, dim), torch.softmax(x, dim=dim), mistakes)
            if problem:
                return f"with dim={dim}: {problem}"
        return None

    def large_scores() -> str | None:
        big = x.float() * 1e4  # exp(89) already overflows float32
        got = run(big, -1)
        if isinstance(got, Tensor) and got.shape == big.shape and not torch.isfinite(got).all():
            return (
                "NaN/inf for large scores: exp overflows (exp(89) is inf in float32, exp(710) in float64). "
                "Softmax does not change when the same constant is subtracted from every score it normalises; "
                "which constant keeps exp away from overflow?"
            )
        return _compare(got, torch.softmax(big, dim=-1), [], rtol=1e-4)

    def far_apart_rows() -> str | None:
        offsets = torch.tensor([0.0, -3e3, 3e3], dtype=torch.float64)[:, None]  # (L_q, 1): rows far apart
        shifted = x + offsets
        global_max = (shifted - shifted.max()).exp()
        mistakes = [
            (
                "rows far below the largest score became 0/0 = NaN: one maximum for the whole tensor was "
                "subtracted; each slice along dim needs its own",
                global_max / global_max.sum(dim=-1, keepdim=True),
            )
        ]
        return _compare(run(shifted, -1), torch.softmax(shifted, dim=-1), mistakes)

    def input_unchanged() -> str | None:
        arg = x.clone()
        call_learner(softmax, arg, dim=-1)
        return None if torch.equal(arg, x) else "your function modified its input in place (x -= ... or x.exp_())"

    checker.property("returns a tensor of the input's shape and dtype", "x of shape (2, 3, 5), float32", shape_dtype)
    checker.property("equals torch.softmax along the last axis (each row sums to 1)", on, last_axis)
    checker.property("normalises along the axis given by dim", f"{on}, dim=1 and dim=0", other_axes)
    checker.property(
        "stays finite and exact for large scores (x · 1e4)", "x · 1e4 of shape (2, 3, 5), float32", large_scores
    )
    checker.property("handles rows whose scores are far apart (offsets of ±3000)", on, far_apart_rows)
    checker.property("leaves its input unchanged", on, input_unchanged)
    checker.finish()


# ------------------------------------------------------------------------------ scaled dot-product attention


def _weights(
    q: Tensor, k: Tensor, mask: Tensor | None = None, scale: float | None = None, dim: int = -1, fill: float = -math.inf
) -> Tensor:
    """softmax(Q K^T · scale) along ``dim`` with masked scores set to ``fill``; rows with no allowed key are 0.

    The right answer with the defaults; the knobs reproduce the usual mistakes.
    """
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = q @ k.transpose(-2, -1) * scale  # (..., L_q, d_k) @ (..., d_k, L_k) -> (..., L_q, L_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, fill)
    weights = torch.softmax(scores, dim=dim)
    if mask is not None and fill == -math.inf:
        weights = weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    return weights


def _oracle(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The framework's answer: (F.scaled_dot_product_attention output, weights), zeros for rows that see nothing."""
    output = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if mask is not None:
        output = output.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)  # (..., L_q, 1) broadcasts over d_v
    return output, _weights(q, k, mask)


def _weight_mistakes(q: Tensor, k: Tensor, mask: Tensor | None) -> list[Mistake]:
    """The usual wrong attention weights, alone and paired with a wrong scale, each with a hint naming the mistake.

    A hint names the mistake, never the fix. Pairs matter: a learner who forgot the scale *and*
    inverted the mask should hear about both, not get a bare "values differ".
    """
    d_k = q.shape[-1]
    scales = [
        ("", 1.0 / math.sqrt(d_k)),
        ("the scores are not scaled: which factor keeps Q K^T from growing with d_k?", 1.0),
        ("the scores are divided by d_k; the paper's scale is a square root", 1.0 / d_k),
        ("the scores are multiplied by sqrt(d_k) instead of divided by it", math.sqrt(d_k)),
    ]
    mistakes = []
    for scale_hint, scale in scales:
        scores = q @ k.transpose(-2, -1) * scale  # (..., L_q, L_k)
        variants = [
            ("", _weights(q, k, mask, scale)),
            (
                "softmax normalises over the queries (each column sums to 1); each query's row must sum to 1 "
                "over the keys",
                _weights(q, k, mask, scale, dim=-2),
            ),
            ("the weights are the raw scores: they are never normalised", scores),
        ]
        if mask is not None:
            variants += [
                ("the mask is inverted: True means 'may attend'", _weights(q, k, ~mask, scale)),
                (
                    "masked scores are set to 0, and exp(0) = 1, so masked keys still get weight; which score does "
                    "softmax turn into exactly 0?",
                    _weights(q, k, mask, scale, fill=0.0),
                ),
                (
                    "masked keys are zeroed after the softmax, so rows no longer sum to 1; mask the scores instead",
                    torch.softmax(scores, dim=-1) * mask,
                ),
                ("the mask is ignored", _weights(q, k, None, scale)),
            ]
        for hint, weights in variants:
            if scale_hint or hint:
                mistakes.append(("; and ".join(h for h in (scale_hint, hint) if h), weights))
    return mistakes


def _describe(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> str:
    *batch, L_q, d_k = q.shape
    names = ("B", "h")[: len(batch)]
    sizes = ", ".join(f"{n}={s}" for n, s in zip(names, batch, strict=True))
    masked = f", mask {tuple(mask.shape)}" if mask is not None else ""
    return f"{sizes}, L_q={L_q}, L_k={k.shape[-2]}, d_k={d_k}, d_v={v.shape[-1]}{masked}, {str(q.dtype)[6:]}"


def _attention(
    fn: Callable[..., object], q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None
) -> tuple[object, object]:
    """Call the learner's attention and unpack ``(output, weights)``; a non-pair comes back as (it, None)."""
    result = call_learner(fn, q.clone(), k.clone(), v.clone(), mask=mask)  # copies: in-place edits cannot spoil them
    if isinstance(result, tuple) and len(result) == 2:
        return result[0], result[1]
    return result, None


def _check_pair(
    fn: Callable[..., object], q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, rtol: float = 1e-6
) -> str | None:
    """Compare the learner's (output, weights) on one input with the oracle; hint at the mistake if not equal."""
    output, weights = _attention(fn, q, k, v, mask)
    if weights is None:
        return f"expected a pair (output, weights), got {type(output).__name__}"
    expected_output, expected_weights = _oracle(q, k, v, mask)
    problem = _compare(weights, expected_weights, _weight_mistakes(q, k, mask), rtol=rtol)
    if problem:
        return f"weights: {problem}"
    output_mistakes = [
        ("the weights are applied to the keys; they weigh the values", expected_weights @ k),
        (
            "the output is transposed: one row per query, one column per value feature",
            expected_output.transpose(-2, -1),
        ),
    ]
    problem = _compare(output, expected_output, output_mistakes, rtol=rtol)
    return f"output: {problem}" if problem else None


def check_scaled_dot_product_attention(scaled_dot_product_attention: Callable[..., object]) -> None:
    """Check ``scaled_dot_product_attention(q, k, v, mask=None) -> (output, weights)`` against PyTorch.

    Properties: shapes and dtype; values equal to F.scaled_dot_product_attention (output) and
    softmax(Q K^T / sqrt(d_k)) (weights) without a mask, with scores ~1e4, with a boolean mask, with a
    fully masked query (zeros); a masked key/value never moves an output; (B, L, d) inputs work.
    Shows one line per property and raises :class:`~bertcourse.grading.report.CheckFailedError` if any failed.
    """
    attention = scaled_dot_product_attention
    checker = Checker("scaled_dot_product_attention", attention)
    B, h, L_q, L_k, d_k, d_v = 2, 3, 4, 6, 8, 5
    q, k, v = _inputs(B, h, L_q, d_k, seed=1), _inputs(B, h, L_k, d_k, seed=2), _inputs(B, h, L_k, d_v, seed=3)
    on = _describe(q, k, v)

    def shapes() -> str | None:
        output, weights = _attention(attention, q.float(), k.float(), v.float())
        if weights is None:
            return f"expected a pair (output, weights), got {type(output).__name__}"
        problem = _shape_dtype(
            weights,
            (B, h, L_q, L_k),
            torch.float32,
            {(B, h, L_k, L_q): "transposed: one row per query, one column per key"},
        )
        if problem:
            return f"weights: {problem}"
        output_hints = {
            (B, h, L_q, d_k): "d_k columns: the weights are applied to the keys; they weigh the values",
            (B, h, d_v, L_q): "transposed: one row per query, one column per value feature",
        }
        problem = _shape_dtype(output, (B, h, L_q, d_v), torch.float32, output_hints)
        return f"output: {problem}" if problem else None

    # A mask with a few hidden keys in every row and no row all True or all False (so inverting it is visible).
    mask = torch.rand(B, 1, L_q, L_k, generator=torch.Generator().manual_seed(4)) < 0.6
    mask[..., 0], mask[..., -1] = True, False
    empty = mask.clone()
    empty[0, :, 1, :] = False  # query 1 of the first sequence may attend to nothing

    def empty_row() -> str | None:
        output, weights = _attention(attention, q, k, v, empty)
        if isinstance(output, Tensor) and output.shape == (B, h, L_q, d_v) and output[0, :, 1].isnan().any():
            return (
                "a query that may attend to nothing gave NaN: softmax over a row of -inf is 0/0. "
                "Detect such rows and return zeros for them"
            )
        if isinstance(weights, Tensor) and weights.shape == (B, h, L_q, L_k):
            uniform = torch.full_like(weights[0, :, 1], 1.0 / L_k)
            if torch.allclose(weights[0, :, 1].to(uniform.dtype), uniform):
                return (
                    "a query that may attend to nothing spread its weight evenly over keys it may not see "
                    "(a finite fill value); such rows must be all zeros"
                )
        return _check_pair(attention, q, k, v, empty)

    L = 5
    causal = torch.ones(L, L, dtype=torch.bool).tril()  # (L, L) broadcasts over B and h

    def hidden_keys_do_not_matter() -> str | None:
        q_, k_, v_ = _inputs(B, h, L, d_k, seed=5), _inputs(B, h, L, d_k, seed=6), _inputs(B, h, L, d_v, seed=7)
        base, _ = _attention(attention, q_, k_, v_, causal)
        for j in range(1, L):
            k2, v2 = k_.clone(), v_.clone()
            k2[..., j, :] += 1.0  # change token j's key and value, nothing else
            v2[..., j, :] += 1.0
            moved, _ = _attention(attention, q_, k2, v2, causal)
            if not isinstance(base, Tensor) or not isinstance(moved, Tensor) or base.shape != moved.shape:
                return "the output is not a tensor of one fixed shape"
            leak = (moved - base)[..., :j, :].abs().amax()  # queries before j may not see token j
            if not leak <= 1e-9:
                return f"changing key/value {j} moved an earlier query's output (by {leak.item():.3g}): the mask leaks"
        return None

    def three_d() -> str | None:
        q3, k3, v3 = q[:, 0], k[:, 0], v[:, 0]  # (B, h, L, d) -> (B, L, d): no heads axis
        return _check_pair(attention, q3, k3, v3, mask[:, 0])

    checker.property(
        "returns (output, weights) of the right shapes, keeping float32", _describe(q.float(), k, v), shapes
    )
    checker.property(
        "equals softmax(Q K^T / sqrt(d_k)) V (F.scaled_dot_product_attention)",
        on,
        lambda: _check_pair(attention, q, k, v),
    )
    checker.property(
        "stays finite and exact for large scores (q · 1e4)",
        f"{on}, q · 1e4",
        lambda: _large_scores(attention, q * 1e4, k, v),
    )
    checker.property(
        "a boolean mask hides keys (True = may attend)",
        _describe(q, k, v, mask),
        lambda: _check_pair(attention, q, k, v, mask),
    )
    checker.property("a query that may attend to nothing returns zeros", _describe(q, k, v, empty), empty_row)
    checker.property(
        "changing a key/value the mask hides never moves an output",
        f"causal mask ({L}, {L}), B={B}, h={h}, d_k={d_k}, d_v={d_v}",
        hidden_keys_do_not_matter,
    )
    checker.property(
        "works without a heads axis: (B, L, d) inputs", _describe(q[:, 0], k[:, 0], v[:, 0], mask[:, 0]), three_d
    )
    checker.finish()


def _large_scores(attention: Callable[..., object], q: Tensor, k: Tensor, v: Tensor) -> str | None:
    """Scores around 1e4: a softmax without protection against overflow returns NaN or inf."""
    output, weights = _attention(attention, q, k, v)
    for name, t in (("output", output), ("weights", weights)):
        if isinstance(t, Tensor) and t.is_floating_point() and not torch.isfinite(t).all():
            return (
                f"{name} holds NaN/inf for large scores: exp overflows (exp(710) is inf in float64). Softmax does "
                "not change when one constant is subtracted from a row of scores; which constant avoids overflow?"
            )
    return _check_pair(attention, q, k, v)


# ------------------------------------------------------------------------------------------------ masks


def _leaks(mask: Tensor, sees: Tensor) -> str | None:
    """Use ``mask`` in F.scaled_dot_product_attention, change one token's key and value at a time, see what moves.

    ``sees`` (L_q, L_k) is the truth: ``sees[i, j]`` True = query i may see token j, so changing token j
    must move output i; False = output i must not move. ``None`` if the mask behaves so.
    """
    L_q, L_k = sees.shape
    q, k, v = _inputs(1, 2, L_q, 4, seed=8), _inputs(1, 2, L_k, 4, seed=9), _inputs(1, 2, L_k, 3, seed=10)
    base = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    for j in range(L_k):
        k2, v2 = k.clone(), v.clone()
        k2[..., j, :] += 1.0  # change token j's key and value, nothing else
        v2[..., j, :] += 1.0
        moved = (F.scaled_dot_product_attention(q, k2, v2, attn_mask=mask) - base).abs().amax(dim=(0, 1, -1))  # (L_q,)
        moved = moved.nan_to_num(0.0) > 1e-9
        for i in range(L_q):
            if moved[i] and not sees[i, j]:
                return f"changing token {j} moved the output of query {i}, which may not see it"
            if not moved[i] and sees[i, j]:
                return f"changing token {j} left the output of query {i} unchanged, but query {i} may see it"
    return None


def check_causal_mask(causal_mask: Callable[[int], Tensor]) -> None:
    """Check ``causal_mask(seq_len) -> (seq_len, seq_len)`` bool, True where query i may attend to key j <= i.

    Shows one line per property and raises :class:`~bertcourse.grading.report.CheckFailedError` if any failed.
    """
    checker = Checker("causal_mask", causal_mask)
    T = 6

    def shape_dtype() -> str | None:
        return _shape_dtype(call_learner(causal_mask, T), (T, T), torch.bool, {})

    def values() -> str | None:
        for n in (T, 2, 1):
            ones = torch.ones(n, n, dtype=torch.bool)
            mistakes = [
                ("inverted: True must mark the keys a query MAY attend to (the past and itself)", ~ones.tril()),
                ("the upper triangle: that lets each query see the future and hides the past", ones.triu()),
                ("the diagonal is missing: a token may attend to itself", ones.tril(-1)),
                ("off by one: each query also sees the next token", ones.tril(1)),
            ]
            got = call_learner(causal_mask, n)
            if isinstance(got, Tensor) and got.dtype != torch.bool:
                return f"seq_len={n}: expected dtype torch.bool (True = may attend), got {got.dtype}"
            problem = _compare(got, ones.tril(), mistakes)
            if problem:
                return f"seq_len={n}: {problem}"
        return None

    def behaviour() -> str | None:
        mask = call_learner(causal_mask, T)
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != (T, T):
            return "cannot be used as attn_mask: it must be a (seq_len, seq_len) torch.bool tensor"
        return _leaks(mask, torch.ones(T, T, dtype=torch.bool).tril())

    checker.property("returns a (seq_len, seq_len) torch.bool tensor", f"seq_len={T}", shape_dtype)
    checker.property("True exactly on and below the diagonal (equals torch.tril)", f"seq_len={T}, 2, 1", values)
    checker.property(
        "in F.scaled_dot_product_attention: a token moves its own and later outputs only",
        f"seq_len={T}, change one token at a time",
        behaviour,
    )
    checker.finish()


def check_padding_mask(padding_mask: Callable[[Tensor, int], Tensor]) -> None:
    """Check ``padding_mask(lengths, max_len) -> (B, 1, 1, max_len)`` bool, True at real tokens (j < length).

    Shows one line per property and raises :class:`~bertcourse.grading.report.CheckFailedError` if any failed.
    """
    checker = Checker("padding_mask", padding_mask)
    lengths, max_len = torch.tensor([3, 5, 1, 4]), 6
    B = len(lengths)
    expected = (torch.arange(max_len) < lengths[:, None])[:, None, None, :]  # (B, T) -> (B, 1, 1, T)
    on = f"lengths={lengths.tolist()}, max_len={max_len}"

    def shape_dtype() -> str | None:
        hints = {
            (B, max_len): "it needs singleton axes for heads and queries to broadcast against (B, h, L_q, L_k)",
            (B, 1, max_len, 1): "padding hides keys, so positions belong on the last (key) axis",
        }
        return _shape_dtype(call_learner(padding_mask, lengths, max_len), (B, 1, 1, max_len), torch.bool, hints)

    def values() -> str | None:
        got = call_learner(padding_mask, lengths, max_len)
        if not isinstance(got, Tensor) or got.numel() != expected.numel():
            return f"expected {expected.numel()} entries, got {getattr(got, 'shape', type(got).__name__)}"
        got = got.reshape(expected.shape)  # judge the values apart from the shape
        positions = torch.arange(max_len)
        mistakes = [
            ("inverted: True must mark the real tokens (may attend), False the padding", ~expected),
            ("off by one: position `length` is already padding", (positions <= lengths[:, None])[:, None, None, :]),
        ]
        return _compare(got.to(torch.bool) if got.dtype != torch.bool else got, expected, mistakes)

    def zero_and_full() -> str | None:
        edge = torch.tensor([0, max_len])
        got = call_learner(padding_mask, edge, max_len)
        want = (torch.arange(max_len) < edge[:, None])[:, None, None, :]  # (2, T) -> (2, 1, 1, T)
        return _compare(got, want, [])

    def behaviour() -> str | None:
        mask = call_learner(padding_mask, lengths, max_len)
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != expected.shape:
            return "cannot be used as attn_mask: it must be a (B, 1, 1, max_len) torch.bool tensor"
        for b in range(B):
            sees = expected[b, 0].expand(max_len, max_len)  # (1, T) -> (T, T): every query sees the real keys
            problem = _leaks(mask[b : b + 1], sees)
            if problem:
                return f"sequence {b} (length {lengths[b].item()}): {problem}"
        return None

    checker.property("returns a (B, 1, 1, max_len) torch.bool tensor", on, shape_dtype)
    checker.property("True at real tokens (position < length), False at padding", on, values)
    checker.property("handles length 0 and length max_len", f"lengths=[0, {max_len}], max_len={max_len}", zero_and_full)
    checker.property(
        "in F.scaled_dot_product_attention: padding never moves an output, real tokens do",
        f"{on}, change one token at a time",
        behaviour,
    )
    checker.finish()
