"""Deep bidirectionality measured: the joint-context interaction is 0 for ELMo and GPT, > 0 for BERT."""

from __future__ import annotations

import pytest
import torch

from bertcourse.engine import train
from bertcourse.experiments import PRESETS, preset_configs, pretraining_corpus
from bertcourse.experiments.interaction import interaction, model_interaction
from bertcourse.registry import MODELS, build_model

TINY = PRESETS["tiny"]


def test_additive_functions_have_no_interaction_and_joint_ones_do() -> None:
    g = torch.Generator().manual_seed(0)
    x, x_alt = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    w = torch.randn(3, 4, generator=g)

    def additive(e: torch.Tensor) -> torch.Tensor:  # row t: tanh of its left sum + tanh of its right sum
        c = e.cumsum(0)
        left, right = c - e, c[-1] - c
        return torch.tanh(left @ w) + torch.tanh(right @ w) + e @ w

    def joint(e: torch.Tensor) -> torch.Tensor:  # the two sides meet inside one non-linearity
        c = e.cumsum(0)
        return torch.tanh((c - e) @ w * ((c[-1] - c) @ w))

    for t in range(5):
        assert float(interaction(additive, x, x_alt, t)) < 1e-6
    assert float(interaction(joint, x, x_alt, 2)) > 1e-2
    assert float(interaction(joint, x, x_alt, 0)) == 0.0  # no left context at t = 0: nothing to interact
    with pytest.raises(ValueError, match="t must be an int"):
        interaction(joint, x, x_alt, 5)
    with pytest.raises(ValueError, match="x and x_alt must be"):
        interaction(joint, x, x_alt[:4], 1)


@pytest.fixture(scope="module")
def trained() -> tuple[dict[str, torch.nn.Module], object]:
    """The three tiny models after 30 steps of their own pre-training (weights moved from the initialisation)."""
    corpus = pretraining_corpus(TINY)
    configs = preset_configs(TINY, corpus.tokenizer.vocab_size)
    models = {}
    for name in MODELS:
        torch.manual_seed(0)
        model = build_model(name, configs[name])
        batches = corpus.data(name, TINY, seed=0).batches(16)
        train(model, batches, objective=name, max_steps=30, lr=3e-3, device="cpu", progress=False)
        models[name] = model.eval()
    return models, corpus.tokenizer


def test_interaction_is_zero_for_elmo_and_gpt_and_positive_for_bert_on_trained_models(trained) -> None:  # type: ignore[no-untyped-def]
    models, tok = trained
    ids = torch.tensor([tok.encode("the dogs run and the cat sees .")])
    g = torch.Generator().manual_seed(0)
    alt = torch.randint(len(tok.special_token_ids), tok.vocab_size, ids.shape, generator=g)  # other words
    t = 4  # the word between the two contexts (its token is shared)
    alt[0, t] = ids[0, t]
    scores = {name: float(model_interaction(model, ids, alt, t)) for name, model in models.items()}
    assert scores["elmo"] < 1e-5 and scores["gpt"] < 1e-5, scores  # additive by construction: float zero
    assert scores["bert"] > 1e-2, scores
    for part in ("forward", "backward"):  # each ELMo direction alone sees one side: no interaction either
        assert float(model_interaction(models["elmo"], ids, alt, t, part)) < 1e-5
    with pytest.raises(ValueError, match="share"):
        model_interaction(models["bert"], ids, (ids + 1) % tok.vocab_size, t)
