"""The command line of ``python -m bertcourse.pretrain``: flags, model sizes, corpora and tokenizers.

The flags ``--model --steps --batch-size --seed --dropout --out --resume --stop-after`` are the stable
interface (COURSE_DESIGN section 3); the others configure size, data, optimisation and speed.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bertcourse.base import PreTrainedModel
from bertcourse.bert import BertConfig, BertForPreTraining
from bertcourse.data.corpora import load_hf_dataset, load_text, pydoc_documents, split_sentences
from bertcourse.data.toylang import ToyLanguage
from bertcourse.elmo import ELMo, ELMoConfig
from bertcourse.gpt import GPT, GPTConfig
from bertcourse.tokenizers import WordPieceTokenizer, minilm_vocab_path

__all__ = ["SIZES", "PretrainArgs", "build_model", "build_tokenizer", "load_corpus", "parse_args"]

SIZES: dict[str, dict[str, int]] = {
    "tiny": {"d_model": 64, "n_layers": 2, "n_heads": 2, "d_ff": 256, "d_hidden": 128},
    "small": {"d_model": 128, "n_layers": 4, "n_heads": 4, "d_ff": 512, "d_hidden": 256},  # the course defaults
    "base": {"d_model": 768, "n_layers": 12, "n_heads": 12, "d_ff": 3072, "d_hidden": 4096},  # BERT-base, GPT-2
}
"""Model sizes; ``base`` is BERT-base / GPT-2 small (ELMo: its paper's 4096 cells, projected to d_model)."""

IDENTITY = (
    "model", "steps", "batch_size", "seed", "dropout", "corpus", "toy_docs", "tokenizer", "vocab_size",
    "d_model", "n_layers", "n_heads", "d_ff", "d_hidden", "seq_len", "lr", "warmup", "schedule",
    "weight_decay", "max_grad_norm", "mlm_probability", "eval_fraction",
)  # fmt: skip
"""The flags that change a run's result: a checkpoint resumes only under the same values."""


@dataclass
class PretrainArgs:
    """Every flag, after defaults and size presets are resolved (see ``--help`` for each)."""

    model: str
    out: Path
    steps: int = 200
    batch_size: int = 32
    seed: int = 0
    dropout: float = 0.1
    resume: bool = False
    stop_after: int | None = None
    corpus: str = "toy"
    toy_docs: int = 2000
    tokenizer: str = "train"
    vocab_size: int = 2000
    size: str = "small"
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 512
    d_hidden: int = 256
    seq_len: int = 64
    lr: float = 1e-3
    warmup: int = 0
    schedule: str = "cosine"
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    mlm_probability: float = 0.15
    eval_fraction: float = 0.05
    eval_every: int = 0
    eval_examples: int = 256
    checkpoint_every: int = 0
    log_every: int = 10
    bf16: bool = False
    compile: bool = False
    device: str | None = None
    progress: bool | None = None
    peak_tflops: float | None = None

    def identity(self, vocab_sha256: str) -> dict[str, Any]:
        """The flags that define the run, plus the vocabulary's hash: what a checkpoint must match."""
        values = asdict(self)
        return {**{k: values[k] for k in IDENTITY}, "vocab_sha256": vocab_sha256}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bertcourse.pretrain",
        description="Pre-train ELMo, GPT or BERT on one CPU, one GPU, or many under torchrun "
        "(torchrun --nproc_per_node N -m bertcourse.pretrain ...).",
    )
    p.add_argument("--model", required=True, choices=["elmo", "gpt", "bert"])
    p.add_argument("--steps", type=int, default=200, help="optimizer steps of the schedule (default 200)")
    p.add_argument("--batch-size", type=int, default=32, help="GLOBAL batch, split evenly across processes")
    p.add_argument("--seed", type=int, default=0, help="seeds initialisation, data order, masking and dropout")
    p.add_argument("--dropout", type=float, default=0.1, help="dropout everywhere (0 for exact reproducibility)")
    p.add_argument("--out", type=Path, required=True, help="folder for model.safetensors, checkpoint/, log.jsonl")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    p.add_argument("--stop-after", type=int, default=None, help="end after K steps with a checkpoint")
    g = p.add_argument_group("data")
    g.add_argument("--corpus", default="toy", help="'toy', 'pydoc', a .txt file or folder, or 'hf:NAME' (online)")
    g.add_argument("--toy-docs", type=int, default=2000, help="documents of the toy language (default 2000)")
    g.add_argument("--tokenizer", default="train", help="'train' (WordPiece on the corpus), 'minilm', or a vocab.txt")
    g.add_argument("--vocab-size", type=int, default=2000, help="vocabulary size with --tokenizer train")
    g.add_argument("--seq-len", type=int, default=64, help="tokens per example (default 64)")
    g.add_argument("--mlm-probability", type=float, default=0.15, help="BERT's masked share (default 0.15)")
    g.add_argument("--eval-fraction", type=float, default=0.05, help="share of documents held out (default 0.05)")
    m = p.add_argument_group("model size (a preset, then any override)")
    m.add_argument("--size", default="small", choices=sorted(SIZES))
    for name in ("d_model", "n_layers", "n_heads", "d_ff", "d_hidden"):
        m.add_argument("--" + name.replace("_", "-"), type=int, default=None)
    o = p.add_argument_group("optimisation")
    o.add_argument("--lr", type=float, default=1e-3, help="peak learning rate of AdamW (default 1e-3)")
    o.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 10%% of --steps)")
    o.add_argument("--schedule", default="cosine", choices=["cosine", "linear"])
    o.add_argument("--weight-decay", type=float, default=0.01)
    o.add_argument("--max-grad-norm", type=float, default=1.0)
    r = p.add_argument_group("evaluation, logging, speed")
    r.add_argument("--eval-every", type=int, default=None, help="steps between evaluations (default --steps/10)")
    r.add_argument("--eval-examples", type=int, default=256, help="held-out examples per evaluation")
    r.add_argument("--checkpoint-every", type=int, default=0, help="steps between checkpoints (0: at the end only)")
    r.add_argument("--log-every", type=int, default=10, help="steps between log lines")
    r.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA; also works, slowly, on CPU)")
    r.add_argument("--compile", action="store_true", help="torch.compile the model")
    r.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    r.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help="tqdm bar on rank 0")
    r.add_argument("--peak-tflops", type=float, default=None, help="peak bf16 TFLOP/s for MFU on an unlisted GPU")
    return p


def parse_args(argv: Sequence[str] | None = None) -> PretrainArgs:
    """Parse and check the flags; a bad value exits with a message naming its flag (argparse's error)."""
    parser = _parser()
    ns = parser.parse_args(argv)
    values = vars(ns)
    for name, size_value in SIZES[ns.size].items():
        if values[name] is None:
            values[name] = size_value
    values["warmup"] = ns.steps // 10 if ns.warmup is None else ns.warmup
    values["eval_every"] = max(1, ns.steps // 10) if ns.eval_every is None else ns.eval_every
    checks = [
        (ns.steps >= 1, "--steps must be >= 1"),
        (ns.batch_size >= 1, "--batch-size must be >= 1"),
        (ns.seed >= 0, "--seed must be >= 0"),
        (0.0 <= ns.dropout < 1.0, "--dropout must lie in [0, 1)"),
        (ns.stop_after is None or 1 <= ns.stop_after <= ns.steps, "--stop-after must lie in [1, --steps]"),
        (0 <= values["warmup"] <= ns.steps, "--warmup must lie in [0, --steps]"),
        (ns.lr > 0 and ns.weight_decay >= 0 and ns.max_grad_norm > 0, "--lr and --max-grad-norm must be > 0"),
        (values["eval_every"] >= 1 and ns.log_every >= 1, "--eval-every and --log-every must be >= 1"),
        (ns.checkpoint_every >= 0 and ns.eval_examples >= 1, "--checkpoint-every >= 0, --eval-examples >= 1"),
        (ns.seq_len >= 8, "--seq-len must be >= 8"),
        (values["d_model"] % values["n_heads"] == 0, "--d-model must be divisible by --n-heads"),
    ]
    for ok, message in checks:
        if not ok:
            parser.error(message)
    return PretrainArgs(**values)


def load_corpus(args: PretrainArgs) -> list[list[str]]:
    """Documents of sentences from ``--corpus``: the toy language, pydoc, local text, or a HF dataset."""
    if args.corpus == "toy":
        return [doc.texts for doc in ToyLanguage(seed=0).corpus(args.toy_docs)]
    if args.corpus == "pydoc":
        return pydoc_documents()
    if args.corpus.startswith("hf:"):
        texts, _ = load_hf_dataset(args.corpus[3:])
    elif Path(args.corpus).exists():
        texts = load_text(args.corpus)
    else:
        raise ValueError(f"--corpus {args.corpus!r}: not 'toy', 'pydoc', 'hf:NAME' nor an existing file or folder")
    return [split_sentences(t) for t in texts]


def build_tokenizer(args: PretrainArgs, documents: Sequence[Sequence[str]]) -> WordPieceTokenizer:
    """``--tokenizer``: WordPiece trained on the training documents, MiniLM's uncased vocab, or a vocab file."""
    if args.tokenizer == "train":
        return WordPieceTokenizer.train([s for doc in documents for s in doc], args.vocab_size)
    if args.tokenizer == "minilm":
        return WordPieceTokenizer.from_vocab_file(minilm_vocab_path())
    if Path(args.tokenizer).is_file():
        return WordPieceTokenizer.from_vocab_file(args.tokenizer)
    raise ValueError(f"--tokenizer {args.tokenizer!r}: not 'train', 'minilm' nor an existing vocab file")


def build_model(args: PretrainArgs, tokenizer: WordPieceTokenizer) -> PreTrainedModel:
    """The course model ``--model`` at the chosen size; its positions cover ``--seq-len``."""
    v, p = tokenizer.vocab_size, args.dropout
    if args.model == "elmo":
        return ELMo(ELMoConfig(v, d_model=args.d_model, d_hidden=args.d_hidden, n_layers=args.n_layers, dropout=p))
    common = {"d_model": args.d_model, "n_layers": args.n_layers, "n_heads": args.n_heads, "d_ff": args.d_ff}
    common |= {"max_len": args.seq_len, "dropout": p, "attention_dropout": p}
    if args.model == "gpt":
        return GPT(GPTConfig(v, **common))
    return BertForPreTraining(BertConfig(v, pad_token_id=tokenizer.pad_token_id, **common))
