"""GPT.generate on a left-padded batch: each row gets the tokens it gets alone, with and without the cache,
greedy and sampled; positions count real tokens only; bad masks and temperatures are refused."""

from __future__ import annotations

import pytest
import torch

from bertcourse.attention import cache_to
from bertcourse.gpt import GPT, GPTConfig

V, PAD = 37, 0


def tiny_model(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    config = GPTConfig(vocab_size=V, d_model=24, n_layers=2, n_heads=3, d_ff=40, max_len=24, dropout=0.0)
    config.attention_dropout = 0.0
    return GPT(config).eval()


PROMPTS = [[5, 9, 2, 30, 11, 7], [12, 3], [8, 20, 4, 16]]  # lengths 6, 2, 4


def left_padded(prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    T = max(len(p) for p in prompts)
    ids = torch.tensor([[PAD] * (T - len(p)) + p for p in prompts])  # (B, T)
    mask = torch.tensor([[0] * (T - len(p)) + [1] * len(p) for p in prompts])  # (B, T)
    return ids, mask


@pytest.mark.parametrize("use_cache", [True, False])
def test_left_padded_greedy_batch_equals_each_prompt_alone(use_cache: bool) -> None:
    model = tiny_model()
    ids, mask = left_padded(PROMPTS)
    batch = model.generate(ids, 8, attention_mask=mask, use_cache=use_cache)
    assert batch.shape == (3, ids.shape[1] + 8)
    assert torch.equal(batch[:, : ids.shape[1]], ids)  # the padding stays at the start
    for row, prompt in enumerate(PROMPTS):
        alone = model.generate(torch.tensor([prompt]), 8, use_cache=use_cache)
        assert torch.equal(batch[row, ids.shape[1] - len(prompt) :], alone[0]), f"prompt {row}"


def test_left_padded_sampling_is_greedy_at_top_k_1_and_the_same_with_or_without_cache() -> None:
    # One generator serves the whole batch, so rows cannot be compared with one-prompt runs draw for draw:
    # top_k=1 sampling must equal greedy, and cached and recomputed sampling must agree under one seed.
    model = tiny_model()
    ids, mask = left_padded(PROMPTS)
    greedy = model.generate(ids, 6, attention_mask=mask)
    top1 = model.generate(
        ids, 6, attention_mask=mask, do_sample=True, top_k=1, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(top1, greedy)
    cached, recomputed = (
        model.generate(
            ids, 6, attention_mask=mask, do_sample=True, generator=torch.Generator().manual_seed(3), use_cache=c
        )
        for c in (True, False)
    )
    assert torch.equal(cached, recomputed)


def test_left_padded_logits_equal_each_prompt_alone_at_every_step() -> None:
    model = tiny_model()
    ids, mask = left_padded(PROMPTS)
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    logits = model(ids, attention_mask=mask, position_ids=positions).logits  # (B, T, V)
    for row, prompt in enumerate(PROMPTS):
        alone = model(torch.tensor([prompt])).logits[0]  # (T_row, V)
        torch.testing.assert_close(logits[row, -len(prompt) :], alone, rtol=1e-5, atol=1e-5)


def test_without_position_ids_left_padding_shifts_the_positions() -> None:
    # The reason generate passes position ids: counting from the pads gives other logits.
    model = tiny_model()
    ids, mask = left_padded(PROMPTS)
    wrong = model(ids, attention_mask=mask).logits[1, -2:]
    alone = model(torch.tensor([PROMPTS[1]])).logits[0]
    assert not torch.allclose(wrong, alone, atol=1e-4)


def test_an_all_ones_mask_changes_nothing() -> None:
    model = tiny_model()
    ids = torch.tensor([PROMPTS[0], PROMPTS[0][::-1]])
    assert torch.equal(model.generate(ids, 5, attention_mask=torch.ones_like(ids)), model.generate(ids, 5))


@pytest.mark.parametrize(
    ("mask", "match"),
    [
        ([[1, 1, 0], [1, 1, 1]], "left padding"),
        ([[0, 1, 1], [2, 1, 1]], "only 0"),
        ([[0, 0, 0], [1, 1, 1]], "no token"),
        ([[1, 1], [1, 1]], "shape of input_ids"),
    ],
)
def test_bad_prompt_masks_are_refused(mask: list[list[int]], match: str) -> None:
    model = tiny_model()
    with pytest.raises(ValueError, match=match):
        model.generate(torch.tensor([[1, 2, 3], [4, 5, 6]]), 2, attention_mask=torch.tensor(mask))


def test_tiny_temperature_samples_the_argmax_instead_of_nan() -> None:
    model = tiny_model()
    ids = torch.tensor([PROMPTS[0]])
    cold = model.generate(ids, 5, do_sample=True, temperature=1e-30, generator=torch.Generator().manual_seed(0))
    assert torch.equal(cold, model.generate(ids, 5))


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), float("inf"), "1", True])
def test_bad_temperatures_are_refused(temperature: object) -> None:
    with pytest.raises(ValueError, match="temperature"):
        tiny_model().generate(torch.tensor([[1, 2]]), 2, do_sample=True, temperature=temperature)


def test_position_ids_are_checked() -> None:
    model = tiny_model()
    ids = torch.tensor([[1, 2, 3]])
    with pytest.raises(ValueError, match="position_ids must have the shape"):
        model(ids, position_ids=torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"position_ids must lie in \[0, max_len=24\)"):
        model(ids, position_ids=torch.tensor([[0, 1, 24]]))
    with pytest.raises(ValueError, match="position_ids must be integers"):
        model(ids, position_ids=torch.tensor([[0.0, 1.0, 2.0]]))


def test_cached_steps_equal_recomputing_and_two_continuations_of_one_cache_stay_apart() -> None:
    """The cache grows in place inside a buffer with spare room; continuing an older cache twice must not let
    the second continuation overwrite what the first one holds."""
    model = tiny_model()
    ids = torch.randint(1, V, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        past = model(ids[:, :6], use_cache=True).past_key_values
        for t in range(6, 9):  # three cached steps: each equals recomputing the whole prefix
            out = model(ids[:, t : t + 1], past_key_values=past, use_cache=True)
            torch.testing.assert_close(out.logits[:, -1], model(ids[:, : t + 1]).logits[:, -1])
            past = out.past_key_values
        a = model(ids[:, 9:10], past_key_values=past, use_cache=True).past_key_values
        keys_a = [k.clone() for k, _ in a]
        other = ids[:, 9:10] % (V - 1) + 1  # a different token at the same position
        b = model(other, past_key_values=past, use_cache=True).past_key_values  # second continuation of `past`
        assert all(torch.equal(k, kept) for (k, _), kept in zip(a, keys_a, strict=True)), "b overwrote a"
        next_a = model(ids[:, 10:11], past_key_values=a, use_cache=True).logits[:, -1]
        next_b = model(ids[:, 10:11], past_key_values=b, use_cache=True).logits[:, -1]
    torch.testing.assert_close(next_a, model(ids[:, :11]).logits[:, -1])
    recomputed_b = torch.cat([ids[:, :9], other, ids[:, 10:11]], dim=1)
    torch.testing.assert_close(next_b, model(recomputed_b).logits[:, -1])


def test_a_cache_sliced_to_some_rows_continues_like_recomputing() -> None:
    """A view of some rows of a cache (beam-style selection) must not be extended inside the full buffer."""
    model = tiny_model()
    ids = torch.randint(1, V, (2, 8), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        past = model(ids[:, :5], use_cache=True).past_key_values
        past = model(ids[:, 5:6], past_key_values=past, use_cache=True).past_key_values  # a grown buffer
        first_row = tuple((k[:1], v[:1]) for k, v in past)  # basic slicing: views of the same buffers
        one = model(ids[:1, 6:7], past_key_values=first_row, use_cache=True).logits[:, -1]
        both = model(ids[:, 6:7], past_key_values=past, use_cache=True).logits[:, -1]
    torch.testing.assert_close(one, model(ids[:1, :7]).logits[:, -1])
    torch.testing.assert_close(both, model(ids[:, :7]).logits[:, -1])


def test_decoding_grows_the_cache_in_place_with_few_reallocations() -> None:
    """Each cached step writes one position into the buffer it was given; the buffer is reallocated only when
    it is full (it doubles), so 100 steps after a 4-token prompt allocate a handful of buffers, not 100, and
    the keys of every step are a prefix view of the one buffer that holds them."""
    config = GPTConfig(vocab_size=V, d_model=24, n_layers=2, n_heads=3, d_ff=40, max_len=128, dropout=0.0)
    torch.manual_seed(0)
    model = GPT(config).eval()
    ids = torch.randint(1, V, (1, 104), generator=torch.Generator().manual_seed(2))
    buffers: set[int] = set()
    with torch.no_grad():
        past = model(ids[:, :4], use_cache=True).past_key_values
        for t in range(4, 104):
            out = model(ids[:, t : t + 1], past_key_values=past, use_cache=True)
            past = out.past_key_values
            keys = past[0][0]  # first layer's keys, (1, h, t + 1, d)
            assert keys.shape[2] == t + 1 and keys._base is not None and keys._base.shape[2] >= t + 1
            buffers.add(keys.data_ptr())
        torch.testing.assert_close(out.logits[:, -1], model(ids).logits[:, -1])  # and still equals recomputing
    # buffers of 8, 16, ..., 128 positions at most
    assert len(buffers) <= 6, f"{len(buffers)} buffers for 100 steps: the cache is copied instead of grown"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_16_bit_cache_stays_16_bit_grows_in_place_and_stays_close_to_recomputing(dtype: torch.dtype) -> None:
    """A cache cast to 16 bits after the prompt keeps its dtype at every step (new keys are stored in it, in the
    same growing buffer), the logits stay float32, and they match recomputing at 16-bit precision."""
    model = tiny_model()
    ids = torch.randint(1, V, (2, 20), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        past = model(ids[:, :4], use_cache=True).past_key_values
        past = tuple((k.to(dtype), v.to(dtype)) for k, v in past)
        buffers = set()
        for t in range(4, 20):
            out = model(ids[:, t : t + 1], past_key_values=past, use_cache=True)
            past = out.past_key_values
            assert all(k.dtype == v.dtype == dtype for k, v in past) and out.logits.dtype == torch.float32
            buffers.add(past[0][0].data_ptr())
            recomputed = model(ids[:, : t + 1]).logits[:, -1]
            torch.testing.assert_close(out.logits[:, -1], recomputed, atol=5e-4, rtol=0)  # seen: 6e-5
        other = ids[:, :20].flip(1)  # another context for the last token: the tolerance must not hide it
        moved = (model(torch.cat([other[:, :19], ids[:, 19:]], dim=1)).logits[:, -1] - recomputed).abs().max()
    assert moved > 2e-3, f"a different context moves the logits by only {moved:.1e}: the test cannot see it"
    assert len(buffers) <= 2, "the 16-bit cache is copied instead of grown"


def test_generate_with_a_16_bit_cache_equals_its_own_cached_steps_and_checks_the_dtype() -> None:
    """``cache_dtype`` casts the cache once after the prompt and then decodes as hand-written steps with that cache
    do; bad values and a cache_dtype without a cache are refused by name."""
    model = tiny_model()
    prompt = torch.tensor([[5, 9, 2, 30], [12, 3, 8, 20]])
    tokens = model.generate(prompt, 6, cache_dtype=torch.bfloat16)
    with torch.no_grad():
        out = model(prompt, use_cache=True)
        expected = torch.cat([prompt, out.logits[:, -1:].argmax(-1)], dim=1)
        past = tuple((k.to(torch.bfloat16), v.to(torch.bfloat16)) for k, v in out.past_key_values)
        for _ in range(5):
            out = model(expected[:, -1:], past_key_values=past, use_cache=True)
            past = out.past_key_values
            expected = torch.cat([expected, out.logits[:, -1:].argmax(-1)], dim=1)
    assert torch.equal(tokens, expected)
    for bad in (torch.int8, torch.float64, "bfloat16"):
        with pytest.raises(ValueError, match="cache_dtype must be None or one of"):
            model.generate(prompt, 2, cache_dtype=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"cache_dtype .* needs use_cache=True"):
        model.generate(prompt, 2, cache_dtype=torch.bfloat16, use_cache=False)


def test_cache_to_converts_into_a_growing_buffer_that_the_next_step_appends_to() -> None:
    """``cache_to`` (what ``generate(cache_dtype=...)`` uses) gives the cache's values in the new dtype, in a
    buffer with room, so the next step writes into it instead of copying the whole cache first."""
    model = tiny_model()
    ids = torch.randint(1, V, (2, 8), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        past = model(ids[:, :5], use_cache=True).past_key_values
        half = tuple(cache_to(layer, torch.bfloat16) for layer in past)
        for (k, v), (k16, v16) in zip(past, half, strict=True):
            assert torch.equal(k16, k.bfloat16()) and torch.equal(v16, v.bfloat16())
            assert k16._base is not None and k16._base.shape[2] == 10  # room for as many positions again
        grown = model(ids[:, 5:6], past_key_values=half, use_cache=True).past_key_values
    assert all(g.data_ptr() == h.data_ptr() for (g, _), (h, _) in zip(grown, half, strict=True))
    with pytest.raises(ValueError, match="dtype must be a floating-point"):
        cache_to(past[0], torch.int8)
    with pytest.raises(ValueError, match="past_key_value must be a"):
        cache_to(past[0][0], torch.bfloat16)  # type: ignore[arg-type]
