"""How a batch becomes a loss, in training and in evaluation, for every objective and number of processes.

* ``objective=None``: ``model(**batch)`` returns an object with ``.loss`` (every course model and head);
* ``objective="elmo" | "gpt" | "bert" | "mlm"``: the pre-training terms (``objectives.PRETRAINING_TERMS``),
  each divided by its number of targets in the *global* batch (:func:`global_loss`), so that a batch
  split across processes gives the loss and the gradient of the whole batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from bertcourse.device import resolve_device
from bertcourse.engine.distributed import Distributed
from bertcourse.objectives import (
    IGNORE_INDEX,
    PRETRAINING_TERMS,
    pretraining_loss_sums,
    pretraining_target_counts,
)

__all__ = ["autocast", "evaluate", "global_loss", "to_device"]

Batch = Mapping[str, Tensor]


def autocast(device: torch.device, bf16: bool | None = None) -> Any:
    """The autocast context of a step: ``bf16=None`` uses bf16 on CUDA GPUs that support it, full
    precision elsewhere; ``True`` forces bf16 (also on CPU, slowly); ``False`` never."""
    if bf16 is None:
        bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


def to_device(batch: Any, device: torch.device) -> dict[str, Tensor]:
    """``batch`` (a dict of tensors) moved to ``device``; ValueError for anything else."""
    if not isinstance(batch, Mapping) or not all(isinstance(v, Tensor) for v in batch.values()):
        raise ValueError(
            "batches must be dicts of tensors (use a bertcourse collator): "
            f"train_loader yielded a {type(batch).__name__}"
            + (f" of {sorted({type(v).__name__ for v in batch.values()})}" if isinstance(batch, Mapping) else "")
        )
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _own_loss(model: nn.Module, batch: Batch) -> Any:
    """``model(**batch)``, checked to carry the ``.loss`` that ``objective=None`` trains on."""
    out = model(**batch)
    if getattr(out, "loss", None) is None:
        raise ValueError(
            f"{type(model).__name__} returned a {type(out).__name__} without .loss (no loss): train and evaluate "
            "need a model whose forward(**batch) returns an object with .loss (does the batch have 'labels'?)"
        )
    return out


def _sums(objective: str | None, model: nn.Module, batch: Batch) -> tuple[dict[str, Tensor], dict[str, Tensor], Any]:
    """(loss sums, target counts, model output or None) of one batch under ``objective``.

    ``objective=None``: the model's own mean loss weighted by the batch size (so that a mean over
    batches is a mean over sequences); otherwise the pre-training terms' sums and target counts.
    """
    if objective is not None:
        return pretraining_loss_sums(objective, model, batch), pretraining_target_counts(objective, batch), None
    out = _own_loss(model, batch)
    size = torch.tensor(float(len(next(iter(batch.values())))), dtype=torch.float64, device=out.loss.device)
    return {"loss": out.loss.detach().double() * size}, {"loss": size}, out


def _weights(objective: str | None) -> dict[str, float]:
    return {"loss": 1.0} if objective is None else PRETRAINING_TERMS[objective]


def global_loss(
    objective: str | None, model: nn.Module, batch: Batch, dist: Distributed
) -> tuple[Tensor, dict[str, float]]:
    """(loss to back-propagate in this process, the global batch's loss per term and in total).

    For a pre-training objective the first is ``W * sum_k w_k * local_sum_k / N_k`` with ``N_k`` the
    number of targets of term k over all W processes: DDP's gradient *average* turns it into the
    gradient of the global-batch loss (BERT masks a varying number of tokens per example, so the mean
    of per-process means would not be the mean over the batch). With ``objective=None`` it is the
    model's own mean loss, and DDP averages the per-process means.
    """
    if objective is None:
        loss = _own_loss(model, batch).loss
        mean = dist.all_reduce_sum(loss.detach().float()) / dist.world_size
        return loss, {"loss": float(mean)}
    counts = dist.all_reduce_sum(torch.stack(list(pretraining_target_counts(objective, batch).values())))  # (K,)
    sums = pretraining_loss_sums(objective, model, batch)
    weights = PRETRAINING_TERMS[objective]
    local = torch.stack(list(sums.values()))  # (K,)
    w = torch.tensor([weights[k] for k in sums], device=local.device)
    denominators = counts.to(local.device).clamp(min=1.0)  # a term without targets contributes 0
    loss = dist.world_size * (w * local / denominators).sum()
    global_terms = dist.all_reduce_sum(local.detach()) / denominators  # (K,)
    report = {k: float(v) for k, v in zip(sums, global_terms, strict=True)}
    report["loss"] = float((w * global_terms).sum())
    return loss, report


def _model_device(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[Batch],
    *,
    device: torch.device | str | None = None,
    accuracy: bool | None = None,
    objective: str | None = None,
    dist: Distributed | None = None,
    bf16: bool | None = None,
) -> dict[str, float]:
    """Held-out loss over ``loader`` and, for classification, accuracy.

    ``objective=None``: the model's own loss, averaged over sequences; ``accuracy=None`` computes accuracy
    when labels are one per sequence (B,), pass True for token classification (positions whose label is
    not -100). A pre-training ``objective``: each term averaged over all its targets (in all processes
    under ``dist``), returned as ``{term: mean}`` plus ``"loss"``, their weighted sum. The model is put in
    eval mode and its previous mode restored.
    """
    if dist is not None:
        device = dist.device
    device = resolve_device(device) if device is not None else _model_device(model)
    was_training = model.training
    model.eval()
    weights = _weights(objective)
    totals = torch.zeros(2, len(weights), dtype=torch.float64, device=device)  # row 0: loss sums, 1: counts
    correct, counted, n_batches = 0, 0, 0
    for raw in loader:
        batch = to_device(raw, device)
        with autocast(device, bf16):
            sums, counts, out = _sums(objective, model, batch)
        totals[0] += torch.stack([sums[t].double() for t in weights])
        totals[1] += torch.stack([counts[t].double() for t in weights])
        n_batches += 1
        labels = batch.get("labels")
        wants = accuracy if accuracy is not None else labels is not None and labels.dim() == 1
        if objective is None and wants and labels is not None:
            if getattr(out, "logits", None) is None:
                raise ValueError(f"accuracy needs outputs with .logits; {type(out).__name__} has none")
            keep = labels != IGNORE_INDEX
            correct += int((out.logits.argmax(-1) == labels)[keep].sum())
            counted += int(keep.sum())
    model.train(was_training)
    if n_batches == 0:
        raise ValueError("the evaluation loader yielded no batches")
    if dist is not None:
        totals = dist.all_reduce_sum(totals)
    means = totals[0] / totals[1].clamp(min=1.0)
    result = {t: float(m) for t, m in zip(weights, means, strict=True)}
    result["loss"] = sum(w * result[t] for t, w in weights.items())
    if counted:
        result["accuracy"] = correct / counted
    return result
