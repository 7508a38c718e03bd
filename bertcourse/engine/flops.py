"""Throughput: model FLOPs per token and model FLOPs utilisation (MFU), as in PaLM (Chowdhery et al. 2022).

A training step costs about 6 FLOPs per weight used per token (2 forward, 4 backward) plus, in a
Transformer, 12 L H T for attention scores and weighted sums (L layers, H hidden size, T length):

    FLOPs/token = 6 N + 12 L H T,

with N the weights that multiply activations (embedding look-ups cost nothing; a tied output layer
counts once as a matmul). MFU = achieved FLOPs/s / the GPU's peak dense bf16 FLOPs/s.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PEAK_BF16_FLOPS", "flops_per_token", "mfu", "peak_bf16_flops"]

PEAK_BF16_FLOPS: dict[str, float] = {
    "H200": 989e12,  # dense bf16 tensor-core peaks from NVIDIA's data sheets (sparsity doubles them)
    "H100 PCIe": 756e12,
    "H100 NVL": 835e12,
    "H100": 989e12,  # SXM
    "A100": 312e12,
    "A40": 149.7e12,
    "A10G": 70e12,
    "A10": 125e12,
    "L40S": 362e12,
    "L40": 181e12,
    "L4": 121e12,
    "RTX 4090": 165e12,
    "RTX 3090": 71e12,
}
"""Peak dense bf16 FLOPs/s by GPU name fragment, most specific first."""


def flops_per_token(model: nn.Module, seq_len: int) -> float:
    """Training FLOPs per token of a course model: 6 N_matmul (+ 12 L H T for GPT and BERT).

    N_matmul is every parameter except the embedding tables, plus the tied output layer (V x H) once.
    """
    config = model.config
    embeddings = [m for m in model.modules() if isinstance(m, nn.Embedding)]
    embedding_ids = {id(m.weight) for m in embeddings}
    n = sum(p.numel() for p in model.parameters() if id(p) not in embedding_ids)
    head = getattr(model, "lm_head", None) or getattr(getattr(model, "mlm_head", None), "decoder", None)
    if head is not None and id(head.weight) in embedding_ids:
        n += head.weight.numel()  # tied: the table is also the output matmul
    attention = 12 * config.n_layers * config.d_model * seq_len if hasattr(config, "n_heads") else 0
    return 6.0 * n + attention


def peak_bf16_flops(device: torch.device) -> float | None:
    """The peak dense bf16 rate of ``device`` from :data:`PEAK_BF16_FLOPS`, or None (CPU, unknown GPU)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)


def mfu(tokens_per_second: float, model: nn.Module, seq_len: int, peak: float) -> float:
    """Model FLOPs utilisation: tokens/s x FLOPs/token / peak FLOPs/s."""
    return tokens_per_second * flops_per_token(model, seq_len) / peak
