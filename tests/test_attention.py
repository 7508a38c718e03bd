"""The shared attention core: every backend against an independent reference, masks, gradients, errors."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from bertcourse.attention import (
    MultiHeadAttention,
    causal_mask,
    padding_mask,
    padding_or_none,
    scaled_dot_product_attention,
)

BACKENDS = ("math", "torch", "auto")


def reference_attention(q, k, v, mask=None, scale=None):
    """softmax(QK^T * scale) V in float64 with explicit loops over rows; masked-out rows give zeros."""
    q64, k64, v64 = q.double(), k.double(), v.double()
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    L_q, L_k = q.shape[-2], k.shape[-2]
    q64, k64, v64 = (t.expand(*batch, *t.shape[-2:]) for t in (q64, k64, v64))
    allowed = torch.ones(*batch, L_q, L_k, dtype=torch.bool) if mask is None else mask.expand(*batch, L_q, L_k)
    out = torch.zeros(*batch, L_q, v.shape[-1], dtype=torch.float64)
    weights = torch.zeros(*batch, L_q, L_k, dtype=torch.float64)
    for idx in itertools.product(*(range(n) for n in batch)):
        for i in range(L_q):
            keys = allowed[idx][i].nonzero().flatten()
            if len(keys) == 0:
                continue
            s = torch.stack([q64[idx][i] @ k64[idx][j] * scale for j in keys])
            w = torch.exp(s - s.max())
            w = w / w.sum()
            weights[idx][i, keys] = w
            out[idx][i] = (w[:, None] * v64[idx][keys]).sum(0)
    return out, weights


def assert_matches(out, expected):
    """fp32 result against the float64 reference, at fp32 precision."""
    torch.testing.assert_close(out, expected.to(out.dtype), rtol=1e-5, atol=1e-6)


def random_case(g: torch.Generator, batch=(2, 3), L_q=5, L_k=7, d_k=6, d_v=4, dtype=torch.float32):
    q = torch.randn(*batch, L_q, d_k, generator=g, dtype=dtype)
    k = torch.randn(*batch, L_k, d_k, generator=g, dtype=dtype)
    v = torch.randn(*batch, L_k, d_v, generator=g, dtype=dtype)
    return q, k, v


SHAPES = [
    # batch dims, L_q, L_k, d_k, d_v
    ((2, 3), 5, 7, 6, 4),
    ((1,), 1, 9, 8, 8),
    ((3, 2), 8, 3, 5, 2),
    ((4,), 6, 6, 16, 1),
    ((2, 4), 7, 7, 3, 5),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_backends_match_reference_without_mask(backend, shape):
    batch, L_q, L_k, d_k, d_v = shape
    q, k, v = random_case(torch.Generator().manual_seed(0), batch, L_q, L_k, d_k, d_v)
    expected, _ = reference_attention(q, k, v)
    assert_matches(scaled_dot_product_attention(q, k, v, backend=backend), expected)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", range(6))
def test_backends_match_reference_with_boolean_mask(backend, seed):
    g = torch.Generator().manual_seed(seed)
    batch, L_q, L_k, d_k, d_v = SHAPES[seed % len(SHAPES)]
    q, k, v = random_case(g, batch, L_q, L_k, d_k, d_v)
    # A mask broadcast over the last batch dim (heads), with one fully masked query row.
    mask = torch.rand(batch[0], *([1] * (len(batch) - 1)), L_q, L_k, generator=g) > 0.4
    mask[0, ..., 0, :] = False
    expected, _ = reference_attention(q, k, v, mask)
    out = scaled_dot_product_attention(q, k, v, attn_mask=mask, backend=backend)
    assert not out.isnan().any()
    assert_matches(out, expected)
    assert (out[0, ..., 0, :] == 0).all(), "a query that may attend to nothing must return zeros"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("L_q", "L_k"), [(6, 6), (3, 8), (1, 5)])
def test_causal_matches_reference_and_aligns_bottom_right(backend, L_q, L_k):
    q, k, v = random_case(torch.Generator().manual_seed(1), (2, 2), L_q, L_k, 4, 3)
    mask = torch.ones(L_q, L_k, dtype=torch.bool)
    for i in range(L_q):
        mask[i, L_k - L_q + i + 1 :] = False  # query i sits at absolute position L_k - L_q + i
    expected, _ = reference_attention(q, k, v, mask)
    out = scaled_dot_product_attention(q, k, v, is_causal=True, backend=backend)
    assert_matches(out, expected)
    torch.testing.assert_close(causal_mask(L_q, L_k), mask, rtol=0, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_causal_combines_with_attn_mask(backend):
    g = torch.Generator().manual_seed(2)
    q, k, v = random_case(g, (2, 3), 6, 6, 4, 4)
    keys = torch.rand(2, 1, 1, 6, generator=g) > 0.3
    expected, _ = reference_attention(q, k, v, keys & causal_mask(6))
    out = scaled_dot_product_attention(q, k, v, attn_mask=keys, is_causal=True, backend=backend)
    assert_matches(out, expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_custom_scale(backend):
    q, k, v = random_case(torch.Generator().manual_seed(3))
    expected, _ = reference_attention(q, k, v, scale=0.37)
    assert_matches(scaled_dot_product_attention(q, k, v, scale=0.37, backend=backend), expected)


def test_fused_path_equals_pytorch_sdpa_exactly_when_called_directly():
    q, k, v = random_case(torch.Generator().manual_seed(4), (2, 4), 9, 9, 8, 8)
    mask = causal_mask(9)
    torch.testing.assert_close(
        scaled_dot_product_attention(q, k, v, attn_mask=mask, backend="torch"),
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
        rtol=0,
        atol=0,
    )


def test_weights_rows_sum_to_one_and_masked_weights_are_zero():
    g = torch.Generator().manual_seed(5)
    q, k, v = random_case(g, (2, 3), 6, 8, 5, 3)
    mask = torch.rand(2, 3, 6, 8, generator=g) > 0.5
    mask[1, 2, 3] = False
    out, weights = scaled_dot_product_attention(q, k, v, attn_mask=mask, return_weights=True)
    rows = mask.any(-1)
    torch.testing.assert_close(weights.sum(-1)[rows], torch.ones(int(rows.sum())))
    assert (weights[~rows] == 0).all()
    assert (weights[~mask] == 0).all()
    torch.testing.assert_close(out, weights @ v)


def test_auto_returns_weights_from_math_and_torch_refuses():
    q, k, v = random_case(torch.Generator().manual_seed(6))
    _, weights = scaled_dot_product_attention(q, k, v, backend="auto", return_weights=True)
    assert weights.shape == (2, 3, 5, 7)
    with pytest.raises(ValueError, match="cannot return weights"):
        scaled_dot_product_attention(q, k, v, backend="torch", return_weights=True)


def test_math_path_passes_gradcheck_in_float64():
    g = torch.Generator().manual_seed(7)
    q, k, v = (t.requires_grad_() for t in random_case(g, (2, 2), 3, 4, 3, 2, dtype=torch.float64))
    mask = torch.rand(2, 1, 3, 4, generator=g) > 0.3
    mask[0, 0, 1] = False  # a fully masked row must have finite (zero) gradients too
    assert torch.autograd.gradcheck(
        lambda q, k, v: scaled_dot_product_attention(q, k, v, attn_mask=mask, backend="math"), (q, k, v)
    )
    assert torch.autograd.gradcheck(
        lambda q, k, v: scaled_dot_product_attention(q, k, v, is_causal=True, backend="math"), (q, k, v)
    )


def test_torch_backend_gradients_match_math_backend():
    g = torch.Generator().manual_seed(8)
    mask = torch.rand(2, 1, 5, 7, generator=g) > 0.3
    mask[1, 0, 2] = False
    grads = {}
    for backend in ("math", "torch"):
        q, k, v = (t.requires_grad_() for t in random_case(torch.Generator().manual_seed(9)))
        scaled_dot_product_attention(q, k, v, attn_mask=mask, backend=backend).square().sum().backward()
        grads[backend] = (q.grad, k.grad, v.grad)
    for a, b in zip(grads["math"], grads["torch"], strict=True):
        assert not b.isnan().any()
        torch.testing.assert_close(a, b)


def test_dropout_is_applied_only_when_asked():
    q, k, v = random_case(torch.Generator().manual_seed(10))
    base = scaled_dot_product_attention(q, k, v, backend="math")
    torch.manual_seed(0)
    dropped = scaled_dot_product_attention(q, k, v, backend="math", dropout_p=0.5)
    assert not torch.allclose(base, dropped)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, backend="math", dropout_p=0.0), base)


def test_padding_mask_shape_and_values():
    am = torch.tensor([[1, 1, 0], [1, 0, 0]])
    pm = padding_mask(am)
    assert pm.shape == (2, 1, 1, 3) and pm.dtype == torch.bool
    assert pm.squeeze().tolist() == [[True, True, False], [True, False, False]]


# --- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"k": torch.randn(2, 7, 5)}, r"q and k must have the same head size d_k.*\(2, 5, 6\).*\(2, 7, 5\)"),
        ({"v": torch.randn(2, 6, 4)}, r"k and v must have the same length L_k.*\(2, 7, 6\).*\(2, 6, 4\)"),
        ({"attn_mask": torch.ones(2, 5, 6, dtype=torch.bool)}, r"attn_mask of shape \(2, 5, 6\) does not broadcast"),
        ({"attn_mask": torch.ones(2, 5, 7)}, r"attn_mask must be a boolean tensor"),
        ({"attn_mask": torch.ones(2, 5, 7, dtype=torch.int64)}, r"attn_mask must be a boolean tensor"),
        ({"q": torch.randn(3, 5, 6)}, r"batch dimensions .* do not broadcast"),
        ({"q": torch.randn(6)}, r"q must have shape \(\.\.\., L, d\)"),
        ({"q": torch.ones(2, 5, 6, dtype=torch.int64)}, r"q, k and v must share a dtype, got torch.int64"),
        (
            {n: torch.ones(2, 7, 6, dtype=torch.int64) for n in "qkv"},
            r"q, k and v must be floating-point tensors, got dtype torch.int64",
        ),
        ({"v": torch.randn(2, 7, 4, dtype=torch.float64)}, r"q, k and v must share a dtype"),
        ({"backend": "flash"}, r"backend must be"),
        ({"dropout_p": 1.5}, r"dropout_p must be in"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(kwargs, pattern):
    args = {"q": torch.randn(2, 5, 6), "k": torch.randn(2, 7, 6), "v": torch.randn(2, 7, 4), **kwargs}
    with pytest.raises(ValueError, match=pattern):
        scaled_dot_product_attention(**args)


def test_bad_mask_helpers_raise_value_error():
    with pytest.raises(ValueError, match="attention_mask must be a \\(B, T\\) tensor"):
        padding_mask(torch.ones(3))
    with pytest.raises(ValueError, match="L_k=2 must be >= L_q=3"):
        causal_mask(3, 2)
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)


# --- multi-head attention ------------------------------------------------------------------------------


def mha_reference(mha: MultiHeadAttention, x, context=None, mask=None):
    """Heads computed one at a time with the float64 reference, concatenated, then W^O."""
    context = x if context is None else context
    W_q, W_k, W_v = mha.in_proj.weight.double().split(mha.d_model)
    b_q, b_k, b_v = mha.in_proj.bias.double().split(mha.d_model)
    q, k, v = x.double() @ W_q.T + b_q, context.double() @ W_k.T + b_k, context.double() @ W_v.T + b_v
    heads = []
    for h in range(mha.n_heads):
        sl = slice(h * mha.d_head, (h + 1) * mha.d_head)
        out, _ = reference_attention(q[..., sl], k[..., sl], v[..., sl], mask)
        heads.append(out)
    return torch.cat(heads, -1) @ mha.out_proj.weight.double().T + mha.out_proj.bias.double()


def test_mha_self_attention_with_padding_matches_per_head_reference():
    torch.manual_seed(0)
    mha = MultiHeadAttention(12, 3).eval()
    x = torch.randn(2, 5, 12)
    am = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    out = mha(x, attention_mask=am).output
    expected = mha_reference(mha, x, mask=padding_mask(am)[:, 0])  # (B, 1, 1, T) -> (B, 1, T)
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)


def test_mha_cross_attention_shapes_and_reference():
    torch.manual_seed(1)
    mha = MultiHeadAttention(8, 2).eval()
    x, context = torch.randn(3, 4, 8), torch.randn(3, 9, 8)
    res = mha(x, context=context, return_weights=True)
    assert res.output.shape == (3, 4, 8)
    assert res.weights.shape == (3, 2, 4, 9)
    torch.testing.assert_close(res.output.double(), mha_reference(mha, x, context), rtol=1e-5, atol=1e-5)


def test_mha_causal_output_never_depends_on_future_tokens():
    torch.manual_seed(2)
    mha = MultiHeadAttention(8, 2).eval()
    x = torch.randn(1, 6, 8)
    base = mha(x, is_causal=True).output
    for j in range(6):
        x2 = x.clone()
        x2[0, j] += 1.0
        moved = (mha(x2, is_causal=True).output - base).abs().amax(-1)[0] > 1e-6
        assert moved.tolist() == [i >= j for i in range(6)]


@pytest.mark.parametrize("backend", ["math", "torch"])
def test_mha_decoding_with_cache_equals_full_causal_pass(backend):
    torch.manual_seed(3)
    mha = MultiHeadAttention(16, 4, backend=backend).eval()
    x = torch.randn(2, 7, 16)
    full = mha(x, is_causal=True).output
    cache, steps = None, []
    prefix = 3  # a prompt processed at once, then one token at a time
    res = mha(x[:, :prefix], is_causal=True, use_cache=True)
    steps.append(res.output)
    cache = res.past_key_value
    for t in range(prefix, 7):
        res = mha(x[:, t : t + 1], is_causal=True, past_key_value=cache, use_cache=True)
        steps.append(res.output)
        cache = res.past_key_value
    assert cache[0].shape == (2, 4, 7, 4)
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", ["math", "torch"])
def test_mha_with_a_bfloat16_cache_attends_in_bfloat16_and_returns_the_weights_dtype(backend):
    """A bfloat16 cache of a float32 module: the step's keys join it in bfloat16, the output and the weights come
    back in float32, and they equal attention in float64 over the bfloat16-rounded keys and values."""
    torch.manual_seed(5)
    mha = MultiHeadAttention(16, 4, backend=backend).eval()
    x = torch.randn(2, 6, 16)
    past = mha(x[:, :5], is_causal=True, use_cache=True).past_key_value
    past = (past[0].bfloat16(), past[1].bfloat16())
    step = mha(x[:, 5:], is_causal=True, past_key_value=past, use_cache=True, return_weights=backend == "math")
    k, v = step.past_key_value
    assert k.dtype == v.dtype == torch.bfloat16 and k.shape == (2, 4, 6, 4)
    assert step.output.dtype == torch.float32
    q = mha.in_proj(x[:, 5:])[..., :16].view(2, 1, 4, 4).transpose(1, 2).bfloat16()  # (B, h, 1, d)
    scores = q.double() @ k.double().transpose(-2, -1) / 2.0  # (B, h, 1, 6); sqrt(d_k) = 2
    weights = scores.softmax(-1)
    reference = mha.out_proj((weights @ v.double()).transpose(1, 2).reshape(2, 1, 16).float())
    torch.testing.assert_close(step.output, reference, atol=5e-3, rtol=0)  # seen: 9e-4; outputs up to 0.33
    if backend == "math":
        assert step.weights.dtype == torch.float32
        torch.testing.assert_close(step.weights, weights.float(), atol=5e-3, rtol=0)  # seen: 1e-3


def test_mha_weights_are_dropped_only_in_training_mode():
    torch.manual_seed(4)
    mha = MultiHeadAttention(8, 2, dropout=0.5)
    x = torch.randn(2, 5, 8)
    mha.eval()
    torch.testing.assert_close(mha(x).output, mha(x).output, rtol=0, atol=0)
    mha.train()
    assert not torch.allclose(mha(x).output, mha(x).output)


def test_mha_bad_input():
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match=r"x must be \(B, L, d_model=8\)"):
        mha(torch.randn(2, 5, 6))
    with pytest.raises(ValueError, match=r"context must be"):
        mha(torch.randn(2, 5, 8), context=torch.randn(3, 4, 8))
    with pytest.raises(ValueError, match=r"attention_mask must be \(B, L_k\)"):
        mha(torch.randn(2, 5, 8), attention_mask=torch.ones(2, 4))
    with pytest.raises(ValueError, match="is_causal applies to self-attention"):
        mha(torch.randn(2, 5, 8), context=torch.randn(2, 4, 8), is_causal=True)


# --- GPU -----------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 2e-5), (torch.bfloat16, 2e-2)])
def test_gpu_backends_agree(dtype, tol):
    """fp32: math and fused agree to 2e-5; bf16: to 2e-2 (bf16 keeps 8 bits of mantissa)."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (t.cuda() for t in random_case(g, (4, 8), 256, 256, 64, 64, dtype=dtype))
    for kwargs in ({}, {"is_causal": True}, {"attn_mask": causal_mask(256, device="cuda")}):
        ref = scaled_dot_product_attention(q.float(), k.float(), v.float(), backend="math", **kwargs)
        for backend in ("math", "torch"):
            out = scaled_dot_product_attention(q, k, v, backend=backend, **kwargs)
            torch.testing.assert_close(out.float(), ref, rtol=tol, atol=tol)


@pytest.mark.gpu
def test_gpu_fused_flash_kernel_runs():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q, k, v = (torch.randn(2, 8, 1024, 64, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):  # raises if the Flash kernel cannot take these inputs
        out = scaled_dot_product_attention(q, k, v, is_causal=True, backend="torch")
    ref = scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True, backend="math")
    torch.testing.assert_close(out.float(), ref, rtol=2e-2, atol=2e-2)


def test_padding_or_none_drops_only_a_mask_without_padding():
    assert padding_or_none(None) is None
    assert padding_or_none(torch.ones(2, 5, dtype=torch.long)) is None
    am = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert padding_or_none(am) is am


def test_need_weights_is_a_deprecated_name_of_return_weights() -> None:
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2).eval()
    x = torch.randn(2, 5, 8)
    new = mha(x, return_weights=True)
    with pytest.warns(DeprecationWarning, match="need_weights is deprecated, use return_weights"):
        old = mha(x, need_weights=True)
    torch.testing.assert_close(old.weights, new.weights)
    assert new.weights.shape == (2, 2, 5, 5) and mha(x).weights is None
