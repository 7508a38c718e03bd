"""What every course model shares: input checks, parameter counts, and safetensors checkpoints.

A checkpoint is a folder with ``config.json`` (the dataclass config plus ``model_type``) and
``model.safetensors`` (the state dict, tied weights stored once). Loading never unpickles.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

__all__ = ["CheckpointError", "PreTrainedModel", "check_inputs"]

M = TypeVar("M", bound="PreTrainedModel")
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint does not fit the model: names the missing, unexpected or mis-shaped keys."""


def check_inputs(
    input_ids: Tensor,
    attention_mask: Tensor | None = None,
    *,
    vocab_size: int,
    max_len: int | None = None,
    token_type_ids: Tensor | None = None,
    type_vocab_size: int | None = None,
) -> None:
    """Raise ``ValueError`` naming the argument when model inputs are malformed.

    ``input_ids`` must be (B, T) integers in [0, vocab_size), T <= max_len; ``attention_mask`` and
    ``token_type_ids`` must have the same (B, T) shape, with token types in [0, type_vocab_size).
    """
    if not isinstance(input_ids, Tensor) or input_ids.dim() != 2:
        got = tuple(input_ids.shape) if isinstance(input_ids, Tensor) else type(input_ids).__name__
        raise ValueError(f"input_ids must be a (B, T) tensor, got {got}")
    if input_ids.is_floating_point() or input_ids.dtype == torch.bool:
        raise ValueError(f"input_ids must be integer token ids, got dtype {input_ids.dtype}")
    if input_ids.numel() > 0:
        lo, hi = int(input_ids.min()), int(input_ids.max())
        if lo < 0 or hi >= vocab_size:
            raise ValueError(f"input_ids must lie in [0, vocab_size={vocab_size}), got values in [{lo}, {hi}]")
    if max_len is not None and input_ids.shape[1] > max_len:
        raise ValueError(f"input_ids has length {input_ids.shape[1]} > max_len={max_len}")
    for name, t in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids)):
        if t is not None and (not isinstance(t, Tensor) or t.shape != input_ids.shape):
            got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{name} must have the shape of input_ids {tuple(input_ids.shape)}, got {got}")
    if token_type_ids is not None and type_vocab_size is not None and token_type_ids.numel() > 0:
        lo, hi = int(token_type_ids.min()), int(token_type_ids.max())
        if lo < 0 or hi >= type_vocab_size:
            raise ValueError(f"token_type_ids must lie in [0, type_vocab_size={type_vocab_size}), got [{lo}, {hi}]")


class PreTrainedModel(nn.Module):
    """Base of the course models: ``num_parameters``, ``save_pretrained`` and ``from_pretrained``.

    Subclasses set ``config_class`` (a dataclass) and take the config as their only required
    constructor argument.
    """

    config_class: ClassVar[type]
    config: Any

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Number of parameters, each tied tensor counted once."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def _tied_keys(self) -> dict[str, str]:
        """Map each state-dict key that shares storage with an earlier key to that earlier key."""
        first: dict[tuple[int, tuple[int, ...]], str] = {}
        tied: dict[str, str] = {}
        for key, tensor in self.state_dict(keep_vars=True).items():
            ident = (tensor.data_ptr(), tuple(tensor.shape))
            if ident in first and tensor.numel() > 0:
                tied[key] = first[ident]
            else:
                first.setdefault(ident, key)
        return tied

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory``; return its path."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {"model_type": type(self).__name__, **dataclasses.asdict(self.config)}
        (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        tied = self._tied_keys()
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items() if k not in tied}
        save_file(state, str(directory / WEIGHTS_NAME), metadata={"model_type": type(self).__name__})
        return directory

    @classmethod
    def from_pretrained(cls: type[M], directory: str | Path, map_location: str | torch.device = "cpu") -> M:
        """Build the model from ``config.json`` and load ``model.safetensors`` strictly.

        Raises :class:`CheckpointError` (a ``ValueError``) listing unknown config fields, or missing,
        unexpected and mis-shaped weights.
        """
        directory = Path(directory)
        config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        for path in (config_path, weights_path):
            if not path.is_file():
                raise FileNotFoundError(f"{path} not found: is {directory} a course checkpoint?")
        fields = json.loads(config_path.read_text())
        model_type = fields.pop("model_type", cls.__name__)
        if model_type != cls.__name__ and not _compatible(model_type, cls):
            raise CheckpointError(f"checkpoint holds a {model_type}, not a {cls.__name__}")
        known = {f.name for f in dataclasses.fields(cls.config_class)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise CheckpointError(f"config.json has fields {cls.config_class.__name__} does not know: {unknown}")
        model = cls(cls.config_class(**fields))
        state = load_file(str(weights_path), device=str(map_location))
        model.load_state_dict_checked(state)
        return model.to(map_location)

    def load_state_dict_checked(self, state: dict[str, Tensor]) -> None:
        """Load ``state`` strictly; tied weights may appear once. Errors list every offending key."""
        expected = self.state_dict()
        state = dict(state)
        for key, source in self._tied_keys().items():
            if key not in state and source in state:
                state[key] = state[source]
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        mis_shaped = sorted(
            f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
            for k in set(state) & set(expected)
            if state[k].shape != expected[k].shape
        )
        if missing or unexpected or mis_shaped:
            parts = [
                f"{name}: {keys}"
                for name, keys in (
                    ("missing keys", missing),
                    ("unexpected keys", unexpected),
                    ("wrong shapes", mis_shaped),
                )
                if keys
            ]
            raise CheckpointError(f"checkpoint does not fit {type(self).__name__}; " + "; ".join(parts))
        self.load_state_dict(state, strict=True)


def _compatible(model_type: str, cls: type) -> bool:
    """A checkpoint of one head may load into a model class that shares its config (e.g. BERT heads)."""
    return any(model_type == base.__name__ for base in cls.__mro__)
