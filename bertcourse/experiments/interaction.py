"""Deep bidirectionality, measured: does a representation combine its left and right contexts *jointly*?

Fix position t and take two left contexts L, L' and two right contexts R, R'. The second difference

    I_t = || h(L', R')_t - h(L', R)_t - h(L, R')_t + h(L, R)_t ||_2

is zero for every representation that *adds* a left-only part and a right-only part, h = a(L) + b(R):
ELMo's (a forward LSTM's state beside a backward one's, then a linear mix) and GPT's (no right part at
all). It can only be non-zero where the two sides meet inside the network, as in every layer of BERT.
This is the interaction term of a two-factor design: the effect of changing the left context that
depends on what the right context is. A cue that needs both sides jointly (the "and"/"but" cloze, an
XOR of two polarities) needs it.

A second reading of the same fact: a frozen *linear probe* on features f(L) + g(R) cannot compute the
XOR of a left and a right binary property: sign(u(a) + v(b)) > 0 for (a, b) = (0, 0) and (1, 1) and < 0
for (0, 1) and (1, 0) would need u(0) + v(0) + u(1) + v(1) to be both positive and negative. BERT's joint
features carry no such limit; :func:`cloze_probe` measures what each model's blank actually holds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from bertcourse.data.toylang import ClozeItem
from bertcourse.experiments.cloze import encode_cloze
from bertcourse.experiments.influence import Part, embedding_function
from bertcourse.tokenizers import Tokenizer

__all__ = [
    "blank_features",
    "cloze_interaction",
    "cloze_probe",
    "interaction",
    "linear_probe",
    "model_interaction",
]


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


def _blanked(items: Sequence[ClozeItem], tokenizer: Tokenizer) -> tuple[list[list[int]], list[int]]:
    """Each item's token ids with its blank replaced by [MASK] (a word no model has seen decide anything)."""
    ids, positions, _ = encode_cloze(items, tokenizer)
    for sequence, t in zip(ids, positions, strict=True):
        sequence[t] = tokenizer.mask_token_id
    return ids, positions


@torch.no_grad()
def cloze_interaction(model: nn.Module, items: Sequence[ClozeItem], tokenizer: Tokenizer, pairs: int = 16) -> float:
    """Mean *relative* interaction at the blank over up to ``pairs`` pairs of ``items`` of one length.

    Each pair (a, b) gives L, R from a and L', R' from b (blank = [MASK] in both); the second difference is
    divided by the mean norm of the four representations, so that models of different scales compare.
    """
    ids, positions = _blanked(items, tokenizer)
    by_shape: dict[tuple[int, int], list[int]] = {}
    for n, (sequence, t) in enumerate(zip(ids, positions, strict=True)):
        by_shape.setdefault((len(sequence), t), []).append(n)
    chosen = [(a, b) for group in by_shape.values() for a, b in zip(group[::2], group[1::2], strict=False)][:pairs]
    if not chosen:
        raise ValueError("items must hold two items of one token length with the blank at one position")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()  # no dropout: a random mask per call would make every model look "joint"
    values = []
    try:
        for a, b in chosen:
            x, x_alt = (torch.tensor([ids[n]], device=device) for n in (a, b))
            t = positions[a]
            fn, e = embedding_function(model, x)
            _, e_alt = embedding_function(model, x_alt)
            scale = torch.stack([fn(z)[t].norm() for z in (e, e_alt)]).mean().clamp(min=1e-12)
            values.append(float(interaction(fn, e, e_alt, t) / scale))
    finally:
        model.train(was_training)
    return sum(values) / len(values)


def blank_features(model: nn.Module, items: Sequence[ClozeItem], tokenizer: Tokenizer) -> Tensor:
    """(N, H) frozen representations ``model.encode`` at each item's blank, the blank read as [MASK]."""
    ids, positions = _blanked(items, tokenizer)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    rows = []
    with torch.no_grad():
        for sequence, t in zip(ids, positions, strict=True):
            rows.append(model.encode(torch.tensor([sequence], device=device))[0, t].float().cpu())  # (H,)
    model.train(was_training)
    return torch.stack(rows)


def linear_probe(features: Tensor, labels: Tensor, train_fraction: float = 0.5, steps: int = 200) -> float:
    """Held-out accuracy of a logistic-regression probe (L2 1e-3, L-BFGS) on frozen ``features`` (N, H).

    The first ``train_fraction`` of the rows train it, the rest test it. Features are standardised with the
    training rows' mean and deviation.
    """
    if features.dim() != 2 or labels.shape != (features.shape[0],):
        raise ValueError(f"features must be (N, H) and labels (N,), got {tuple(features.shape)}, {tuple(labels.shape)}")
    n_train = int(len(labels) * train_fraction)
    if n_train < 2 or n_train >= len(labels):
        raise ValueError(f"train_fraction={train_fraction} leaves no training or no test rows of {len(labels)}")
    mean, std = features[:n_train].mean(0), features[:n_train].std(0).clamp(min=1e-6)
    z = (features - mean) / std
    classes = int(labels.max()) + 1
    probe = nn.Linear(z.shape[1], classes)
    optimizer = torch.optim.LBFGS(probe.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(probe(z[:n_train]), labels[:n_train]) + 1e-3 * probe.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        return float((probe(z[n_train:]).argmax(-1) == labels[n_train:]).float().mean())


def cloze_probe(model: nn.Module, items: Sequence[ClozeItem], tokenizer: Tokenizer) -> float:
    """Held-out accuracy of a frozen linear probe that reads each item's answer from the blank's
    representation (:func:`blank_features`, :func:`linear_probe`): for the ``both`` cue, and vs but."""
    labels = torch.tensor([item.candidates.index(item.answer) for item in items])
    return linear_probe(blank_features(model, items, tokenizer), labels)
