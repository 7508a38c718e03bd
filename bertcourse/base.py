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
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from bertcourse.device import resolve_device
from bertcourse.validation import check_config_class

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "CheckpointError",
    "PreTrainedModel",
    "read_json",
    "read_safetensors",
]

M = TypeVar("M", bound="PreTrainedModel")
CONFIG_NAME = "config.json"  # the file names of a checkpoint folder, course or Hugging Face: defined once, here
WEIGHTS_NAME = "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint cannot be loaded: names the file that is unreadable, or the missing, unexpected or
    mis-shaped keys."""


def read_json(path: Path) -> dict[str, Any]:
    """A checkpoint's JSON object (``config.json``, a shard index); ``CheckpointError`` naming the file
    when it is not valid JSON or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err}): the file is damaged or not a checkpoint's") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def read_safetensors(path: Path, device: str = "cpu") -> dict[str, Tensor]:
    """The tensors of a safetensors file; ``CheckpointError`` naming the file when it is empty,
    truncated or corrupt (safetensors' own error names neither)."""
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        size = path.stat().st_size if path.exists() else 0
        raise CheckpointError(f"{path} is not a readable safetensors file ({size} bytes): {err}") from None


class PreTrainedModel(nn.Module):
    """Base of the course models: ``num_parameters``, ``save_pretrained`` and ``from_pretrained``.

    Subclasses set ``config_class`` (a dataclass) and take the config as their only required
    constructor argument.
    """

    config_class: ClassVar[type]
    config: Any

    @classmethod
    def checked_config(cls, config: Any) -> Any:
        """``config``, if it is a ``config_class``; a ``TypeError`` naming both otherwise (a dict, say)."""
        check_config_class(config, cls.config_class, cls.__name__)
        return config

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
        map_location = resolve_device(map_location, "map_location")  # before any file is read
        directory = Path(directory)
        config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        for path in (config_path, weights_path):
            if not path.is_file():
                raise FileNotFoundError(f"{path} not found: is {directory} a course checkpoint?")
        fields = read_json(config_path)
        model_type = fields.pop("model_type", cls.__name__)
        if model_type != cls.__name__ and not _compatible(model_type, cls):
            raise CheckpointError(f"checkpoint holds a {model_type}, not a {cls.__name__}")
        known = {f.name for f in dataclasses.fields(cls.config_class)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise CheckpointError(f"config.json has fields {cls.config_class.__name__} does not know: {unknown}")
        try:
            config = cls.config_class(**fields)
        except (TypeError, ValueError) as err:
            raise CheckpointError(
                f"{config_path} does not describe a valid {cls.config_class.__name__}: {err}"
            ) from None
        model = cls(config)
        state = read_safetensors(weights_path, device=str(map_location))
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
