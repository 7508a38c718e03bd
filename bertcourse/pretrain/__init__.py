"""Pre-train ELMo, GPT or BERT from the command line, on one CPU, one GPU, or many under torchrun.

    python -m bertcourse.pretrain --model bert --steps 1000 --batch-size 64 --out runs/bert
    torchrun --nproc_per_node 8 -m bertcourse.pretrain --model bert --steps 1000 --batch-size 512 --out runs/bert

One concept per module: ``cli`` (flags, sizes, corpora), ``data`` (examples whose random choices do not
depend on the process), ``losses`` (normalised by the global number of targets), ``distributed``
(torchrun's process group), ``checkpoint`` (resumable, verified safetensors), ``flops`` (MFU) and
``loop`` (the run itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bertcourse.pretrain.cli import PretrainArgs, parse_args
from bertcourse.pretrain.flops import flops_per_token, mfu
from bertcourse.pretrain.loop import run

__all__ = ["PretrainArgs", "flops_per_token", "main", "mfu", "parse_args", "run"]


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse ``argv`` (default ``sys.argv[1:]``) and run; return the last log record."""
    return run(parse_args(argv))
