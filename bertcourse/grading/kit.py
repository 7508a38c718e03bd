"""The grader's kit: what the exercise modules share, so that a property reads as inputs, oracle and hint.

A property is usually one of four shapes, each a one-liner on :class:`~bertcourse.grading.framework.Task`:

- ``t.equals(name, query, expected, mistakes, on=...)``: the output of ``query`` equals the oracle's
  ``expected``; a wrong output gets the hint of the first mistake in ``mistakes`` it reproduces;
- ``t.shape(name, query, shape, dtype, hints, on=...)``: a tensor of this shape and dtype;
- ``t.unchanged(query, before, on=...)``: the function left its (named) inputs as they were;
- ``t.same(name, query, like, hint, on=...)``: an invariance, the output of ``query`` equals that of ``like``.

A property that judges several inputs returns :func:`first` of its ``(label, problem)`` pairs; a
tuple of tensors is judged by :func:`expect_tensors`; a mistake catalogue is a table of ``(hint, how
the oracle reproduces it)`` rows, turned into ``(hint, wrong answer)`` pairs by :func:`variants`; a
reader that finds an answer malformed calls :func:`fail`, which fails the property reading it with
that hint.

Everything else here is an independent oracle or a reader shared by several exercises. Oracles are
written from PyTorch primitives (``torch.softmax``, matrix products, ``F.scaled_dot_product_attention``),
never from the course functions a learner is asked to write.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "as_float64",
    "attend",
    "attention_oracle",
    "bumped",
    "compare_all",
    "describe_attention",
    "expect_tensors",
    "fail",
    "first",
    "leaks",
    "output_and_weights",
    "reproducible",
    "scalar",
    "unpack",
    "variants",
]

Mistake = tuple[str, Any]


def first(problems: Iterable[tuple[str, str | None]]) -> str | None:
    """The first problem of ``(label, problem)`` pairs, as "label: problem" (bare if the label is ""); None if none.

    Pass a generator: each problem is then only computed (and its query read) when those before it hold.
    """
    return next((f"{label}: {problem}" if label else problem for label, problem in problems if problem), None)


def variants(
    oracle: Callable[..., Any], table: Iterable[tuple[str, Mapping[str, Any]]], *args: Any, **kwargs: Any
) -> list[Mistake]:
    """A mistake catalogue: ``(hint, oracle(*args, **kwargs, **knobs))`` for each ``(hint, knobs)`` row of ``table``."""
    return [(hint, oracle(*args, **{**kwargs, **knobs})) for hint, knobs in table]


def expect_tensors(
    result: object,
    names: Sequence[str],
    specs: Mapping[str, tuple[Any, ...]],
    not_a_pair: str = "",
) -> str | None:
    """None if ``result`` is a pair of tensors ``names`` of the shapes and dtypes of ``specs`` (judged in its order).

    ``specs[name]`` holds the arguments of :func:`~bertcourse.grading.framework.expect_tensor` after the
    value: ``(shape, dtype)`` or ``(shape, dtype, hints)``.
    """
    from bertcourse.grading.framework import expect_tensor

    values = unpack(result, len(names))
    if values is None:
        return not_a_pair or f"expected a pair ({', '.join(names)}), got {type(result).__name__}"
    return first((name, expect_tensor(values[names.index(name)], *spec)) for name, spec in specs.items())


def reproducible(draws: object, again: object, other: object, how: str) -> str | None:
    """Draws that come from the generator: ``again`` (same seed) equals ``draws``, ``other`` (another seed) does not.

    ``how`` ends the hint when the same seed gave different draws.
    """
    from bertcourse.grading.framework import compare

    if compare(again, draws) is not None:
        return f"two calls with generators of the same seed gave different draws: {how}"
    if compare(other, draws) is None:
        return "generators with different seeds gave the same draws: your draws ignore the generator argument"
    return None


def fail(problem: str) -> Any:
    """Fail the property that reads this answer, with ``problem`` as its hint (a malformed answer, say)."""
    from bertcourse.grading.framework import UnansweredError

    raise UnansweredError(problem)


def bumped(x: Tensor, index: Any) -> Tensor:
    """A copy of ``x`` with 1 added at ``index`` (one token changed, nothing else), to see which outputs move."""
    x = x.clone()
    x[index] += 1.0
    return x


def unpack(result: object, n: int = 2) -> tuple[object, ...] | None:
    """The learner's tuple (or list) of ``n`` outputs as a tuple; None if it is anything else."""
    if isinstance(result, (tuple, list)) and len(result) == n:
        return tuple(result)
    return None


def output_and_weights(result: object) -> tuple[object, object]:
    """The learner's ``(output, weights)``; anything but a pair comes back as ``(it, None)``."""
    pair = unpack(result)
    return (result, None) if pair is None else (pair[0], pair[1])


def scalar(value: object) -> object:
    """A one-element float tensor as a float64 0-d tensor (its shape and dtype are judged elsewhere)."""
    if type(value) is Tensor and value.numel() == 1 and value.is_floating_point():
        return value.detach().double().reshape(())
    return value


def as_number(value: object) -> object:
    """A one-element float tensor as a Python float (the type is judged by its own property)."""
    if type(value) is Tensor and value.numel() == 1 and value.is_floating_point():
        return float(value)
    return value


def as_float64(value: object) -> object:
    """A float tensor in float64, to compare with a float64 oracle (its dtype is judged on its own)."""
    return value.double() if type(value) is Tensor and value.is_floating_point() else value


def compare_all(
    got: Sequence[object],
    expected: Sequence[object],
    mistakes: Sequence[tuple[str, Sequence[object]]] = (),
    labels: Sequence[str] | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-12,
) -> str | None:
    """Like :func:`~bertcourse.grading.framework.compare` over several values at once.

    None if each value matches; else the hint of the mistake that reproduces *all* of them; else what
    differs in the first value that does not match (prefixed by its label).
    """
    from bertcourse.grading.framework import compare

    def same(xs: Sequence[object], ys: Sequence[object]) -> bool:
        return all(compare(x, y, rtol=rtol, atol=atol) is None for x, y in zip(xs, ys, strict=True))

    if same(got, expected):
        return None
    for hint, wrong in mistakes:
        if same(got, wrong):
            return hint
    for i, (x, y) in enumerate(zip(got, expected, strict=True)):
        problem = compare(x, y, rtol=rtol, atol=atol)
        if problem:
            return f"{labels[i]}: {problem}" if labels else problem
    return None


def attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    scale: float | None = None,
    dim: int = -1,
    fill: float = -math.inf,
    zero_empty: bool = True,
) -> tuple[Tensor, Tensor]:
    """(output, weights) of softmax(q k^T · scale) v along ``dim``, masked scores set to ``fill``.

    With the defaults, the right answer: a row that may attend to nothing gets zero weights (with
    ``zero_empty=False`` it is NaN, as a plain softmax over -inf gives). The knobs reproduce the usual
    mistakes.
    """
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = q @ k.transpose(-2, -1) * scale  # (..., L_q, d_k) @ (..., d_k, L_k) -> (..., L_q, L_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, fill)
    weights = torch.softmax(scores, dim=dim)
    if mask is not None and fill == -math.inf and zero_empty:
        weights = weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)  # rows that see nothing: zeros
    return weights @ v, weights  # (..., L_q, L_k) @ (..., L_k, d_v) -> (..., L_q, d_v)


def attention_oracle(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """PyTorch's answer: (F.scaled_dot_product_attention's output, the weights), zeros for rows that see nothing."""
    output = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if mask is not None:
        output = output.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)  # (..., L_q, 1) broadcasts over d_v
    return output, attend(q, k, v, mask)[1]


def describe_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> str:
    """The input of an attention property, in words: "B=2, h=3, L_q=4, L_k=6, d_k=8, d_v=5, float64"."""
    *batch, L_q, d_k = q.shape
    names = ("B", "h")[: len(batch)]
    sizes = ", ".join(f"{n}={s}" for n, s in zip(names, batch, strict=True))
    masked = f", mask {tuple(mask.shape)}" if mask is not None else ""
    return f"{sizes}, L_q={L_q}, L_k={k.shape[-2]}, d_k={d_k}, d_v={v.shape[-1]}{masked}, {str(q.dtype)[6:]}"


def leaks(base: object, changed: Sequence[object], earlier: Callable[[Tensor, int], Tensor], what: str) -> str | None:
    """Causal behaviour: ``changed[j - 1]`` is the output after changing token j; no earlier output may move.

    ``earlier(diff, j)`` selects, from the difference of outputs, the positions before j.
    """
    for j, moved in enumerate(changed, start=1):
        if type(base) is not Tensor or type(moved) is not Tensor or base.shape != moved.shape or base.dim() < 2:
            return "the output is not a tensor of one fixed shape"
        leak = earlier(moved.double() - base.double(), j).abs().amax()
        if not leak <= 1e-9:
            return f"changing {what} {j} moved an earlier position's output (by {leak.item():.3g}): the mask leaks"
    return None
