"""The head-to-head experiment's parts, on small random models: same budget, cloze, influence, schema."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from bertcourse import compare
from bertcourse.data.toylang import ClozeItem
from bertcourse.experiments import (
    MODELS,
    PRESETS,
    build_model,
    cloze_scores,
    embedding_function,
    influence_matrix,
    model_influence,
    pretraining_data,
    same_budget_configs,
    side_shares,
    stat,
    validate_results,
)

TINY = PRESETS["tiny"]


@pytest.fixture(scope="module")
def data():  # type: ignore[no-untyped-def]
    return pretraining_data(TINY)


@pytest.fixture(scope="module")
def random_models(data) -> dict[str, torch.nn.Module]:  # type: ignore[no-untyped-def]
    configs = same_budget_configs(data.tokenizer.vocab_size, 32, 2, 2, 64, 64, 0.0)
    torch.manual_seed(0)
    return {name: build_model(name, configs[name]).eval() for name in MODELS}


# ----------------------------------------------------------------------------- parts, on random weights
def test_same_budget_configs_match_parameter_counts() -> None:
    for preset in PRESETS.values():
        configs = same_budget_configs(preset.vocab_size, preset.d_model, preset.n_layers, preset.n_heads, preset.d_ff)
        counts = [build_model(name, configs[name]).num_parameters() for name in MODELS]
        assert max(counts) / min(counts) < 1.1, (preset.name, counts)
        assert configs["elmo"].d_hidden >= 2 * configs["elmo"].d_model


def test_every_model_reads_the_same_pretraining_tokens(data) -> None:  # type: ignore[no-untyped-def]
    assert [f["input_ids"] for f in data.pairs.features] == [f["input_ids"] for f in data.texts.features]
    words = {w for doc in data.documents for s in doc for w in s.split()}
    assert all(len(data.tokenizer.encode(w, add_special_tokens=False)) == 1 for w in words)


def _with_right_context_changed(item: ClozeItem) -> ClozeItem:
    words = item.words
    words[item.target + 1 :] = ["."] * (len(words) - item.target - 1)
    return dataclasses.replace(item, text=" ".join(words))


def _with_left_context_changed(item: ClozeItem) -> ClozeItem:
    words = item.words
    words[: item.target] = ["the"] * item.target
    return dataclasses.replace(item, text=" ".join(words))


def _moves(model: torch.nn.Module, items: list[ClozeItem], changed: list[ClozeItem], tokenizer) -> bool:  # type: ignore[no-untyped-def]
    """Whether any candidate score changes when ``items`` become ``changed``."""
    before, after = cloze_scores(model, items, tokenizer), cloze_scores(model, changed, tokenizer)
    return any(not torch.allclose(a, b) for a, b in zip(before, after, strict=True))


def test_cloze_scores_read_the_context_each_model_may_see(data, random_models) -> None:  # type: ignore[no-untyped-def]
    items = compare.evaluation_sets(TINY).cloze[::25]
    right, left = [_with_right_context_changed(i) for i in items], [_with_left_context_changed(i) for i in items]
    tok = data.tokenizer
    gpt = random_models["gpt"]
    for a, b in zip(cloze_scores(gpt, items, tok), cloze_scores(gpt, right, tok), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # GPT: the right context never matters
    assert _moves(gpt, items, left, tok)
    for name in ("elmo", "bert"):  # both sides matter
        assert _moves(random_models[name], items, right, tok) and _moves(random_models[name], items, left, tok), name


def test_cloze_rejects_multi_token_candidates(data, random_models) -> None:  # type: ignore[no-untyped-def]
    for odd in ("runrunrun", "xqzzy"):  # several pieces; [UNK]
        item = ClozeItem("the dogs run .", 2, ("run", odd), "run", "left")
        with pytest.raises(ValueError, match="candidate"):
            cloze_scores(random_models["gpt"], [item], data.tokenizer)


def test_influence_matrix_is_causal_for_gpt_one_sided_for_elmo_full_for_bert(data, random_models) -> None:  # type: ignore[no-untyped-def]
    ids = torch.tensor([data.tokenizer.encode("the dogs that the cat sees run .")])
    gpt = model_influence(random_models["gpt"], ids)
    assert torch.equal(gpt, torch.tril(gpt)) and bool((gpt.diagonal() > 0).all())
    forward = model_influence(random_models["elmo"], ids, "forward")
    backward = model_influence(random_models["elmo"], ids, "backward")
    assert torch.equal(forward, torch.tril(forward)) and torch.equal(backward, torch.triu(backward))
    bert = model_influence(random_models["bert"], ids)
    assert bool((bert > 0).all())
    assert side_shares(gpt)["right"] == 0.0 and 0.2 < side_shares(bert)["right"] < 0.8
    # the batched Jacobian equals torch's, entry by entry
    torch.testing.assert_close(gpt, influence_matrix(*embedding_function(random_models["gpt"], ids)))
    with pytest.raises(ValueError, match="part"):
        model_influence(random_models["gpt"], ids, "forward")


def test_stat_and_schema_errors_name_the_field() -> None:
    assert stat([1.0, 3.0]) == {"mean": 2.0, "std": pytest.approx(2**0.5), "n": 2}
    assert stat([0.5]) == {"mean": 0.5, "std": 0.0, "n": 1}
    with pytest.raises(ValueError, match="chance"):
        validate_results({"models": {}})
    with pytest.raises(ValueError, match="'right'"):
        validate_results({"models": {}, "chance": {"cloze": {"left": 0.5}}})


def test_run_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="preset"):
        compare.run("huge", 1, tmp_path)
    with pytest.raises(ValueError, match="seeds"):
        compare.run("tiny", 0, tmp_path)
    with pytest.raises(ValueError, match="models"):
        compare.run("tiny", 1, tmp_path, models=["lstm"])
