"""Chapter 07's fine-tuning loop (sees every label, learns, repeats with a seed), its helpers' arithmetic, and its
stage 1: the ``label-budget`` preset, built and pre-trained by the head-to-head's shared set-up."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from bertcourse import GPT, BertConfig, BertForMaskedLM, ELMo, ELMoConfig, GPTConfig, TokenClassifier
from bertcourse.chapters.label_budget import (
    LayerMixTagger,
    Run,
    fine_tune,
    layer_features,
    mean_ci95,
    steps_for_epochs,
    token_accuracy,
)
from bertcourse.experiments import MODELS, PRESETS, build_model, pretraining_corpus, variant_config
from bertcourse.experiments.head_to_head import evaluation_sets, pretrain


def test_steps_cover_every_example() -> None:
    assert steps_for_epochs(1024, 16, epochs=3, min_steps=60) == 192  # 64 batches per epoch
    assert steps_for_epochs(16, 16, epochs=3, min_steps=60) == 60  # the floor
    assert steps_for_epochs(10, 16, epochs=2, min_steps=0) == 2  # batch capped at n: one batch per epoch
    with pytest.raises(ValueError, match="batch_size"):
        steps_for_epochs(10, 0, epochs=1, min_steps=0)


def test_token_accuracy_ignores_unlabelled_positions() -> None:
    logits = torch.tensor([[[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]]])  # predicts 0, 1, 0
    assert token_accuracy(logits, torch.tensor([[0, 0, -100]])) == 0.5
    with pytest.raises(ValueError, match="all -100"):
        token_accuracy(logits, torch.full((1, 3), -100))


def test_mean_ci95_uses_student_t() -> None:
    mean, half = mean_ci95([1.0, 2.0, 3.0])
    assert mean == 2.0 and math.isclose(half, 4.303 * 1.0 / math.sqrt(3), rel_tol=1e-6)
    assert mean_ci95([0.7]) == (0.7, 0.0)


def _toy_tagging(n: int, seed: int) -> dict[str, torch.Tensor]:
    """Tag = whether the token id is even: learnable from the token alone."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 20, (n, 6), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids % 2}


def test_fine_tune_learns_sees_all_batches_and_repeats() -> None:
    train, test = _toy_tagging(32, 0), _toy_tagging(64, 1)

    def run(seed: int) -> Run:
        torch.manual_seed(0)
        encoder = ELMo(ELMoConfig(vocab_size=20, d_model=8, d_hidden=12, n_layers=1, dropout=0.0))
        tagger = TokenClassifier(encoder, 16, 2)
        return fine_tune(tagger, train, test, batch_size=8, steps=40, lr=3e-2, eval_every=20, seed=seed)

    first, again = run(0), run(0)
    assert first.accuracy == again.accuracy  # the seed fixes the order
    assert first.steps == [20, 40] and len(first.train_loss) == 40
    assert first.final() > 0.9  # learned the rule
    assert sum(first.train_loss[-5:]) < sum(first.train_loss[:5])


def test_feature_based_tagger_trains_only_mix_and_head() -> None:
    torch.manual_seed(0)
    elmo = ELMo(ELMoConfig(vocab_size=20, d_model=8, d_hidden=12, n_layers=2, dropout=0.0))
    train, test = _toy_tagging(32, 0), _toy_tagging(64, 1)
    features = {
        name: {"features": layer_features(elmo, d["input_ids"], d["attention_mask"]), "labels": d["labels"]}
        for name, d in (("train", train), ("test", test))
    }
    assert features["train"]["features"].shape == (32, 3, 6, 16)  # (B, L = embedding + 2 layers, T, 2 d_model)
    before = [p.clone() for p in elmo.parameters()]
    tagger = LayerMixTagger(3, 16, 2)
    run = fine_tune(tagger, features["train"], features["test"], batch_size=8, steps=60, lr=5e-2, eval_every=30, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(before, elmo.parameters(), strict=True))  # the biLM never changed
    assert run.final() > 0.7  # well above the 0.5 of a constant guess, from frozen random features
    assert not torch.equal(tagger.mix.weights.detach(), torch.zeros(3))  # the mix learned


def test_layer_features_of_the_transformers() -> None:
    ids = torch.randint(1, 20, (2, 5))
    mask = torch.ones_like(ids)
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=20, d_model=8, n_layers=2, n_heads=2, d_ff=16, max_len=8))
    bert = BertForMaskedLM(BertConfig(vocab_size=20, d_model=8, n_layers=2, n_heads=2, d_ff=16, max_len=8))
    for model in (gpt, bert):
        features = layer_features(model, ids, mask)
        assert features.shape == (2, 3, 5, 8)  # embeddings + 2 blocks
        torch.testing.assert_close(features[:, -1], model.encode(ids, mask))  # the last layer is encode()
    with pytest.raises(ValueError, match="ELMo, GPT or BERT"):
        layer_features(torch.nn.Linear(2, 2), ids, mask)


def test_fine_tune_rejects_bad_arguments() -> None:
    train = _toy_tagging(4, 0)
    with pytest.raises(ValueError, match="lr > 0"):
        fine_tune(LayerMixTagger(1, 4, 2), train, train, batch_size=2, steps=1, lr=0.0, eval_every=1, seed=0)


# ----------------------------------------------------------------------------- chapter 07's stage 1: the shared set-up

CHAPTER = Path(__file__).resolve().parents[1] / "notebooks" / "07_pretrain_finetune.ipynb"
LABEL_BUDGET = PRESETS["label-budget"]


def test_label_budget_preset_builds_the_chapters_data_and_models() -> None:
    corpus = pretraining_corpus(LABEL_BUDGET)
    words = {w for document in corpus.documents for sentence in document for w in sentence.split()}
    assert all(len(corpus.tokenizer.encode(w, add_special_tokens=False)) == 1 for w in words)  # one token per word
    sets = evaluation_sets(LABEL_BUDGET)
    train_items, test_items = sets.tasks["pos"]
    assert (len(train_items), len(test_items)) == (1024, 400)  # the chapter's labelled pool and test set
    seen = {w for item in train_items[:16] for w in item.words}
    test_words = [w for item in test_items for w in item.words]
    assert sum(w not in seen for w in test_words) / len(test_words) > 0.25  # 16 labels leave many words unseen
    vocab_size = corpus.tokenizer.vocab_size
    counts = [build_model(n, variant_config(LABEL_BUDGET, vocab_size, n)).num_parameters() for n in MODELS]
    assert max(counts) < 1.05 * min(counts)  # the same budget


@pytest.mark.parametrize("name", MODELS)
def test_label_budget_pretraining_runs_through_the_head_to_heads_pretrain(name: str) -> None:
    short = dataclasses.replace(LABEL_BUDGET, n_docs=100, pretrain_steps=60)  # the same code path, fewer steps
    corpus = pretraining_corpus(short)
    model, record = pretrain(name, short, corpus, seed=0)
    assert model.config == variant_config(short, corpus.tokenizer.vocab_size, name)
    assert record["steps"] == 60
    assert record["measured"]["loss_end"] < record["measured"]["loss_start"] - 0.5  # its own objective falls


def test_chapter_07_pretrains_with_the_shared_set_up() -> None:
    """The chapter's stage 1 is the head-to-head's: its preset, corpus, configs and ``pretrain``, none by hand."""
    cells = json.loads(CHAPTER.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    for shared in ('PRESETS["label-budget"]', "pretraining_corpus(PRESET)", "evaluation_sets(PRESET)",
                   "variant_config(PRESET", "pretrain(name, PRESET, corpus, SEED"):  # fmt: skip
        assert shared in code, shared
    for own in ("ToyLanguage(", "same_budget_configs(", "MLMCollator", "LMCollator", "TextDataset", "DataLoader"):
        assert own not in code, own
