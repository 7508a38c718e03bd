"""Deep bidirectionality measured: the joint-context interaction is 0 for ELMo and GPT, > 0 for BERT."""

from __future__ import annotations

import pytest
import torch

from bertcourse import compare
from bertcourse.engine import train
from bertcourse.experiments import PRESETS, preset_configs, pretraining_corpus
from bertcourse.experiments.interaction import (
    cloze_interaction,
    cloze_probe,
    interaction,
    linear_probe,
    model_interaction,
)
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


@pytest.mark.slow
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


def test_a_linear_probe_reads_xor_from_joint_features_but_not_from_additive_ones() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randint(0, 2, (400,), generator=g), torch.randint(0, 2, (400,), generator=g)
    labels = a ^ b  # "and" when the polarities agree, "but" when they differ
    noise = 0.1 * torch.randn(400, 6, generator=g)
    left, right = torch.nn.functional.one_hot(a, 2).float(), torch.nn.functional.one_hot(b, 2).float()
    additive = torch.cat([left, right, torch.zeros(400, 2)], 1) + noise  # f(L) beside g(R), as ELMo
    joint = torch.cat([left, right, (left[:, :1] * right[:, :1]), (left[:, 1:] * right[:, 1:])], 1) + noise
    assert abs(linear_probe(additive, labels) - 0.5) < 0.1
    assert linear_probe(joint, labels) > 0.95


@pytest.mark.slow
def test_cloze_interaction_and_probe_on_trained_models(trained) -> None:  # type: ignore[no-untyped-def]
    models, tok = trained
    items = [i for i in compare.evaluation_sets(TINY).cloze if i.cue == "both"]
    for model in models.values():
        model.train()  # as the engine leaves it: the measure must switch dropout off itself
    scores = {name: cloze_interaction(model, items, tok, pairs=4) for name, model in models.items()}
    assert all(model.training for model in models.values())  # and restore the mode it found
    assert scores["elmo"] < 1e-8 and scores["gpt"] < 1e-8 and scores["bert"] > 1e-5, scores  # bert: 7.8e-5
    accuracy = cloze_probe(models["gpt"], items, tok)
    assert 0.0 <= accuracy <= 1.0
