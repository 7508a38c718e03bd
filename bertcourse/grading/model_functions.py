"""Functions a grading query may carry, built in the kernel from a course model (no oracles live here).

A :class:`~bertcourse.grading.codec.ModelFunction` ``("model_functions", name, model)`` is rebuilt in
the submission's kernel as ``MODEL_FUNCTIONS[name](model)``. This module is one of the few grading
sources a sandboxed kernel may see, so it holds only these builders.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from bertcourse.experiments.influence import embedding_function

__all__ = ["INPUT_IDS", "MODEL_FUNCTIONS", "PARTS"]

INPUT_IDS = torch.tensor([[2, 17, 5, 29, 3]])  # (1, T): one sequence, "[CLS] w w w [SEP]"-like ids
PARTS = {"encode": "all", "elmo_forward": "forward", "elmo_backward": "backward"}  # function -> part of the states


def _function(part: str) -> Callable[[nn.Module], Callable[[Tensor], Tensor]]:
    """A builder: model -> fn, its encode() of INPUT_IDS as a function of the token embeddings (T, D) -> (T, H)."""

    def build(model: nn.Module) -> Callable[[Tensor], Tensor]:
        return embedding_function(model, INPUT_IDS, part)[0]

    return build


MODEL_FUNCTIONS: dict[str, Callable[[nn.Module], Callable[[Tensor], Tensor]]] = {
    name: _function(part) for name, part in PARTS.items()
}
"""Exercise 08's functions of the token embeddings, by name."""
