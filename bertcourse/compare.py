"""``python -m bertcourse.compare``: the head-to-head experiment of chapter 08 from the command line.

    python -m bertcourse.compare --preset {tiny,course,full,label-budget} --seeds N --out DIR [--device D] [--jobs J]

A thin layer over ``bertcourse.experiments.head_to_head.run`` (what is measured, the ``results.json``
schema, resuming): it parses the flags, runs, and prints the tables. ``run`` and ``evaluation_sets`` are
re-exported for chapter 08.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from bertcourse.device import check_device_flag
from bertcourse.experiments.head_to_head import evaluation_sets, run
from bertcourse.experiments.setup import PRESETS, ROWS
from bertcourse.validation import positive_int

__all__ = ["evaluation_sets", "main", "run"]


def _jobs_argument(text: str) -> int | str:
    """``--jobs``: ``auto`` or a positive integer."""
    if text == "auto":
        return text
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be a positive integer or 'auto', got {text!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: ``python -m bertcourse.compare --preset P --seeds N --out DIR``."""
    parser = argparse.ArgumentParser(prog="python -m bertcourse.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=tuple(PRESETS), default="tiny", help="experiment size (default tiny)")
    parser.add_argument("--seeds", type=positive_int, default=1, help="run seeds 0..N-1 (default 1)")
    parser.add_argument("--out", type=Path, required=True, help="output folder; a rerun resumes from what it holds")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    parser.add_argument(
        "--models", nargs="+", choices=tuple(ROWS), default=None, help="rows to run (default: the preset's rows)"
    )
    parser.add_argument(
        "--jobs", type=_jobs_argument, default="auto",
        help="runs at once, one process each (default auto: one per CPU core; 1 on a GPU)",
    )  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    check_device_flag(parser, args.device)
    command = shlex.join(["python", "-m", "bertcourse.compare", *(sys.argv[1:] if argv is None else argv)])
    results = run(
        args.preset, args.seeds, args.out, models=args.models, device=args.device, jobs=args.jobs,
        progress=not args.no_progress, command=command,
    )  # fmt: skip
    print((args.out / "results.md").read_text())
    print(f"wrote {args.out / 'results.json'} ({len(results['models'])} models, seeds {results['seeds']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
