"""Grade exercise notebooks: ``python -m bertcourse.grade NOTEBOOK_OR_FOLDER... [--json] [options]``.

Each submission runs contained (a fresh temporary folder, a scrubbed environment, its own process
group, resource limits) and is graded against the source notebook of the same file name in
``--solutions`` (default: this checkout's ``solutions/``), or against ``--source``. Points are
computed in this process from the data the submission's functions return, never from anything the
notebook prints. The command prints a table per notebook, with the failing properties and their
hints under each task; with ``--json``, exactly one strict JSON object per notebook and line, one
with an ``error`` field for a notebook that cannot be graded. The batch always goes on. A learner
scoring 0 is a grade, not an error: the exit status is 0 unless some notebook could not be graded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from bertcourse.grading.report import Status, clean, wrap
from bertcourse.grading.runner import SOLUTIONS, GradingError, NotebookGrade, grade_notebook
from bertcourse.grading.sandbox import Limits, become_subreaper, kill_descendants

__all__ = ["main"]


def _notebooks(paths: Sequence[Path]) -> Iterator[Path]:
    """The notebooks named, and those inside named folders (recursively, never following links)."""
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            for folder, dirs, files in os.walk(path, followlinks=False):
                dirs[:] = sorted(d for d in dirs if d != ".ipynb_checkpoints")
                yield from (Path(folder) / f for f in sorted(files) if f.endswith(".ipynb"))
        else:
            yield path


def _table(grade: NotebookGrade) -> str:
    """Points per task; under each task that lost points, its failing properties with their hints."""
    width = max(len("total"), *(len(t.id) for t in grade.tasks))
    lines = wrap(f"{clean(grade.notebook, 300)}  (tasks from {grade.source})", 0)
    for task in grade.tasks:
        lines.append(f"  {task.id:<{width}}  {task.points:6.2f} / {task.max_points:<3g}  {task.status}")
        if task.detail:
            lines += wrap(task.detail, 6)
        for prop in task.properties:
            if prop["status"] == Status.FAILED.value:
                lines += wrap(f"FAIL {prop['name']}", 6) + wrap(prop["detail"], 11)
    lines.append(f"  {'total':<{width}}  {grade.score:6.2f} / {grade.max_score:g}")
    return "\n".join(lines)


def _source(path: Path, args: argparse.Namespace) -> Path:
    if args.source is not None:
        return args.source
    candidate = args.solutions / path.name
    if not candidate.is_file():
        raise GradingError(
            f"no source notebook named {clean(path.name, 200)} in {args.solutions}: rename the submission "
            "to its exercise's file name, or name its source with --source"
        )
    return candidate


def _grade_one(path: Path, args: argparse.Namespace, limits: Limits) -> tuple[dict[str, object], str]:
    """The JSON record and the text of one notebook; never raises."""
    try:
        source = _source(path, args)
        grade = grade_notebook(path, source, limits)
    except GradingError as exc:
        record = {"notebook": clean(path, 500), "error": clean(exc, 500)}
        return record, f"{record['notebook']}\n" + "\n".join(wrap(f"cannot grade: {record['error']}", 2))
    except Exception as exc:  # a grader bug must not end the batch either
        record = {"notebook": clean(path, 500), "error": clean(f"internal error: {type(exc).__name__}: {exc}", 500)}
        return record, f"{record['notebook']}\n" + "\n".join(wrap(f"cannot grade: {record['error']}", 2))
    record = grade.to_json()
    record["notebook"] = clean(record["notebook"], 500)
    return record, _table(grade)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bertcourse.grade", description=__doc__.splitlines()[0])
    defaults = Limits()
    parser.add_argument("paths", nargs="+", type=Path, help="notebooks, or folders of submissions")
    parser.add_argument("--json", action="store_true", help="one JSON object per notebook and line")
    parser.add_argument(
        "--solutions", type=Path, default=SOLUTIONS, help="folder of source notebooks, matched by file name"
    )
    parser.add_argument("--source", type=Path, help="grade every notebook against this source notebook")
    parser.add_argument("--timeout", type=float, default=defaults.timeout, help="seconds per notebook (%(default)s)")
    parser.add_argument("--memory-mb", type=int, default=defaults.memory_mb, help="address space (%(default)s MiB)")
    parser.add_argument("--file-mb", type=int, default=defaults.file_mb, help="largest file written (%(default)s MiB)")
    parser.add_argument(
        "--processes", type=int, default=defaults.processes, help="extra processes/threads (%(default)s)"
    )
    parser.add_argument("--cpu-seconds", type=int, default=defaults.cpu_seconds, help="CPU time (%(default)s s)")
    parser.add_argument(
        "--notebook-mb", type=int, default=defaults.notebook_mb, help="largest notebook read (%(default)s MiB)"
    )
    args = parser.parse_args(argv)
    if not args.timeout > 0:
        parser.error(f"--timeout must be positive, got {args.timeout}")
    if not args.notebook_mb > 0:
        parser.error(f"--notebook-mb must be positive, got {args.notebook_mb}")
    for name in ("memory_mb", "file_mb", "processes", "cpu_seconds"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be 0 (no limit) or positive")
    limits = Limits(
        timeout=args.timeout,
        memory_mb=args.memory_mb,
        file_mb=args.file_mb,
        processes=args.processes,
        cpu_seconds=args.cpu_seconds,
        notebook_mb=args.notebook_mb,
    )
    status, count = 0, 0
    reaper = become_subreaper()
    for path in _notebooks(args.paths):
        count += 1
        record, text = _grade_one(path, args, limits)
        if reaper:
            kill_descendants()  # whatever the submission left, even what escaped its sandbox's process group
        try:
            line = json.dumps(record, allow_nan=False)
        except ValueError as exc:  # never happens with clamped points; a batch still gets strict JSON
            record = {"notebook": record["notebook"], "error": f"internal error: {exc}"}
            line = text = json.dumps(record)
        status = 1 if "error" in record else status
        sys.stdout.write((line if args.json else text) + "\n")
        sys.stdout.flush()
    if count == 0:
        parser.error(f"no notebooks found in {', '.join(map(str, args.paths))}")
    return status


if __name__ == "__main__":
    sys.exit(main())
