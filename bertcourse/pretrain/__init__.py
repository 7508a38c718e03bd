"""Pre-train ELMo, GPT or BERT from the command line, on one CPU, one GPU, or many under torchrun.

    python -m bertcourse.pretrain --model bert --steps 1000 --batch-size 64 --out runs/bert
    torchrun --nproc_per_node 8 -m bertcourse.pretrain --model bert --steps 1000 --batch-size 512 --out runs/bert

``cli`` declares the flags (each once); ``run`` loads the corpus and tokenizer, builds the model through
``bertcourse.registry`` and trains it with the engine, ``bertcourse.engine.train``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bertcourse.pretrain.cli import PretrainArgs, parse_args
from bertcourse.pretrain.run import run

__all__ = ["PretrainArgs", "main", "parse_args", "run"]


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse ``argv`` (default ``sys.argv[1:]``) and run; return the last log record."""
    return run(parse_args(argv))
