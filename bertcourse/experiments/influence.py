"""Measured context visibility: how much each input word moves each output representation.

    I[i, j] = || d h_i / d e_j ||_F        h = encode(...) (T, H), e = the token embeddings (T, D)

the Frobenius norm of the Jacobian block of representation i with respect to input embedding j. A zero
means word j cannot influence word i's representation at all: GPT's matrix is lower-triangular (causal
attention), each ELMo direction is one-sided, BERT's is full. The matrix is measured from the model, not
drawn from its mask.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

from bertcourse.bert import BertModel, BertPreTrainedModel
from bertcourse.elmo import ELMo
from bertcourse.gpt import GPT

__all__ = ["embedding_function", "influence_matrix", "model_influence", "side_shares"]

Part = Literal["all", "forward", "backward"]


def influence_matrix(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """(T, T) matrix [i, j] = Frobenius norm of d fn(x)[i] / d x[j], for fn: (T, D) -> (T, H)."""
    if x.dim() != 2:
        raise ValueError(f"x must be (T, D) input embeddings, got shape {tuple(x.shape)}")
    jacobian = torch.autograd.functional.jacobian(fn, x)  # (T, H, T, D)
    if jacobian.dim() != 4 or jacobian.shape[0] != x.shape[0]:
        raise ValueError(f"fn must map (T, D) to (T, H), got a Jacobian of shape {tuple(jacobian.shape)}")
    return jacobian.pow(2).sum(dim=(1, 3)).sqrt()  # (T, H, T, D) -> (T, T)


def _token_embedding(model: nn.Module) -> nn.Embedding:
    if isinstance(model, ELMo):
        return model.embeddings
    if isinstance(model, GPT):
        return model.embeddings.word_embeddings
    if isinstance(model, BertPreTrainedModel):
        return model.bert.embeddings.word_embeddings
    if isinstance(model, BertModel):
        return model.embeddings.word_embeddings
    raise ValueError(f"model must be a course ELMo, GPT or BERT, got {type(model).__name__}")


def embedding_function(
    model: nn.Module, input_ids: Tensor, part: Part = "all"
) -> tuple[Callable[[Tensor], Tensor], Tensor]:
    """``(fn, e)``: fn maps token embeddings (N, T, D) to ``model.encode`` (N, T, H) of ``input_ids`` (1, T)
    repeated N times; e (T, D) = the real embeddings. A (T, D) argument gives (T, H), as
    :func:`influence_matrix` wants.

    ``fn`` swaps the token-embedding lookup for its argument, so positions, segments and every layer
    above run as usual. ``part`` picks ELMo's forward (first half) or backward (second half) states.
    """
    if input_ids.dim() != 2 or input_ids.shape[0] != 1:
        raise ValueError(f"input_ids must be one sequence, shape (1, T), got {tuple(input_ids.shape)}")
    if part not in ("all", "forward", "backward"):
        raise ValueError(f"part must be 'all', 'forward' or 'backward', got {part!r}")
    if part != "all" and not isinstance(model, ELMo):
        raise ValueError(f"part={part!r} needs an ELMo (its two directions); use 'all' for {type(model).__name__}")
    embedding = _token_embedding(model)

    def fn(e: Tensor) -> Tensor:
        batched = e if e.dim() == 3 else e.unsqueeze(0)  # (N, T, D)
        handle = embedding.register_forward_hook(lambda module, args, out: batched)
        try:
            h = model.encode(input_ids.expand(batched.shape[0], -1))  # (N, T, H)
        finally:
            handle.remove()
        half = h.shape[-1] // 2
        h = h[..., :half] if part == "forward" else h[..., half:] if part == "backward" else h
        return h if e.dim() == 3 else h[0]

    with torch.no_grad():
        e = embedding(input_ids)[0]  # (T, D)
    return fn, e


def model_influence(model: nn.Module, input_ids: Tensor, part: Part = "all", chunk: int = 512) -> Tensor:
    """The influence matrix (T, T) of ``model`` (in eval mode: no dropout) on one sequence (1, T).

    Equal to ``influence_matrix(*embedding_function(model, input_ids, part))``, but computed in batches:
    copy n of the sequence back-propagates output entry (i, h) = divmod(n, H) only, so one backward pass
    gives ``chunk`` rows of the Jacobian instead of one.
    """
    was_training = model.training
    model.eval()
    try:
        fn, e = embedding_function(model, input_ids, part)
        T, D = e.shape
        with torch.no_grad():
            H = fn(e).shape[-1]
        rows = []
        for start in range(0, T * H, chunk):
            n = torch.arange(start, min(start + chunk, T * H), device=e.device)  # output entries (i, h)
            x = e.expand(len(n), T, D).clone().requires_grad_(True)  # (N, T, D)
            out = fn(x)  # (N, T, H)
            picked = out[torch.arange(len(n), device=e.device), n // H, n % H].sum()
            (grad,) = torch.autograd.grad(picked, x)  # (N, T, D): row n of the Jacobian
            rows.append(grad)
        jacobian = torch.cat(rows).view(T, H, T, D)  # (T*H, T, D) -> (T, H, T, D)
        return jacobian.pow(2).sum(dim=(1, 3)).sqrt()  # (T, T)
    finally:
        model.train(was_training)


def side_shares(matrix: Tensor) -> dict[str, float]:
    """Shares of the off-diagonal influence that come from the left (j < i) and from the right (j > i)."""
    if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"matrix must be square (T, T), got {tuple(matrix.shape)}")
    left = torch.tril(matrix, diagonal=-1).sum()
    right = torch.triu(matrix, diagonal=1).sum()
    total = (left + right).clamp(min=1e-30)
    return {"left": float(left / total), "right": float(right / total)}
