"""The same budget for ELMo, GPT and BERT: one corpus, one tokenizer, matched sizes, one schedule.

A :class:`Preset` fixes everything the three models share: the toy-language corpus and its knobs, the
WordPiece vocabulary, the width and depth, the batch size, the number of optimizer steps and the peak
learning rate. :func:`same_budget_configs` sizes the three models so that their parameter counts agree
(ELMo's LSTM cell size ``d_hidden`` is solved for), and :func:`pretraining_data` turns the corpus into
one list of sequences "[CLS] A [SEP] B [SEP]" that every model reads, so all see the same tokens:

* ELMo and GPT: the sequences as plain text (``LMCollator``), next-token (and previous-token) LM;
* BERT: the same sequences with segment ids and next-sentence labels, masked by ``MLMCollator``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch.utils.data import DataLoader

from bertcourse.bert import BertConfig, BertForPreTraining
from bertcourse.data.collators import LMCollator, MLMCollator, NSPDataset, TextDataset
from bertcourse.data.toylang import ToyLanguage
from bertcourse.elmo import ELMo, ELMoConfig
from bertcourse.gpt import GPT, GPTConfig
from bertcourse.tokenizers import WordPieceTokenizer

__all__ = [
    "DATA_SEED",
    "EVAL_SEED",
    "MODELS",
    "PRESETS",
    "TASKS",
    "ModelName",
    "Preset",
    "PretrainingData",
    "build_model",
    "language",
    "pretraining_data",
    "same_budget_configs",
]

ModelName = Literal["elmo", "gpt", "bert"]
MODELS: tuple[ModelName, ...] = ("elmo", "gpt", "bert")
TASKS: tuple[str, ...] = ("sentiment", "acceptability", "pos", "nsp")
"""The fine-tuning tasks: the toy language's ``sentiment_task``, ``acceptability_task``, ``pos_task``, ``nsp_task``."""


@dataclass(frozen=True)
class Preset:
    """Everything the three models share in one run of the experiment."""

    name: str
    # data: the toy language and its experiment knobs (see bertcourse.data.toylang)
    n_docs: int  # pre-training documents of 3-6 sentences
    lexicon: int | None  # words kept per class; small = each article-noun pair seen often
    p_indefinite: float  # share of singular noun phrases with "a"/"an"
    p_coordination: float  # share of copula sentences with "ADJ and/but ADJ" (the both-sides cue)
    vocab_size: int  # WordPiece vocabulary, large enough that every word is one token
    # models: the Transformers' shared sizes; ELMo's d_hidden is solved for by same_budget_configs
    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int
    max_len: int
    dropout: float
    # pre-training: the same steps, batch, schedule (warm-up then cosine) and peak lr for every model
    pretrain_steps: int
    batch_size: int
    lr: float
    mlm_probability: float  # BERT's share of masked tokens: 0.15 in the paper (see PRESETS)
    # evaluation
    cloze_items: int  # items per cue side
    tasks: tuple[str, ...]
    finetune_train: int  # labelled training examples per task
    finetune_test: int
    finetune_steps: int
    finetune_lr: float
    finetune_batch_size: int
    cost_lengths: tuple[int, ...]  # sequence lengths of the forward-time measurement


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        name="tiny", n_docs=400, lexicon=4, p_indefinite=0.5, p_coordination=0.3, vocab_size=320,
        d_model=64, n_layers=2, n_heads=2, d_ff=256, max_len=64, dropout=0.1,
        pretrain_steps=300, batch_size=32, lr=3e-3, mlm_probability=0.4,
        cloze_items=100, tasks=("pos",), finetune_train=256, finetune_test=200,
        finetune_steps=40, finetune_lr=1e-3, finetune_batch_size=32, cost_lengths=(16, 32, 64),
    ),
    "course": Preset(
        name="course", n_docs=800, lexicon=4, p_indefinite=0.5, p_coordination=0.3, vocab_size=320,
        d_model=64, n_layers=2, n_heads=2, d_ff=256, max_len=128, dropout=0.1,
        pretrain_steps=2500, batch_size=32, lr=3e-3, mlm_probability=0.4,
        cloze_items=200, tasks=TASKS, finetune_train=256, finetune_test=300,
        finetune_steps=150, finetune_lr=1e-3, finetune_batch_size=32, cost_lengths=(16, 32, 64, 128),
    ),
    "full": Preset(
        name="full", n_docs=20000, lexicon=None, p_indefinite=0.5, p_coordination=0.3, vocab_size=1024,
        d_model=256, n_layers=4, n_heads=4, d_ff=1024, max_len=512, dropout=0.1,
        pretrain_steps=20000, batch_size=128, lr=1e-3, mlm_probability=0.15,
        cloze_items=1000, tasks=TASKS, finetune_train=2048, finetune_test=1000,
        finetune_steps=1000, finetune_lr=3e-4, finetune_batch_size=64, cost_lengths=(16, 32, 64, 128, 256, 512),
    ),
}  # fmt: skip
"""``tiny``: the test and chapter 08's live run (one seed: 43 s on 2 CPU cores with ``--jobs auto``, 68 s in one
process); ``course``: the committed results of chapter 08 (3 seeds: about 17 minutes on 2 CPU cores);
``full``: for a GPU. ``course`` pre-trains for 2,500 steps because BERT's masked LM stays at chance on every
cloze cue for its first 500 (GPT and ELMo are near perfect by then); see chapter 08's learning curves."""

DATA_SEED = 0
"""Seed of the pre-training corpus; the experiment's seeds vary initialisation, data order and masking."""
EVAL_SEED = 10_000
"""Seed of the evaluation items (cloze and fine-tuning test sets), distinct from every training stream."""


def language(preset: Preset, seed: int) -> ToyLanguage:
    """The preset's toy language with generator seed ``seed``."""
    return ToyLanguage(
        seed, lexicon=preset.lexicon, p_indefinite=preset.p_indefinite, p_coordination=preset.p_coordination
    )


@dataclass
class PretrainingData:
    """The shared corpus as sequences: ``documents`` (lists of sentences), the tokenizer, and both datasets."""

    documents: list[list[str]]
    tokenizer: WordPieceTokenizer
    pairs: NSPDataset  # "[CLS] A [SEP] B [SEP]" with token_type_ids and next_sentence_label (BERT)
    texts: TextDataset  # the same input_ids, without the NSP fields (ELMo, GPT)

    @property
    def n_tokens(self) -> int:
        """Tokens in one pass over the sequences, [CLS] and [SEP] included."""
        return sum(len(f["input_ids"]) for f in self.texts.features)

    def loader(self, model: ModelName, batch_size: int, mlm_probability: float = 0.15, seed: int = 0) -> DataLoader:
        """Shuffled batches for ``model``'s own objective.

        The order comes from a generator of its own seeded with ``seed``, so every model reads the same
        sequences in the same order whatever random numbers its dropout or masking draws; BERT's masking
        follows torch's global seed (``training.train(seed=...)``).
        """
        order = torch.Generator().manual_seed(seed)
        if model == "bert":
            collate = MLMCollator(self.tokenizer, mlm_probability)
            return DataLoader(self.pairs, batch_size, shuffle=True, collate_fn=collate, generator=order)
        return DataLoader(self.texts, batch_size, shuffle=True, collate_fn=LMCollator(self.tokenizer), generator=order)


def pretraining_data(preset: Preset) -> PretrainingData:
    """The corpus, the WordPiece tokenizer trained on it, and the sequences every model pre-trains on."""
    documents = [d.texts for d in language(preset, DATA_SEED).corpus(preset.n_docs)]
    tokenizer = WordPieceTokenizer.train([s for d in documents for s in d], preset.vocab_size)
    pairs = NSPDataset(documents, tokenizer, seed=DATA_SEED, max_length=preset.max_len)
    texts = TextDataset([], tokenizer)
    texts.features = [{"input_ids": f["input_ids"]} for f in pairs.features]  # the very same token ids
    return PretrainingData(documents, tokenizer, pairs, texts)


def _elmo_parameters(vocab_size: int, d_model: int, d_hidden: int, n_layers: int) -> int:
    """ELMo's parameter count: embedding, 2 n_layers projected LSTMs, the softmax, the scalar mix.

    One LSTM with input and projection size d and h cells: W_ih (4h, d), W_hh (4h, d), two biases (4h),
    W_hr (d, h): h (9 d + 8) parameters.
    """
    return (
        vocab_size * d_model + 2 * n_layers * d_hidden * (9 * d_model + 8) + vocab_size * (d_model + 1) + n_layers + 2
    )


def same_budget_configs(
    vocab_size: int,
    d_model: int = 128,
    n_layers: int = 2,
    n_heads: int = 4,
    d_ff: int = 512,
    max_len: int = 256,
    dropout: float = 0.1,
) -> dict[ModelName, ELMoConfig | GPTConfig | BertConfig]:
    """Configs of ELMo, GPT and BERT of one depth and vocabulary, with matched parameter counts.

    GPT and BERT share ``d_model``, ``n_layers``, ``n_heads``, ``d_ff``, ``max_len``; they differ only by
    BERT's segment embeddings, pooler, MLM transform and NSP head. An LSTM layer costs about 9 d^2 per
    direction where a Transformer block costs 12 d^2 for both, and ELMo's softmax is not tied to its
    embedding, so at the same width ELMo would be the largest. Its ``d_model`` is therefore the largest
    multiple of 8 for which some ``d_hidden >= 2 d_model`` (LSTM cells per layer and direction, projected
    down to ``d_model`` as in the paper, which used 4096 -> 512) brings its count within 2% of the mean
    of the other two, with that ``d_hidden``.
    """
    gpt = GPTConfig(vocab_size, d_model, n_layers, n_heads, d_ff, max_len, dropout, dropout)
    bert = BertConfig(vocab_size, d_model, n_layers, n_heads, d_ff, max_len, dropout=dropout, attention_dropout=dropout)
    target = (GPT(gpt).num_parameters() + BertForPreTraining(bert).num_parameters()) / 2
    for width in range(d_model - d_model % 8, 7, -8):
        d_hidden = min(
            range(2 * width, 16 * width),
            key=lambda h, w=width: abs(_elmo_parameters(vocab_size, w, h, n_layers) - target),
        )
        if abs(_elmo_parameters(vocab_size, width, d_hidden, n_layers) - target) <= 0.02 * target:
            elmo = ELMoConfig(vocab_size, width, d_hidden, n_layers, dropout)
            return {"elmo": elmo, "gpt": gpt, "bert": bert}
    raise ValueError(f"no ELMo of width <= d_model={d_model} matches {target:.0f} parameters; raise d_model")


def build_model(name: ModelName, config: ELMoConfig | GPTConfig | BertConfig) -> ELMo | GPT | BertForPreTraining:
    """The pre-training model of ``name``: ``ELMo``, ``GPT`` or ``BertForPreTraining`` (MLM + NSP)."""
    classes = {"elmo": ELMo, "gpt": GPT, "bert": BertForPreTraining}
    if name not in classes:
        raise ValueError(f"name must be one of {MODELS}, got {name!r}")
    return classes[name](config)
