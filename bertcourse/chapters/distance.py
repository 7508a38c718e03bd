"""Long-range dependencies on trained models: how much a token moves a representation, by distance.

For every real position j of a sentence, replace token j by a neutral token and re-encode; the relative
change of the representation at every other real position i,

    influence(i, j) = || h_i(x with x_j replaced) - h_i(x) || / || h_i(x) ||,

is filed under the signed distance d = j - i (d < 0: a token on the left of the position, d > 0: on its
right). Averaging over many sentences gives a profile per distance. An LSTM's dependence on a token is
carried through one recurrence step per token, so it can only fade with distance; self-attention reads any
token in one step. Replacement measures what the trained model does with an actual token, not a
derivative at one point, and costs one batched forward pass per sentence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["DistanceProfile", "influence_by_distance"]

Encoder = Callable[[Tensor, Tensor], Tensor]  # (input_ids (B, T), attention_mask (B, T)) -> (B, T, H)


@dataclass(frozen=True)
class DistanceProfile:
    """Mean relative influence per signed distance d = j - i, and how many (i, j) pairs each mean averages."""

    mean: dict[int, float]
    count: dict[int, int]

    def side(self, distances: Sequence[int]) -> list[float]:
        """The means at ``distances`` (in that order); a distance never observed raises ``KeyError``."""
        return [self.mean[d] for d in distances]


@torch.no_grad()
def influence_by_distance(
    encode: Encoder, sentences: Sequence[Sequence[int]], replacement_id: int, skip_ids: Sequence[int] = ()
) -> DistanceProfile:
    """Influence profile of ``encode`` over ``sentences`` (lists of token ids, special tokens included).

    Args:
        encode: maps (input_ids, attention_mask) of shape (B, T) to representations (B, T, H).
        sentences: token ids of each sentence; each is encoded unpadded, with all its copies in one batch.
        replacement_id: the token put in place of x_j (e.g. ``[MASK]`` or ``[UNK]``).
        skip_ids: ids never replaced and never measured (e.g. ``[CLS]`` and ``[SEP]``).
    """
    if not sentences:
        raise ValueError("sentences must not be empty")
    totals: dict[int, float] = {}
    counts: dict[int, int] = {}
    skip = set(skip_ids)
    for sentence in sentences:
        ids = torch.tensor([list(sentence)])  # (1, T)
        positions = [t for t, token in enumerate(sentence) if token not in skip]
        if len(positions) < 2:
            continue
        variants = ids.repeat(len(positions), 1)  # (P, T): copy p has token positions[p] replaced
        variants[torch.arange(len(positions)), torch.tensor(positions)] = replacement_id
        batch = torch.cat([ids, variants])  # (1 + P, T)
        states = encode(batch, torch.ones_like(batch))  # (1 + P, T, H)
        base, changed = states[0], states[1:]
        change = (changed - base).norm(dim=-1) / base.norm(dim=-1).clamp_min(1e-12)  # (P, T)
        for p, j in enumerate(positions):
            for i in positions:
                if i != j:
                    totals[j - i] = totals.get(j - i, 0.0) + float(change[p, i])
                    counts[j - i] = counts.get(j - i, 0) + 1
    if not counts:
        raise ValueError("no sentence has two positions outside skip_ids")
    return DistanceProfile({d: totals[d] / counts[d] for d in sorted(counts)}, dict(sorted(counts.items())))
