"""BERT: bidirectional visibility, padding and segments, Hugging Face BERT equivalence, every head's loss,
parameter counts, training, checkpoints, input and config errors, dropout."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

from bertcourse.base import CheckpointError
from bertcourse.bert import (
    BertConfig,
    BertForMaskedLM,
    BertForPreTraining,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
)
from bertcourse.objectives import IGNORE_INDEX, masked_lm_loss

V = 41
HEADS = (BertForMaskedLM, BertForPreTraining, BertForSequenceClassification, BertForTokenClassification)


def tiny_config(**overrides) -> BertConfig:
    fields = dict(vocab_size=V, d_model=24, n_layers=2, n_heads=3, d_ff=40, max_len=16, dropout=0.0)
    fields.update(attention_dropout=0.0, num_labels=3)
    return BertConfig(**{**fields, **overrides})


def tiny(cls=BertModel, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return cls(tiny_config(**overrides)).eval()


def random_ids(B: int, T: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(1, V, (B, T), generator=torch.Generator().manual_seed(seed))


def test_every_position_sees_every_position():
    model = tiny()
    ids = random_ids(2, 8)
    base = model.encode(ids)
    for j in range(8):
        changed = ids.clone()
        changed[:, j] = (changed[:, j] + 1) % V
        moved = (model.encode(changed) - base).abs().amax(dim=(0, 2)) > 1e-6  # (T,)
        assert moved.all(), f"changing token {j} moved only positions {moved.tolist()}"


def test_right_padding_leaves_real_tokens_unchanged():
    model = tiny()
    ids = random_ids(1, 6)
    alone = model(ids)
    padded = torch.cat([ids, random_ids(1, 4, seed=2)], dim=1)
    out = model(padded, attention_mask=torch.tensor([[1] * 6 + [0] * 4]))
    torch.testing.assert_close(out.last_hidden_state[:, :6], alone.last_hidden_state)
    torch.testing.assert_close(out.pooler_output, alone.pooler_output)


def test_sequence_padded_inside_a_batch_equals_it_run_alone():
    model = tiny(BertForTokenClassification)
    long_seq, short_seq = random_ids(1, 9, seed=3), random_ids(1, 5, seed=4)
    pad = torch.zeros(1, 4, dtype=torch.long)  # [PAD] = 0
    batch = torch.cat([long_seq, torch.cat([short_seq, pad], dim=1)])
    mask = torch.tensor([[1] * 9, [1] * 5 + [0] * 4])
    segments = torch.tensor([[0] * 4 + [1] * 5, [0] * 3 + [1] * 2 + [0] * 4])
    logits = model(batch, attention_mask=mask, token_type_ids=segments).logits
    torch.testing.assert_close(logits[0], model(long_seq, token_type_ids=segments[:1]).logits[0])
    torch.testing.assert_close(logits[1, :5], model(short_seq, token_type_ids=segments[1:, :5]).logits[0])


def test_segments_change_the_output_and_default_to_sentence_a():
    model = tiny()
    ids = random_ids(2, 6)
    zeros, ones = torch.zeros_like(ids), torch.ones_like(ids)
    assert torch.equal(model.encode(ids), model.encode(ids, token_type_ids=zeros))
    assert (model.encode(ids, token_type_ids=ones) - model.encode(ids)).abs().max() > 1e-3


def hf_bert_for_pretraining_from(model: BertForPreTraining):
    """A Hugging Face BertForPreTraining holding our weights (query, key and value are one fused matrix here)."""
    transformers = pytest.importorskip("transformers")
    c = model.config
    hf_config = transformers.BertConfig(
        vocab_size=c.vocab_size,
        hidden_size=c.d_model,
        num_hidden_layers=c.n_layers,
        num_attention_heads=c.n_heads,
        intermediate_size=c.d_ff,
        hidden_act="gelu",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        max_position_embeddings=c.max_len,
        type_vocab_size=c.type_vocab_size,
        layer_norm_eps=c.layer_norm_eps,
        pad_token_id=c.pad_token_id,
        attn_implementation="eager",
    )
    hf = transformers.BertForPreTraining(hf_config).eval()
    ours = model.state_dict()
    state = {
        "bert.embeddings.word_embeddings.weight": ours["bert.embeddings.word_embeddings.weight"],
        "bert.embeddings.position_embeddings.weight": ours["bert.embeddings.position_embeddings.weight"],
        "bert.embeddings.token_type_embeddings.weight": ours["bert.embeddings.token_type_embeddings.weight"],
        "cls.predictions.decoder.weight": ours["mlm_head.decoder.weight"],
        "cls.predictions.bias": ours["mlm_head.decoder.bias"],
        "cls.predictions.decoder.bias": ours["mlm_head.decoder.bias"],
    }
    modules = {
        "bert.embeddings.LayerNorm": "bert.embeddings.layer_norm",
        "bert.pooler.dense": "bert.pooler",
        "cls.predictions.transform.dense": "mlm_head.dense",
        "cls.predictions.transform.LayerNorm": "mlm_head.layer_norm",
        "cls.seq_relationship": "nsp_head",
    }
    for i in range(c.n_layers):
        hf_layer, our_block = f"bert.encoder.layer.{i}", f"bert.blocks.{i}"
        for kind in ("weight", "bias"):
            q, k, v = ours[f"{our_block}.attn.in_proj.{kind}"].chunk(3, dim=0)  # (3H, ...) -> 3 x (H, ...)
            for name, t in (("query", q), ("key", k), ("value", v)):
                state[f"{hf_layer}.attention.self.{name}.{kind}"] = t
        modules.update(
            {
                f"{hf_layer}.attention.output.dense": f"{our_block}.attn.out_proj",
                f"{hf_layer}.attention.output.LayerNorm": f"{our_block}.attn_norm",
                f"{hf_layer}.intermediate.dense": f"{our_block}.ff.fc1",
                f"{hf_layer}.output.dense": f"{our_block}.ff.fc2",
                f"{hf_layer}.output.LayerNorm": f"{our_block}.ff_norm",
            }
        )
    for hf_name, our_name in modules.items():
        for kind in ("weight", "bias"):
            state[f"{hf_name}.{kind}"] = ours[f"{our_name}.{kind}"]
    missing, unexpected = hf.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith("_ids") for k in missing), (missing, unexpected)
    return hf


def test_matches_hugging_face_bert_for_pretraining_on_the_same_weights():
    model = tiny(BertForPreTraining)
    with torch.no_grad():  # non-trivial LayerNorms and biases, so a swapped or missing one would show
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.normal_(1.0 if name.endswith("norm.weight") else 0.0, 0.3)
    hf = hf_bert_for_pretraining_from(model)
    ids = random_ids(2, 9)
    mask = torch.tensor([[1] * 9, [1] * 6 + [0] * 3])
    segments = torch.tensor([[0] * 5 + [1] * 4, [0] * 3 + [1] * 6])
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, 2] = ids[:, 2]
    labels[0, 6] = ids[0, 6]
    nsp = torch.tensor([0, 1])
    kwargs = dict(attention_mask=mask, token_type_ids=segments, labels=labels, next_sentence_label=nsp)
    ours, theirs = model(ids, **kwargs), hf(ids, **kwargs)
    torch.testing.assert_close(ours.prediction_logits, theirs.prediction_logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.seq_relationship_logits, theirs.seq_relationship_logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.loss, theirs.loss, rtol=1e-5, atol=1e-6)
    hf_states = hf.bert(ids, attention_mask=mask, token_type_ids=segments)
    our_states = model.bert(ids, attention_mask=mask, token_type_ids=segments)
    torch.testing.assert_close(our_states.last_hidden_state, hf_states.last_hidden_state, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(our_states.pooler_output, hf_states.pooler_output, rtol=1e-5, atol=1e-5)


def test_head_losses_are_the_documented_cross_entropies():
    ids = random_ids(3, 7)
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, 1], labels[1, 4] = ids[:, 1], ids[1, 4]
    kept = labels != IGNORE_INDEX
    mlm = tiny(BertForMaskedLM)(ids, labels=labels)
    torch.testing.assert_close(mlm.loss, F.cross_entropy(mlm.logits[kept], labels[kept]))

    pre = tiny(BertForPreTraining)
    nsp = torch.tensor([0, 1, 1])
    out = pre(ids, labels=labels, next_sentence_label=nsp)
    expected = F.cross_entropy(out.prediction_logits[kept], labels[kept]) + F.cross_entropy(
        out.seq_relationship_logits, nsp
    )
    torch.testing.assert_close(out.loss, expected)
    torch.testing.assert_close(
        pre(ids, next_sentence_label=nsp).loss, F.cross_entropy(out.seq_relationship_logits, nsp)
    )

    seq_labels = torch.tensor([2, IGNORE_INDEX, 0])
    seq = tiny(BertForSequenceClassification)(ids, labels=seq_labels)
    assert seq.logits.shape == (3, 3)
    torch.testing.assert_close(seq.loss, F.cross_entropy(seq.logits[[0, 2]], seq_labels[[0, 2]]))

    tags = torch.randint(0, 3, ids.shape)
    tags[0, :2] = IGNORE_INDEX
    tok = tiny(BertForTokenClassification)(ids, labels=tags)
    assert tok.logits.shape == (3, 7, 3)
    kept = tags != IGNORE_INDEX
    torch.testing.assert_close(tok.loss, F.cross_entropy(tok.logits[kept], tags[kept]))


@pytest.mark.parametrize("cls", HEADS)
def test_heads_expose_the_encoder_and_its_encode(cls):
    model = tiny(cls)
    ids = random_ids(2, 5)
    assert isinstance(model.bert, BertModel)
    assert torch.equal(model.encode(ids), model.bert.encode(ids))
    assert model.encode(ids).shape == (2, 5, 24)
    out = model(ids, output_hidden_states=True, output_attentions=True)
    assert len(out.hidden_states) == 3 and len(out.attentions) == 2
    assert out.attentions[0].shape == (2, 3, 5, 5)


def test_mlm_decoder_is_tied_to_the_word_embeddings_and_pad_starts_at_zero():
    model = tiny(BertForMaskedLM)
    assert model.mlm_head.decoder.weight is model.bert.embeddings.word_embeddings.weight
    assert torch.all(model.bert.embeddings.word_embeddings.weight[model.config.pad_token_id] == 0)
    assert model.bert.pooler is None and model(random_ids(1, 3)).logits.shape == (1, 3, V)


def block_parameters(H: int, F_: int) -> int:
    """Fused QKV + output projection + two FFN maps + two LayerNorms, all with biases."""
    return (3 * H * H + 3 * H) + (H * H + H) + (H * F_ + F_) + (F_ * H + H) + 2 * (2 * H)


def test_num_parameters_matches_closed_form():
    c = tiny_config()
    H, F_, P, S = c.d_model, c.d_ff, c.max_len, c.type_vocab_size
    embeddings = V * H + P * H + S * H + 2 * H
    encoder = c.n_layers * block_parameters(H, F_)
    assert tiny(BertModel).num_parameters() == embeddings + encoder + (H * H + H)
    mlm_head = (H * H + H) + 2 * H + V  # transform, LayerNorm, output bias; decoder weight tied (counted once)
    assert tiny(BertForMaskedLM).num_parameters() == embeddings + encoder + mlm_head
    pooler, nsp = H * H + H, 2 * H + 2
    assert tiny(BertForPreTraining).num_parameters() == embeddings + encoder + pooler + mlm_head + nsp
    classifier = H * c.num_labels + c.num_labels
    assert tiny(BertForSequenceClassification).num_parameters() == embeddings + encoder + pooler + classifier
    assert tiny(BertForTokenClassification).num_parameters() == embeddings + encoder + classifier


def steps_to_overfit(model, batch: dict, max_steps: int, lr: float = 3e-3) -> int | None:
    """AdamW steps until the loss on ``batch`` falls below 10% of its first value; None if it never does."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    first = None
    for step in range(max_steps):
        loss = model(**batch).loss
        first = loss.item() if first is None else first
        if loss.item() < 0.1 * first:
            return step
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return None


@pytest.mark.parametrize("cls", HEADS)
def test_each_head_overfits_one_batch(cls):
    model = tiny(cls, d_model=32, n_heads=4, d_ff=64).train()  # dropout is 0 in the tiny config
    ids = random_ids(4, 10)
    masked = torch.zeros_like(ids, dtype=torch.bool)
    masked[:, [2, 5, 7]] = True
    mlm_labels = torch.where(masked, ids, IGNORE_INDEX)
    inputs = ids.masked_fill(masked, 1)  # 1 plays [MASK]
    batch = {
        BertForMaskedLM: dict(input_ids=inputs, labels=mlm_labels),
        BertForPreTraining: dict(input_ids=inputs, labels=mlm_labels, next_sentence_label=torch.tensor([0, 1, 1, 0])),
        BertForSequenceClassification: dict(input_ids=ids, labels=torch.tensor([0, 2, 1, 2])),
        BertForTokenClassification: dict(input_ids=ids, labels=torch.randint(0, 3, ids.shape)),
    }[cls]
    assert steps_to_overfit(model, batch, max_steps=300) is not None


@pytest.mark.parametrize("cls", [BertModel, BertForMaskedLM, BertForSequenceClassification])
def test_save_and_load_round_trip_is_bit_exact(cls, tmp_path):
    model = tiny(cls, seed=3)
    model.save_pretrained(tmp_path)
    loaded = cls.from_pretrained(tmp_path).eval()
    assert loaded.config == model.config
    assert loaded.state_dict().keys() == model.state_dict().keys()
    for key, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key
    ids = random_ids(2, 8)
    mask = torch.tensor([[1] * 8, [1] * 5 + [0] * 3])
    ours, theirs = model(ids, attention_mask=mask), loaded(ids, attention_mask=mask)
    first = "last_hidden_state" if cls is BertModel else "logits"
    assert torch.equal(getattr(ours, first), getattr(theirs, first))


def test_checkpoint_with_a_mismatched_config_raises_listing_keys(tmp_path):
    tiny(BertForSequenceClassification).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["num_labels"] = 5
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"classifier\.weight.*\(3, 24\).*\(5, 24\)"):
        BertForSequenceClassification.from_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match=r"missing keys.*pooler\.bias.*pooler\.weight"):
        tiny(BertModel).load_state_dict_checked(tiny(BertForMaskedLM).bert.state_dict())


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (dict(input_ids=torch.tensor([[1, V]])), "vocab_size"),
        (dict(input_ids=torch.tensor([[-3, 1]])), "vocab_size"),
        (dict(input_ids=torch.ones(1, 17, dtype=torch.long)), "max_len"),
        (dict(input_ids=torch.ones(2, 4, dtype=torch.long), attention_mask=torch.ones(2, 3)), "attention_mask"),
        (dict(input_ids=torch.ones(2, 4, dtype=torch.long), token_type_ids=torch.full((2, 4), 2)), "token_type_ids"),
        (dict(input_ids=torch.ones(2, 4, dtype=torch.long), token_type_ids=torch.zeros(2, 5)), "token_type_ids"),
        (dict(input_ids=torch.ones(2, 4, dtype=torch.long), labels=torch.zeros(2, dtype=torch.long)), "labels"),
        (dict(input_ids=torch.ones(1, 4, dtype=torch.long), labels=torch.full((1, 4), V)), "labels"),
        (dict(input_ids=torch.ones(1, 4, dtype=torch.long), labels=torch.zeros(1, 4)), "labels"),
    ],
)
def test_bad_input_raises_value_error(args, match):
    with pytest.raises(ValueError, match=match):
        tiny(BertForMaskedLM)(**args)


def test_bad_classification_labels_raise_value_error():
    ids = torch.ones(2, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="labels"):
        tiny(BertForSequenceClassification)(ids, labels=torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="next_sentence_label"):
        tiny(BertForPreTraining)(ids, next_sentence_label=torch.tensor([0, 2]))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("vocab_size", -1),
        ("n_heads", 5),
        ("max_len", 0),
        ("attention_dropout", 1.0),
        ("layer_norm_eps", -1e-12),
        ("activation", "swish"),
        ("type_vocab_size", 0),
        ("pad_token_id", V),
        ("num_labels", 0),
    ],
)
def test_bad_config_raises_value_error_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(tiny_config(), **{field: value})


def test_eval_is_deterministic_and_dropout_acts_only_in_training():
    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_config(dropout=0.2, attention_dropout=0.2))
    ids = random_ids(2, 8)
    model.eval()
    assert torch.equal(model(ids).logits, model(ids).logits)
    model.train()
    assert not torch.equal(model(ids).logits, model(ids).logits)


@pytest.mark.gpu
def test_runs_on_cuda_like_on_cpu_and_checkpoints_move_between_devices(tmp_path):
    ids = random_ids(2, 9)
    kwargs = dict(
        attention_mask=torch.tensor([[1] * 9, [1] * 6 + [0] * 3]),
        token_type_ids=torch.tensor([[0] * 5 + [1] * 4, [0] * 3 + [1] * 6]),
        labels=torch.where(torch.rand(2, 9, generator=torch.Generator().manual_seed(0)) < 0.3, ids, IGNORE_INDEX),
        next_sentence_label=torch.tensor([1, 0]),
    )
    expected = tiny(BertForPreTraining)(ids, **kwargs)
    cuda = tiny(BertForPreTraining).cuda()
    out = cuda(ids.cuda(), **{k: v.cuda() for k, v in kwargs.items()})
    torch.testing.assert_close(out.prediction_logits.cpu(), expected.prediction_logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(
        out.seq_relationship_logits.cpu(), expected.seq_relationship_logits, rtol=1e-4, atol=1e-4
    )
    torch.testing.assert_close(out.loss.cpu(), expected.loss, rtol=1e-4, atol=1e-5)
    cuda.save_pretrained(tmp_path)
    loaded = BertForPreTraining.from_pretrained(tmp_path).eval()
    for key, tensor in cuda.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor.cpu()), key


@pytest.mark.parametrize("share", [0.3, 0.0])
def test_mlm_loss_on_masked_positions_only_equals_the_loss_over_all_positions(share: float) -> None:
    """The models score only the masked positions (a CPU saving); the loss and its gradients are those of
    masked_lm_loss over every position, and no masked position at all gives 0, not NaN."""
    model = tiny(BertForPreTraining, dropout=0.0, attention_dropout=0.0).double()
    ids = random_ids(3, 9)
    labels = torch.where(torch.rand(3, 9, generator=torch.Generator().manual_seed(2)) < share, ids, IGNORE_INDEX)
    out = model(ids, labels=labels)
    reference = masked_lm_loss(out.prediction_logits, labels)
    torch.testing.assert_close(out.loss, reference)
    params = [p for p in model.parameters() if p.requires_grad]
    got = torch.autograd.grad(out.loss, params, allow_unused=True)
    want = torch.autograd.grad(masked_lm_loss(model(ids).prediction_logits, labels), params, allow_unused=True)
    for a, b in zip(got, want, strict=True):
        if b is not None:
            torch.testing.assert_close(a, b)
    assert torch.isfinite(out.loss) and (share > 0 or out.loss.item() == 0.0)


def test_controlled_bert_is_gpts_network_without_the_causal_mask(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """norm_first=True, mlm_transform=False: the head-to-head's BERT is GPT's network (embeddings without
    LayerNorm, pre-LN blocks, final LayerNorm, tied decoder) with a bias and a segment embedding, attending
    both ways. With GPT's weights, one block's last position (which sees everything under either mask) equals
    GPT's (with two blocks it would not: the earlier positions it reads differ)."""
    from bertcourse.gpt import GPT, GPTConfig

    sizes = dict(vocab_size=30, d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=12, dropout=0.0,
                 attention_dropout=0.0, activation="gelu_tanh", layer_norm_eps=1e-5)  # fmt: skip
    torch.manual_seed(0)
    config = BertConfig(**sizes, norm_first=True, mlm_transform=False, pooler=False)
    bert, gpt = BertForPreTraining(config).eval(), GPT(GPTConfig(**sizes)).eval()
    assert bert.bert.embeddings.layer_norm is None and bert.bert.pooler is None
    assert all(b.norm_first for b in bert.bert.blocks) and type(bert.bert.blocks[0]) is type(gpt.blocks[0])
    for name in ("blocks.0.attn.out_proj.weight", "blocks.0.ff.fc2.weight"):  # GPT-2's residual scaling, both
        assert abs(dict(bert.bert.named_parameters())[name].std().item() - 0.02 / 2**0.5) < 0.003
    missing, unexpected = bert.bert.load_state_dict(gpt.state_dict(), strict=False)
    assert set(missing) == {"embeddings.token_type_embeddings.weight"} and unexpected == ["lm_head.weight"]
    torch.nn.init.zeros_(bert.bert.embeddings.token_type_embeddings.weight)
    ids = torch.randint(5, 30, (2, 7))
    with torch.no_grad():
        out = bert(ids)
        want = gpt(ids).logits
        torch.testing.assert_close(out.prediction_logits[:, -1], want[:, -1], rtol=1e-4, atol=1e-4)
        assert not torch.allclose(out.prediction_logits[:, 0], want[:, 0], atol=1e-3)  # GPT's first sees itself
        hidden = bert.bert(ids).last_hidden_state
        torch.testing.assert_close(out.seq_relationship_logits, bert.nsp_head(hidden[:, 0]))  # no pooler: h_[CLS]
    bert.save_pretrained(tmp_path)
    again = BertForPreTraining.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(again(ids).prediction_logits, out.prediction_logits)
    with pytest.raises(ValueError, match="norm_first"):
        BertConfig(vocab_size=30, norm_first="yes")  # type: ignore[arg-type]
