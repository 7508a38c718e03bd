"""The flags of ``python -m bertcourse.pretrain``, each declared once: its type, default, group and help.

The flags ``--model --steps --batch-size --seed --dropout --out --resume --stop-after`` are the stable
interface (COURSE_DESIGN section 3); the others configure size, data, optimisation and speed. Each flag
is one field of :class:`PretrainArgs`; the argument parser is built from those fields, so a default
lives in one place.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from bertcourse.device import check_device_flag
from bertcourse.registry import MODELS, SIZES

__all__ = ["IDENTITY", "PretrainArgs", "parse_args"]


def _flag(default: Any, help: str, group: str = "run", type: Any = None, **kwargs: Any) -> Any:
    """A field of :class:`PretrainArgs` that is also a command-line flag."""
    meta = {"help": help, "group": group, "type": type, **kwargs}
    if default is MISSING:
        return field(metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class PretrainArgs:
    """Every flag, after size presets and derived defaults are resolved (see ``--help`` for each)."""

    # the stable interface
    model: str = _flag(MISSING, "the model to pre-train", choices=MODELS)
    out: Path = _flag(MISSING, "folder for model.safetensors, checkpoint/, log.jsonl", type=Path)
    steps: int = _flag(200, "optimizer steps of the schedule", type=int)
    batch_size: int = _flag(32, "GLOBAL batch, split evenly across processes", type=int)
    seed: int = _flag(0, "seeds initialisation, data order, masking and dropout", type=int)
    dropout: float = _flag(0.1, "dropout everywhere (0 for exact reproducibility)", type=float)
    resume: bool = _flag(False, "continue from OUT/checkpoint")
    stop_after: int | None = _flag(None, "end after K steps with a checkpoint", type=int)
    # data
    corpus: str = _flag("toy", "'toy', 'pydoc', a .txt file or folder, or 'hf:NAME' (online)", "data", str)
    toy_docs: int = _flag(2000, "documents of the toy language", "data", int)
    tokenizer: str = _flag("train", "'train' (WordPiece on the corpus), 'minilm', or a vocab.txt", "data", str)
    vocab_size: int = _flag(2000, "vocabulary size with --tokenizer train", "data", int)
    seq_len: int = _flag(64, "tokens per example", "data", int)
    mlm_probability: float = _flag(0.15, "BERT's masked share", "data", float)
    eval_fraction: float = _flag(0.05, "share of documents held out", "data", float)
    # model size: a preset, then any override (None: the preset's value)
    size: str = _flag("small", "model size preset", "model size", str, choices=sorted(SIZES))
    d_model: int | None = _flag(None, "hidden size (default: the size preset's)", "model size", int)
    n_layers: int | None = _flag(None, "layers (default: the size preset's)", "model size", int)
    n_heads: int | None = _flag(None, "attention heads (default: the size preset's)", "model size", int)
    d_ff: int | None = _flag(None, "feed-forward size (default: the size preset's)", "model size", int)
    d_hidden: int | None = _flag(None, "ELMo's LSTM cells (default: the size preset's)", "model size", int)
    # optimisation
    lr: float = _flag(1e-3, "peak learning rate of AdamW", "optimisation", float)
    warmup: int | None = _flag(None, "warm-up steps (default 10%% of --steps)", "optimisation", int)
    schedule: str = _flag("cosine", "decay after warm-up", "optimisation", str, choices=("cosine", "linear"))
    weight_decay: float = _flag(0.01, "AdamW's decoupled weight decay", "optimisation", float)
    max_grad_norm: float = _flag(1.0, "clip the global gradient norm to this", "optimisation", float)
    # evaluation, logging, speed
    eval_every: int | None = _flag(None, "steps between evaluations (default --steps/10; 0: never)", "speed", int)
    eval_examples: int = _flag(256, "held-out examples per evaluation", "speed", int)
    checkpoint_every: int = _flag(0, "steps between checkpoints (0: at the end only)", "speed", int)
    log_every: int = _flag(10, "steps between printed log lines", "speed", int)
    bf16: bool = _flag(False, "bf16 autocast (CUDA; also works, slowly, on CPU)", "speed")
    compile: bool = _flag(False, "torch.compile the model", "speed")
    device: str | None = _flag(None, "cuda, mps or cpu (default: the best available)", "speed", str)
    progress: bool | None = _flag(None, "tqdm bar on rank 0", "speed", action=argparse.BooleanOptionalAction)
    peak_tflops: float | None = _flag(None, "peak bf16 TFLOP/s for MFU on an unlisted GPU", "speed", float)

    def identity(self, vocab_sha256: str) -> dict[str, Any]:
        """The flags that define the run, plus the vocabulary's hash: what a checkpoint must match."""
        values = asdict(self)
        return {**{k: values[k] for k in IDENTITY}, "vocab_sha256": vocab_sha256}


IDENTITY = (
    "model", "steps", "batch_size", "seed", "dropout", "corpus", "toy_docs", "tokenizer", "vocab_size",
    "d_model", "n_layers", "n_heads", "d_ff", "d_hidden", "seq_len", "lr", "warmup", "schedule",
    "weight_decay", "max_grad_norm", "mlm_probability", "eval_fraction",
)  # fmt: skip
"""The flags that change a run's result: a checkpoint resumes only under the same values."""


def _parser() -> argparse.ArgumentParser:
    """The argument parser, one argument per field of :class:`PretrainArgs`."""
    parser = argparse.ArgumentParser(
        prog="python -m bertcourse.pretrain",
        description="Pre-train ELMo, GPT or BERT on one CPU, one GPU, or many under torchrun "
        "(torchrun --nproc_per_node N -m bertcourse.pretrain ...).",
    )
    groups: dict[str, Any] = {"run": parser}
    for f in fields(PretrainArgs):
        meta = dict(f.metadata)
        group = groups.get(meta["group"]) or groups.setdefault(meta["group"], parser.add_argument_group(meta["group"]))
        flag, kind = "--" + f.name.replace("_", "-"), meta.pop("type")
        meta.pop("group")
        if f.default is MISSING:
            group.add_argument(flag, required=True, type=kind, **meta)
        elif "action" not in meta and kind is None:  # a switch: False unless given
            group.add_argument(flag, action="store_true", **meta)
        else:
            shown = "" if f.default is None else f" (default {f.default})"
            meta["help"] += shown
            group.add_argument(flag, default=f.default, **({"type": kind} if kind else {}), **meta)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> PretrainArgs:
    """Parse and check the flags; a bad value exits with a message naming its flag (argparse's error)."""
    parser = _parser()
    values = vars(parser.parse_args(argv))
    for name, size_value in SIZES[values["size"]].items():
        if values[name] is None:
            values[name] = size_value
    steps = values["steps"]
    values["warmup"] = steps // 10 if values["warmup"] is None else values["warmup"]
    values["eval_every"] = max(1, steps // 10) if values["eval_every"] is None else values["eval_every"]
    v = argparse.Namespace(**values)
    checks = [
        (v.steps >= 1, "--steps must be >= 1"),
        (v.batch_size >= 1, "--batch-size must be >= 1"),
        (v.seed >= 0, "--seed must be >= 0"),
        (0.0 <= v.dropout < 1.0, "--dropout must lie in [0, 1)"),
        (v.stop_after is None or 1 <= v.stop_after <= v.steps, "--stop-after must lie in [1, --steps]"),
        (0 <= v.warmup <= v.steps, "--warmup must lie in [0, --steps]"),
        (v.lr > 0 and v.weight_decay >= 0 and v.max_grad_norm > 0, "--lr and --max-grad-norm must be > 0"),
        (v.eval_every >= 0, "--eval-every must be >= 0 (0: never)"),
        (v.log_every >= 1, "--log-every must be >= 1"),
        (v.checkpoint_every >= 0 and v.eval_examples >= 1, "--checkpoint-every >= 0, --eval-examples >= 1"),
        (v.seq_len >= 8, "--seq-len must be >= 8"),
        (v.d_model % v.n_heads == 0, "--d-model must be divisible by --n-heads"),
        (0.0 < v.mlm_probability < 1.0, "--mlm-probability must lie in (0, 1)"),
    ]
    for ok, message in checks:
        if not ok:
            parser.error(message)
    check_device_flag(parser, v.device)
    return PretrainArgs(**values)
