"""Pre-training losses divided by the number of targets in the *global* batch.

Each model's loss is a mean over targets: next tokens (GPT), next and previous tokens (ELMo), masked
tokens plus one next-sentence label per pair (BERT). When a batch is split across W processes, the
processes hold different numbers of targets (BERT masks ~15 % of each example, so counts vary), and
the mean of the W per-process means is *not* the mean over the batch. The same bug appears when a
batch is split into micro-batches for gradient accumulation. The fix: every process sums its
per-target losses and divides by the count over all processes,

    L = sum_k w_k (1 / N_k) sum_{targets i of term k, all processes} loss_i,   N_k = all-reduced count.

``DistributedDataParallel`` *averages* gradients over the W processes, so each process back-propagates
W times its share; the average is then exactly the gradient of L.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertcourse.objectives import IGNORE_INDEX, backward_lm_loss, causal_lm_loss, masked_lm_loss
from bertcourse.pretrain.distributed import Distributed

__all__ = ["TERM_WEIGHTS", "global_loss", "loss_sums", "target_counts"]

TERM_WEIGHTS: dict[str, dict[str, float]] = {
    "gpt": {"lm": 1.0},
    "elmo": {"forward": 0.5, "backward": 0.5},  # ELMo's loss is the mean of its two directions
    "bert": {"mlm": 1.0, "nsp": 1.0},  # BERT's pre-training loss is the sum of both tasks
}


def target_counts(model: str, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Number of targets of each loss term in this process's batch (float tensors, for all-reduce)."""
    counted = batch["labels"] != IGNORE_INDEX  # (B, T)
    if model == "gpt":
        counts = {"lm": counted[:, 1:].sum()}  # position t predicts t + 1
    elif model == "elmo":
        counts = {"forward": counted[:, 1:].sum(), "backward": counted[:, :-1].sum()}
    else:
        counts = {"mlm": counted.sum(), "nsp": (batch["next_sentence_label"] != IGNORE_INDEX).sum()}
    return {k: v.float() for k, v in counts.items()}


def loss_sums(model_name: str, model: nn.Module, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Each loss term summed (not averaged) over this process's targets.

    The model is called without labels, so it computes no mean of its own; ``batch`` is a collator's
    dict (``labels`` unshifted for GPT and ELMo, masked-LM labels and NSP labels for BERT).
    """
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "next_sentence_label")}
    out = model(**inputs)
    labels = batch["labels"]
    if model_name == "gpt":
        return {"lm": causal_lm_loss(out.logits, labels, reduction="sum")}
    if model_name == "elmo":
        return {
            "forward": causal_lm_loss(out.forward_logits, labels, reduction="sum"),
            "backward": backward_lm_loss(out.backward_logits, labels, reduction="sum"),
        }
    nsp = F.cross_entropy(
        out.seq_relationship_logits.float(), batch["next_sentence_label"], ignore_index=IGNORE_INDEX, reduction="sum"
    )  # (B, 2) vs (B,)
    return {"mlm": masked_lm_loss(out.prediction_logits.float(), labels, reduction="sum"), "nsp": nsp}


def global_loss(
    model_name: str, model: nn.Module, batch: Mapping[str, Tensor], dist: Distributed
) -> tuple[Tensor, dict[str, float]]:
    """(loss to back-propagate in this process, the global batch's loss per term and in total).

    The first is ``W * sum_k w_k * local_sum_k / N_k``: DDP's gradient average turns it into the
    gradient of the global-batch loss. The second is what a 1-process run on the whole batch reports.
    """
    counts = dist.all_reduce_sum(torch.stack(list(target_counts(model_name, batch).values())))  # (K,)
    sums = loss_sums(model_name, model, batch)
    weights = TERM_WEIGHTS[model_name]
    local = torch.stack(list(sums.values()))  # (K,)
    w = torch.tensor([weights[k] for k in sums], device=local.device)
    denominators = counts.to(local.device).clamp(min=1.0)  # a term without targets contributes 0
    loss = dist.world_size * (w * local / denominators).sum()
    global_terms = dist.all_reduce_sum(local.detach()) / denominators  # (K,)
    report = {k: float(v) for k, v in zip(sums, global_terms, strict=True)}
    report["loss"] = float((w * global_terms).sum())
    return loss, report
