"""Influence by distance: a causal model has no right side, a local model decays, full attention reaches far."""

from __future__ import annotations

import pytest
import torch

from bertcourse import GPT, BertConfig, BertModel, GPTConfig
from bertcourse.chapters.distance import influence_by_distance

SENTENCES = [[1, *range(5, 15), 2], [1, *range(20, 28), 2]]  # [CLS] ... [SEP]


def test_causal_model_is_never_influenced_from_the_right() -> None:
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=40, d_model=16, n_layers=2, n_heads=2, d_ff=32, max_len=16)).eval()
    profile = influence_by_distance(gpt.encode, SENTENCES, replacement_id=3, skip_ids=[1, 2])
    assert all(profile.mean[d] == 0.0 for d in profile.mean if d > 0)  # a token on the right changes nothing
    assert all(profile.mean[d] > 0.0 for d in profile.mean if d < 0)
    assert profile.count[-1] == 9 + 7  # adjacent pairs: 10 and 8 real tokens


def test_bidirectional_model_sees_both_sides() -> None:
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=40, d_model=16, n_layers=2, n_heads=2, d_ff=32, max_len=16)).eval()
    profile = influence_by_distance(bert.encode, SENTENCES, replacement_id=3, skip_ids=[1, 2])
    assert profile.mean[5] > 0 and profile.mean[-5] > 0


def test_a_local_encoder_decays_with_distance() -> None:
    def window(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.one_hot(input_ids, 40).float()  # (B, T, V)
        decay = torch.tensor([0.5**k for k in range(input_ids.shape[1])])
        weights = torch.tril(decay[(torch.arange(len(decay))[:, None] - torch.arange(len(decay))).clamp(min=0)])
        return 1.0 + weights @ x  # (T, T) @ (B, T, V): an exponential memory of the left context

    profile = influence_by_distance(window, SENTENCES, replacement_id=3, skip_ids=[1, 2])
    left = profile.side([-1, -2, -4, -8])
    assert left == sorted(left, reverse=True) and left[-1] < left[0] / 10


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="empty"):
        influence_by_distance(lambda i, m: i, [], replacement_id=3)
    with pytest.raises(ValueError, match="two positions"):
        influence_by_distance(lambda i, m: i[..., None].float(), [[1, 5, 2]], replacement_id=3, skip_ids=[1, 2])
