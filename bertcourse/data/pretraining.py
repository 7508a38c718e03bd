"""Pre-training data whose random choices depend on the example, never on the process that draws it.

Under data parallelism each of W processes sees B / W examples of every global batch of B. For the
parameters of a W-process run to equal those of a 1-process run, every random choice must be a
function of (seed, epoch, example index) alone:

- the order of the examples: :class:`torch.utils.data.DistributedSampler`, a permutation seeded by
  ``seed + epoch``; process r takes positions r, r + W, r + 2W, ... of it, so step k of all processes
  together covers positions [k B, (k + 1) B) of the permutation, whatever W is;
- BERT's next-sentence pairs: ``objectives.next_sentence_pairs`` over the whole corpus, seeded by
  (seed, epoch) and computed identically by every process;
- BERT's masked positions: ``objectives.mask_tokens``'s draws from a generator seeded by (seed, epoch, index)
  (``objectives.mask_sequences`` makes a batch of them at once).

Two layouts. ``"pairs"``: ``[CLS] A [SEP] B [SEP]`` of consecutive (or random) sentences, cut to
``seq_len`` and padded; BERT masks them and predicts the pair's label, while ELMo and GPT read the very
same token ids as plain text (the head-to-head experiment gives all three models the same tokens this
way). ``"packed"`` (GPT and ELMo only): every document's ids (``[CLS] ... [SEP]``) are concatenated into
one stream that is cut into blocks of ``seq_len`` tokens, so no block is padded (the command line's
default for the two LMs).

:meth:`PretrainData.batches` turns the examples into a step-indexed batch source for the engine
(``bertcourse.engine.train``): ``batch_at(step)`` is a function of the step alone, which is what makes a
resumed run equal an uninterrupted one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor
from torch.utils.data import DistributedSampler

from bertcourse.data.collators import LMCollator, PadCollator
from bertcourse.objectives import IGNORE_INDEX, mask_sequences, next_sentence_pairs
from bertcourse.tokenizers import WordPieceTokenizer

__all__ = ["Layout", "PretrainBatches", "PretrainData", "derive_seed", "split_documents", "tokenize_documents"]

Layout = Literal["pairs", "packed"]


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts, e.g. ``derive_seed(seed, "mask", epoch, index)``; equal in every process.

    (Python's ``hash`` of a string changes from process to process, so a cryptographic hash is used.)
    """
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def split_documents(documents: Sequence[Sequence[str]], eval_fraction: float) -> tuple[list, list]:
    """Hold out every k-th document (k = round(1 / eval_fraction)) for evaluation; at least two each."""
    if not 0.0 < eval_fraction < 0.5:
        raise ValueError(f"eval_fraction must lie in (0, 0.5), got {eval_fraction}")
    documents = [list(d) for d in documents if len(d) > 0]
    k = max(2, round(1.0 / eval_fraction))
    held_out = [d for i, d in enumerate(documents) if i % k == k - 1]
    kept = [d for i, d in enumerate(documents) if i % k != k - 1]
    if len(held_out) < 2 or len(kept) < 2:
        raise ValueError(
            f"the corpus has {len(documents)} non-empty documents: too few to hold out {eval_fraction:.0%} "
            "for evaluation (need at least two on each side); use a larger corpus"
        )
    return kept, held_out


def tokenize_documents(documents: Sequence[Sequence[str]], tokenizer: WordPieceTokenizer) -> list[list[list[int]]]:
    """Each sentence of each document as token ids without special tokens."""
    return [[tokenizer.encode(s, add_special_tokens=False) for s in doc] for doc in documents]


def _truncate_pair(a: list[int], b: list[int], max_tokens: int) -> tuple[list[int], list[int]]:
    """Drop tokens from the end of the longer segment until both fit (BERT's ``_truncate_seq_pair``)."""
    a, b = list(a), list(b)
    while len(a) + len(b) > max_tokens:
        (a if len(a) > len(b) else b).pop()
    return a, b


@dataclass
class PretrainData:
    """The examples of one corpus split for one model, and the batches each process reads.

    Args:
        model: ``"bert"`` reads masked sentence pairs with their next-sentence labels; ``"elmo"`` and
            ``"gpt"`` read plain text, in ``layout``.
        documents: documents of sentences, each sentence as token ids without special tokens.
        tokenizer: provides the special ids and the vocabulary size.
        seq_len: tokens per example, special tokens included.
        seed: the run's seed; every random choice derives from it.
        mlm_probability: BERT's share of masked positions.
        layout: ``"pairs"`` or ``"packed"`` (module docstring); default ``"pairs"`` for BERT, ``"packed"``
            for the two LMs.
        mask_adjacent: BERT only; ``False`` never masks two neighbours (of two masked neighbours the right
            one is restored), so every masked token's neighbours are visible (a designed recipe).
        target_weights: BERT only; token id -> integer weight of that token as a masked-LM target (1 for
            the others), given to the loss as ``label_weights`` (a designed recipe).
    """

    model: str
    documents: list[list[list[int]]]
    tokenizer: WordPieceTokenizer
    seq_len: int
    seed: int
    mlm_probability: float = 0.15
    layout: Layout | None = None
    mask_adjacent: bool = True
    target_weights: Mapping[int, int] | None = None

    def __post_init__(self) -> None:
        if self.model not in ("elmo", "gpt", "bert"):
            raise ValueError(f"model must be 'elmo', 'gpt' or 'bert', got {self.model!r}")
        if self.seq_len < 8:
            raise ValueError(f"seq_len must be >= 8, got {self.seq_len}")
        if self.layout is None:
            self.layout = "pairs" if self.model == "bert" else "packed"
        if self.layout not in ("pairs", "packed") or (self.model == "bert" and self.layout != "pairs"):
            raise ValueError(f"layout must be 'pairs' (any model) or 'packed' (elmo, gpt), got {self.layout!r}")
        tok = self.tokenizer
        self._order_key: tuple[int, int, int] | None = None
        self._order: list[int] = []
        self.collate = PadCollator(tok) if self.model == "bert" else LMCollator(tok)
        self._blocks: list[list[int]] = []
        self._pairs_epoch: int | None = None
        self._pairs: list[tuple[list[int], list[int], int]] = []
        self._weight_table: Tensor | None = None  # (V,): each token's weight as a masked-LM target
        if self.target_weights:
            self._weight_table = torch.ones(tok.vocab_size, dtype=torch.long)
            for token, weight in self.target_weights.items():
                self._weight_table[token] = weight
        if self.layout == "pairs":
            self._length = len(self._nsp_pairs(0))
        else:
            stream = []  # every document as [CLS] s_1 s_2 ... [SEP], one after the other
            for doc in self.documents:
                stream += [tok.cls_token_id, *(t for sentence in doc for t in sentence), tok.sep_token_id]
            n = len(stream) // self.seq_len
            self._blocks = [stream[i * self.seq_len : (i + 1) * self.seq_len] for i in range(n)]  # drop the rest
            self._length = n
        if self._length == 0:
            raise ValueError(f"the corpus yields no example of seq_len={self.seq_len} for {self.model}")

    def __len__(self) -> int:
        """Examples per epoch: packed blocks or sentence pairs."""
        return self._length

    def _nsp_pairs(self, epoch: int) -> list[tuple[list[int], list[int], int]]:
        """This epoch's (A, B, is-random) pairs, a function of (seed, epoch) only; cached per epoch."""
        if self._pairs_epoch != epoch:
            self._pairs = next_sentence_pairs(self.documents, seed=derive_seed(self.seed, "nsp", epoch))
            self._pairs_epoch = epoch
        return self._pairs

    def example(self, index: int, epoch: int) -> dict[str, list[int] | int]:
        """Example ``index`` of ``epoch`` as a feature dict (lists of ints), ready for ``self.collate``."""
        if self.layout == "packed":
            return {"input_ids": self._blocks[index]}
        if self.model != "bert":
            return {"input_ids": self._pair_ids(index, epoch)[0]}
        batch = self._bert_batch([index], epoch)  # one row, no padding
        return {k: v[0].tolist() if v.dim() == 2 else int(v[0]) for k, v in batch.items() if k != "attention_mask"}

    def _pair_ids(self, index: int, epoch: int) -> tuple[list[int], int, int]:
        """[CLS] A [SEP] B [SEP] of pair ``index`` of ``epoch``, the length of A and its NSP label."""
        tok = self.tokenizer
        a, b, label = self._nsp_pairs(epoch)[index]
        a, b = _truncate_pair(a, b, self.seq_len - 3)
        return [tok.cls_token_id, *a, tok.sep_token_id, *b, tok.sep_token_id], len(a), label

    def _bert_batch(self, indices: Sequence[int], epoch: int) -> dict[str, Tensor]:
        """BERT's examples ``indices`` of ``epoch``, masked and padded: what ``self.collate`` makes of them.

        Example i's masking draws come from its own generator, seeded by (seed, epoch, i), so they do not
        depend on the batch or the process it lands in; ``objectives.mask_sequences`` makes them exactly as
        ``mask_tokens`` does for the one example, with the arithmetic done once per batch.
        """
        tok = self.tokenizer
        pairs = [self._pair_ids(i, epoch) for i in indices]
        generators = [torch.Generator().manual_seed(derive_seed(self.seed, "mask", epoch, i)) for i in indices]
        masked, labels, attention_mask = mask_sequences(
            [ids for ids, _, _ in pairs],
            generators,
            vocab_size=tok.vocab_size,
            mask_token_id=tok.mask_token_id,
            pad_token_id=tok.pad_token_id,
            special_token_ids=tok.special_token_ids,
            mlm_probability=self.mlm_probability,
            at_least_one=True,  # as BERT's data script: every pair has a masked-LM target
        )  # each (B, T_max)
        if not self.mask_adjacent:  # restore every masked token whose left neighbour is masked too
            hit = labels != IGNORE_INDEX  # (B, T_max)
            restore = torch.zeros_like(hit)
            restore[:, 1:] = hit[:, 1:] & hit[:, :-1]
            masked = torch.where(restore, labels, masked)  # a target's label is its original token
            labels = labels.masked_fill(restore, IGNORE_INDEX)
        positions = torch.arange(masked.shape[1])  # (T_max,)
        first_b = torch.tensor([n_a + 2 for _, n_a, _ in pairs])[:, None]  # (B, 1): [CLS] A [SEP] come first
        batch = {
            "input_ids": masked,
            "token_type_ids": ((positions >= first_b) & attention_mask.bool()).long(),  # (B, T_max)
            "labels": labels,
            "next_sentence_label": torch.tensor([label for _, _, label in pairs]),  # (B,)
        }
        if self._weight_table is not None:
            batch["label_weights"] = torch.where(labels == IGNORE_INDEX, 0, self._weight_table[labels.clamp(min=0)])
        batch["attention_mask"] = attention_mask
        return batch

    def steps_per_epoch(self, batch_size: int) -> int:
        """Global batches per epoch (the last, incomplete one is dropped)."""
        return len(self) // batch_size

    def batch(self, epoch: int, step_in_epoch: int, batch_size: int, rank: int, world_size: int) -> dict[str, Tensor]:
        """Process ``rank``'s share (``batch_size // world_size`` examples) of global batch ``step_in_epoch``."""
        if batch_size % world_size != 0:
            raise ValueError(f"--batch-size {batch_size} must be divisible by the number of processes {world_size}")
        if not 0 <= step_in_epoch < self.steps_per_epoch(batch_size):
            raise ValueError(f"step_in_epoch must lie in [0, {self.steps_per_epoch(batch_size)}), got {step_in_epoch}")
        key = (epoch, rank, world_size)
        if self._order_key != key:
            sampler = DistributedSampler(range(len(self)), world_size, rank, seed=self.seed, drop_last=True)
            sampler.set_epoch(epoch)
            self._order, self._order_key = list(sampler), key  # positions rank, rank + W, ... of the permutation
        local = self._order
        per_rank = batch_size // world_size
        return self._batch_of(local[step_in_epoch * per_rank : (step_in_epoch + 1) * per_rank], epoch)

    def _batch_of(self, indices: Sequence[int], epoch: int) -> dict[str, Tensor]:
        """Examples ``indices`` of ``epoch`` as one padded batch (BERT's masked all at once)."""
        if self.model == "bert":
            return self._bert_batch(indices, epoch)
        return self.collate([self.example(i, epoch) for i in indices])

    def batches(self, batch_size: int, rank: int = 0, world_size: int = 1) -> PretrainBatches:
        """The step-indexed batch source of this process for the engine (``batch_at(step)``, 1-based)."""
        if self.steps_per_epoch(batch_size) == 0:
            raise ValueError(f"batch_size {batch_size} exceeds the {len(self)} examples of one epoch")
        return PretrainBatches(self, batch_size, rank, world_size)

    def eval_batches(self, batch_size: int, rank: int, world_size: int, max_examples: int) -> list[dict[str, Tensor]]:
        """Fixed evaluation batches (epoch 0's draws, the first ``max_examples``), split across processes."""
        indices = list(range(min(len(self), max_examples)))[rank::world_size]
        per_rank = max(1, batch_size // world_size)
        chunks = [indices[i : i + per_rank] for i in range(0, len(indices), per_rank)]
        return [self._batch_of(chunk, 0) for chunk in chunks]


@dataclass
class PretrainBatches:
    """Process ``rank``'s batch of each global step: step s (1-based) is batch (s - 1) mod E of epoch
    (s - 1) // E, with E batches per epoch; a function of the step alone (see the module docstring)."""

    data: PretrainData
    batch_size: int
    rank: int = 0
    world_size: int = 1

    def position(self, step: int) -> tuple[int, int]:
        """(epoch, batch within the epoch) of global step ``step``."""
        return divmod(step - 1, self.data.steps_per_epoch(self.batch_size))

    def batch_at(self, step: int) -> dict[str, Tensor]:
        """This process's share of global batch ``step``."""
        epoch, in_epoch = self.position(step)
        return self.data.batch(epoch, in_epoch, self.batch_size, self.rank, self.world_size)
