"""Pick the best available device and make runs repeatable."""

from __future__ import annotations

import argparse
import os
import random

import numpy as np
import torch

__all__ = ["check_device_flag", "get_device", "resolve_device", "seed_everything"]


def get_device(prefer: str | None = None) -> torch.device:
    """Return ``cuda`` if available, then ``mps``, then ``cpu``; ``prefer`` forces one by name (ValueError if
    this machine has no such device, rather than a failure at the first tensor moved there)."""
    if prefer is not None:
        return resolve_device(prefer, "prefer")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(device: torch.device | str, name: str = "device") -> torch.device:
    """``device`` as a ``torch.device`` that exists on this machine; ValueError naming ``name`` otherwise."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"{name} must be 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}") from None
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (resolved.index or 0) >= count:
            raise ValueError(f"{name} {str(device)!r} does not exist here: {count} CUDA device(s) available")
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{name} {str(device)!r} does not exist here: MPS is not available")
    elif resolved.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"{name} must be 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")
    return resolved


def check_device_flag(parser: argparse.ArgumentParser, device: str | None) -> None:
    """A command line's ``--device`` (None: not given): one this machine lacks ends the parse with argparse's
    error naming the flag, before any work."""
    if device is None:
        return
    try:
        resolve_device(device, "--device")
    except ValueError as exc:
        parser.error(str(exc))


def seed_everything(seed: int, deterministic: bool = False) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); return a CPU ``torch.Generator`` with that seed.

    ``deterministic=True`` also asks PyTorch for deterministic kernels (slower on GPU).
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed)
