"""The pre-training run: data, model, AdamW, the step loop, evaluation, checkpoints and throughput.

The same code runs in one process or in each of the N processes torchrun starts. In a distributed run
the model is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`, which all-reduces
(averages) the gradients during ``backward``; every process then takes the same AdamW step, so the
replicas stay identical. Rank 0 alone logs and writes files.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from bertcourse.pretrain.checkpoint import TrainingState, load_checkpoint, save_checkpoint
from bertcourse.pretrain.cli import PretrainArgs, build_model, build_tokenizer, load_corpus
from bertcourse.pretrain.data import PretrainData, derive_seed, split_documents, tokenize_documents
from bertcourse.pretrain.distributed import Distributed, setup
from bertcourse.pretrain.flops import flops_per_token, peak_bf16_flops
from bertcourse.pretrain.losses import TERM_WEIGHTS, global_loss, loss_sums, target_counts
from bertcourse.training import NonFiniteLossError, lr_lambda, param_groups

__all__ = ["run"]

CHECKPOINT_DIR = "checkpoint"
LOG_NAME = "log.jsonl"


def _autocast(device: torch.device, bf16: bool) -> Any:
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


@torch.no_grad()
def evaluate(model_name: str, model: nn.Module, batches: list, dist: Distributed, bf16: bool) -> dict[str, float]:
    """Held-out loss per term and in total, each term averaged over all its targets in all processes."""
    was_training = model.training
    model.eval()
    terms = list(TERM_WEIGHTS[model_name])
    totals = torch.zeros(2, len(terms), device=dist.device)  # row 0: loss sums, row 1: target counts
    for raw in batches:
        batch = {k: v.to(dist.device) for k, v in raw.items()}
        with _autocast(dist.device, bf16):
            sums = loss_sums(model_name, model, batch)
        counts = target_counts(model_name, batch)
        totals[0] += torch.stack([sums[t].float() for t in terms])
        totals[1] += torch.stack([counts[t] for t in terms]).to(dist.device)
    model.train(was_training)
    totals = dist.all_reduce_sum(totals)
    means = totals[0] / totals[1].clamp(min=1.0)
    result = {f"eval_{t}": float(m) for t, m in zip(terms, means, strict=True)}
    result["eval_loss"] = sum(TERM_WEIGHTS[model_name][t] * result[f"eval_{t}"] for t in terms)
    return result


def _prepare(args: PretrainArgs, dist: Distributed) -> tuple[PretrainData, PretrainData, Any, str]:
    """Corpus, tokenizer and both data splits; identical in every process (no communication needed)."""
    train_docs, eval_docs = split_documents(load_corpus(args), args.eval_fraction)
    tokenizer = build_tokenizer(args, train_docs)
    vocab = "".join(t + "\n" for t in tokenizer.vocab)
    vocab_sha256 = hashlib.sha256(vocab.encode()).hexdigest()
    make = lambda docs, seed: PretrainData(  # noqa: E731
        args.model, tokenize_documents(docs, tokenizer), tokenizer, args.seq_len, seed, args.mlm_probability
    )
    train_data = make(train_docs, args.seed)
    eval_data = make(eval_docs, derive_seed(args.seed, "eval"))
    if train_data.steps_per_epoch(args.batch_size) == 0:
        raise ValueError(f"--batch-size {args.batch_size} exceeds the {len(train_data)} training examples")
    return train_data, eval_data, tokenizer, vocab_sha256


class _Logger:
    """Rank 0's log: every record as a JSON line in OUT/log.jsonl; with ``echo``, also a line on stdout
    (through tqdm when a bar is shown)."""

    def __init__(self, path: Path, enabled: bool, bar: Any) -> None:
        self.path, self.enabled, self.bar = path, enabled, bar

    def __call__(self, record: dict[str, Any], echo: bool = True) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if not echo:
            return
        text = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items())
        if self.bar.disable:
            print(text, flush=True)
        else:
            self.bar.write(text)


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
    train_data, eval_data, tokenizer, vocab_sha256 = _prepare(args, dist)
    identity = args.identity(vocab_sha256)

    torch.manual_seed(derive_seed(args.seed, "init"))  # the same initial weights in every process
    model = build_model(args, tokenizer).to(dist.device)
    if args.model == "elmo":
        model.scalar_mix.requires_grad_(False)  # ELMo's layer mix is learnt per downstream task, not here
    optimizer = torch.optim.AdamW(param_groups(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.999))
    state = TrainingState(step=0, epoch=0, step_in_epoch=0)
    if args.resume:
        state = load_checkpoint(checkpoint_dir, model, optimizer, identity)
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        tokenizer.save_vocab(out / "vocab.txt")
    compiled = torch.compile(model) if args.compile else model
    trained: nn.Module = compiled
    if dist.enabled:
        trained = DistributedDataParallel(compiled, device_ids=[dist.device] if dist.device.type == "cuda" else None)

    multiplier = lr_lambda(args.warmup, args.steps, args.schedule)  # type: ignore[arg-type]
    eval_batches = eval_data.eval_batches(args.batch_size, dist.rank, dist.world_size, args.eval_examples)
    steps_per_epoch = train_data.steps_per_epoch(args.batch_size)
    stop = args.stop_after if args.stop_after is not None else args.steps
    peak = args.peak_tflops * 1e12 if args.peak_tflops else peak_bf16_flops(dist.device)
    flops = flops_per_token(model, args.seq_len)
    show = (args.progress if args.progress is not None else sys.stderr.isatty()) and dist.is_main
    bar = tqdm(total=stop, initial=state.step, disable=not show, desc=f"pretrain {args.model}", dynamic_ncols=True)
    log = _Logger(out / LOG_NAME, dist.is_main, bar)
    if state.step:
        log({"resumed_at": state.step})
    record: dict[str, Any] = {}
    window_tokens, window_start, paused = torch.zeros((), device=dist.device), time.perf_counter(), 0.0
    model.train()
    for step in range(state.step + 1, stop + 1):
        for group in optimizer.param_groups:
            group["lr"] = args.lr * multiplier(step - 1)
        batch = train_data.batch(state.epoch, state.step_in_epoch, args.batch_size, dist.rank, dist.world_size)
        batch = {k: v.to(dist.device, non_blocking=True) for k, v in batch.items()}
        torch.manual_seed(derive_seed(args.seed, "dropout", step, dist.rank))  # dropout: f(seed, step, rank)
        with _autocast(dist.device, args.bf16):
            loss, report = global_loss(args.model, trained, batch, dist)
        if not math.isfinite(report["loss"]):
            raise NonFiniteLossError(f"loss is {report['loss']} at step {step}: lower --lr or check the data")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()
        window_tokens += batch["attention_mask"].sum()
        state = TrainingState(step, state.epoch, state.step_in_epoch + 1)
        if state.step_in_epoch == steps_per_epoch:
            state = TrainingState(step, state.epoch + 1, 0)
        bar.update(1)
        bar.set_postfix(loss=f"{report['loss']:.3f}")

        record = {"step": step, **report, "lr": args.lr * multiplier(step - 1)}
        if step % args.log_every == 0 or step == stop:
            if dist.device.type == "cuda":
                torch.cuda.synchronize(dist.device)
            elapsed = time.perf_counter() - window_start - paused  # training time only, without evaluations
            tokens_per_s = float(dist.all_reduce_sum(window_tokens)) / max(elapsed, 1e-9)
            record["tokens_per_s"] = tokens_per_s
            if peak:
                record["mfu"] = tokens_per_s * flops / peak
            window_tokens.zero_()
            window_start, paused = time.perf_counter(), 0.0
        pause_start = time.perf_counter()
        if step % args.eval_every == 0 or step == args.steps:
            record |= evaluate(args.model, model, eval_batches, dist, args.bf16)
        log(record, echo="tokens_per_s" in record or "eval_loss" in record)
        if step == stop or (args.checkpoint_every and step % args.checkpoint_every == 0):
            if dist.is_main:
                save_checkpoint(checkpoint_dir, model, optimizer, state, identity)
            dist.barrier()
        paused += time.perf_counter() - pause_start
    bar.close()
    if stop == args.steps and dist.is_main:
        model.save_pretrained(out)  # OUT/config.json and OUT/model.safetensors
    dist.barrier()
    return record
