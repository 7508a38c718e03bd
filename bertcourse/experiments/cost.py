"""The cost side: forward time against sequence length, and training throughput.

An LSTM steps through time, T sequential updates per layer; self-attention is parallel over
positions but builds (T, T) scores, quadratic in T. :func:`forward_time` measures both at several
lengths on one device.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["forward_time"]


@torch.no_grad()
def forward_time(
    model: nn.Module,
    lengths: Sequence[int],
    *,
    batch_size: int = 8,
    repeats: int = 3,
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> dict[int, float]:
    """Median milliseconds of ``model.encode`` on random (batch_size, T) ids, for each T in ``lengths``.

    Each length is run once to warm up, then ``repeats`` times; CUDA work is synchronised before each reading.
    """
    if not lengths or min(lengths) < 1 or repeats < 1 or batch_size < 1:
        raise ValueError(f"need lengths >= 1, repeats >= 1, batch_size >= 1; got {lengths}, {repeats}, {batch_size}")
    device = torch.device(device)
    was_training = model.training
    model.eval().to(device)
    generator = torch.Generator().manual_seed(seed)
    vocab_size = model.config.vocab_size
    result: dict[int, float] = {}
    for T in lengths:
        input_ids = torch.randint(vocab_size, (batch_size, T), generator=generator).to(device)
        timings = []
        for r in range(repeats + 1):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            model.encode(input_ids)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if r > 0:
                timings.append(1000 * (time.perf_counter() - start))
        result[int(T)] = statistics.median(timings)
    model.train(was_training)
    return result
