"""One small training loop for every course model and task.

``train`` runs AdamW with linear warm-up then cosine (or linear) decay, gradient clipping, bf16
autocast on CUDA, periodic evaluation and optional safetensors checkpoints, and returns a
:class:`History`. A batch is a dict of tensors fed as ``model(**batch)``; the model returns an object
with ``.loss`` (and ``.logits`` for accuracy), as every course model and head does.

Weight decay (Loshchilov & Hutter, 2019) applies to every matrix (``p.dim() >= 2``): linear and LSTM
weights *and* embeddings. Biases, LayerNorm gains and ELMo's scalar-mix weights (all 1-D) are not
decayed: shrinking them toward 0 has no regularising meaning. Embeddings are decayed, as in BERT's and
nanoGPT's recipes, because GPT and BERT tie the token embedding to the output layer: the same matrix is
the softmax classifier, which decay should regularise like any other.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from bertcourse.device import get_device, seed_everything
from bertcourse.objectives import IGNORE_INDEX
from bertcourse.validation import check_int, check_positive

__all__ = ["History", "NonFiniteLossError", "evaluate", "lr_lambda", "param_groups", "train"]

Batch = Mapping[str, Tensor]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the message names the step and the likely cause."""


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


@dataclass
class History:
    """What happened during training, as lists ready to plot.

    ``step``/``train_loss``/``lr``: one entry per optimisation step (the learning rate used for it).
    ``eval_step``/``eval_loss``/``eval_accuracy``: one entry per evaluation (accuracy None when not computed).
    """

    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    eval_step: list[int] = field(default_factory=list)
    eval_loss: list[float] = field(default_factory=list)
    eval_accuracy: list[float | None] = field(default_factory=list)

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


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: matrices (``dim >= 2``: linear, LSTM, embedding weights) decay; 1-D tensors do not."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_lambda(
    warmup_steps: int, max_steps: int, schedule: Literal["cosine", "linear"] = "cosine"
) -> Callable[[int], float]:
    """Multiplier of the peak learning rate at step s (0-based).

    Warm-up: (s + 1) / warmup_steps for s < warmup_steps. Then, with progress
    p = (s - warmup_steps) / (max_steps - warmup_steps): cosine 0.5 (1 + cos(pi p)), or linear 1 - p.
    """
    if schedule not in ("cosine", "linear"):
        raise ValueError(f"schedule must be 'cosine' or 'linear', got {schedule!r}")
    if not 0 <= warmup_steps <= max_steps:
        raise ValueError(f"warmup_steps must lie in [0, max_steps={max_steps}], got {warmup_steps}")

    def multiplier(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, max_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * progress)) if schedule == "cosine" else 1.0 - progress

    return multiplier


def _to(batch: Batch, device: torch.device) -> dict[str, Tensor]:
    if not isinstance(batch, Mapping):
        raise ValueError(f"batches must be dicts of tensors (use a bertcourse collator), got {type(batch).__name__}")
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _autocast(device: torch.device) -> Any:
    """bf16 autocast on CUDA GPUs that support it; full precision elsewhere."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def _model_device(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: Iterable[Batch], *, device: torch.device | str | None = None, accuracy: bool | None = None
) -> dict[str, float]:
    """Mean loss over ``loader`` (weighted by batch size) and, for classification, accuracy.

    ``accuracy=None`` computes it when labels are one per sequence (B,); pass True for token
    classification, where it counts positions whose label is not -100. Never for LMs, whose labels are
    shifted inside the model. The model is put in eval mode and its previous mode restored.
    Returns ``{"loss": ...}`` plus ``"accuracy"`` when computed.
    """
    device = resolve_device(device) if device is not None else _model_device(model)
    was_training = model.training
    model.eval()
    total_loss, n_sequences, correct, counted = 0.0, 0, 0, 0
    for raw in loader:
        batch = _to(raw, device)
        with _autocast(device):
            out = model(**batch)
        if out.loss is None:
            raise ValueError("model returned no loss: does the batch have 'labels'?")
        size = batch["input_ids"].shape[0]
        total_loss += float(out.loss) * size
        n_sequences += size
        labels = batch.get("labels")
        wants = accuracy if accuracy is not None else labels is not None and labels.dim() == 1
        if wants and labels is not None:
            if getattr(out, "logits", None) is None:
                raise ValueError(f"accuracy needs outputs with .logits; {type(out).__name__} has none")
            keep = labels != IGNORE_INDEX
            correct += int((out.logits.argmax(-1) == labels)[keep].sum())
            counted += int(keep.sum())
    model.train(was_training)
    if n_sequences == 0:
        raise ValueError("the evaluation loader yielded no batches")
    result = {"loss": total_loss / n_sequences}
    if counted:
        result["accuracy"] = correct / counted
    return result


def _check_train_args(
    max_steps: Any,
    lr: Any,
    weight_decay: Any,
    warmup_steps: Any,
    max_grad_norm: Any,
    eval_every: Any,
    seed: Any,
) -> None:
    """ValueError naming the hyper-parameter of :func:`train` that is not a number it can use (NaN included)."""
    check_int(max_steps, "max_steps", minimum=1)
    check_positive(lr, "lr")
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or not 0 <= weight_decay < math.inf:
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
    if warmup_steps is not None:
        check_int(warmup_steps, "warmup_steps", minimum=0)
    if max_grad_norm is not None:
        check_positive(max_grad_norm, "max_grad_norm")
    if eval_every is not None:
        check_int(eval_every, "eval_every", minimum=1)
    check_int(seed, "seed")


def resolve_device(device: torch.device | str) -> torch.device:
    """``device`` as a ``torch.device`` that exists on this machine; ValueError naming it otherwise."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}") from None
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (resolved.index or 0) >= count:
            raise ValueError(f"device {device!r} does not exist here: {count} CUDA device(s) available")
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} does not exist here: MPS is not available")
    elif resolved.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")
    return resolved


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
    train_loader: Iterable[Batch],
    *,
    max_steps: int,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    warmup_steps: int | None = None,
    schedule: Literal["cosine", "linear"] = "cosine",
    max_grad_norm: float | None = 1.0,
    eval_loader: Iterable[Batch] | None = None,
    eval_every: int | None = None,
    accuracy: bool | None = None,
    device: torch.device | str | None = None,
    seed: int = 0,
    checkpoint_dir: str | Path | None = None,
    progress: bool | None = None,
    callback: Callable[[int, nn.Module], None] | None = None,
) -> History:
    """Train ``model`` for ``max_steps`` optimiser steps; return the :class:`History`.

    Args:
        model: any module whose ``forward(**batch)`` returns an object with ``.loss``.
        train_loader: yields dicts of tensors; it is cycled until ``max_steps``.
        lr: peak learning rate of AdamW (betas 0.9, 0.999).
        weight_decay: decoupled decay of matrices only (see the module docstring).
        warmup_steps: linear warm-up length; default 10 % of ``max_steps``.
        schedule: decay after warm-up, ``"cosine"`` or ``"linear"``, both to 0 at ``max_steps``.
        max_grad_norm: clip the global gradient norm to this (None: no clipping).
        eval_loader / eval_every: evaluate every ``eval_every`` steps (default ``max_steps // 10``) and at the end.
        accuracy: passed to :func:`evaluate`.
        device: default ``get_device()`` (cuda, then mps, then cpu); the model is moved there.
        seed: seeds Python, NumPy and torch first, so loader shuffling and masking repeat exactly on CPU.
        checkpoint_dir: if set, ``model.save_pretrained(checkpoint_dir / f"step-{step}")`` at each
            evaluation and at the end (needs a course model, i.e. a ``PreTrainedModel``).
        progress: tqdm bar; None shows it only when stderr is a terminal.
        callback: called as ``callback(step, model)`` at each evaluation step (every ``eval_every`` steps
            and at the end), with or without ``eval_loader``: a measurement along the way, such as a
            learning curve of some accuracy. The model is put back in training mode afterwards.

    Raises:
        NonFiniteLossError: the loss is NaN or infinite; the message names the step and the cause it finds
            (a batch without targets, non-finite inputs, diverged weights, or else the learning rate).
    """
    _check_train_args(max_steps, lr, weight_decay, warmup_steps, max_grad_norm, eval_every, seed)
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be callable as callback(step, model), got {type(callback).__name__}")
    if checkpoint_dir is not None and not callable(getattr(model, "save_pretrained", None)):
        raise ValueError(f"checkpoint_dir needs a model with save_pretrained; {type(model).__name__} has none")
    warmup_steps = max_steps // 10 if warmup_steps is None else warmup_steps
    eval_every = max(1, max_steps // 10) if eval_every is None else eval_every
    multiplier = lr_lambda(warmup_steps, max_steps, schedule)

    seed_everything(seed)
    device = resolve_device(device) if device is not None else get_device()
    model.to(device).train()
    optimizer = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.999))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)
    history = History()
    batches = _cycle(train_loader)
    show = progress if progress is not None else sys.stderr.isatty()
    with tqdm(range(1, max_steps + 1), disable=not show, desc="train", dynamic_ncols=True) as bar:
        for step in bar:
            batch = _to(next(batches), device)
            with _autocast(device):
                output = model(**batch)
            if not hasattr(output, "loss"):
                raise ValueError(
                    f"{type(model).__name__} returned a {type(output).__name__} without .loss: train needs "
                    "a model whose forward(**batch) returns an object with .loss (a course model)"
                )
            loss = output.loss
            if loss is None:
                raise ValueError("model returned no loss: does the batch have 'labels'?")
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"loss is {loss.item()} at step {step}: {_non_finite_cause(model, batch, step)}"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            history.step.append(step)
            history.train_loss.append(loss.item())
            history.lr.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
            bar.set_postfix(loss=f"{history.train_loss[-1]:.3f}")

            if step % eval_every == 0 or step == max_steps:
                if eval_loader is not None:
                    result = evaluate(model, eval_loader, device=device, accuracy=accuracy)
                    history.eval_step.append(step)
                    history.eval_loss.append(result["loss"])
                    history.eval_accuracy.append(result.get("accuracy"))
                if checkpoint_dir is not None:
                    model.save_pretrained(Path(checkpoint_dir) / f"step-{step}")
                if callback is not None:
                    callback(step, model)
                    model.train()
    return history
