"""Pre-training objectives: the language-modelling losses of GPT, ELMo and BERT, and BERT's data recipes.

Labels use -100 (``IGNORE_INDEX``) for positions that carry no target, the Hugging Face convention.
BERT (Devlin et al. 2019, section 3.1) pre-trains on two tasks whose inputs are built here:
:func:`mask_tokens` (masked LM, the 80/10/10 rule) and :func:`next_sentence_pairs` (next-sentence prediction).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "IGNORE_INDEX",
    "PRETRAINING_TERMS",
    "backward_lm_loss",
    "causal_lm_loss",
    "mask_sequences",
    "mask_tokens",
    "masked_lm_loss",
    "next_sentence_loss",
    "next_sentence_pairs",
    "pretraining_loss_sums",
    "pretraining_target_counts",
    "token_cross_entropy",
]

IGNORE_INDEX = -100
Reduction = Literal["mean", "sum"]


def token_cross_entropy(logits: Tensor, labels: Tensor, reduction: Reduction = "mean") -> Tensor:
    """Per-token cross-entropy of (B, T, C) logits against (B, T) labels at the same positions, -100 ignored:
    the one implementation behind every token-level loss (the three LM losses, token classification).

    ``reduction="mean"`` averages over the counted targets (label != -100); ``"sum"`` adds them up, for
    callers that divide by a count of their own (the engine, ``bertcourse.engine``, divides by the count over all
    processes, so that splitting a batch across them does not change the loss).

    With no counted target at all (every label -100, e.g. a batch in which no token was chosen for
    masking) the mean is a documented zero, not 0/0 = NaN: the empty sum over 1, whose gradient is zero,
    so the batch moves no weight through this loss (an optimizer with momentum still applies its
    running average) and the targets of a combined loss, such as NSP's, still train.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    if logits.dim() < 2 or labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"labels must have the shape of logits without its class dim, {tuple(logits.shape[:-1])}; "
            f"got labels {tuple(labels.shape)} for logits {tuple(logits.shape)}"
        )
    flat_logits, flat_labels = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)  # (B * T, V), (B * T,)
    total = F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE_INDEX, reduction="sum")
    if reduction == "sum":
        return total
    count = (flat_labels != IGNORE_INDEX).sum()
    return total / count.clamp(min=1)  # no targets: 0 / 1 = 0 (with zero gradient), not 0 / 0 = NaN


def masked_lm_loss(logits: Tensor, labels: Tensor, reduction: Reduction = "mean") -> Tensor:
    """BERT's masked-LM loss: :func:`token_cross_entropy` of (B, T, V) logits against (B, T) labels that hold
    the original id at masked positions and -100 elsewhere."""
    return token_cross_entropy(logits, labels, reduction)


def causal_lm_loss(logits: Tensor, labels: Tensor, reduction: Reduction = "mean") -> Tensor:
    """Left-to-right LM loss: position t predicts label t+1 (labels are the unshifted input ids)."""
    return token_cross_entropy(logits[:, :-1], labels[:, 1:], reduction)  # (B, T-1, V) vs (B, T-1)


def backward_lm_loss(logits: Tensor, labels: Tensor, reduction: Reduction = "mean") -> Tensor:
    """Right-to-left LM loss: position t predicts label t-1 (ELMo's backward direction)."""
    return token_cross_entropy(logits[:, 1:], labels[:, :-1], reduction)  # (B, T-1, V) vs (B, T-1)


def next_sentence_loss(logits: Tensor, labels: Tensor, reduction: Reduction = "mean") -> Tensor:
    """BERT's next-sentence loss: cross-entropy of (B, 2) logits against (B,) labels (0 IsNext, 1 NotNext).

    Computed in float32 whatever the logits' dtype (bf16 autocast); labels of -100 are ignored.
    """
    return token_cross_entropy(logits.float().unsqueeze(1), labels.unsqueeze(1), reduction)  # (B, 1, 2) vs (B, 1)


def mask_tokens(
    input_ids: Tensor,
    *,
    vocab_size: int,
    mask_token_id: int,
    special_token_ids: Sequence[int] = (),
    attention_mask: Tensor | None = None,
    mlm_probability: float = 0.15,
    generator: torch.Generator | None = None,
    at_least_one: bool = False,
) -> tuple[Tensor, Tensor]:
    """BERT's masked-LM corruption: choose ~15% of the tokens, hide them, and keep them as labels.

    Each position that is neither a special token (``special_token_ids`` and ``mask_token_id``) nor
    padding (``attention_mask == 0``) is chosen independently with probability ``mlm_probability``, as in
    BERT and Hugging Face. A chosen token becomes

    - ``mask_token_id`` with probability 0.8,
    - a random token with probability 0.1, uniform over the non-special vocabulary (it may equal the
      original, as in BERT; paper vs code: BERT and Hugging Face also draw special tokens),
    - itself with probability 0.1,

    so the model must predict every position it might be tested on, not only the [MASK]ed ones.

    ``at_least_one=True`` also chooses one eligible token, uniformly, in each sequence (last axis) that the
    draws left without any, so that no sequence, and no batch, is without a target. BERT's own data
    script (``create_pretraining_data.py``) does the same: it masks ``max(1, round(0.15 n))`` tokens of a
    sequence of n. It raises the chosen share above ``mlm_probability`` on short sequences, by
    ``(1 - p) ** n / n`` for n eligible tokens.

    Args:
        input_ids: integer token ids of any shape, e.g. (B, T); never modified.
        vocab_size: V; ids must lie in [0, V).
        mask_token_id: the id of [MASK].
        special_token_ids: ids never chosen nor drawn at random ([CLS], [SEP], [PAD], ...).
        attention_mask: optional, shape of ``input_ids``, 1 = token, 0 = padding (never chosen).
        mlm_probability: the chance that an eligible position is chosen; BERT: 0.15.
        generator: a ``torch.Generator`` for reproducible draws (its device is used for the draws).
        at_least_one: choose one token in each sequence that has an eligible token but none chosen.

    Returns:
        (masked_input_ids, labels), both shaped like ``input_ids``; masked_input_ids keeps its dtype,
        labels are int64 (so -100 fits whatever the ids' dtype) and hold the original id at chosen
        positions and -100 everywhere else.
    """
    _check_mask_tokens_args(input_ids, vocab_size, mask_token_id, special_token_ids, attention_mask, mlm_probability)
    device = generator.device if generator is not None else input_ids.device
    special = sorted({mask_token_id, *special_token_ids})
    eligible = ~torch.isin(input_ids, torch.tensor(special, device=input_ids.device))
    if attention_mask is not None:
        eligible &= attention_mask.bool()
    draws = _draw_masking(input_ids.shape, mlm_probability, vocab_size - len(special), generator, device, at_least_one)
    draws = _MaskingDraws(*(None if d is None else d.to(input_ids.device) for d in draws))
    return _apply_masking(input_ids, eligible, draws, special, mask_token_id)


def mask_sequences(
    sequences: Sequence[Sequence[int]],
    generators: Sequence[torch.Generator],
    *,
    vocab_size: int,
    mask_token_id: int,
    pad_token_id: int,
    special_token_ids: Sequence[int] = (),
    mlm_probability: float = 0.15,
    at_least_one: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`mask_tokens` for a batch of sequences that each draw from a generator of their own, fast.

    Row i of the result equals ``mask_tokens(torch.tensor([sequences[i]]), generator=generators[i], ...)``
    right-padded (``pad_token_id`` in the ids, -100 in the labels), to the last bit: each sequence makes
    the same draws, in the same order and shape, from its generator; only the arithmetic on them runs once
    for the whole batch instead of once per sequence (a data loader's hot path: ~25 small tensor ops per
    sequence become ~25 per batch). A sequence's draws thus do not depend on the batch it lands in.

    Returns:
        (masked_input_ids, labels, attention_mask), each (B, T_max) int64.
    """
    if len(sequences) == 0 or len(generators) != len(sequences):
        n, k = len(sequences), len(generators)
        raise ValueError(f"sequences must be non-empty, with one generator each, got {n} sequences and {k} generators")
    lengths = torch.tensor([len(ids) for ids in sequences])  # (B,)
    attention_mask = torch.arange(int(lengths.max())) < lengths[:, None]  # (B, T_max)
    input_ids = torch.full(attention_mask.shape, pad_token_id, dtype=torch.long)
    input_ids[attention_mask] = torch.tensor([t for ids in sequences for t in ids], dtype=torch.long)
    _check_mask_tokens_args(input_ids, vocab_size, mask_token_id, special_token_ids, None, mlm_probability)
    special = sorted({mask_token_id, *special_token_ids})
    eligible = ~torch.isin(input_ids, torch.tensor(special)) & attention_mask
    per_sequence = [
        _draw_masking((1, len(ids)), mlm_probability, vocab_size - len(special), g, g.device, at_least_one)
        for ids, g in zip(sequences, generators, strict=True)
    ]

    def padded(name: str, fill: float) -> Tensor:
        """One kind of draw of every sequence, right-padded with ``fill`` (padding is never eligible): (B, T_max)."""
        drawn = [getattr(d, name) for d in per_sequence]
        parts = [t.reshape(-1) for t in drawn if t is not None]  # an empty sequence draws no score
        values = torch.cat(parts).cpu() if parts else torch.empty(0)  # (sum of lengths,)
        out = torch.full(attention_mask.shape, fill, dtype=values.dtype)  # (B, T_max)
        out[attention_mask] = values  # row-major order of the True entries = the concatenation order
        return out

    score = padded("score", -1.0) if at_least_one else None
    draws = _MaskingDraws(padded("chosen", 0.0), score, padded("uniform", 1.0), padded("rank", 0))
    masked, labels = _apply_masking(input_ids, eligible, draws, special, mask_token_id)
    return masked, labels, attention_mask.long()


class _MaskingDraws(NamedTuple):
    """The random draws behind one :func:`mask_tokens` call, each shaped like ``input_ids``."""

    chosen: Tensor  # Bernoulli(mlm_probability): 1 = the position is chosen (if eligible)
    score: Tensor | None  # uniform, the at-least-one pick's score (``None`` without ``at_least_one``)
    uniform: Tensor  # uniform: < 0.8 -> [MASK], < 0.9 -> a random id, else the token is kept
    rank: Tensor  # each random replacement's rank among the non-special ids


def _draw_masking(
    shape: torch.Size | tuple[int, ...],
    mlm_probability: float,
    n_replacements: int,
    generator: torch.Generator | None,
    device: torch.device | str,
    at_least_one: bool,
) -> _MaskingDraws:
    """Every random draw of :func:`mask_tokens`, in the order it makes them."""
    chosen = torch.bernoulli(torch.full(shape, float(mlm_probability), device=device), generator=generator)
    score = None
    if at_least_one and len(shape) > 0 and math.prod(shape) > 0:
        score = torch.rand(shape, generator=generator, device=device)
    u = torch.rand(shape, generator=generator, device=device)  # one uniform per position
    rank = torch.randint(n_replacements, shape, generator=generator, device=device)
    return _MaskingDraws(chosen, score, u, rank)


def _apply_masking(
    input_ids: Tensor, eligible: Tensor, draws: _MaskingDraws, special: Sequence[int], mask_token_id: int
) -> tuple[Tensor, Tensor]:
    """The corruption :func:`mask_tokens` makes from its draws (``special`` ascending)."""
    chosen, score, u = draws.chosen.bool() & eligible, draws.score, draws.uniform
    if score is not None:
        # the sequences (last axis) that hold an eligible token but drew none get one, uniform among them
        score = score.masked_fill(~eligible, -1.0)
        pick = F.one_hot(score.argmax(-1), input_ids.shape[-1]).bool()  # (..., T): the best-scoring eligible token
        chosen |= pick & ~chosen.any(-1, keepdim=True) & eligible.any(-1, keepdim=True)
    to_mask = chosen & (u < 0.8)
    to_random = chosen & (u >= 0.8) & (u < 0.9)  # the last 10% (u >= 0.9) keep their token
    # a random replacement is uniform over the V - #special non-special ids: draw its rank k among them,
    # then step over each special id at or below it (the k-th non-special id), with no (V,) table allocated
    replacement = draws.rank.clone()
    for s in special:  # ascending
        replacement += replacement >= s
    masked = input_ids.clone()
    masked[to_mask] = mask_token_id
    masked[to_random] = replacement[to_random].to(input_ids.dtype)
    labels = torch.where(chosen, input_ids.long(), IGNORE_INDEX)  # int64: -100 would wrap to 156 in uint8
    return masked, labels


def _check_mask_tokens_args(
    input_ids: Tensor,
    vocab_size: int,
    mask_token_id: int,
    special_token_ids: Sequence[int],
    attention_mask: Tensor | None,
    mlm_probability: float,
) -> None:
    """Raise ``ValueError`` naming the argument of :func:`mask_tokens` that is malformed."""
    if not isinstance(input_ids, Tensor) or input_ids.is_floating_point() or input_ids.dtype == torch.bool:
        got = input_ids.dtype if isinstance(input_ids, Tensor) else type(input_ids).__name__
        raise ValueError(f"input_ids must be an integer tensor, got {got}")
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or not 1 <= vocab_size < 2**31:
        raise ValueError(f"vocab_size must be an integer in [1, 2**31) (an embedding table's rows), got {vocab_size!r}")
    if input_ids.numel() and (int(input_ids.min()) < 0 or int(input_ids.max()) >= vocab_size):
        lo, hi = int(input_ids.min()), int(input_ids.max())
        raise ValueError(f"input_ids must lie in [0, vocab_size={vocab_size}), got values in [{lo}, {hi}]")
    ids = [mask_token_id, *special_token_ids]
    if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < vocab_size for i in ids):
        raise ValueError(
            f"mask_token_id and special_token_ids must be ints in [0, vocab_size={vocab_size}), "
            f"got mask_token_id={mask_token_id!r}, special_token_ids={list(special_token_ids)!r}"
        )
    if len(set(ids)) >= vocab_size:
        raise ValueError(f"the vocabulary (vocab_size={vocab_size}) must hold a non-special token to draw at random")
    if attention_mask is not None and (
        not isinstance(attention_mask, Tensor) or attention_mask.shape != input_ids.shape
    ):
        got = tuple(attention_mask.shape) if isinstance(attention_mask, Tensor) else type(attention_mask).__name__
        raise ValueError(f"attention_mask must have the shape of input_ids {tuple(input_ids.shape)}, got {got}")
    if not isinstance(mlm_probability, (int, float)) or not 0.0 <= mlm_probability <= 1.0:
        raise ValueError(f"mlm_probability must be a probability in [0, 1], got {mlm_probability!r}")


Sentence = TypeVar("Sentence")


def next_sentence_pairs(
    documents: Sequence[Sequence[Sentence]],
    *,
    rng: random.Random | None = None,
    seed: int = 0,
) -> list[tuple[Sentence, Sentence, int]]:
    """BERT's next-sentence-prediction data: one (A, B, label) example per consecutive sentence pair.

    For each sentence A followed by B in a document, with probability 1/2 the example is (A, B, 0),
    "B is the next sentence" (label 0, the Hugging Face convention ``IsNext``), and otherwise
    (A, R, 1) with R a random sentence of another, randomly chosen document (``NotNext``).
    Sentences may be strings, token-id lists or anything else: they are passed through untouched.

    Args:
        documents: a sequence of documents, each a sequence of sentences; at least two documents
            must be non-empty, so that a random sentence can come from another one.
        rng: the random source; when omitted, ``random.Random(seed)``, so the same seed gives the same pairs.
        seed: the seed used when ``rng`` is omitted.

    Returns:
        The examples in document order.
    """
    if not isinstance(documents, Sequence) or isinstance(documents, (str, bytes)):
        raise ValueError(f"documents must be a sequence of documents, got {type(documents).__name__}")
    for k, doc in enumerate(documents):
        if not isinstance(doc, Sequence) or isinstance(doc, (str, bytes)):
            raise ValueError(
                f"documents[{k}] must be a sequence of sentences, got {type(doc).__name__} "
                "(wrap a single document's sentences in a list of documents)"
            )
    non_empty = [k for k, doc in enumerate(documents) if len(doc) > 0]
    if len(non_empty) < 2:
        raise ValueError(f"next_sentence_pairs needs >= 2 non-empty documents for random pairs, got {len(non_empty)}")
    if rng is None:
        rng = random.Random(seed)
    pairs: list[tuple[Sentence, Sentence, int]] = []
    for k, doc in enumerate(documents):
        others = [j for j in non_empty if j != k]
        for a, b in itertools.pairwise(doc):
            if rng.random() < 0.5:
                pairs.append((a, b, 0))
            else:
                other = documents[rng.choice(others)]
                pairs.append((a, other[rng.randrange(len(other))], 1))
    return pairs


PRETRAINING_TERMS: dict[str, dict[str, float]] = {
    "gpt": {"lm": 1.0},
    "elmo": {"forward": 0.5, "backward": 0.5},  # ELMo's loss is the mean of its two directions
    "bert": {"mlm": 1.0, "nsp": 1.0},  # BERT's pre-training loss is the sum of both tasks
    "mlm": {"mlm": 1.0},  # BERT's masked LM alone: the paper's "No NSP" ablation (Table 5)
    "nsp": {"nsp": 1.0},  # next-sentence prediction alone: can NSP be learned at all? (chapter 08's diagnosis)
}
"""Each objective's pre-training loss as weighted terms: sum_k w_k * (mean loss of term k over its targets).
An objective is named after the model that pre-trains with it, or (``mlm``, ``nsp``) after its one task."""


def pretraining_target_counts(model_name: str, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Number of targets of each loss term of objective ``model_name`` in ``batch`` (float tensors, for all-reduce).

    GPT's position t predicts t + 1, ELMo's backward LM predicts t - 1, BERT's targets are the masked
    positions plus one next-sentence label per pair.
    """
    counted = batch["labels"] != IGNORE_INDEX  # (B, T)
    if "label_weights" in batch:  # weighted targets (a designed recipe): each counts its weight times
        counted = batch["label_weights"] * counted  # (B, T) integer weights, 0 where nothing is scored
    if model_name == "gpt":
        counts = {"lm": counted[:, 1:].sum()}
    elif model_name == "elmo":
        counts = {"forward": counted[:, 1:].sum(), "backward": counted[:, :-1].sum()}
    else:
        counts = {"mlm": counted.sum(), "nsp": (batch["next_sentence_label"] != IGNORE_INDEX).sum()}
    return {k: v.float() for k, v in counts.items() if k in PRETRAINING_TERMS[model_name]}


def pretraining_loss_sums(model_name: str, model: Any, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Each loss term of ``model_name`` summed (not averaged) over the targets of ``batch``.

    The model is called without labels, so it computes no mean of its own; ``batch`` is a collator's
    dict (``labels`` unshifted for GPT and ELMo, masked-LM labels and NSP labels for BERT).
    """
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "next_sentence_label", "label_weights")}
    out = model(**inputs)
    labels = batch["labels"]
    if model_name == "gpt":
        return {"lm": causal_lm_loss(out.logits, labels, reduction="sum")}
    if model_name == "elmo":
        return {
            "forward": causal_lm_loss(out.forward_logits, labels, reduction="sum"),
            "backward": backward_lm_loss(out.backward_logits, labels, reduction="sum"),
        }
    sums: dict[str, Tensor] = {}
    if "mlm" not in PRETRAINING_TERMS[model_name]:
        pass
    elif "label_weights" in batch:  # sum_i w_i CE_i over the masked positions, w_i from the data (label_weights)
        each = F.cross_entropy(
            out.prediction_logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX, reduction="none"
        )  # (B T,)
        sums["mlm"] = (each * batch["label_weights"].flatten()).sum()
    else:
        sums["mlm"] = masked_lm_loss(out.prediction_logits.float(), labels, reduction="sum")
    if "nsp" in PRETRAINING_TERMS[model_name]:
        sums["nsp"] = next_sentence_loss(out.seq_relationship_logits, batch["next_sentence_label"], reduction="sum")
    return sums
