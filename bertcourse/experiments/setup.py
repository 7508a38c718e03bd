"""The same budget for ELMo, GPT and BERT: one corpus, one tokenizer, matched sizes, one schedule.

A :class:`Preset` fixes everything the three models share: the toy-language corpus and its knobs, the
WordPiece vocabulary, the width and depth, the batch size, the number of optimizer steps and the peak
learning rate. :func:`preset_configs` sizes the three models through the registry's
``same_budget_configs`` so that their parameter counts agree (ELMo's LSTM cell size ``d_hidden`` is
solved for), and :meth:`PretrainingCorpus.data` gives every model the same sequences
"[CLS] A [SEP] B [SEP]", so all see the same tokens:

* ELMo and GPT: the sequences as plain text, next-token (and previous-token) LM;
* BERT: the same sequences with segment ids and next-sentence labels, masked (80/10/10).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bertcourse.data.pretraining import PretrainData, tokenize_documents
from bertcourse.data.toylang import ToyLanguage
from bertcourse.registry import MODELS, VARIANTS, ModelConfig, ModelName, Variant, same_budget_configs
from bertcourse.tokenizers import WordPieceTokenizer

__all__ = [
    "DATA_SEED",
    "EVAL_SEED",
    "MODELS",
    "PRESETS",
    "ROWS",
    "TASKS",
    "Preset",
    "PretrainingCorpus",
    "Row",
    "language",
    "preset_configs",
    "pretraining_corpus",
    "variant_config",
]
TASKS: tuple[str, ...] = ("sentiment", "acceptability", "pos", "continuation")
"""The fine-tuning tasks: the toy language's ``sentiment_task``, ``acceptability_task``, ``pos_task`` and
``continuation_task`` (a sentence pair in NSP's format, "does B continue A?", decided by subject-verb agreement
across the two segments).
(``nsp_task`` is no row: on this language NSP is a relation between the two sentences with no first-order part,
which no model learned, in pre-training or fine-tuning; ``benchmarks/nsp_diagnosis.py`` and chapter 08 measure it.)"""

Use = Literal["finetune", "features", "bilstm", "features-bilstm"]


@dataclass(frozen=True)
class Row:
    """One row of the head-to-head: the pre-training recipe ``variant`` (a key of ``registry.VARIANTS``)
    and how fine-tuning ``use``-s it: ``finetune`` (every weight trains under the task head), ``features``
    (frozen network, a learned scalar mix of its layers under the head: ELMo's own recipe) or ``bilstm``
    (a fresh BiLSTM between the fine-tuned network and the head: the paper's "LTR & No NSP + BiLSTM") or
    ``features-bilstm`` (the frozen network's scalar mix read by a fresh BiLSTM task model under the head:
    ELMo's recipe with a task model of its own, as the ELMo paper used, instead of one linear layer).
    ``main`` rows are also fine-tuned from random initialisation (their pre-training gain)."""

    variant: str
    use: Use = "finetune"
    main: bool = False


ROWS: dict[str, Row] = {
    "elmo": Row("elmo", "features", main=True),
    "gpt": Row("gpt", main=True),
    "bert": Row("bert", main=True),
    "bert-no-nsp": Row("bert-no-nsp"),
    "bert-mask15": Row("bert-mask15"),
    "bert-post-ln": Row("bert-post-ln"),
    "ltr-bilstm": Row("gpt", "bilstm"),
    "elmo-finetuned": Row("elmo"),
    "elmo-bilstm": Row("elmo", "features-bilstm"),
    "bert-joint": Row("bert-joint"),
}
"""Every row the experiment can run; a preset's ``rows`` chooses. Rows of one variant share its pre-training."""


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
    rows: tuple[str, ...] = MODELS  # keys of ROWS: what is compared


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        name="tiny", n_docs=400, lexicon=4, p_indefinite=0.5, p_coordination=0.3, vocab_size=320,
        d_model=64, n_layers=2, n_heads=2, d_ff=256, max_len=64, dropout=0.1,
        pretrain_steps=1000, batch_size=32, lr=3e-3, mlm_probability=0.4,
        cloze_items=100, tasks=("pos",), finetune_train=256, finetune_test=200,
        finetune_steps=40, finetune_lr=1e-3, finetune_batch_size=32, cost_lengths=(16, 32, 64),
        rows=("gpt", "bert"),
    ),
    "course": Preset(
        name="course", n_docs=800, lexicon=4, p_indefinite=0.5, p_coordination=0.3, vocab_size=320,
        d_model=64, n_layers=2, n_heads=2, d_ff=256, max_len=128, dropout=0.1,
        pretrain_steps=2500, batch_size=32, lr=3e-3, mlm_probability=0.4,
        cloze_items=200, tasks=TASKS, finetune_train=256, finetune_test=300,
        finetune_steps=150, finetune_lr=1e-3, finetune_batch_size=32, cost_lengths=(16, 32, 64, 128),
        rows=tuple(ROWS),
    ),
    "full": Preset(
        name="full", n_docs=20000, lexicon=None, p_indefinite=0.5, p_coordination=0.3, vocab_size=1024,
        d_model=256, n_layers=4, n_heads=4, d_ff=1024, max_len=512, dropout=0.1,
        pretrain_steps=20000, batch_size=128, lr=1e-3, mlm_probability=0.15,
        cloze_items=1000, tasks=TASKS, finetune_train=2048, finetune_test=1000,
        finetune_steps=1000, finetune_lr=3e-4, finetune_batch_size=64, cost_lengths=(16, 32, 64, 128, 256, 512),
        rows=tuple(ROWS),
    ),
    "label-budget": Preset(
        name="label-budget", n_docs=500, lexicon=None, p_indefinite=0.5, p_coordination=0.3, vocab_size=700,
        d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=64, dropout=0.0,
        pretrain_steps=200, batch_size=64, lr=1e-2, mlm_probability=0.15,
        cloze_items=100, tasks=("pos",), finetune_train=1024, finetune_test=400,
        finetune_steps=128, finetune_lr=1e-2, finetune_batch_size=16, cost_lengths=(16, 32, 64),
        rows=MODELS,
    ),
}  # fmt: skip
"""``tiny``: the test and chapter 08's live run (GPT and BERT, one seed: 30 s on 2 CPU cores with ``--jobs auto``);
``course``: the committed results of chapter 08 (every row, 5 seeds; see the README for its time on 2 CPU cores);
``full``: for a GPU. ``course`` pre-trains for 2,500 steps because BERT's masked LM passes GPT on the cloze
cues only after about 1,250 (chapter 08's learning curves); ``bert-joint`` takes 5 times the steps.
``label-budget``: chapter 07's stage 1 (ELMo, GPT and BERT pre-trained in 15 s on one thread of a busy 2-core
CPU, before a grid of fine-tuning runs; one seed of ``compare``: 24 s): the whole lexicon, so that 16 labelled
sentences leave a third of the test words unseen, one block of width 32 without dropout, 200 steps of 64
pairs, BERT masking the paper's 15%. Its ``pos`` fields (1,024 labelled and 400 test sentences) are the
chapter's; chapter 07 fine-tunes them with ``chapters.label_budget``, ``compare`` with its ``finetune_*``
fields. At this size every model's cloze stays near chance (one seed, 100 items per cue side: 0.43 to 0.57),
so the preset serves fine-tuning, not chapter 08's cues."""

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
class PretrainingCorpus:
    """The shared corpus: ``documents`` (lists of sentences), the WordPiece ``tokenizer`` trained on it,
    and ``ids``, every sentence as token ids."""

    documents: list[list[str]]
    tokenizer: WordPieceTokenizer
    ids: list[list[list[int]]]

    def data(self, name: str, preset: Preset, seed: int) -> PretrainData:
        """What variant ``name`` (``elmo``, ``gpt``, ``bert`` or another key of ``registry.VARIANTS``) reads
        in run ``seed``: sentence pairs "[CLS] A [SEP] B [SEP]" of at most ``preset.max_len`` tokens, the
        same token ids for every model (BERT masks them, at the variant's rate or the preset's, and
        predicts the pair's label); the order, the pairs and the masks are functions of (seed, epoch, index)."""
        variant = _variant(name)
        p = variant.mlm_probability if variant.mlm_probability is not None else preset.mlm_probability
        weights = {self.tokenizer.convert_tokens_to_ids([w])[0]: k for w, k in variant.target_words.items()}
        if self.tokenizer.unk_token_id in weights:
            raise ValueError(f"target_words of {name!r} must be tokens of the vocabulary, got {variant.target_words}")
        return PretrainData(
            variant.family, self.ids, self.tokenizer, preset.max_len, seed, p, "pairs", variant.mask_adjacent, weights
        )


def pretraining_corpus(preset: Preset) -> PretrainingCorpus:
    """The corpus of ``preset`` (seed ``DATA_SEED``) and the WordPiece tokenizer trained on it."""
    documents = [d.texts for d in language(preset, DATA_SEED).corpus(preset.n_docs)]
    tokenizer = WordPieceTokenizer.train([s for d in documents for s in d], preset.vocab_size)
    return PretrainingCorpus(documents, tokenizer, tokenize_documents(documents, tokenizer))


def preset_configs(preset: Preset, vocab_size: int) -> dict[ModelName, ModelConfig]:
    """The three models' configs at ``preset``'s sizes, with matched parameter counts (``same_budget_configs``)."""
    return same_budget_configs(
        vocab_size, preset.d_model, preset.n_layers, preset.n_heads, preset.d_ff, preset.max_len, preset.dropout
    )


def _variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise ValueError(f"name must be one of {tuple(VARIANTS)}, got {name!r}")
    return VARIANTS[name]


def variant_config(preset: Preset, vocab_size: int, name: str) -> ModelConfig:
    """The config of variant ``name`` (``registry.VARIANTS``) at ``preset``'s sizes: its family's
    same-budget config (``preset_configs``) with the variant's changes."""
    variant = _variant(name)
    return variant.configure(preset_configs(preset, vocab_size)[variant.family])
