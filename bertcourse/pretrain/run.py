"""One pre-training run from its flags: corpus, tokenizer, model (the registry), then the engine.

The same code runs in one process or in each of the N processes torchrun starts. The engine
(``bertcourse.engine.train``) wraps the model in ``DistributedDataParallel`` there and normalises each
loss term over the global batch, so every process takes the same AdamW step. Rank 0 alone logs and
writes files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from bertcourse.base import PreTrainedModel
from bertcourse.data.corpora import load_hf_dataset, load_text, pydoc_documents, split_sentences
from bertcourse.data.pretraining import PretrainData, derive_seed, split_documents, tokenize_documents
from bertcourse.data.toylang import ToyLanguage
from bertcourse.engine import Distributed, flops_per_token, peak_bf16_flops, setup, train
from bertcourse.pretrain.cli import PretrainArgs
from bertcourse.registry import build_model, model_config
from bertcourse.tokenizers import WordPieceTokenizer, minilm_vocab_path

__all__ = ["CHECKPOINT_DIR", "LOG_NAME", "build_tokenizer", "load_corpus", "model_from_args", "run"]

CHECKPOINT_DIR = "checkpoint"
LOG_NAME = "log.jsonl"


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


def model_from_args(args: PretrainArgs, tokenizer: WordPieceTokenizer) -> PreTrainedModel:
    """The registry's model ``--model`` at the flags' size; its positions cover ``--seq-len``."""
    dims = {k: getattr(args, k) for k in ("d_model", "n_layers", "n_heads", "d_ff", "d_hidden")}
    config = model_config(
        args.model, tokenizer.vocab_size, args.size, max_len=args.seq_len, dropout=args.dropout,
        pad_token_id=tokenizer.pad_token_id, **dims,
    )  # fmt: skip
    return build_model(args.model, config)  # type: ignore[arg-type]


def _prepare(args: PretrainArgs) -> tuple[PretrainData, PretrainData, WordPieceTokenizer, str]:
    """Corpus, tokenizer and both data splits; identical in every process (no communication needed)."""
    train_docs, eval_docs = split_documents(load_corpus(args), args.eval_fraction)
    tokenizer = build_tokenizer(args, train_docs)
    vocab_sha256 = hashlib.sha256("".join(t + "\n" for t in tokenizer.vocab).encode()).hexdigest()

    def data(docs: list, seed: int) -> PretrainData:
        ids = tokenize_documents(docs, tokenizer)
        return PretrainData(args.model, ids, tokenizer, args.seq_len, seed, args.mlm_probability)

    train_data, eval_data = data(train_docs, args.seed), data(eval_docs, derive_seed(args.seed, "eval"))
    if train_data.steps_per_epoch(args.batch_size) == 0:
        raise ValueError(f"--batch-size {args.batch_size} exceeds the {len(train_data)} training examples")
    return train_data, eval_data, tokenizer, vocab_sha256


class _Logger:
    """Rank 0's log: every record as a JSON line in OUT/log.jsonl; records with throughput or evaluation
    also as a line on stdout (through tqdm, so a progress bar stays intact)."""

    def __init__(self, path: Path, enabled: bool, flops: float, peak: float | None) -> None:
        self.path, self.enabled, self.flops, self.peak = path, enabled, flops, peak
        self.last: dict[str, Any] = {}

    def __call__(self, record: dict[str, Any]) -> None:
        if self.peak and "tokens_per_s" in record:
            record["mfu"] = record["tokens_per_s"] * self.flops / self.peak
        self.last = record
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if "tokens_per_s" in record or "eval_loss" in record:
            tqdm.write("  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()))


def run(args: PretrainArgs) -> dict[str, Any]:
    """Pre-train as ``args`` says; return the last log record (rank 0's view; the same on every rank)."""
    dist = setup(args.device)
    try:
        return _run(args, dist)
    finally:
        dist.close()


def _run(args: PretrainArgs, dist: Distributed) -> dict[str, Any]:
    if args.batch_size % dist.world_size != 0:
        raise ValueError(f"--batch-size {args.batch_size} must be divisible by the {dist.world_size} processes")
    out, checkpoint_dir = Path(args.out), Path(args.out) / CHECKPOINT_DIR
    if not args.resume and checkpoint_dir.exists():
        raise ValueError(f"--out {out} already holds a checkpoint: pass --resume, or choose another --out")
    if args.resume and not checkpoint_dir.is_dir():
        raise FileNotFoundError(f"--resume: no checkpoint in {out} (expected {checkpoint_dir})")
    train_data, eval_data, tokenizer, vocab_sha256 = _prepare(args)
    torch.manual_seed(derive_seed(args.seed, "init"))  # the same initial weights in every process
    model = model_from_args(args, tokenizer)
    if args.model == "elmo":
        model.scalar_mix.requires_grad_(False)  # ELMo's layer mix is learnt per downstream task, not here
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        tokenizer.save_vocab(out / "vocab.txt")
    peak = args.peak_tflops * 1e12 if args.peak_tflops else peak_bf16_flops(dist.device)
    log = _Logger(out / LOG_NAME, dist.is_main, flops_per_token(model, args.seq_len), peak)
    train(
        model, train_data.batches(args.batch_size, dist.rank, dist.world_size), objective=args.model,
        max_steps=args.steps, lr=args.lr, weight_decay=args.weight_decay, warmup_steps=args.warmup,
        schedule=args.schedule, max_grad_norm=args.max_grad_norm, seed=args.seed, dist=dist,
        eval_loader=eval_data.eval_batches(args.batch_size, dist.rank, dist.world_size, args.eval_examples),
        eval_every=args.eval_every, bf16=args.bf16, compile=args.compile, checkpoint_dir=checkpoint_dir,
        checkpoint_every=args.checkpoint_every, resume=args.resume, stop_after=args.stop_after,
        identity=args.identity(vocab_sha256), progress=args.progress, log=log, log_every=args.log_every,
    )  # fmt: skip
    if (args.stop_after is None or args.stop_after == args.steps) and dist.is_main:
        model.save_pretrained(out)  # OUT/config.json and OUT/model.safetensors
    dist.barrier()
    return log.last
