"""Task heads on every course encoder: padding-invariant pooling, frozen encoders, losses, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bertcourse.bert import BertConfig, BertModel
from bertcourse.elmo import ELMo, ELMoConfig
from bertcourse.gpt import GPT, GPTConfig
from bertcourse.heads import SequenceClassifier, TokenClassifier, pool

V, H = 30, 16


def _encoders() -> dict[str, tuple[nn.Module, int]]:
    torch.manual_seed(0)
    return {
        "gpt": (GPT(GPTConfig(vocab_size=V, d_model=H, n_layers=1, n_heads=2, d_ff=32, max_len=16)), H),
        "bert": (BertModel(BertConfig(vocab_size=V, d_model=H, n_layers=1, n_heads=2, d_ff=32, max_len=16)), H),
        "elmo": (ELMo(ELMoConfig(vocab_size=V, d_model=H, d_hidden=24, n_layers=1)), 2 * H),
    }


def _padded_pair(T: int = 6, extra: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A sequence alone, and the same sequence right-padded with random ids (mask 0)."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, V, (1, T), generator=g)
    padded = torch.cat([ids, torch.randint(1, V, (1, extra), generator=g)], dim=1)
    mask = torch.cat([torch.ones(1, T, dtype=torch.long), torch.zeros(1, extra, dtype=torch.long)], dim=1)
    return ids, padded, mask


def test_pool_ignores_padding_and_picks_the_right_positions() -> None:
    hidden = torch.randn(2, 5, 3)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    moved = hidden.clone()
    moved[0, 3:] += 100.0  # change only padded states
    torch.testing.assert_close(pool(hidden, mask, "mean"), pool(moved, mask, "mean"))
    torch.testing.assert_close(pool(hidden, mask, "mean")[0], hidden[0, :3].mean(0))
    torch.testing.assert_close(pool(hidden, mask, "last"), torch.stack([hidden[0, 2], hidden[1, 4]]))
    torch.testing.assert_close(pool(hidden, mask, "first"), hidden[:, 0])
    with pytest.raises(ValueError, match="pooling"):
        pool(hidden, mask, "max")


@pytest.mark.parametrize("name", ["gpt", "bert", "elmo"])
@pytest.mark.parametrize("pooling", ["mean", "first", "last"])
def test_sequence_classifier_is_padding_invariant(name: str, pooling: str) -> None:
    encoder, hidden_size = _encoders()[name]
    head = SequenceClassifier(encoder, hidden_size, num_labels=3, pooling=pooling).eval()
    ids, padded, mask = _padded_pair()
    alone = head(ids).logits
    torch.testing.assert_close(head(padded, mask).logits, alone, atol=1e-5, rtol=1e-4)
    assert alone.shape == (1, 3)


@pytest.mark.parametrize("name", ["gpt", "bert", "elmo"])
def test_token_classifier_shapes_loss_and_padding(name: str) -> None:
    encoder, hidden_size = _encoders()[name]
    head = TokenClassifier(encoder, hidden_size, num_labels=4).eval()
    ids, padded, mask = _padded_pair()
    labels = torch.tensor([[0, 1, 2, 3, -100, 1, -100, -100, -100]])
    out = head(padded, mask, labels=labels)
    assert out.logits.shape == (1, 9, 4)
    torch.testing.assert_close(out.logits[:, :6], head(ids).logits, atol=1e-5, rtol=1e-4)
    keep = labels[0] != -100
    expected = nn.functional.cross_entropy(out.logits[0][keep], labels[0][keep])
    torch.testing.assert_close(out.loss, expected)


@pytest.mark.parametrize("name", ["gpt", "bert", "elmo"])
def test_frozen_encoder_gets_no_gradient_and_stays_in_eval(name: str) -> None:
    encoder, hidden_size = _encoders()[name]
    head = SequenceClassifier(encoder, hidden_size, num_labels=2, freeze_encoder=True).train()
    assert not encoder.training and head.training
    ids = torch.randint(0, V, (4, 7))
    head(ids, labels=torch.tensor([0, 1, 1, 0])).loss.backward()
    assert all(p.grad is None for p in encoder.parameters())
    assert all(p.grad is not None for p in head.classifier.parameters())
    assert head(ids).logits.requires_grad  # the head itself still learns


@pytest.mark.parametrize("name", ["gpt", "bert", "elmo"])
def test_fine_tuned_encoder_gets_gradient(name: str) -> None:
    encoder, hidden_size = _encoders()[name]
    head = SequenceClassifier(encoder, hidden_size, num_labels=2).train()
    ids = torch.randint(0, V, (4, 7))
    head(ids, labels=torch.tensor([0, 1, 1, 0])).loss.backward()
    grads = [p.grad for p in encoder.parameters() if p.requires_grad]
    assert sum(g is not None and bool(g.abs().sum() > 0) for g in grads) > len(grads) // 2


def test_bad_input_raises_clear_errors() -> None:
    encoder, _ = _encoders()["gpt"]
    with pytest.raises(ValueError, match="hidden_size=8"):
        SequenceClassifier(encoder, 8, 2)(torch.randint(0, V, (2, 4)))
    with pytest.raises(ValueError, match="encode"):
        SequenceClassifier(nn.Linear(2, 2), H, 2)
    with pytest.raises(ValueError, match="pooling"):
        SequenceClassifier(encoder, H, 2, pooling="max")
    with pytest.raises(ValueError, match="labels"):
        SequenceClassifier(encoder, H, 2)(torch.randint(0, V, (2, 4)), labels=torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="labels"):
        TokenClassifier(encoder, H, 2)(torch.randint(0, V, (2, 4)), labels=torch.tensor([0, 1]))
