"""Chapter 07: fine-tuning runs that see all their labels, at a learning rate that does not decay to zero.

A run with ``n`` labelled examples trains for ``steps_for_epochs(n, ...)`` steps, so that it passes over
every example several times whatever ``n`` is, and its learning rate warms up and then stays constant: a
learning curve that flattens does so because the model stopped improving, not because a schedule went to
zero. :func:`fine_tune` runs it on the course's one training loop (``bertcourse.engine.train``, schedule
``"constant"``), evaluating token accuracy on a fixed test batch as it goes.

Feature-based use (ELMo's way, Peters et al. 2018) keeps the pre-trained model frozen: its layers are
computed once (:func:`layer_features`) and only a scalar mix of them and a linear head learn
(:class:`LayerMixTagger`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertcourse import engine
from bertcourse.bert import BertModel
from bertcourse.elmo import ELMo
from bertcourse.experiments.results import stat
from bertcourse.gpt import GPT
from bertcourse.scalar_mix import ScalarMix

__all__ = [
    "LayerMixTagger",
    "Run",
    "fine_tune",
    "layer_features",
    "mean_ci95",
    "steps_for_epochs",
    "token_accuracy",
]


@dataclass
class Run:
    """One fine-tuning run: test accuracy (and training loss) at each evaluation step."""

    steps: list[int] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)

    def final(self, last: int = 2) -> float:
        """Mean test accuracy of the ``last`` evaluations: the converged value, less noisy than one point."""
        if not self.accuracy:
            raise ValueError("this run has no evaluation yet")
        return sum(self.accuracy[-last:]) / len(self.accuracy[-last:])


def steps_for_epochs(n_examples: int, batch_size: int, epochs: int, min_steps: int) -> int:
    """Steps for ``epochs`` passes over ``n_examples`` in batches of ``batch_size``; at least ``min_steps``."""
    for name, value in (("n_examples", n_examples), ("batch_size", batch_size), ("epochs", epochs)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if min_steps < 0:
        raise ValueError(f"min_steps must be >= 0, got {min_steps}")
    return max(min_steps, epochs * math.ceil(n_examples / min(batch_size, n_examples)))


def token_accuracy(logits: Tensor, labels: Tensor) -> float:
    """Share of positions whose argmax matches ``labels`` (B, T); positions labelled -100 do not count."""
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"logits (B, T, C) and labels (B, T) disagree: {tuple(logits.shape)} vs {tuple(labels.shape)}")
    counted = labels != -100
    if not bool(counted.any()):
        raise ValueError("labels has no position to count (all -100)")
    return (logits.argmax(-1)[counted] == labels[counted]).float().mean().item()


class _Epochs:
    """The rows of ``data`` in batches of ``batch_size``, a fresh permutation (from ``generator``) each epoch."""

    def __init__(self, data: dict[str, Tensor], batch_size: int, generator: torch.Generator) -> None:
        self.data, self.batch_size, self.generator = data, batch_size, generator

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        n = len(self.data["labels"])
        for index in torch.randperm(n, generator=self.generator).split(self.batch_size):
            yield {k: v[index] for k, v in self.data.items()}


def fine_tune(
    model: nn.Module,
    train: dict[str, Tensor],
    test: dict[str, Tensor],
    *,
    batch_size: int,
    steps: int,
    lr: float,
    eval_every: int,
    seed: int,
    warmup_steps: int = 10,
    weight_decay: float = 0.01,
    max_grad_norm: float = 1.0,
) -> Run:
    """Train ``model`` on the rows of ``train`` for ``steps`` AdamW steps; evaluate on ``test`` every ``eval_every``.

    Args:
        model: ``model(**batch)`` returns an object with ``.loss`` and ``.logits`` (B, T, C), given ``labels``.
        train, test: dicts of tensors with the same first dimension (examples), ``labels`` (N, T) among them.
        batch_size: examples per step (capped at the number of training examples); each epoch is a fresh
            permutation drawn from a generator seeded with ``seed``.
        lr: the learning rate after a linear warm-up of ``warmup_steps``; it then stays constant.
    """
    n = len(train["labels"])
    if n == 0 or steps < 1 or eval_every < 1 or lr <= 0:
        raise ValueError(f"need examples, steps >= 1, eval_every >= 1 and lr > 0; got {n}, {steps}, {eval_every}, {lr}")
    run = Run()

    def evaluate_test(step: int, trained: nn.Module) -> None:
        trained.eval()
        with torch.no_grad():
            run.accuracy.append(token_accuracy(trained(**test).logits, test["labels"]))
        run.steps.append(step)

    batches = _Epochs(train, min(batch_size, n), torch.Generator().manual_seed(seed))
    device = next(model.parameters()).device
    history = engine.train(
        model, batches, max_steps=steps, lr=lr, weight_decay=weight_decay, warmup_steps=min(warmup_steps, steps),
        schedule="constant", max_grad_norm=max_grad_norm, eval_every=eval_every, seed=seed, device=device,
        progress=False, callback=evaluate_test,
    )  # fmt: skip
    run.train_loss = history.train_loss
    return run


@torch.no_grad()
def layer_features(model: nn.Module, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """A frozen model's layers for each token, (B, L, T, H): the input of a feature-based scalar mix.

    ELMo: its embedding layer and each biLSTM layer (forward and backward halves concatenated), the
    layers its own scalar mix combines. GPT and BERT (``BertModel`` or a model with ``.bert``): the
    embedding output and every block's output (``output_hidden_states=True``).
    """
    model.eval()
    if isinstance(model, ELMo):
        layers = model(input_ids, attention_mask).hidden_states  # L tensors (B, T, 2 d_model)
    elif isinstance(model, (GPT, BertModel)):
        layers = model(input_ids, attention_mask, output_hidden_states=True).hidden_states
    elif isinstance(getattr(model, "bert", None), BertModel):
        layers = model.bert(input_ids, attention_mask, output_hidden_states=True).hidden_states
    else:
        raise ValueError(f"model must be a course ELMo, GPT or BERT, got {type(model).__name__}")
    return torch.stack(list(layers), dim=1)


@dataclass
class _TaggerOutput:
    logits: Tensor
    loss: Tensor | None


class LayerMixTagger(nn.Module):
    """Feature-based tagging on frozen layers: logits = (γ Σ_j softmax(w)_j h_j) W + b, per token.

    Only the mix (``w``, ``γ``) and the linear head learn; the layers come precomputed in ``features``
    (B, L, T, H), so training never runs the pre-trained model again.
    """

    def __init__(self, num_layers: int, hidden_size: int, num_labels: int) -> None:
        super().__init__()
        self.mix = ScalarMix(num_layers)
        self.classifier = nn.Linear(hidden_size, num_labels)

    def forward(self, features: Tensor, labels: Tensor | None = None, **_: Any) -> _TaggerOutput:
        """features (B, L, T, H) -> logits (B, T, C); cross-entropy against ``labels`` (B, T), -100 ignored."""
        logits = self.classifier(self.mix(list(features.unbind(dim=1))))  # (B, T, H) -> (B, T, C)
        loss = None if labels is None else F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        return _TaggerOutput(logits, loss)


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of its 95 % confidence interval (Student's t over the seeds; 0 for one value)."""
    summary = stat(values)
    return summary["mean"], (summary["ci95"][1] - summary["mean"]) if summary["ci95"] else 0.0
