"""Deep bidirectionality, measured: does a representation combine its left and right contexts *jointly*?

Fix position t and take two left contexts L, L' and two right contexts R, R'. The second difference

    I_t = || h(L', R')_t - h(L', R)_t - h(L, R')_t + h(L, R)_t ||_2

is zero for every representation that *adds* a left-only part and a right-only part, h = a(L) + b(R):
ELMo's (a forward LSTM's state beside a backward one's, then a linear mix) and GPT's (no right part at
all). It can only be non-zero where the two sides meet inside the network, as in every layer of BERT.
This is the interaction term of a two-factor design: the effect of changing the left context that
depends on what the right context is. A cue that needs both sides jointly (the "and"/"but" cloze, an
XOR of two polarities) needs it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from bertcourse.experiments.influence import Part, embedding_function

__all__ = ["interaction", "model_interaction"]


def interaction(fn: Callable[[Tensor], Tensor], x: Tensor, x_alt: Tensor, t: int) -> Tensor:
    """The joint-context interaction at row ``t`` (a 0-dim tensor; see the module docstring).

    ``fn`` maps input embeddings (T, D) to representations (T, H). ``x`` and ``x_alt`` (T, D) give the
    contexts: L, R are ``x``'s rows before and after t, L', R' are ``x_alt``'s; row t is always ``x``'s.
    """
    if not isinstance(x, Tensor) or not isinstance(x_alt, Tensor) or x.dim() != 2 or x.shape != x_alt.shape:
        shapes = [tuple(a.shape) if isinstance(a, Tensor) else type(a).__name__ for a in (x, x_alt)]
        raise ValueError(f"x and x_alt must be (T, D) tensors of one shape, got {shapes[0]} and {shapes[1]}")
    if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < x.shape[0]:
        raise ValueError(f"t must be an int in [0, T={x.shape[0]}), got {t!r}")

    def joined(left: Tensor, right: Tensor) -> Tensor:
        z = x.clone()
        z[:t], z[t + 1 :] = left[:t], right[t + 1 :]  # row t stays x's
        return fn(z)[t]  # (T, D) -> (T, H) -> (H,)

    return (joined(x_alt, x_alt) - joined(x_alt, x) - joined(x, x_alt) + joined(x, x)).norm()


@torch.no_grad()
def model_interaction(model: nn.Module, input_ids: Tensor, alt_ids: Tensor, t: int, part: Part = "all") -> Tensor:
    """:func:`interaction` of a course model's ``encode`` (eval mode) at position ``t`` of two token sequences
    (1, T) of equal length that share the token at t: L, R from ``input_ids``, L', R' from ``alt_ids``.

    Positions (and BERT's segments) stay those of ``input_ids``; only the token embeddings are swapped.
    """
    if input_ids.shape != alt_ids.shape or input_ids.dim() != 2 or input_ids.shape[0] != 1:
        raise ValueError(
            f"input_ids and alt_ids must be (1, T) of one shape, got {tuple(input_ids.shape)} and "
            f"{tuple(alt_ids.shape)}"
        )
    if not 0 <= t < input_ids.shape[1] or input_ids[0, t] != alt_ids[0, t]:
        raise ValueError(f"t must index a token the two sequences share, got t={t}")
    was_training = model.training
    model.eval()
    try:
        fn, x = embedding_function(model, input_ids, part)
        _, x_alt = embedding_function(model, alt_ids, part)
        return interaction(fn, x, x_alt, t)
    finally:
        model.train(was_training)
