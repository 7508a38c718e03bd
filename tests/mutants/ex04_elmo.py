"""Exercise 04 answers: the correct ones (``CORRECT``) and one mutant per typical mistake (``MUTANTS``).

``MUTANTS`` maps a name to (the learner function it stands for, the mutant, a phrase the failing hint
must contain).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def lstm_cell(
    x: Tensor,
    h: Tensor,
    c: Tensor,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor,
    bias_hh: Tensor,
    order: str = "ifgo",
    candidate: Callable[[Tensor], Tensor] = torch.tanh,
    keep: Callable[[Tensor, Tensor], Tensor] = lambda f, c: f * c,
    squash: Callable[[Tensor], Tensor] = torch.tanh,
) -> tuple[Tensor, Tensor]:
    """The right answer; ``order``, ``candidate``, ``keep`` and ``squash`` let mutants change one thing."""
    gates = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh  # (B, 4H)
    blocks = dict(zip(order, gates.chunk(4, dim=-1), strict=True))  # 4 x (B, H)
    i, f, o = torch.sigmoid(blocks["i"]), torch.sigmoid(blocks["f"]), torch.sigmoid(blocks["o"])
    g = candidate(blocks["g"])
    c_new = keep(f, c) + i * g
    return o * squash(c_new), c_new


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    T = x.shape[1]
    t = torch.arange(T)[None, :]  # (1, T)
    n = lengths[:, None]  # (B, 1)
    index = torch.where(t < n, n - 1 - t, t)  # (B, T)
    return x[torch.arange(x.shape[0])[:, None], index]


def scalar_mix(layers: Tensor, weights: Tensor, gamma: float | Tensor) -> Tensor:
    s = torch.softmax(weights, dim=0)
    return gamma * (s[:, None, None, None] * layers).sum(dim=0)


# -------------------------------------------------------------------------------------- lstm_cell mutants


def lstm_gate_order_ifog(x, h, c, w_ih, w_hh, b_ih, b_hh):
    return lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh, order="ifog")


def lstm_gate_order_fiog(x, h, c, w_ih, w_hh, b_ih, b_hh):
    return lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh, order="figo")


def lstm_no_tanh_on_cell(x, h, c, w_ih, w_hh, b_ih, b_hh):
    return lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh, squash=lambda c_new: c_new)


def lstm_forget_gate_omitted(x, h, c, w_ih, w_hh, b_ih, b_hh):
    return lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh, keep=lambda f, c: c)


def lstm_old_cell_dropped(x, h, c, w_ih, w_hh, b_ih, b_hh):
    return lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh, keep=lambda f, c: torch.zeros_like(c))


def lstm_sigmoid_candidate(x, h, c, w_ih, w_hh, b_ih, b_hh):
    return lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh, candidate=torch.sigmoid)


def lstm_ignores_h(x, h, c, w_ih, w_hh, b_ih, b_hh):
    return lstm_cell(x, torch.zeros_like(h), c, w_ih, w_hh, b_ih, b_hh)


def lstm_one_bias(x, h, c, w_ih, w_hh, b_ih, b_hh):
    return lstm_cell(x, h, c, w_ih, w_hh, b_ih, torch.zeros_like(b_hh))


def lstm_weights_not_transposed(x, h, c, w_ih, w_hh, b_ih, b_hh):
    gates = x @ w_ih + b_ih + h @ w_hh + b_hh  # fails: (B, D) @ (4H, D)
    return gates, gates


def lstm_returns_c_first(x, h, c, w_ih, w_hh, b_ih, b_hh):
    h_new, c_new = lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh)
    return c_new, h_new


def lstm_in_place(x, h, c, w_ih, w_hh, b_ih, b_hh):
    h_new, c_new = lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh)
    c.copy_(c_new)
    return h_new, c


# --------------------------------------------------------------------------------- reverse_padded mutants


def reverse_whole_row(x, lengths):
    return x.flip(1)


def reverse_zeroes_padding(x, lengths):
    real = torch.arange(x.shape[1])[None, :] < lengths[:, None]  # (B, T)
    return reverse_padded(x, lengths) * real.view(*real.shape, *([1] * (x.dim() - 2)))


def reverse_off_by_one(x, lengths):
    t = torch.arange(x.shape[1])[None, :]
    n = lengths[:, None]
    index = torch.where(t < n, n - t, t)  # one past the end for t = 0
    return x[torch.arange(x.shape[0])[:, None], index]


def reverse_in_place(x, lengths):
    x.copy_(reverse_padded(x, lengths))
    return x


def reverse_only_3d(x, lengths):
    out = x.clone()
    for b in range(x.shape[0]):
        n = int(lengths[b])
        out[b, :n, :] = x[b, :n, :].flip(0)  # x[b, :n, :] fails on (B, T) ids
    return out


# ------------------------------------------------------------------------------------- scalar_mix mutants


def mix_no_softmax(layers, weights, gamma):
    return gamma * (weights[:, None, None, None] * layers).sum(dim=0)


def mix_no_gamma(layers, weights, gamma):
    return scalar_mix(layers, weights, 1.0)


def mix_sum_normalised(layers, weights, gamma):
    s = weights / weights.sum()
    return gamma * (s[:, None, None, None] * layers).sum(dim=0)


def mix_equal_weights(layers, weights, gamma):
    return gamma * layers.mean(dim=0)


def mix_gamma_in_softmax(layers, weights, gamma):
    return scalar_mix(layers, gamma * weights, 1.0)


def mix_not_summed(layers, weights, gamma):
    return gamma * torch.softmax(weights, dim=0)[:, None, None, None] * layers


CORRECT: dict[str, Callable[..., object]] = {
    "lstm_cell": lstm_cell,
    "reverse_padded": reverse_padded,
    "scalar_mix": scalar_mix,
}

MUTANTS: dict[str, tuple[str, Callable[..., object], str]] = {
    "lstm_gate_order_ifog": ("lstm_cell", lstm_gate_order_ifog, "wrong row blocks"),
    "lstm_gate_order_figo": ("lstm_cell", lstm_gate_order_fiog, "wrong row blocks"),
    "lstm_no_tanh_on_cell": ("lstm_cell", lstm_no_tanh_on_cell, "tanh of the new cell state is missing"),
    "lstm_forget_gate_omitted": ("lstm_cell", lstm_forget_gate_omitted, "forget gate is missing"),
    "lstm_old_cell_dropped": ("lstm_cell", lstm_old_cell_dropped, "does not depend on c"),
    "lstm_sigmoid_candidate": ("lstm_cell", lstm_sigmoid_candidate, "through a sigmoid"),
    "lstm_ignores_h": ("lstm_cell", lstm_ignores_h, "previous hidden state h has no effect"),
    "lstm_one_bias": ("lstm_cell", lstm_one_bias, "only one of the two bias"),
    "lstm_weights_not_transposed": ("lstm_cell", lstm_weights_not_transposed, "like nn.Linear's weight"),
    "lstm_returns_c_first": ("lstm_cell", lstm_returns_c_first, "returned as (c_new, h_new)"),
    "lstm_in_place": ("lstm_cell", lstm_in_place, "modified c in place"),
    "reverse_whole_row": ("reverse_padded", reverse_whole_row, "padding moved to the front"),
    "reverse_zeroes_padding": ("reverse_padded", reverse_zeroes_padding, "padding must stay"),
    "reverse_off_by_one": ("reverse_padded", reverse_off_by_one, "past the end of a row"),
    "reverse_in_place": ("reverse_padded", reverse_in_place, "modified x in place"),
    "reverse_only_3d": ("reverse_padded", reverse_only_3d, "too many indices"),
    "mix_no_softmax": ("scalar_mix", mix_no_softmax, "not normalised by a softmax"),
    "mix_no_gamma": ("scalar_mix", mix_no_gamma, "gamma has no effect"),
    "mix_sum_normalised": ("scalar_mix", mix_sum_normalised, "divided by their sum"),
    "mix_equal_weights": ("scalar_mix", mix_equal_weights, "equal weights"),
    "mix_gamma_in_softmax": ("scalar_mix", mix_gamma_in_softmax, "before the softmax"),
    "mix_not_summed": ("scalar_mix", mix_not_summed, "not summed over the layer axis"),
}
