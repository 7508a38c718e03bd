"""Resumable checkpoints: model, optimizer and data-loader position, in safetensors and JSON.

A checkpoint is the folder ``OUT/checkpoint/``:

- ``config.json`` + ``model.safetensors``: the model, as ``save_pretrained`` writes it;
- ``optimizer.safetensors``: AdamW's moments and step counts, one tensor per (parameter, field);
- ``state.json``: the format tag, the step, the data-loader position (epoch, batch within it), the
  optimizer's hyper-parameters, the run's identity (the flags that change the result) and a SHA-256
  of each safetensors file.

Nothing is unpickled. Loading checks the format tag, the hashes and the identity first, so a
truncated or edited file, or a checkpoint of another run, is refused with a :class:`CheckpointError`
that says which. Writing goes to a temporary folder that replaces the old one only when complete, so
an interruption while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from bertcourse.base import CONFIG_NAME, WEIGHTS_NAME, CheckpointError, PreTrainedModel

__all__ = ["FORMAT", "TrainingState", "load_checkpoint", "save_checkpoint"]

FORMAT = "bertcourse.pretrain/1"  # the engine's checkpoint format (name kept: old runs resume)
OPTIMIZER_NAME = "optimizer.safetensors"
STATE_NAME = "state.json"


@dataclass
class TrainingState:
    """Where training stands after ``step`` optimizer steps; the next batch is (``epoch``, ``step_in_epoch``)."""

    step: int
    epoch: int
    step_in_epoch: int


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], list[dict[str, Any]]]:
    """AdamW's per-parameter state as flat ``state.{index}.{field}`` tensors, plus its param groups."""
    sd = optimizer.state_dict()
    tensors = {
        f"state.{index}.{name}": value.detach().cpu().contiguous()
        for index, fields in sd["state"].items()
        for name, value in fields.items()
    }
    return tensors, sd["param_groups"]


def save_checkpoint(
    directory: str | Path,
    model: PreTrainedModel,
    optimizer: torch.optim.Optimizer,
    state: TrainingState,
    identity: Mapping[str, Any],
) -> Path:
    """Write the checkpoint folder ``directory`` atomically (see the module docstring); return its path."""
    directory = Path(directory)
    tmp = directory.with_name(directory.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tensors, groups = _optimizer_tensors(optimizer)
    save_file(tensors, str(tmp / OPTIMIZER_NAME), metadata={"format": FORMAT})
    record = {
        "format": FORMAT,
        "step": state.step,
        "epoch": state.epoch,
        "step_in_epoch": state.step_in_epoch,
        "param_groups": groups,
        "identity": dict(identity),
        "sha256": {name: _sha256(tmp / name) for name in (WEIGHTS_NAME, OPTIMIZER_NAME, CONFIG_NAME)},
    }
    (tmp / STATE_NAME).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def _read_record(directory: Path) -> dict[str, Any]:
    path = directory / STATE_NAME
    if not path.is_file():
        raise CheckpointError(f"{directory} is not a pretrain checkpoint: {STATE_NAME} is missing")
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is corrupted: not valid JSON ({err})") from err
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise CheckpointError(f"{path} has format {found!r}, not {FORMAT!r}: a foreign checkpoint")
    for name, expected in record.get("sha256", {}).items():
        file = directory / name
        if not file.is_file():
            raise CheckpointError(f"checkpoint file {file} is missing")
        if _sha256(file) != expected:
            raise CheckpointError(f"checkpoint file {file} is corrupted: its SHA-256 differs from {STATE_NAME}'s")
    missing = {WEIGHTS_NAME, OPTIMIZER_NAME, CONFIG_NAME} - set(record.get("sha256", {}))
    if missing:
        raise CheckpointError(f"{path} lists no hash for {sorted(missing)}: a foreign or incomplete checkpoint")
    return record


def load_checkpoint(
    directory: str | Path,
    model: PreTrainedModel,
    optimizer: torch.optim.Optimizer,
    identity: Mapping[str, Any],
) -> TrainingState:
    """Load a checkpoint written by :func:`save_checkpoint` into ``model`` and ``optimizer``; return the state.

    Raises :class:`CheckpointError` when the folder is not such a checkpoint, a file is corrupted, or the
    run it belongs to differs from this one in a flag listed in ``identity`` (each differing flag is named).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no checkpoint to resume from: {directory} does not exist")
    record = _read_record(directory)
    saved = record.get("identity", {})
    differ = sorted(k for k in set(saved) | set(identity) if saved.get(k) != identity.get(k))
    if differ:
        details = "; ".join(f"{k}: checkpoint {saved.get(k)!r}, now {identity.get(k)!r}" for k in differ)
        raise CheckpointError(f"checkpoint {directory} belongs to another run ({details})")
    try:
        weights = load_file(str(directory / WEIGHTS_NAME))
        tensors = load_file(str(directory / OPTIMIZER_NAME))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"checkpoint {directory} is corrupted: {err}") from err
    model.load_state_dict_checked({k: v.to(next(model.parameters()).device) for k, v in weights.items()})
    state: dict[int, dict[str, Tensor]] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    try:
        optimizer.load_state_dict({"state": state, "param_groups": record["param_groups"]})
    except (ValueError, KeyError) as err:
        raise CheckpointError(f"checkpoint {directory}: the optimizer state does not fit this model ({err})") from err
    return TrainingState(int(record["step"]), int(record["epoch"]), int(record["step_in_epoch"]))
