"""The shared Transformer pieces: GELU variants, the feed-forward network, embeddings, and the pre-LN /
post-LN block against a hand-written float64 reference on the same weights."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from bertcourse.embeddings import Embeddings
from bertcourse.feedforward import FeedForward
from bertcourse.transformer import TransformerBlock, check_transformer_config, init_weights_

D_MODEL, N_HEADS, D_FF = 12, 3, 20


def make_block(norm_first: bool, activation: str = "gelu", seed: int = 0, **kwargs) -> TransformerBlock:
    """A block in float64 whose every parameter (LayerNorm scales and shifts included) is random."""
    torch.manual_seed(seed)
    block = TransformerBlock(D_MODEL, N_HEADS, D_FF, activation=activation, norm_first=norm_first, **kwargs)
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0.0, 0.4)
    return block.double().eval()


def reference_self_attention(block: TransformerBlock, x, causal: bool, attention_mask=None):
    """Multi-head self-attention written out head by head, from the block's own weights."""
    B, T, H = x.shape
    h, d = block.attn.n_heads, H // block.attn.n_heads
    W_q, W_k, W_v = block.attn.in_proj.weight.chunk(3, dim=0)
    b_q, b_k, b_v = block.attn.in_proj.bias.chunk(3)
    q, k, v = x @ W_q.T + b_q, x @ W_k.T + b_k, x @ W_v.T + b_v  # each (B, T, H)
    allowed = torch.ones(B, T, T, dtype=torch.bool)
    if causal:
        allowed &= torch.ones(T, T, dtype=torch.bool).tril()
    if attention_mask is not None:
        allowed &= attention_mask.bool()[:, None, :]  # keys only
    heads = []
    for i in range(h):
        cols = slice(i * d, (i + 1) * d)
        scores = q[..., cols] @ k[..., cols].transpose(1, 2) / math.sqrt(d)  # (B, T, T)
        weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
        heads.append(weights @ v[..., cols])  # (B, T, d)
    return torch.cat(heads, dim=-1) @ block.attn.out_proj.weight.T + block.attn.out_proj.bias


def reference_block(block: TransformerBlock, x, norm_first: bool, causal: bool, approximate: str, attention_mask=None):
    """The two residual equations of a pre-LN or post-LN block, with functional LayerNorm and GELU."""
    eps = block.attn_norm.eps

    def ln_1(t):
        return F.layer_norm(t, (t.shape[-1],), block.attn_norm.weight, block.attn_norm.bias, eps)

    def ln_2(t):
        return F.layer_norm(t, (t.shape[-1],), block.ff_norm.weight, block.ff_norm.bias, eps)

    def ffn(t):
        inner = F.gelu(t @ block.ff.fc1.weight.T + block.ff.fc1.bias, approximate=approximate)
        return inner @ block.ff.fc2.weight.T + block.ff.fc2.bias

    def attn(t):
        return reference_self_attention(block, t, causal, attention_mask)

    if norm_first:
        x = x + attn(ln_1(x))
        return x + ffn(ln_2(x))
    x = ln_1(x + attn(x))
    return ln_2(x + ffn(x))


@pytest.mark.parametrize("norm_first", [True, False], ids=["pre-LN", "post-LN"])
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidirectional"])
@pytest.mark.parametrize("padded", [False, True], ids=["no-pad", "pad"])
def test_block_matches_hand_written_reference(norm_first, causal, padded):
    activation, approximate = ("gelu_tanh", "tanh") if norm_first else ("gelu", "none")
    block = make_block(norm_first, activation, layer_norm_eps=1e-5 if norm_first else 1e-12)
    x = torch.randn(3, 7, D_MODEL, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    mask = None
    if padded:
        mask = torch.ones(3, 7, dtype=torch.long)
        mask[0, 5:] = 0
        mask[2, 3:] = 0
    out = block(x, attention_mask=mask, is_causal=causal)
    expected = reference_block(block, x, norm_first, causal, approximate, mask)
    torch.testing.assert_close(out.hidden, expected, rtol=1e-10, atol=1e-10)
    assert out.past_key_value is None and out.weights is None


def test_pre_and_post_ln_are_different_functions_of_the_same_weights():
    pre, post = make_block(True), make_block(False)
    post.load_state_dict(pre.state_dict())
    x = torch.randn(2, 5, D_MODEL, dtype=torch.float64)
    assert (pre(x).hidden - post(x).hidden).abs().max() > 1e-2


def test_post_ln_output_is_normalised_and_pre_ln_output_is_not():
    pre, post = make_block(True), make_block(False)
    with torch.no_grad():
        for block in (pre, post):
            block.ff_norm.weight.fill_(1.0)
            block.ff_norm.bias.zero_()
    x = 5 * torch.randn(2, 5, D_MODEL, dtype=torch.float64)
    y_post, y_pre = post(x).hidden, pre(x).hidden
    torch.testing.assert_close(y_post.mean(-1), torch.zeros(2, 5, dtype=torch.float64), atol=1e-8, rtol=0)
    torch.testing.assert_close(y_post.var(-1, unbiased=False), torch.ones(2, 5, dtype=torch.float64), atol=1e-4, rtol=0)
    assert y_pre.var(-1, unbiased=False).mean() > 2.0  # the residual stream keeps the input's scale


@pytest.mark.parametrize(("activation", "approximate"), [("gelu", "none"), ("gelu_tanh", "tanh")])
def test_feedforward_gelu_variant_matches_torch(activation, approximate):
    torch.manual_seed(0)
    ff = FeedForward(D_MODEL, D_FF, activation=activation).eval()
    x = 3 * torch.randn(4, 6, D_MODEL)
    inner = ff.fc1(x)
    torch.testing.assert_close(ff.activation(inner), F.gelu(inner, approximate=approximate), rtol=0, atol=0)
    torch.testing.assert_close(ff(x), ff.fc2(F.gelu(inner, approximate=approximate)))


def test_exact_and_tanh_gelu_are_distinguishable():
    x = torch.linspace(-4, 4, 801, dtype=torch.float64)
    gap = FeedForward(2, 2, activation="gelu").activation(x) - FeedForward(2, 2, activation="gelu_tanh").activation(x)
    assert 1e-4 < gap.abs().max() < 1e-3


def test_feedforward_rejects_unknown_activation():
    with pytest.raises(ValueError, match="activation"):
        FeedForward(D_MODEL, D_FF, activation="relu")


@pytest.mark.parametrize("name", ["dropout", "attention_dropout"])
def test_block_rejects_bad_dropout(name):
    with pytest.raises(ValueError, match=name):
        TransformerBlock(D_MODEL, N_HEADS, D_FF, **{name: 1.0})


def test_block_cached_steps_equal_full_causal_pass():
    block = make_block(norm_first=True, activation="gelu_tanh")
    x = torch.randn(2, 6, D_MODEL, dtype=torch.float64)
    full = block(x, is_causal=True).hidden
    past, steps = None, []
    for t in range(6):
        out = block(x[:, t : t + 1], is_causal=True, past_key_value=past, use_cache=True)
        past = out.past_key_value
        steps.append(out.hidden)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-10, atol=1e-10)
    assert past[0].shape == (2, N_HEADS, 6, D_MODEL // N_HEADS)


def test_block_returns_causal_attention_weights():
    block = make_block(norm_first=True)
    out = block(torch.randn(2, 5, D_MODEL, dtype=torch.float64), is_causal=True, return_weights=True)
    assert out.weights.shape == (2, N_HEADS, 5, 5)
    torch.testing.assert_close(out.weights.sum(-1), torch.ones(2, N_HEADS, 5, dtype=torch.float64))
    assert (out.weights.triu(diagonal=1) == 0).all()


def test_block_dropout_only_in_train_mode():
    torch.manual_seed(0)
    block = TransformerBlock(D_MODEL, N_HEADS, D_FF, dropout=0.3, attention_dropout=0.3)
    x = torch.randn(2, 5, D_MODEL)
    block.train()
    assert not torch.equal(block(x).hidden, block(x).hidden)
    block.eval()
    assert torch.equal(block(x).hidden, block(x).hidden)


def test_embeddings_sum_token_segment_and_position_then_layer_norm():
    torch.manual_seed(0)
    emb = Embeddings(vocab_size=11, d_model=8, max_len=9, type_vocab_size=2, layer_norm_eps=1e-12).eval()
    ids = torch.tensor([[1, 5, 7, 2], [3, 3, 0, 10]])
    segments = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]])
    raw = (
        emb.word_embeddings.weight[ids]
        + emb.token_type_embeddings.weight[segments]
        + emb.position_embeddings.weight[torch.arange(2, 6)]
    )
    expected = F.layer_norm(raw, (8,), emb.layer_norm.weight, emb.layer_norm.bias, 1e-12)
    torch.testing.assert_close(emb(ids, segments, position_offset=2), expected)
    torch.testing.assert_close(emb(ids), emb(ids, torch.zeros_like(ids)))  # default segment is A (0)


def test_embeddings_without_segments_or_layer_norm_are_a_plain_sum():
    emb = Embeddings(vocab_size=11, d_model=8, max_len=9)
    ids = torch.tensor([[4, 0, 9]])
    expected = emb.word_embeddings.weight[ids] + emb.position_embeddings.weight[:3]
    torch.testing.assert_close(emb(ids), expected)
    assert emb.token_type_embeddings is None and emb.layer_norm is None


def test_embeddings_reject_positions_past_max_len_and_missing_segment_table():
    emb = Embeddings(vocab_size=11, d_model=8, max_len=4)
    with pytest.raises(ValueError, match="max_len=4"):
        emb(torch.zeros(1, 3, dtype=torch.long), position_offset=2)
    with pytest.raises(ValueError, match="token_type_ids"):
        emb(torch.zeros(1, 3, dtype=torch.long), token_type_ids=torch.zeros(1, 3, dtype=torch.long))


def test_init_weights_follows_gpt2_and_bert():
    torch.manual_seed(0)
    emb = Embeddings(vocab_size=500, d_model=64, max_len=8, type_vocab_size=2, layer_norm_eps=1e-12, padding_idx=3)
    block = TransformerBlock(64, 4, 256)
    for module in (emb, block):
        with torch.no_grad():
            for p in module.parameters():
                p.fill_(7.0)
        init_weights_(module, std=0.02)
    assert torch.all(emb.word_embeddings.weight[3] == 0)
    assert abs(emb.word_embeddings.weight.std().item() - 0.02) < 0.001
    assert abs(block.ff.fc1.weight.std().item() - 0.02) < 0.001
    assert torch.all(block.ff.fc1.bias == 0) and torch.all(block.attn.in_proj.bias == 0)
    assert torch.all(block.attn_norm.weight == 1) and torch.all(emb.layer_norm.bias == 0)


GOOD = dict(
    vocab_size=10,
    d_model=8,
    n_layers=1,
    n_heads=2,
    d_ff=16,
    max_len=4,
    dropout=0.1,
    attention_dropout=0.0,
    layer_norm_eps=1e-5,
    activation="gelu",
    bias=True,
)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("vocab_size", 0),
        ("d_model", 2.5),
        ("n_layers", -1),
        ("n_heads", 3),
        ("d_ff", True),
        ("max_len", 0),
        ("dropout", 1.0),
        ("attention_dropout", -0.1),
        ("layer_norm_eps", 0.0),
        ("activation", "relu"),
        ("bias", 1),
    ],
)
def test_check_transformer_config_names_the_bad_field(field, value):
    check_transformer_config(SimpleNamespace(**GOOD))
    with pytest.raises(ValueError, match=field):
        check_transformer_config(SimpleNamespace(**{**GOOD, field: value}))
