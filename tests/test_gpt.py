"""GPT: causality, padding, the shifted LM loss, cached decoding and generation, Hugging Face GPT-2
equivalence, parameter count, training, checkpoints, input and config errors, dropout."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
import torch.nn.functional as F

from bertcourse.base import CheckpointError
from bertcourse.gpt import GPT, GPTConfig
from bertcourse.objectives import IGNORE_INDEX

V = 37


def tiny_config(**overrides) -> GPTConfig:
    fields = dict(vocab_size=V, d_model=24, n_layers=2, n_heads=3, d_ff=40, max_len=20, dropout=0.0)
    fields.update(attention_dropout=0.0)
    return GPTConfig(**{**fields, **overrides})


def tiny_model(seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    return GPT(tiny_config(**overrides)).eval()


def random_ids(B: int, T: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


def test_position_i_sees_only_positions_up_to_i():
    model = tiny_model()
    ids = random_ids(2, 9)
    base = model(ids).logits
    for j in range(9):
        changed = ids.clone()
        changed[:, j] = (changed[:, j] + 1) % V
        moved = (model(changed).logits - base).abs().amax(dim=(0, 2)) > 1e-6  # (T,)
        assert moved.tolist() == [i >= j for i in range(9)], f"changing token {j} moved positions {moved.tolist()}"


def test_right_padding_leaves_real_tokens_unchanged():
    model = tiny_model()
    ids = random_ids(1, 6)
    alone = model(ids).logits
    padded = torch.cat([ids, random_ids(1, 4, seed=2)], dim=1)
    mask = torch.tensor([[1] * 6 + [0] * 4])
    torch.testing.assert_close(model(padded, attention_mask=mask).logits[:, :6], alone)


def test_sequence_padded_inside_a_batch_equals_it_run_alone():
    model = tiny_model()
    long_seq, short_seq = random_ids(1, 8, seed=3), random_ids(1, 5, seed=4)
    batch = torch.cat([long_seq, torch.cat([short_seq, torch.zeros(1, 3, dtype=torch.long)], dim=1)])
    mask = torch.tensor([[1] * 8, [1] * 5 + [0] * 3])
    logits = model(batch, attention_mask=mask).logits
    torch.testing.assert_close(logits[0], model(long_seq).logits[0])
    torch.testing.assert_close(logits[1, :5], model(short_seq).logits[0])


def test_loss_with_labels_equal_to_input_ids_is_the_shifted_cross_entropy():
    model = tiny_model()
    ids = random_ids(3, 7)
    out = model(ids, labels=ids)
    manual = F.cross_entropy(out.logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
    torch.testing.assert_close(out.loss, manual)
    labels = ids.clone()
    labels[0, 3:] = IGNORE_INDEX
    kept = labels[:, 1:] != IGNORE_INDEX
    manual = F.cross_entropy(out.logits[:, :-1][kept], labels[:, 1:][kept])
    torch.testing.assert_close(model(ids, labels=labels).loss, manual)


def test_step_by_step_decoding_with_cache_equals_full_forward():
    model = tiny_model()
    ids = random_ids(2, 10)
    full = model(ids).logits
    out = model(ids[:, :4], use_cache=True)
    logits = [out.logits]
    for t in range(4, 10):
        out = model(ids[:, t : t + 1], past_key_values=out.past_key_values, use_cache=True)
        logits.append(out.logits)
    torch.testing.assert_close(torch.cat(logits, dim=1), full, rtol=1e-5, atol=1e-5)
    assert len(out.past_key_values) == 2 and out.past_key_values[0][0].shape == (2, 3, 10, 8)


def test_cached_decoding_with_attention_mask_covering_past_and_new_tokens():
    model = tiny_model()
    ids = random_ids(2, 7)
    mask = torch.tensor([[1] * 7, [1] * 5 + [0] * 2])
    full = model(ids, attention_mask=mask).logits
    out = model(ids[:, :5], attention_mask=mask[:, :5], use_cache=True)
    step = model(ids[:, 5:], attention_mask=mask, past_key_values=out.past_key_values)
    torch.testing.assert_close(step.logits, full[:, 5:], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="T_past"):
        model(ids[:, 5:], attention_mask=mask[:, 5:], past_key_values=out.past_key_values)


@pytest.mark.parametrize(
    "kwargs",
    [dict(), dict(do_sample=True), dict(do_sample=True, temperature=0.7, top_k=5)],
    ids=["greedy", "sample", "sample-top-k"],
)
def test_cached_generation_equals_uncached_generation(kwargs):
    model = tiny_model()
    prompt = random_ids(3, 4)
    cached = model.generate(prompt, 12, use_cache=True, generator=torch.Generator().manual_seed(5), **kwargs)
    uncached = model.generate(prompt, 12, use_cache=False, generator=torch.Generator().manual_seed(5), **kwargs)
    assert cached.shape == (3, 16)
    assert torch.equal(cached[:, :4], prompt)
    assert torch.equal(cached, uncached)


def test_greedy_generation_takes_the_argmax_and_top_k_1_sampling_is_greedy():
    model = tiny_model()
    prompt = random_ids(2, 3)
    greedy = model.generate(prompt, 5)
    for t in range(3, 8):
        assert torch.equal(greedy[:, t], model(greedy[:, :t]).logits[:, -1].argmax(-1))
    sampled = model.generate(prompt, 5, do_sample=True, top_k=1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sampled, greedy)


def test_sampling_follows_the_temperature_scaled_distribution():
    model = tiny_model()
    prompt = random_ids(1, 3).expand(4000, 3)
    probs = torch.softmax(model(prompt[:1]).logits[0, -1] / 2.0, dim=-1)
    draws = model.generate(prompt, 1, do_sample=True, temperature=2.0, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(draws[:, -1], minlength=V).float() / 4000
    assert (freq - probs).abs().max() < 4 * math.sqrt(0.25 / 4000)  # 4 sigma of the worst-case binomial


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(max_new_tokens=-1), "max_new_tokens"),
        (dict(max_new_tokens=3, temperature=0.0), "temperature"),
        (dict(max_new_tokens=3, top_k=0), "top_k"),
        (dict(max_new_tokens=17), "max_len=20"),
    ],
)
def test_generate_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny_model().generate(random_ids(1, 4), **kwargs)


def hf_gpt2_from(model: GPT):
    """A Hugging Face GPT2LMHeadModel holding our weights (Conv1D stores (in, out): transpose)."""
    transformers = pytest.importorskip("transformers")
    c = model.config
    hf_config = transformers.GPT2Config(
        vocab_size=c.vocab_size,
        n_positions=c.max_len,
        n_embd=c.d_model,
        n_layer=c.n_layers,
        n_head=c.n_heads,
        n_inner=c.d_ff,
        activation_function="gelu_new",
        layer_norm_epsilon=c.layer_norm_eps,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        attn_implementation="eager",
    )
    hf = transformers.GPT2LMHeadModel(hf_config).eval()
    ours = model.state_dict()
    state = {
        "transformer.wte.weight": ours["embeddings.word_embeddings.weight"],
        "transformer.wpe.weight": ours["embeddings.position_embeddings.weight"],
        "transformer.ln_f.weight": ours["final_norm.weight"],
        "transformer.ln_f.bias": ours["final_norm.bias"],
        "lm_head.weight": ours["lm_head.weight"],
    }
    names = {"ln_1": "attn_norm", "ln_2": "ff_norm", "attn.c_attn": "attn.in_proj", "attn.c_proj": "attn.out_proj"}
    names.update({"mlp.c_fc": "ff.fc1", "mlp.c_proj": "ff.fc2"})
    for i in range(c.n_layers):
        for hf_name, our_name in names.items():
            weight = ours[f"blocks.{i}.{our_name}.weight"]
            state[f"transformer.h.{i}.{hf_name}.weight"] = weight if hf_name.startswith("ln") else weight.T
            state[f"transformer.h.{i}.{hf_name}.bias"] = ours[f"blocks.{i}.{our_name}.bias"]
    missing, unexpected = hf.load_state_dict(state, strict=False)
    assert not unexpected and all(".attn.bias" in k or "masked_bias" in k for k in missing), (missing, unexpected)
    return hf


def test_matches_hugging_face_gpt2_on_the_same_weights():
    model = tiny_model()
    with torch.no_grad():  # non-trivial LayerNorms, so a swapped ln_1 / ln_2 would show
        for name, p in model.named_parameters():
            if "norm" in name:
                p.normal_(1.0 if name.endswith("weight") else 0.0, 0.3)
    hf = hf_gpt2_from(model)
    ids = random_ids(2, 9)
    mask = torch.tensor([[1] * 9, [1] * 6 + [0] * 3])
    ours = model(ids, labels=ids)
    theirs = hf(ids, labels=ids)
    torch.testing.assert_close(ours.logits, theirs.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.loss, theirs.loss, rtol=1e-5, atol=1e-6)
    masked_ours = model(ids, attention_mask=mask).logits
    masked_theirs = hf(ids, attention_mask=mask).logits
    torch.testing.assert_close(masked_ours[1, :6], masked_theirs[1, :6], rtol=1e-5, atol=1e-5)


def test_num_parameters_matches_closed_form():
    c = tiny_config()
    H, L, F_, V_, P = c.d_model, c.n_layers, c.d_ff, c.vocab_size, c.max_len
    per_block = (3 * H * H + 3 * H) + (H * H + H) + (H * F_ + F_) + (F_ * H + H) + 2 * (2 * H)
    expected = V_ * H + P * H + L * per_block + 2 * H  # LM head tied to the token embedding: counted once
    assert GPT(c).num_parameters() == expected
    c_nobias = tiny_config(bias=False)
    per_block = 3 * H * H + H * H + H * F_ + F_ * H + 2 * H
    assert GPT(c_nobias).num_parameters() == V_ * H + P * H + L * per_block + H


def test_lm_head_is_tied_and_residual_projections_are_scaled():
    torch.manual_seed(0)
    model = GPT(tiny_config(d_model=96, d_ff=384, n_heads=4, n_layers=8))
    assert model.lm_head.weight is model.embeddings.word_embeddings.weight
    fc1 = torch.cat([b.ff.fc1.weight.flatten() for b in model.blocks])
    fc2 = torch.cat([b.ff.fc2.weight.flatten() for b in model.blocks])
    out_proj = torch.cat([b.attn.out_proj.weight.flatten() for b in model.blocks])
    assert abs(fc1.std().item() - 0.02) < 0.001
    for w in (fc2, out_proj):
        assert abs(w.std().item() - 0.02 / math.sqrt(2 * 8)) < 0.0005


def test_encode_gives_the_states_the_lm_head_reads():
    model = tiny_model()
    ids = random_ids(2, 6)
    states = model.encode(ids)
    assert states.shape == (2, 6, 24)
    torch.testing.assert_close(states @ model.embeddings.word_embeddings.weight.T, model(ids).logits)
    out = model(ids, output_hidden_states=True, output_attentions=True)
    assert len(out.hidden_states) == 3
    torch.testing.assert_close(out.hidden_states[-1], states)  # the weights force the math path: not bitwise
    assert len(out.attentions) == 2 and out.attentions[0].shape == (2, 3, 6, 6)


def test_overfits_one_batch():
    torch.manual_seed(0)
    model = GPT(tiny_config(d_model=32, n_heads=4, d_ff=64))
    ids = random_ids(4, 12)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    first = model(ids, labels=ids).loss.item()
    for _ in range(300):
        loss = model(ids, labels=ids).loss
        if loss.item() < 0.1 * first:
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1 * first, (first, loss.item())


def test_save_and_load_round_trip_is_bit_exact(tmp_path):
    model = tiny_model(seed=3)
    model.save_pretrained(tmp_path)
    loaded = GPT.from_pretrained(tmp_path).eval()
    assert loaded.config == model.config
    assert loaded.state_dict().keys() == model.state_dict().keys()
    for key, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key
    assert loaded.lm_head.weight is loaded.embeddings.word_embeddings.weight
    ids = random_ids(2, 8)
    assert torch.equal(loaded(ids).logits, model(ids).logits)


def test_checkpoint_with_a_mismatched_config_raises_listing_keys(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["d_ff"] = 48
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"blocks\.0\.ff\.fc1\.weight"):
        GPT.from_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match=r"unexpected keys.*blocks\.2\."):
        tiny_model(n_layers=2).load_state_dict_checked(tiny_model(n_layers=3).state_dict())


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (dict(input_ids=torch.tensor([[1, V]])), "vocab_size"),
        (dict(input_ids=torch.tensor([[1, -1]])), "vocab_size"),
        (dict(input_ids=torch.zeros(1, 21, dtype=torch.long)), "max_len"),
        (dict(input_ids=torch.zeros(2, 4, dtype=torch.long), attention_mask=torch.ones(2, 5)), "attention_mask"),
        (dict(input_ids=torch.zeros(4, dtype=torch.long)), "input_ids"),
        (dict(input_ids=torch.zeros(1, 4)), "input_ids"),
        (dict(input_ids=torch.zeros(2, 4, dtype=torch.long), labels=torch.zeros(2, 3, dtype=torch.long)), "labels"),
        (dict(input_ids=torch.zeros(1, 4, dtype=torch.long), labels=torch.full((1, 4), V)), "labels"),
    ],
)
def test_bad_input_raises_value_error(args, match):
    with pytest.raises(ValueError, match=match):
        tiny_model()(**args)


@pytest.mark.parametrize(
    ("field", "value"),
    [("vocab_size", 0), ("d_model", 25), ("n_heads", 0), ("dropout", 1.5), ("activation", "relu"), ("bias", 1)],
)
def test_bad_config_raises_value_error_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(tiny_config(), **{field: value})


def test_eval_is_deterministic_and_dropout_acts_only_in_training():
    torch.manual_seed(0)
    model = GPT(tiny_config(dropout=0.2, attention_dropout=0.2))
    ids = random_ids(2, 8)
    model.eval()
    assert torch.equal(model(ids).logits, model(ids).logits)
    model.train()
    assert not torch.equal(model(ids).logits, model(ids).logits)


@pytest.mark.gpu
def test_runs_on_cuda_like_on_cpu_and_cached_generation_still_matches():
    model = tiny_model()
    ids = random_ids(3, 10)
    mask = torch.tensor([[1] * 10, [1] * 7 + [0] * 3, [1] * 4 + [0] * 6])
    expected = model(ids, attention_mask=mask, labels=ids)
    cuda = tiny_model().cuda()
    out = cuda(ids.cuda(), attention_mask=mask.cuda(), labels=ids.cuda())
    torch.testing.assert_close(out.logits.cpu(), expected.logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out.loss.cpu(), expected.loss, rtol=1e-4, atol=1e-5)
    prompt = ids[:, :3].cuda()
    for kwargs in (dict(), dict(do_sample=True, top_k=8)):
        cached = cuda.generate(prompt, 12, generator=torch.Generator("cuda").manual_seed(0), **kwargs)
        uncached = cuda.generate(
            prompt, 12, use_cache=False, generator=torch.Generator("cuda").manual_seed(0), **kwargs
        )
        assert cached.device.type == "cuda" and torch.equal(cached, uncached)


@pytest.mark.gpu
def test_a_bfloat16_cache_on_cuda_stays_bfloat16_and_close_to_recomputing():
    """The CPU test of ``tests/test_generate.py`` on the GPU: the 16-bit cache keeps its dtype and device at every
    step and the logits stay within 5e-4 of one float32 pass (this body on the CPU: 1.1e-4)."""
    cuda = tiny_model().cuda()
    ids = random_ids(2, 16).cuda()
    with torch.no_grad():
        past = cuda(ids[:, :4], use_cache=True).past_key_values
        past = tuple((k.bfloat16(), v.bfloat16()) for k, v in past)
        for t in range(4, 16):
            out = cuda(ids[:, t : t + 1], past_key_values=past, use_cache=True)
            past = out.past_key_values
            assert past[0][0].dtype == torch.bfloat16 and past[0][0].is_cuda
            torch.testing.assert_close(out.logits[:, -1], cuda(ids[:, : t + 1]).logits[:, -1], atol=5e-4, rtol=0)
    assert cuda.generate(ids[:, :4], 8, cache_dtype=torch.bfloat16).shape == (2, 12)
