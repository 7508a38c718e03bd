"""The one training loop: every course model, every objective, one process or many under torchrun.

:func:`train` runs AdamW with linear warm-up then cosine (or linear) decay, gradient clipping, bf16
autocast on CUDA, periodic evaluation, resumable safetensors checkpoints and, given a
:class:`~bertcourse.engine.distributed.Distributed`, PyTorch's ``DistributedDataParallel``. The chapters'
fine-tuning, the head-to-head experiment (``bertcourse.experiments``) and ``python -m bertcourse.pretrain``
all train through it.

What a batch means is the *objective*'s business (``engine.loss``): the model's own ``.loss``, or a
model's pre-training terms normalised over the global batch.

Where batches come from decides what a run can promise. An iterable (a ``DataLoader``) is cycled, and the
run is seeded once. A *step-indexed* source (anything with ``batch_at(step)``, such as
``bertcourse.data.pretraining.PretrainData.batches``) hands out the batch of each global step, and each
step's dropout is seeded by (seed, step, rank): then a run interrupted and resumed from its checkpoint,
or split across processes, equals the uninterrupted one-process run.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from bertcourse.data.pretraining import derive_seed
from bertcourse.device import get_device, resolve_device, seed_everything
from bertcourse.engine.checkpoint import TrainingState, load_checkpoint, save_checkpoint
from bertcourse.engine.distributed import Distributed
from bertcourse.engine.loss import autocast, evaluate, global_loss, to_device
from bertcourse.engine.schedule import Schedule, lr_lambda, param_groups
from bertcourse.objectives import IGNORE_INDEX, PRETRAINING_TERMS
from bertcourse.validation import check_int, check_positive

__all__ = ["History", "NonFiniteLossError", "StepBatches", "train"]

Batch = Mapping[str, Tensor]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the message names the step and the likely cause."""


@runtime_checkable
class StepBatches(Protocol):
    """A step-indexed batch source: ``batch_at(step)`` is this process's share of global batch ``step`` (1-based)."""

    def batch_at(self, step: int) -> dict[str, Tensor]: ...

    def position(self, step: int) -> tuple[int, int]: ...


@dataclass
class History:
    """What happened during training, as lists ready to plot.

    ``step``/``train_loss``/``lr``: one entry per optimisation step (the learning rate used for it).
    ``eval_step``/``eval_loss``/``eval_accuracy``: one entry per evaluation (accuracy None when not computed).
    ``tokens``: real tokens read (attention-mask ones, all processes); ``seconds``: time spent training,
    without evaluations, callbacks and checkpoints.
    """

    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    eval_step: list[int] = field(default_factory=list)
    eval_loss: list[float] = field(default_factory=list)
    eval_accuracy: list[float | None] = field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0

    def plot(self, ax: Any = None, smooth: int = 10) -> Any:
        """Plot the training loss (moving average over ``smooth`` steps) and eval loss; return the axes."""
        import matplotlib.pyplot as plt  # slow to import: loaded only when plotting

        ax = ax if ax is not None else plt.subplots(figsize=(6, 3.5))[1]
        k, losses = max(1, min(smooth, len(self.train_loss))), self.train_loss
        smoothed = [sum(losses[max(0, i - k + 1) : i + 1]) / min(k, i + 1) for i in range(len(losses))]
        ax.plot(self.step, smoothed, label="train loss" + (f" (mean of {k})" if k > 1 else ""))
        if self.eval_step:
            ax.plot(self.eval_step, self.eval_loss, "o-", label="eval loss")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.legend()
        return ax


def _tokens(batch: Batch) -> Tensor | int:
    """Real tokens of a batch: its attention mask's ones, else its ids; 0 for inputs that are not tokens."""
    if "attention_mask" in batch:
        return batch["attention_mask"].sum()
    return batch["input_ids"].numel() if "input_ids" in batch else 0


def _non_finite_cause(model: nn.Module, batch: Batch, step: int) -> str:
    """Why a loss is not finite, checked in order: no targets, bad inputs, diverged weights, else the lr."""
    for key, value in batch.items():
        if "label" in key and value.numel() and bool((value == IGNORE_INDEX).all()):
            return (
                f"the batch has no targets: every entry of '{key}' is {IGNORE_INDEX}, so the mean loss is 0/0 "
                "(for a masked LM: no token of the batch was chosen for masking); not a learning-rate problem"
            )
    for key, value in batch.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            return f"the batch's '{key}' holds NaN or infinite values; not a learning-rate problem"
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        if step == 1:
            return "the model's weights were not finite before training started; not a learning-rate problem"
        return "the weights are no longer finite: an earlier update diverged; lower lr or clip gradients"
    if step == 1:
        return "it happened before any update, so not the learning rate: check the model and the inputs"
    return "inputs, labels and weights are finite: the update overflowed; lower lr or clip gradients"


def _check_train_args(args: Mapping[str, Any]) -> None:
    """ValueError naming the hyper-parameter of :func:`train` that is not a number it can use (NaN included)."""
    check_int(args["max_steps"], "max_steps", minimum=1)
    check_positive(args["lr"], "lr")
    decay = args["weight_decay"]
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 <= decay < math.inf:
        raise ValueError(f"weight_decay must be a finite number >= 0, got {decay!r}")
    for name in ("warmup_steps", "eval_every", "checkpoint_every"):
        if args[name] is not None:
            check_int(args[name], name, minimum=0)
    if args["stop_after"] is not None:
        check_int(args["stop_after"], "stop_after", minimum=1)
        if args["stop_after"] > args["max_steps"]:
            raise ValueError(f"stop_after must lie in [1, max_steps={args['max_steps']}], got {args['stop_after']}")
    if args["max_grad_norm"] is not None:
        check_positive(args["max_grad_norm"], "max_grad_norm")
    check_int(args["seed"], "seed")
    check_int(args["log_every"], "log_every", minimum=1)
    objective = args["objective"]
    if objective is not None and objective not in PRETRAINING_TERMS:
        raise ValueError(f"objective must be None or one of {tuple(PRETRAINING_TERMS)}, got {objective!r}")
    for name in ("callback", "log"):
        if args[name] is not None and not callable(args[name]):
            raise ValueError(f"{name} must be callable, got {type(args[name]).__name__}")


def _cycle(loader: Iterable[Batch]) -> Iterator[Batch]:
    """Iterate over ``loader`` again and again (a new shuffle each epoch)."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("train_loader yielded no batches")


def train(
    model: nn.Module,
    train_loader: Iterable[Batch] | StepBatches,
    *,
    max_steps: int,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    warmup_steps: int | None = None,
    schedule: Schedule = "cosine",
    max_grad_norm: float | None = 1.0,
    eval_loader: Iterable[Batch] | None = None,
    eval_every: int | None = None,
    accuracy: bool | None = None,
    objective: str | None = None,
    device: torch.device | str | None = None,
    dist: Distributed | None = None,
    bf16: bool | None = None,
    compile: bool = False,
    seed: int = 0,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    stop_after: int | None = None,
    identity: Mapping[str, Any] | None = None,
    progress: bool | None = None,
    callback: Callable[[int, nn.Module], None] | None = None,
    log: Callable[[dict[str, Any]], None] | None = None,
    log_every: int = 10,
) -> History:
    """Train ``model`` for ``max_steps`` optimiser steps (or until ``stop_after``); return the :class:`History`.

    Args:
        model: any module; see ``objective`` for what its forward must return.
        train_loader: an iterable of dicts of tensors, cycled; or a step-indexed source (:class:`StepBatches`),
            required by ``resume`` and by ``dist`` with more than one process.
        lr: peak learning rate of AdamW (betas 0.9, 0.999); weight_decay: decoupled decay of matrices only.
        warmup_steps: linear warm-up length (default 10 % of ``max_steps``); schedule: ``"cosine"`` or
            ``"linear"`` decay to 0 at ``max_steps``; max_grad_norm: clip the global gradient norm (None: no).
        eval_loader / eval_every: evaluate every ``eval_every`` steps (default ``max_steps // 10``) and at
            the end; ``0`` never evaluates. accuracy: passed to :func:`evaluate`.
        objective: ``None`` (the model's ``.loss``) or a model name whose pre-training terms are normalised
            over the global batch (module docstring).
        device: default ``get_device()``; ignored under ``dist``, whose device is used.
        dist: the process group (``bertcourse.engine.distributed.setup()``); the model is wrapped in DDP
            when it has more than one process. Rank 0 alone writes checkpoints.
        bf16: autocast (None: bf16 on CUDA when supported). compile: ``torch.compile`` the model (on a
            CPU at the course's sizes slower end to end, compile time aside too: README, Throughput).
        seed: seeds Python, NumPy and torch first (and each step's dropout with step-indexed batches).
        checkpoint_dir: a resumable checkpoint (weights, AdamW state, step; safetensors) written at the last
            step run and every ``checkpoint_every`` steps (0 or None: only then). Needs a course model.
        resume: continue from the checkpoint in ``checkpoint_dir`` (``identity`` must match the saved one).
        stop_after: end after this step with a checkpoint, as an interruption would; the schedule still
            follows ``max_steps``.
        identity: what defines the run (hyper-parameters, data); a checkpoint of another run is refused.
        progress: tqdm bar; None shows it only when stderr is a terminal (and only on rank 0).
        callback: ``callback(step, model)`` at each evaluation step (with or without ``eval_loader``), e.g.
            a learning curve of some accuracy; the model is put back in training mode afterwards.
        log: ``log(record)`` after every step: ``step``, ``loss`` (and each term), ``lr``; every
            ``log_every`` steps and at the end also ``tokens_per_s``; at evaluations ``eval_*``.

    Raises:
        NonFiniteLossError: the loss is NaN or infinite; the message names the step and the cause it finds
            (a batch without targets, non-finite inputs, diverged weights, or else the learning rate).
    """
    _check_train_args(locals())
    stepped = isinstance(train_loader, StepBatches)
    if checkpoint_dir is not None and not callable(getattr(model, "save_pretrained", None)):
        raise ValueError(f"checkpoint_dir needs a model with save_pretrained; {type(model).__name__} has none")
    if resume and (checkpoint_dir is None or not stepped):
        raise ValueError("resume needs checkpoint_dir and a step-indexed train_loader (one with batch_at(step))")
    if dist is not None and dist.enabled and not stepped:
        raise ValueError("train_loader must be step-indexed (batch_at(step)) under more than one process")
    warmup_steps = max_steps // 10 if warmup_steps is None else warmup_steps
    eval_every = max(1, max_steps // 10) if eval_every is None else eval_every
    multiplier = lr_lambda(warmup_steps, max_steps, schedule)
    stop = max_steps if stop_after is None else stop_after

    seed_everything(seed)
    if dist is None:
        dist = Distributed(0, 1, 0, resolve_device(device) if device is not None else get_device())
    model.to(dist.device).train()
    optimizer = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.999))
    checkpoint = Path(checkpoint_dir) if checkpoint_dir is not None else None
    identity = dict(identity or {})
    state = TrainingState(0, 0, 0)
    if resume:
        state = load_checkpoint(checkpoint, model, optimizer, identity)  # type: ignore[arg-type]
        if log is not None:
            log({"resumed_at": state.step})
    trained: nn.Module = torch.compile(model) if compile else model
    if dist.enabled:
        trained = DistributedDataParallel(trained, device_ids=[dist.device] if dist.device.type == "cuda" else None)
    batches = None if stepped else _cycle(train_loader)  # type: ignore[arg-type]
    history = History()
    show = (progress if progress is not None else sys.stderr.isatty()) and dist.is_main
    window_tokens = torch.zeros((), device=dist.device)
    window_start, paused = time.perf_counter(), 0.0
    with tqdm(total=stop, initial=state.step, disable=not show, desc="train", dynamic_ncols=True) as bar:
        for step in range(state.step + 1, stop + 1):
            for group in optimizer.param_groups:
                group["lr"] = lr * multiplier(step - 1)
            if stepped:
                raw = train_loader.batch_at(step)  # type: ignore[union-attr]
                torch.manual_seed(derive_seed(seed, "dropout", step, dist.rank))  # dropout: f(seed, step, rank)
            else:
                raw = next(batches)  # type: ignore[arg-type]
            batch = to_device(raw, dist.device)
            with autocast(dist.device, bf16):
                loss, report = global_loss(objective, trained, batch, dist)
            if not math.isfinite(report["loss"]):
                cause = _non_finite_cause(model, batch, step)
                raise NonFiniteLossError(f"loss is {report['loss']} at step {step}: {cause}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            history.step.append(step)
            history.train_loss.append(report["loss"])
            history.lr.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            window_tokens += _tokens(batch)
            bar.update(1)
            bar.set_postfix(loss=f"{report['loss']:.3f}")

            record: dict[str, Any] = {"step": step, **report, "lr": history.lr[-1]}
            if step % log_every == 0 or step == stop:
                if dist.device.type == "cuda":
                    torch.cuda.synchronize(dist.device)
                elapsed = time.perf_counter() - window_start - paused  # training time only
                tokens = int(dist.all_reduce_sum(window_tokens))
                history.tokens += tokens
                history.seconds += elapsed
                record["tokens_per_s"] = tokens / max(elapsed, 1e-9)
                window_tokens.zero_()
                window_start, paused = time.perf_counter(), 0.0
            pause_start = time.perf_counter()
            if eval_every and (step % eval_every == 0 or step == max_steps):
                if eval_loader is not None:
                    result = evaluate(
                        model, eval_loader, accuracy=accuracy, objective=objective, dist=dist, bf16=bf16
                    )  # fmt: skip
                    history.eval_step.append(step)
                    history.eval_loss.append(result["loss"])
                    history.eval_accuracy.append(result.get("accuracy"))
                    record |= {f"eval_{k}": v for k, v in result.items()}
                if callback is not None:
                    callback(step, model)
                    model.train()
            if checkpoint is not None and (step == stop or (checkpoint_every and step % checkpoint_every == 0)):
                if dist.is_main:
                    # where the next batch comes from: (epoch, batches of it done)
                    epoch, in_epoch = train_loader.position(step + 1) if stepped else (0, step)  # type: ignore[union-attr]
                    save_checkpoint(checkpoint, model, optimizer, TrainingState(step, epoch, in_epoch), identity)
                dist.barrier()
            if log is not None:
                log(record)
            paused += time.perf_counter() - pause_start
    return history
