"""BERT's data recipes: masking by exact invariants and 5-sigma rates; next-sentence pairs; the LM losses."""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from bertcourse.objectives import (
    IGNORE_INDEX,
    backward_lm_loss,
    causal_lm_loss,
    mask_sequences,
    mask_tokens,
    masked_lm_loss,
    next_sentence_pairs,
)

PAD, CLS, SEP, MASK = 0, 1, 2, 3
SPECIAL = (PAD, CLS, SEP)
VOCAB = 40
N_ALLOWED = VOCAB - 4  # ids a random replacement may take: everything but PAD, CLS, SEP, MASK


def batch(B: int = 512, T: int = 512, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """[CLS] tokens [SEP] [PAD]...: right-padded rows of random lengths, and their attention mask."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(T // 2, T + 1, (B,), generator=g)
    mask = (torch.arange(T) < lengths.unsqueeze(1)).long()  # (B, T)
    ids = torch.randint(4, VOCAB, (B, T), generator=g)
    ids[:, 0] = CLS
    ids[torch.arange(B), lengths - 1] = SEP
    ids[mask == 0] = PAD
    return ids, mask


def within_5_sigma(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= 5 * math.sqrt(n * p * (1 - p))


def masked(seed: int = 0, **kwargs: object) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    ids, mask = batch()
    args = {"vocab_size": VOCAB, "mask_token_id": MASK, "special_token_ids": SPECIAL, "attention_mask": mask, **kwargs}
    out, labels = mask_tokens(ids, generator=torch.Generator().manual_seed(seed), **args)  # type: ignore[arg-type]
    return ids, mask, out, labels


def test_mask_tokens_exact_invariants() -> None:
    ids, mask = batch()
    original = ids.clone()
    out, labels = mask_tokens(
        ids,
        vocab_size=VOCAB,
        mask_token_id=MASK,
        special_token_ids=SPECIAL,
        attention_mask=mask,
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.equal(ids, original), "the input must not be modified"
    assert out.shape == labels.shape == ids.shape and out.dtype == labels.dtype == ids.dtype
    chosen = labels != IGNORE_INDEX
    assert torch.equal(labels[chosen], ids[chosen]), "chosen labels are the original ids"
    assert not chosen[torch.isin(ids, torch.tensor(SPECIAL))].any(), "special tokens are never chosen"
    assert not chosen[mask == 0].any(), "padding is never chosen"
    assert torch.equal(out[~chosen], ids[~chosen]), "unchosen positions keep their token"
    replaced = chosen & (out != ids) & (out != MASK)
    assert not torch.isin(out[replaced], torch.tensor([*SPECIAL, MASK])).any(), "random tokens are never special"
    assert set(out[replaced].unique().tolist()) == set(range(4, VOCAB)), "random tokens span the non-special vocab"


def test_mask_tokens_attention_mask_alone_keeps_padding_out() -> None:
    """Padding holding ordinary ids (not listed as special) is still never chosen."""
    ids, mask = batch()
    ids = torch.where(mask.bool(), ids, torch.full_like(ids, 5))
    _, labels = mask_tokens(
        ids,
        vocab_size=VOCAB,
        mask_token_id=MASK,
        special_token_ids=(CLS, SEP),
        attention_mask=mask,
        mlm_probability=1.0,
    )
    assert torch.equal(labels != IGNORE_INDEX, (mask == 1) & (ids != CLS) & (ids != SEP))


def test_mask_tokens_rates_15_80_10_10() -> None:
    ids, mask, out, labels = masked()
    eligible = (mask == 1) & ~torch.isin(ids, torch.tensor(SPECIAL))
    n_eligible = int(eligible.sum())
    assert n_eligible >= 100_000
    chosen = labels != IGNORE_INDEX
    n_chosen = int(chosen.sum())
    assert within_5_sigma(n_chosen, n_eligible, 0.15), (n_chosen, n_eligible)
    n_mask = int((chosen & (out == MASK)).sum())
    n_same = int((chosen & (out == ids)).sum())
    n_other = n_chosen - n_mask - n_same
    # A random draw equals the original token with chance 1 / N_ALLOWED; it can never be [MASK].
    assert within_5_sigma(n_mask, n_chosen, 0.8), n_mask / n_chosen
    assert within_5_sigma(n_same, n_chosen, 0.1 + 0.1 / N_ALLOWED), n_same / n_chosen
    assert within_5_sigma(n_other, n_chosen, 0.1 * (1 - 1 / N_ALLOWED)), n_other / n_chosen


def test_mask_tokens_same_seed_same_draws_other_seed_other_draws() -> None:
    _, _, out_a, labels_a = masked(seed=7)
    _, _, out_b, labels_b = masked(seed=7)
    _, _, out_c, labels_c = masked(seed=8)
    assert torch.equal(out_a, out_b) and torch.equal(labels_a, labels_b)
    assert not torch.equal(labels_a, labels_c) and not torch.equal(out_a, out_c)


def test_mask_tokens_probability_extremes_and_no_attention_mask() -> None:
    ids, mask, out, labels = masked(mlm_probability=0.0)
    assert torch.equal(out, ids) and bool((labels == IGNORE_INDEX).all())
    ids, mask, out, labels = masked(mlm_probability=1.0)
    eligible = (mask == 1) & ~torch.isin(ids, torch.tensor(SPECIAL))
    assert torch.equal(labels != IGNORE_INDEX, eligible)
    # Without an attention mask, [PAD] is still never chosen when listed as special.
    _, labels = mask_tokens(ids, vocab_size=VOCAB, mask_token_id=MASK, special_token_ids=SPECIAL, mlm_probability=1.0)
    assert torch.equal(labels != IGNORE_INDEX, eligible)


def test_mask_tokens_bad_arguments() -> None:
    ids, mask = batch(B=2, T=8)
    kwargs = {"vocab_size": VOCAB, "mask_token_id": MASK, "special_token_ids": SPECIAL}
    with pytest.raises(ValueError, match="input_ids must be an integer tensor"):
        mask_tokens(ids.float(), **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="input_ids must lie in"):
        mask_tokens(ids + VOCAB, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mask_token_id"):
        mask_tokens(ids, vocab_size=VOCAB, mask_token_id=VOCAB)
    with pytest.raises(ValueError, match="special_token_ids"):
        mask_tokens(ids, vocab_size=VOCAB, mask_token_id=MASK, special_token_ids=(-1,))
    with pytest.raises(ValueError, match="attention_mask must have the shape"):
        mask_tokens(ids, attention_mask=mask[:, :-1], **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mlm_probability"):
        mask_tokens(ids, mlm_probability=1.5, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-special token"):
        mask_tokens(torch.zeros(1, 3, dtype=torch.long), vocab_size=2, mask_token_id=1, special_token_ids=(0,))


@pytest.mark.parametrize("at_least_one", [False, True])
@pytest.mark.parametrize("p", [0.15, 0.4, 1.0])
def test_mask_sequences_rows_equal_mask_tokens_on_each_sequence_alone(p: float, at_least_one: bool) -> None:
    """The batched path makes each sequence's draws from its own generator: row i equals ``mask_tokens``
    on sequence i alone, padded, to the last bit (so a sequence's masking does not depend on its batch)."""
    rng = random.Random(7)
    pad = SPECIAL[0]
    sequences = [[rng.randrange(len(SPECIAL) + 1, VOCAB) for _ in range(rng.randint(1, 12))] for _ in range(9)]
    sequences[0] = []  # an empty sequence first: the others still get their at-least-one target
    args = {"vocab_size": VOCAB, "mask_token_id": MASK, "special_token_ids": SPECIAL, "mlm_probability": p}
    generators = [torch.Generator().manual_seed(100 + i) for i in range(len(sequences))]
    out, labels, attention = mask_sequences(sequences, generators, pad_token_id=pad, at_least_one=at_least_one, **args)
    assert out.shape == labels.shape == attention.shape == (len(sequences), max(map(len, sequences)))
    for i, ids in enumerate(sequences):
        alone = torch.tensor([ids], dtype=torch.long)  # (1, T)
        ref_out, ref_labels = mask_tokens(
            alone, generator=torch.Generator().manual_seed(100 + i), at_least_one=at_least_one, **args
        )
        n = len(ids)
        assert torch.equal(out[i, :n], ref_out[0]) and torch.equal(labels[i, :n], ref_labels[0])
        assert (out[i, n:] == pad).all() and (labels[i, n:] == IGNORE_INDEX).all()
        assert attention[i].tolist() == [1] * n + [0] * (out.shape[1] - n)


def test_mask_sequences_bad_arguments() -> None:
    kwargs = {"vocab_size": VOCAB, "mask_token_id": MASK, "pad_token_id": SPECIAL[0], "special_token_ids": SPECIAL}
    with pytest.raises(ValueError, match="one generator each"):
        mask_sequences([[5, 6], [7]], [torch.Generator()], **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sequences must be non-empty"):
        mask_sequences([], [], **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="input_ids must lie in"):
        mask_sequences([[VOCAB]], [torch.Generator()], **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mlm_probability"):
        mask_sequences([[5]], [torch.Generator()], mlm_probability=2.0, **kwargs)  # type: ignore[arg-type]


def documents(n_docs: int = 2000) -> list[list[str]]:
    rng = random.Random(1)
    return [[f"doc{d}-sent{s}" for s in range(rng.randint(2, 30))] for d in range(n_docs)]


def test_next_sentence_pairs_labels_and_sources() -> None:
    docs = documents()
    where = {sentence: (d, s) for d, doc in enumerate(docs) for s, sentence in enumerate(doc)}
    pairs = next_sentence_pairs(docs, seed=3)
    assert len(pairs) == sum(len(doc) - 1 for doc in docs)
    assert [a for a, _, _ in pairs] == [a for doc in docs for a in doc[:-1]], "one example per sentence A, in order"
    n_not_next = sum(label for _, _, label in pairs)
    assert within_5_sigma(n_not_next, len(pairs), 0.5), n_not_next / len(pairs)
    for a, b, label in pairs:
        (doc_a, sent_a), (doc_b, sent_b) = where[a], where[b]
        if label == 0:
            assert (doc_b, sent_b) == (doc_a, sent_a + 1), "IsNext: B is the sentence after A"
        else:
            assert label == 1 and doc_b != doc_a, "NotNext: B comes from another document"


def test_next_sentence_pairs_deterministic_per_seed_and_rng() -> None:
    docs = documents(60)
    assert next_sentence_pairs(docs, seed=5) == next_sentence_pairs(docs, seed=5)
    assert next_sentence_pairs(docs, seed=5) != next_sentence_pairs(docs, seed=6)
    assert next_sentence_pairs(docs, rng=random.Random(5)) == next_sentence_pairs(docs, seed=5)


def test_next_sentence_pairs_is_generic_over_sentences() -> None:
    docs = [[[1, 2], [3], [4, 5, 6]], [[7], [8, 9]], []]  # token-id lists; an empty document is allowed
    pairs = next_sentence_pairs(docs, seed=0)
    assert len(pairs) == 3
    sentences = [s for doc in docs for s in doc]
    assert all(any(a is s for s in sentences) and any(b is s for s in sentences) for a, b, _ in pairs)


def test_next_sentence_pairs_bad_arguments() -> None:
    with pytest.raises(ValueError, match=">= 2 non-empty documents"):
        next_sentence_pairs([["a", "b", "c"]])
    with pytest.raises(ValueError, match=">= 2 non-empty documents"):
        next_sentence_pairs([["a", "b"], []])
    with pytest.raises(ValueError, match=r"documents\[1\] must be a sequence of sentences"):
        next_sentence_pairs([["a", "b"], "c d"])
    with pytest.raises(ValueError, match="documents must be a sequence"):
        next_sentence_pairs("a b")  # type: ignore[arg-type]


def test_lm_losses_shift_in_opposite_directions() -> None:
    torch.manual_seed(0)
    logits, labels = torch.randn(2, 5, 11), torch.randint(0, 11, (2, 5))
    labels[0, 2] = IGNORE_INDEX
    keep = labels[:, 1:] != IGNORE_INDEX
    expected = F.cross_entropy(logits[:, :-1][keep], labels[:, 1:][keep])
    assert_close(causal_lm_loss(logits, labels), expected)
    keep = labels[:, :-1] != IGNORE_INDEX
    expected = F.cross_entropy(logits[:, 1:][keep], labels[:, :-1][keep])
    assert_close(backward_lm_loss(logits, labels), expected)


@pytest.mark.gpu
def test_mask_tokens_on_cuda_with_a_cpu_generator_equals_cpu() -> None:
    ids, mask = batch(B=8, T=64)
    kwargs = {"vocab_size": VOCAB, "mask_token_id": MASK, "special_token_ids": SPECIAL}
    cpu = mask_tokens(ids, attention_mask=mask, generator=torch.Generator().manual_seed(1), **kwargs)
    gpu = mask_tokens(ids.cuda(), attention_mask=mask.cuda(), generator=torch.Generator().manual_seed(1), **kwargs)
    assert all(t.device.type == "cuda" for t in gpu)
    assert torch.equal(gpu[0].cpu(), cpu[0]) and torch.equal(gpu[1].cpu(), cpu[1])
    cuda_generator = torch.Generator(device="cuda").manual_seed(1)
    out, labels = mask_tokens(ids.cuda(), attention_mask=mask.cuda(), generator=cuda_generator, **kwargs)
    assert torch.equal(out[labels == IGNORE_INDEX], ids.cuda()[labels == IGNORE_INDEX])


def test_loss_of_an_empty_target_set_is_a_zero_that_updates_nothing() -> None:
    """No counted target (all labels -100): a finite zero with zero gradient, not 0/0 = NaN."""
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 11, requires_grad=True)
    empty = torch.full((2, 5), IGNORE_INDEX)
    for loss_fn in (masked_lm_loss, causal_lm_loss, backward_lm_loss):
        loss = loss_fn(logits, empty)
        assert loss.item() == 0.0 and loss.requires_grad
        (grad,) = torch.autograd.grad(loss, logits)
        assert bool((grad == 0).all())
    one_row = torch.zeros(1, 1, 11, requires_grad=True)  # a length-1 sequence has no next token either
    assert causal_lm_loss(one_row, torch.tensor([[4]])).item() == 0.0
    labels = torch.randint(0, 11, (2, 5))
    labels[1] = IGNORE_INDEX  # with targets, still the mean over the counted ones
    assert_close(masked_lm_loss(logits, labels), F.cross_entropy(logits[0], labels[0]))
    assert_close(masked_lm_loss(logits, labels, reduction="sum"), F.cross_entropy(logits[0], labels[0]) * 5)


def test_mask_tokens_at_least_one_gives_every_sequence_a_target() -> None:
    """``at_least_one`` adds one uniform eligible token to the rows the draws left empty, and only to them."""
    ids, mask = batch(B=2000, T=12)
    ids[0, 1:] = PAD  # a row with no eligible token: [CLS] then padding
    mask[0, 1:] = 0
    args = {"vocab_size": VOCAB, "mask_token_id": MASK, "special_token_ids": SPECIAL, "attention_mask": mask}
    eligible = (mask == 1) & ~torch.isin(ids, torch.tensor([*SPECIAL, MASK]))
    _, plain = mask_tokens(ids, mlm_probability=0.05, generator=torch.Generator().manual_seed(1), **args)
    out, labels = mask_tokens(
        ids, mlm_probability=0.05, generator=torch.Generator().manual_seed(1), at_least_one=True, **args
    )
    chosen, before = labels != IGNORE_INDEX, plain != IGNORE_INDEX
    assert not bool((chosen & ~eligible).any())  # still never special tokens or padding
    assert chosen[1:].any(1).all() and not chosen[0].any()  # every row that can have a target has one
    assert bool((chosen >= before).all())  # the ordinary draws are kept (the Bernoulli draws come first)
    added = chosen.sum(1) - before.sum(1)
    empty_rows = ~before.any(1) & eligible.any(1)
    assert torch.equal(added, empty_rows.long())  # exactly one extra, only where the draws chose none
    assert torch.equal(labels[chosen], ids[chosen]) and torch.equal(out[~chosen], ids[~chosen])
    forced = chosen & ~before
    n = int(forced.sum())
    assert n > 500
    assert within_5_sigma(int((out[forced] == MASK).sum()), n, 0.8)  # the added ones follow 80/10/10 too
    first = eligible.float().argmax(1)  # the added token is uniform over the row, not always the first
    rows = torch.nonzero(empty_rows).squeeze(1)
    at_first = int(forced[rows, first[rows]].sum())
    assert at_first < 0.5 * len(rows)
