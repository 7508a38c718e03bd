"""Grade exercise notebooks: ``python -m bertcourse.grade NOTEBOOK_OR_FOLDER... [--json] [--timeout S]``.

Each notebook runs in a fresh kernel under a time limit; the command prints points per task and the
total (or, with ``--json``, one JSON object per notebook and line). A learner scoring 0 is a grade,
not an error: the exit status is 0 unless a notebook could not be graded at all (then 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from bertcourse.grading.runner import SOLUTIONS, GradingError, NotebookGrade, grade_notebook, source_for


def _notebooks(paths: Sequence[Path]) -> list[Path]:
    """The notebooks named, and those inside named folders (recursively, skipping checkpoints)."""
    found = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
        else:
            found.append(path)
    return found


def _table(grade: NotebookGrade) -> str:
    width = max([len("total"), *(len(t.id) for t in grade.tasks)])
    lines = [f"{grade.notebook}  (tasks from {grade.source or 'the notebook itself'})"]
    for task in grade.tasks:
        lines.append(f"  {task.id:<{width}}  {task.points:6.2f} / {task.max_points:<3g}  {task.status}")
        if task.detail:
            lines.append(f"  {'':<{width}}  {task.detail}")
    lines.append(f"  {'total':<{width}}  {grade.score:6.2f} / {grade.max_score:g}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bertcourse.grade", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="notebooks, or folders of submissions")
    parser.add_argument("--json", action="store_true", help="one JSON object per notebook and line")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per notebook (default 120)")
    parser.add_argument(
        "--solutions",
        type=Path,
        default=SOLUTIONS,
        help="folder of source notebooks: the tasks and points of NAME.ipynb come from its NAME.ipynb",
    )
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error(f"--timeout must be positive, got {args.timeout}")
    notebooks = _notebooks(args.paths)
    if not notebooks:
        parser.error(f"no notebooks found in {', '.join(map(str, args.paths))}")
    status = 0
    for path in notebooks:
        try:
            grade = grade_notebook(path, timeout=args.timeout, source=source_for(path, args.solutions))
        except GradingError as exc:
            status = 1
            sys.stdout.write(
                json.dumps({"notebook": str(path), "error": str(exc)}) + "\n"
                if args.json
                else f"{path}\n  cannot grade: {exc}\n"
            )
            continue
        sys.stdout.write(json.dumps(grade.to_json()) + "\n" if args.json else _table(grade) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
