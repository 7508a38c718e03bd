"""Exercise 06 answers: the correct ones (``CORRECT``) and one mutant per typical mistake (``MUTANTS``).

``MUTANTS`` maps a name to (the learner function it stands for, the mutant, a phrase the failing hint
must contain).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def mask_tokens(
    input_ids: Tensor,
    vocab_size: int,
    mask_token_id: int,
    special_token_ids: Sequence[int],
    mlm_probability: float = 0.15,
    generator: torch.Generator | None = None,
    p_mask: float = 0.8,
    p_random: float = 0.1,
    random_from_all: bool = False,
    skip_special: bool = True,
    labels_everywhere: bool = False,
    fixed_rate: float | None = None,
) -> tuple[Tensor, Tensor]:
    """The right answer; the keyword arguments after ``generator`` let mutants change one thing."""
    special = torch.tensor([mask_token_id, *special_token_ids])
    rate = mlm_probability if fixed_rate is None else fixed_rate
    chosen = torch.rand(input_ids.shape, generator=generator) < rate
    if skip_special:
        chosen &= ~torch.isin(input_ids, special)
    u = torch.rand(input_ids.shape, generator=generator)
    to_mask = chosen & (u < p_mask)
    to_random = chosen & (u >= p_mask) & (u < p_mask + p_random)
    vocab = torch.arange(vocab_size)
    allowed = vocab if random_from_all else vocab[~torch.isin(vocab, special)]
    draws = allowed[torch.randint(len(allowed), input_ids.shape, generator=generator)]
    inputs = input_ids.clone()
    inputs[to_mask] = mask_token_id
    inputs[to_random] = draws[to_random]
    labels = (
        input_ids.clone() if labels_everywhere else torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    )
    return inputs, labels


def masked_lm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)


def nsp_input(tokens_a: list[int], tokens_b: list[int], cls_id: int, sep_id: int) -> tuple[Tensor, Tensor]:
    input_ids = torch.tensor([cls_id, *tokens_a, sep_id, *tokens_b, sep_id])
    token_type_ids = torch.tensor([0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1))
    return input_ids, token_type_ids


# ------------------------------------------------------------------------------------ mask_tokens mutants


def _mutant(**change: object) -> Callable[..., tuple[Tensor, Tensor]]:
    def mutant(
        input_ids: Tensor,
        vocab_size: int,
        mask_token_id: int,
        special_token_ids: Sequence[int],
        mlm_probability: float = 0.15,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        return mask_tokens(
            input_ids, vocab_size, mask_token_id, special_token_ids, mlm_probability, generator, **change
        )  # type: ignore[arg-type]

    return mutant


def mask_in_place(
    input_ids: Tensor,
    vocab_size: int,
    mask_token_id: int,
    special_token_ids: Sequence[int],
    mlm_probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    inputs, labels = mask_tokens(input_ids, vocab_size, mask_token_id, special_token_ids, mlm_probability, generator)
    input_ids.copy_(inputs)
    return input_ids, labels


def mask_labels_corrupted(
    input_ids: Tensor,
    vocab_size: int,
    mask_token_id: int,
    special_token_ids: Sequence[int],
    mlm_probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    inputs, labels = mask_tokens(input_ids, vocab_size, mask_token_id, special_token_ids, mlm_probability, generator)
    return inputs, torch.where(labels != -100, inputs, labels)


def mask_ignores_generator(
    input_ids: Tensor,
    vocab_size: int,
    mask_token_id: int,
    special_token_ids: Sequence[int],
    mlm_probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    return mask_tokens(input_ids, vocab_size, mask_token_id, special_token_ids, mlm_probability, None)


def mask_returns_a_dict(
    input_ids: Tensor,
    vocab_size: int,
    mask_token_id: int,
    special_token_ids: Sequence[int],
    mlm_probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    inputs, labels = mask_tokens(input_ids, vocab_size, mask_token_id, special_token_ids, mlm_probability, generator)
    return {"inputs": inputs, "labels": labels}


# --------------------------------------------------------------------------------- masked_lm_loss mutants


def loss_not_ignoring(logits: Tensor, labels: Tensor) -> Tensor:
    log_p = torch.log_softmax(logits, dim=-1)  # (B, T, V)
    return -log_p.gather(-1, labels[..., None]).mean()  # gather at -100 raises: index out of bounds


def loss_scores_ignored_as_token_0(logits: Tensor, labels: Tensor) -> Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.clamp(min=0).reshape(-1))


def loss_over_all_positions(logits: Tensor, labels: Tensor) -> Tensor:
    flat = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100, reduction="sum")
    return flat / labels.numel()


def loss_summed(logits: Tensor, labels: Tensor) -> Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100, reduction="sum")


def loss_per_sequence(logits: Tensor, labels: Tensor) -> Tensor:
    return torch.stack([masked_lm_loss(logits[b : b + 1], labels[b : b + 1]) for b in range(len(labels))]).mean()


def loss_per_position(logits: Tensor, labels: Tensor) -> Tensor:
    return F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")  # (B, T)


# ------------------------------------------------------------------------------------- nsp_input mutants


def nsp_first_sep_in_b(tokens_a: list[int], tokens_b: list[int], cls_id: int, sep_id: int) -> tuple[Tensor, Tensor]:
    ids, _ = nsp_input(tokens_a, tokens_b, cls_id, sep_id)
    return ids, torch.tensor([0] * (len(tokens_a) + 1) + [1] * (len(tokens_b) + 2))


def nsp_all_zero(tokens_a: list[int], tokens_b: list[int], cls_id: int, sep_id: int) -> tuple[Tensor, Tensor]:
    ids, types = nsp_input(tokens_a, tokens_b, cls_id, sep_id)
    return ids, torch.zeros_like(types)


def nsp_no_cls(tokens_a: list[int], tokens_b: list[int], cls_id: int, sep_id: int) -> tuple[Tensor, Tensor]:
    _, types = nsp_input(tokens_a, tokens_b, cls_id, sep_id)
    return torch.tensor([*tokens_a, sep_id, *tokens_b, sep_id]), types[1:]


def nsp_no_final_sep(tokens_a: list[int], tokens_b: list[int], cls_id: int, sep_id: int) -> tuple[Tensor, Tensor]:
    ids, types = nsp_input(tokens_a, tokens_b, cls_id, sep_id)
    return ids[:-1], types[:-1]


def nsp_float_types(tokens_a: list[int], tokens_b: list[int], cls_id: int, sep_id: int) -> tuple[Tensor, Tensor]:
    ids, types = nsp_input(tokens_a, tokens_b, cls_id, sep_id)
    return ids, types.float()


def nsp_batched(tokens_a: list[int], tokens_b: list[int], cls_id: int, sep_id: int) -> tuple[Tensor, Tensor]:
    ids, types = nsp_input(tokens_a, tokens_b, cls_id, sep_id)
    return ids[None], types[None]


CORRECT: dict[str, Callable[..., object]] = {
    "mask_tokens": mask_tokens,
    "masked_lm_loss": masked_lm_loss,
    "nsp_input": nsp_input,
}

MUTANTS: dict[str, tuple[str, Callable[..., object], str]] = {
    "mask_everything_masked": (
        "mask_tokens",
        _mutant(p_mask=1.0, p_random=0.0),
        "every chosen token was replaced by [MASK]",
    ),
    "mask_no_random": ("mask_tokens", _mutant(p_mask=0.8, p_random=0.0), "stayed unchanged"),
    "mask_90_10": ("mask_tokens", _mutant(p_mask=0.9, p_random=0.1), "became [MASK]"),
    "mask_labels_everywhere": ("mask_tokens", _mutant(labels_everywhere=True), "a target at every position"),
    "mask_special_chosen": ("mask_tokens", _mutant(skip_special=False), "special or padding tokens"),
    "mask_random_from_specials": ("mask_tokens", _mutant(random_from_all=True), "drawn from special tokens"),
    "mask_fixed_rate": ("mask_tokens", _mutant(fixed_rate=0.15), "use the argument"),
    "mask_in_place": ("mask_tokens", mask_in_place, "in place"),
    "mask_labels_corrupted": ("mask_tokens", mask_labels_corrupted, "*original* ids"),
    "mask_ignores_generator": ("mask_tokens", mask_ignores_generator, "ignore the generator"),
    "mask_returns_a_dict": ("mask_tokens", mask_returns_a_dict, "return a pair"),
    "loss_not_ignoring": ("masked_lm_loss", loss_not_ignoring, "ignore_index=-100"),
    "loss_scores_ignored_as_token_0": ("masked_lm_loss", loss_scores_ignored_as_token_0, "were scored"),
    "loss_over_all_positions": ("masked_lm_loss", loss_over_all_positions, "divided by all"),
    "loss_summed": ("masked_lm_loss", loss_summed, "summed instead"),
    "loss_per_sequence": ("masked_lm_loss", loss_per_sequence, "averaged per sequence"),
    "loss_per_position": ("masked_lm_loss", loss_per_position, "one loss per position"),
    "nsp_first_sep_in_b": ("nsp_input", nsp_first_sep_in_b, "first [SEP] has segment 1"),
    "nsp_all_zero": ("nsp_input", nsp_all_zero, "every token has segment 0"),
    "nsp_no_cls": ("nsp_input", nsp_no_cls, "expected shape"),
    "nsp_no_final_sep": ("nsp_input", nsp_no_final_sep, "expected shape"),
    "nsp_float_types": ("nsp_input", nsp_float_types, "expected dtype"),
    "nsp_batched": ("nsp_input", nsp_batched, "1-D tensors"),
}
