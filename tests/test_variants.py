"""The head-to-head's rows: pre-training variants (registry), how each row fine-tunes, and paired statistics.

Properties: the controlled BERT is GPT's size (within 2%); "No NSP" trains no NSP head; a feature-based
ELMo row trains its scalar mix and head only; the BiLSTM put on a left-to-right model ignores padding; the
paired differences are per-seed differences.
"""

from __future__ import annotations

import dataclasses
from itertools import pairwise

import pytest
import torch

from bertcourse.bert import BertConfig
from bertcourse.engine import train
from bertcourse.experiments import PRESETS, pretraining_corpus
from bertcourse.experiments.finetune import BiLSTMOnTop, finetune, task_items
from bertcourse.experiments.results import paired, stat
from bertcourse.experiments.setup import ROWS, language, variant_config
from bertcourse.gpt import GPTConfig
from bertcourse.objectives import PRETRAINING_TERMS
from bertcourse.registry import CONTROLLED_BERT, VARIANTS, build_model

TINY = dataclasses.replace(PRESETS["tiny"], n_docs=60)


@pytest.fixture(scope="module")
def corpus():  # type: ignore[no-untyped-def]
    return pretraining_corpus(TINY)


def test_every_row_names_a_variant_and_every_variant_builds(corpus) -> None:  # type: ignore[no-untyped-def]
    assert {row.variant for row in ROWS.values()} == set(VARIANTS)
    counts = {}
    for name, variant in VARIANTS.items():
        config = variant_config(TINY, corpus.tokenizer.vocab_size, name)
        counts[name] = build_model(variant.family, config).num_parameters()
        assert variant.objective in PRETRAINING_TERMS
    assert abs(counts["bert"] / counts["gpt"] - 1) < 0.02  # the controlled pair: within 2%
    assert counts["bert-post-ln"] > counts["bert"] * 1.05  # the paper's transform and pooler on top
    gpt = variant_config(TINY, corpus.tokenizer.vocab_size, "gpt")
    assert isinstance(gpt, GPTConfig)
    assert CONTROLLED_BERT["activation"] == gpt.activation and CONTROLLED_BERT["layer_norm_eps"] == gpt.layer_norm_eps
    paper = variant_config(TINY, corpus.tokenizer.vocab_size, "bert-post-ln")
    assert isinstance(paper, BertConfig) and not paper.norm_first and paper.mlm_transform and paper.pooler
    assert corpus.data("bert-mask15", TINY, 0).mlm_probability == 0.15
    assert corpus.data("bert", TINY, 0).mlm_probability == TINY.mlm_probability
    with pytest.raises(ValueError, match="name"):
        corpus.data("bert-huge", TINY, 0)


def test_no_nsp_trains_no_nsp_head_and_nsp_alone_no_mlm_decoder(corpus) -> None:  # type: ignore[no-untyped-def]
    """Objective ``mlm``: the NSP head gets no gradient, so it ends as it began; ``nsp``: the masked-LM
    decoder's bias ends as it began; with ``bert`` both move."""
    ends = {}
    for objective in ("mlm", "nsp", "bert"):
        torch.manual_seed(0)
        model = build_model("bert", variant_config(TINY, corpus.tokenizer.vocab_size, "bert"))
        nsp, bias = model.nsp_head.weight.detach().clone(), model.mlm_head.decoder.bias.detach().clone()
        batches = corpus.data("bert", TINY, 0).batches(8)
        train(model, batches, objective=objective, max_steps=3, lr=1e-2, seed=0, progress=False)
        ends[objective] = (torch.equal(model.nsp_head.weight, nsp), torch.equal(model.mlm_head.decoder.bias, bias))
    assert ends == {"mlm": (True, False), "nsp": (False, True), "bert": (False, False)}
    assert PRETRAINING_TERMS["mlm"] == {"mlm": 1.0} and PRETRAINING_TERMS["nsp"] == {"nsp": 1.0}


@pytest.mark.parametrize("use", ["features", "features-bilstm"])
def test_feature_based_elmo_trains_only_its_scalar_mix_and_head(corpus, use) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    elmo = build_model("elmo", variant_config(TINY, corpus.tokenizer.vocab_size, "elmo"))
    before = {k: v.clone() for k, v in elmo.state_dict().items()}
    items = task_items("sentiment", language(TINY, 1), 32)
    finetune(elmo, "sentiment", items, items[:8], corpus.tokenizer, num_labels=2, steps=3, lr=1e-2, use=use)
    changed = {k for k, v in elmo.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"scalar_mix.weights", "scalar_mix.gamma"}  # the biLM stays frozen under either task model
    with pytest.raises(ValueError, match="scalar_mix"):
        gpt = build_model("gpt", variant_config(TINY, corpus.tokenizer.vocab_size, "gpt"))
        finetune(gpt, "sentiment", items, items, corpus.tokenizer, num_labels=2, steps=1, lr=1e-3, use="features")
    with pytest.raises(ValueError, match="use"):
        finetune(elmo, "sentiment", items, items, corpus.tokenizer, num_labels=2, steps=1, lr=1e-3, use="frozen")


def test_bilstm_on_top_ignores_padding_and_reads_both_ways(corpus) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    gpt = build_model("gpt", variant_config(TINY, corpus.tokenizer.vocab_size, "gpt")).eval()
    model = BiLSTMOnTop(gpt, gpt.config.d_model).eval()
    ids = torch.randint(5, corpus.tokenizer.vocab_size, (1, 6))
    padded = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], dim=1)  # (1, 9): 3 padding positions
    mask = torch.tensor([[1] * 6 + [0] * 3])
    with torch.no_grad():
        alone = model.encode(ids)
        torch.testing.assert_close(model.encode(padded, mask)[:, :6], alone, rtol=1e-5, atol=1e-6)
        changed = ids.clone()
        changed[0, 5] = (ids[0, 5] + 1) % corpus.tokenizer.vocab_size  # the last token: GPT's first state cannot see it
        assert not torch.allclose(model.encode(changed)[0, 0], alone[0, 0])  # the BiLSTM's backward half does
    with pytest.raises(ValueError, match="even"):
        BiLSTMOnTop(gpt, 7)


def test_paired_differences_are_per_seed() -> None:
    def run(seed: int, right: float, acc: float) -> dict:
        return {"seed": seed, "cloze": {"right": right}, "finetune": {"pos": {"accuracy": acc}}}

    runs = {"bert": [run(0, 0.9, 0.8), run(1, 0.7, 0.6)], "gpt": [run(1, 0.5, 0.5), run(0, 0.6, 0.7)]}
    out = paired(runs)
    assert list(out) == ["bert - gpt"] and out["bert - gpt"]["seeds"] == [1, 0]
    assert out["bert - gpt"]["cloze"]["right"] == stat([0.7 - 0.5, 0.9 - 0.6])
    assert out["bert - gpt"]["finetune"]["pos"] == stat([0.6 - 0.5, 0.8 - 0.7])
    assert paired({"gpt": runs["gpt"]}) == {}


def test_train_conjunction_reports_held_out_accuracy_and_refuses_bad_input(corpus) -> None:  # type: ignore[no-untyped-def]
    """The supervised and/but experiment of chapter 08 (``experiments.parity``): its API on a few steps.
    (What it shows, the tied MLM head stuck at 0.5 where an untied one learns, the chapter measures.)"""
    from bertcourse.experiments.parity import train_conjunction

    config = variant_config(TINY, corpus.tokenizer.vocab_size, "bert")
    train_items = language(TINY, 1).cloze_task(40, "both")
    test_items = language(TINY, 2).cloze_task(10, "both")
    runs = [
        train_conjunction(config, train_items, test_items, corpus.tokenizer, head=h, steps=4, eval_every=2)
        for h in ("mlm", "mlm", "linear")
    ]
    assert list(runs[0]) == [0, 2, 4] and all(0.0 <= a <= 1.0 for a in runs[0].values())
    assert runs[0] == runs[1]  # seeded: the same curve twice
    with pytest.raises(ValueError, match="head"):
        train_conjunction(config, train_items, test_items, corpus.tokenizer, head="bilinear", steps=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="both"):
        left = language(TINY, 1).cloze_task(4, "left")
        train_conjunction(config, left, test_items, corpus.tokenizer, head="mlm", steps=1)


def test_joint_recipe_data_never_masks_neighbours_and_weights_its_words(corpus) -> None:  # type: ignore[no-untyped-def]
    """``bert-joint``'s data: no two neighbours masked, "and"/"but" targets weighted 10, the rest 1; the loss
    is the weighted sum and counts the weights, so it stays a mean over (weighted) targets."""
    from bertcourse.objectives import pretraining_loss_sums, pretraining_target_counts

    tok = corpus.tokenizer
    joint, plain = corpus.data("bert-joint", TINY, 0), corpus.data("bert", TINY, 0)
    assert not joint.mask_adjacent and set(joint.target_weights.values()) == {10}
    conj = set(joint.target_weights)
    assert conj == {tok.convert_tokens_to_ids(["and"])[0], tok.convert_tokens_to_ids(["but"])[0]}
    adjacent_plain = 0
    for i in range(len(joint)):
        labels = joint.example(i, 0)["labels"]
        hit = [t != -100 for t in labels]
        assert not any(a and b for a, b in pairwise(hit))
        weights = joint.example(i, 0)["label_weights"]
        assert weights == [0 if t == -100 else 10 if t in conj else 1 for t in labels]
        plain_hit = [t != -100 for t in plain.example(i, 0)["labels"]]
        adjacent_plain += sum(a and b for a, b in pairwise(plain_hit))
    assert adjacent_plain > 0  # BERT's own masking does mask neighbours
    batch = joint.batches(8).batch_at(1)
    torch.manual_seed(0)
    model = build_model("bert", variant_config(TINY, tok.vocab_size, "bert-joint")).eval()  # no dropout
    sums, counts = pretraining_loss_sums("bert", model, batch), pretraining_target_counts("bert", batch)
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "next_sentence_label", "label_weights")}
    logits = model(**inputs).prediction_logits
    at = batch["labels"] != -100
    each = torch.nn.functional.cross_entropy(logits[at], batch["labels"][at], reduction="none")
    torch.testing.assert_close(sums["mlm"], (each * batch["label_weights"][at]).sum())
    assert counts["mlm"] == batch["label_weights"].sum()
