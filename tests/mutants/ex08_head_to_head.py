"""Exercise 08 answers: the correct one (``CORRECT``) and one mutant per typical mistake (``MUTANTS``).

``MUTANTS`` maps a name to (the learner function it stands for, the mutant, a phrase the failing hint
must contain).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def influence_matrix(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    jacobian = torch.autograd.functional.jacobian(fn, x)  # (T, H, T, D)
    return jacobian.pow(2).sum(dim=(1, 3)).sqrt()  # (T, T)


def influence_by_rows(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Also correct: one backward pass per output entry, by hand."""
    x = x.detach().requires_grad_(True)
    out = fn(x)  # (T, H)
    T, H = out.shape
    result = torch.zeros(T, x.shape[0])
    for i in range(T):
        for h in range(H):
            (grad,) = torch.autograd.grad(out[i, h], x, retain_graph=True)  # (T, D)
            result[i] += grad.pow(2).sum(dim=-1)
    return result.sqrt()


def transposed(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    return influence_matrix(fn, x).T


def squared(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    return torch.autograd.functional.jacobian(fn, x).pow(2).sum(dim=(1, 3))


def l1_norm(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    return torch.autograd.functional.jacobian(fn, x).abs().sum(dim=(1, 3))


def gradient_of_row_sum(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    x = x.detach().requires_grad_(True)
    out = fn(x)
    rows = [torch.autograd.grad(out[i].sum(), x, retain_graph=True)[0].norm(dim=-1) for i in range(out.shape[0])]
    return torch.stack(rows)  # (T, T)


def gradient_of_total_sum(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(fn(x).sum(), x)  # (T, D)
    return grad.norm(dim=-1).expand(x.shape[0], -1)


def sum_of_row_norms(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    return torch.autograd.functional.jacobian(fn, x).pow(2).sum(dim=3).sqrt().sum(dim=1)


def whole_jacobian(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    return torch.autograd.functional.jacobian(fn, x)


def norm_over_wrong_axes(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    return torch.autograd.functional.jacobian(fn, x).pow(2).sum(dim=(2, 3)).sqrt()  # (T, H)


def interaction(fn: Callable[[Tensor], Tensor], x: Tensor, x_alt: Tensor, t: int) -> Tensor:
    def h(left: Tensor, right: Tensor) -> Tensor:
        z = x.clone()
        z[:t], z[t + 1 :] = left[:t], right[t + 1 :]
        return fn(z)[t]

    return (h(x_alt, x_alt) - h(x_alt, x) - h(x, x_alt) + h(x, x)).norm()


def interaction_by_concatenation(fn: Callable[[Tensor], Tensor], x: Tensor, x_alt: Tensor, t: int) -> Tensor:
    """Also correct: the four inputs as concatenations, batched into one call each."""
    parts = {"L": x[:t], "l": x_alt[:t], "R": x[t + 1 :], "r": x_alt[t + 1 :]}
    h = {k: fn(torch.cat([parts[k[0]], x[t : t + 1], parts[k[1]]]))[t] for k in ("lr", "lR", "Lr", "LR")}
    return torch.linalg.vector_norm(h["lr"] - h["lR"] - h["Lr"] + h["LR"])


def interaction_wrong_sign(fn: Callable[[Tensor], Tensor], x: Tensor, x_alt: Tensor, t: int) -> Tensor:
    def h(left: Tensor, right: Tensor) -> Tensor:
        return fn(torch.cat([left[:t], x[t : t + 1], right[t + 1 :]]))[t]

    return (h(x_alt, x_alt) - h(x_alt, x) - h(x, x_alt) - h(x, x)).norm()


def interaction_squared(fn: Callable[[Tensor], Tensor], x: Tensor, x_alt: Tensor, t: int) -> Tensor:
    return interaction(fn, x, x_alt, t) ** 2


def interaction_row_t_from_x_alt(fn: Callable[[Tensor], Tensor], x: Tensor, x_alt: Tensor, t: int) -> Tensor:
    def h(left: Tensor, right: Tensor) -> Tensor:
        return fn(torch.cat([left[:t], x[t : t + 1], right[t + 1 :]]))[t]

    return (fn(x_alt)[t] - h(x_alt, x) - h(x, x_alt) + h(x, x)).norm()


def interaction_vector(fn: Callable[[Tensor], Tensor], x: Tensor, x_alt: Tensor, t: int) -> Tensor:
    def h(left: Tensor, right: Tensor) -> Tensor:
        return fn(torch.cat([left[:t], x[t : t + 1], right[t + 1 :]]))[t]

    return h(x_alt, x_alt) - h(x_alt, x) - h(x, x_alt) + h(x, x)


def interaction_row_t_in_left(fn: Callable[[Tensor], Tensor], x: Tensor, x_alt: Tensor, t: int) -> Tensor:
    """Off by one: the left context runs up to and including t."""

    def h(left: Tensor, right: Tensor) -> Tensor:
        return fn(torch.cat([left[: t + 1], right[t + 1 :]]))[t]

    return (h(x_alt, x_alt) - h(x_alt, x) - h(x, x_alt) + h(x, x)).norm()


CORRECT: dict[str, Callable[..., object]] = {"influence_matrix": influence_matrix, "interaction": interaction}
ALSO_CORRECT: dict[str, Callable[..., object]] = {
    "influence_by_rows": influence_by_rows,
    "interaction_by_concatenation": interaction_by_concatenation,
}

MUTANTS: dict[str, tuple[str, Callable[..., object], str]] = {
    "transposed": ("influence_matrix", transposed, "swapped"),
    "squared": ("influence_matrix", squared, "square root is missing"),
    "l1_norm": ("influence_matrix", l1_norm, "L1 norm"),
    "gradient_of_row_sum": ("influence_matrix", gradient_of_row_sum, "one vector-Jacobian product"),
    "gradient_of_total_sum": ("influence_matrix", gradient_of_total_sum, "every row i the same"),
    "sum_of_row_norms": ("influence_matrix", sum_of_row_norms, "norms of the H rows"),
    "whole_jacobian": ("influence_matrix", whole_jacobian, "the whole Jacobian"),
    "norm_over_wrong_axes": ("influence_matrix", norm_over_wrong_axes, "expected shape"),
    "interaction_wrong_sign": ("interaction", interaction_wrong_sign, "last term's sign"),
    "interaction_squared": ("interaction", interaction_squared, "squared norm"),
    "interaction_row_t_from_x_alt": ("interaction", interaction_row_t_from_x_alt, "row t must stay x's"),
    "interaction_vector": ("interaction", interaction_vector, "got a vector"),
    "interaction_row_t_in_left": ("interaction", interaction_row_t_in_left, "rows before t"),
}
