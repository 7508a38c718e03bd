"""Grade exercise notebooks: ``python -m bertcourse.grade NOTEBOOK_OR_FOLDER... [--json] [options]``.

Each submission runs sandboxed (bubblewrap namespaces where available, else a process sandbox that
every record announces; see :mod:`~bertcourse.grading.sandbox`) and is graded against the source
notebook of the same file name in ``--solutions`` (default: this checkout's ``solutions/``), or
against ``--source``. Points are computed in this process from the data the submission's functions
return, never from anything the notebook prints. Every exercise module and every source notebook is
loaded, and each graded cell's points checked against the exercise module's own table, before any
submission runs. Each notebook is graded in a forked worker under a watchdog, ``--jobs`` at a time:
a worker that is killed, stopped or overdue costs its own notebook only, and what it left is killed
and deleted. Every path is accounted for: a skipped argument or folder entry, a duplicate and a
missing learner of ``--roster`` each get a line with the reason. The command prints a table per
notebook (``--json``: one strict JSON object per line), then, in text mode, a class summary. A
learner scoring 0 is a grade, not an error: the exit status is 0 unless some notebook could not be graded.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import multiprocessing
import multiprocessing.connection
import os
import secrets
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertcourse.grading import framework, sandbox
from bertcourse.grading.report import Status, clean, wrap
from bertcourse.grading.runner import SOLUTIONS, GradingError, NotebookGrade, grade_notebook, preload_source
from bertcourse.grading.sandbox import Limits, become_subreaper, kill_descendants

__all__ = ["main"]

ROOT_WARNING = "graded as root: RLIMIT_NPROC does not bind root, so --processes limits nothing; grade as a user"


@dataclass(frozen=True)
class Entry:
    """One line of the output: a notebook to grade, or a path that is reported instead (``problem``)."""

    path: Path
    learner: str
    problem: str = ""


def _learner(path: Path, top: Path) -> str:
    """nbgrader's ``submitted/<learner>/...``, else the first folder below the argument, else the parent's name."""
    parts = path.parts
    if "submitted" in parts[:-1]:
        i = parts.index("submitted")
        if i + 1 < len(parts) - 1:
            return parts[i + 1]
    relative = path.relative_to(top).parts if top != path else ()
    return relative[0] if len(relative) >= 2 else path.parent.name


def _walk(paths: Sequence[Path]) -> Iterator[Entry]:
    """The notebooks named, and those inside named folders (never following links); every skip with its reason."""
    for path in paths:
        if not os.path.lexists(path):
            yield Entry(path, "", "no such file or folder")
        elif path.is_symlink():
            yield Entry(path, path.name, "a symbolic link: not followed (copy the submission instead)")
        elif not path.is_dir():
            yield Entry(path, _learner(path, path))
        else:
            for folder, dirs, files in os.walk(path, followlinks=False):
                here = Path(folder)
                if ".ipynb_checkpoints" in dirs:
                    saved = [f for f in os.listdir(here / ".ipynb_checkpoints") if f.lower().endswith(".ipynb")]
                    originals = {f.replace("-checkpoint", "") for f in saved} - set(files)
                    for name in sorted(originals):
                        yield Entry(here / name, _learner(here / name, path), "only a Jupyter checkpoint was found")
                dirs[:] = sorted(d for d in dirs if d != ".ipynb_checkpoints")
                for name in sorted(dirs + files):
                    entry = here / name
                    learner = _learner(entry / "_" if name in dirs else entry, path)  # a folder: as if a file in it
                    if entry.is_symlink() and (name in dirs or name.lower().endswith(".ipynb")):
                        yield Entry(entry, learner, "a symbolic link: not followed (copy the submission instead)")
                    elif name in dirs and name.lower().endswith(".ipynb"):
                        yield Entry(entry, learner, "a folder named like a notebook")
                    elif name in files and name.endswith(".ipynb"):
                        yield Entry(entry, learner)
                    elif name in files and name.lower().endswith(".ipynb"):
                        yield Entry(entry, learner, f"the extension is not .ipynb in lower case: rename {name}")


def _entries(paths: Sequence[Path]) -> list[Entry]:
    """The walk, with duplicates (one learner, one notebook name, twice) flagged after the first."""
    seen: dict[tuple[str, str], Path] = {}
    entries = []
    for entry in _walk(paths):
        key = (entry.learner, entry.path.name)
        if not entry.problem and key in seen:
            entry = Entry(entry.path, entry.learner, f"a second copy of {entry.path.name} for this learner; "
                          f"graded: {seen[key]}")  # fmt: skip
        elif not entry.problem:
            seen[key] = entry.path
        entries.append(entry)
    return entries


def _table(grade: NotebookGrade, learner: str = "") -> str:
    """Points per task; under each task that lost points, its failing properties with their hints."""
    width = max(len("total"), *(len(t.id) for t in grade.tasks))
    who = f"{_one_line(learner, 100)}: " if learner else ""
    lines = wrap(f"{who}{_one_line(grade.notebook, 300)}  (tasks from {_one_line(grade.source, 300)})", 0)
    if os.getuid() == 0:
        lines += wrap(f"WARNING: {ROOT_WARNING}", 2)
    if grade.sandbox and grade.sandbox != "bubblewrap":
        lines += wrap(f"WARNING: graded in the process sandbox only ({clean(grade.sandbox, 300)})", 2)
    for task in grade.tasks:
        lines.append(f"  {task.id:<{width}}  {task.points:6.2f} / {task.max_points:<3g}  {task.status}")
        if task.detail:
            lines += wrap(clean(task.detail, 1500), 6)
        for prop in task.properties:
            if prop["status"] == Status.FAILED.value:
                lines += wrap(f"FAIL {clean(prop['name'], 300)}", 6) + wrap(clean(prop["detail"], 1500), 11)
    lines.append(f"  {'total':<{width}}  {grade.score:6.2f} / {grade.max_score:g}")
    return "\n".join(lines)


def _one_line(text: object, limit: int) -> str:
    """``text`` for a text report: control characters, newlines included, shown escaped, never obeyed."""
    return clean(str(text).encode("unicode_escape").decode("ascii"), limit)


def _error(entry: Entry, why: str) -> tuple[dict[str, Any], str]:
    record = {"notebook": clean(entry.path, 500), "learner": clean(entry.learner, 200), "error": clean(why, 500)}
    text = f"{_one_line(entry.path, 500)}\n" + "\n".join(wrap(f"cannot grade: {_one_line(why, 500)}", 2))
    return record, text


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


def _grade_one(entry: Entry, args: argparse.Namespace, limits: Limits) -> tuple[dict[str, Any], str]:
    """The JSON record and the text of one notebook; never raises."""
    if entry.problem:
        return _error(entry, entry.problem)
    try:
        grade = grade_notebook(entry.path, _source(entry.path, args), limits)
    except GradingError as exc:
        return _error(entry, str(exc))
    except Exception as exc:  # a grader bug must not end the batch either
        return _error(entry, f"internal error: {type(exc).__name__}: {exc}")
    record = {"learner": clean(entry.learner, 200), **grade.to_json()}
    if os.getuid() == 0:
        record["warnings"] = [ROOT_WARNING]
    record["notebook"] = clean(record["notebook"], 500)
    return record, _table(grade, entry.learner)


# ------------------------------------------------------------------------------------ workers


def _worker(
    entry: Entry, args: argparse.Namespace, limits: Limits, pipe: multiprocessing.connection.Connection
) -> None:
    """A forked child: grade one notebook, send its record back, kill whatever the submission left."""
    os.setpgid(0, 0)
    become_subreaper()
    sandbox.on_start = lambda box: pipe.send(("sandbox", box.cleanup_info()))
    try:
        pipe.send(("done", _grade_one(entry, args, limits)))
    finally:
        kill_descendants()
        pipe.close()
        os._exit(0)


@dataclass
class _Running:
    entry: Entry
    process: multiprocessing.process.BaseProcess
    pipe: multiprocessing.connection.Connection
    deadline: float
    sandbox: dict[str, Any] | None = None
    result: tuple[dict[str, Any], str] | None = None


def _finish(job: _Running, why: str) -> tuple[dict[str, Any], str]:
    """The result of a worker that ended; if it sent none, kill and delete what it left, and say why."""
    if job.process.is_alive():
        with contextlib.suppress(OSError):
            os.killpg(job.process.pid, signal.SIGKILL)
        job.process.kill()
    job.process.join()
    if job.sandbox:
        sandbox.clean_up(job.sandbox)
    kill_orphans()
    if job.result is not None:
        return job.result
    return _error(job.entry, why or f"the grader's worker for this notebook ended with {job.process.exitcode}")


def kill_orphans() -> None:
    """SIGKILL the subtree of every child of this process that is not a grading worker (orphans it adopted)."""
    workers = {p.pid for p in multiprocessing.active_children()}
    for pid in nanny_children(os.getpid()):
        if pid not in workers:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def nanny_children(pid: int) -> list[int]:
    from bertcourse.grading import nanny

    return nanny._children(pid)


def _run_all(entries: list[Entry], args: argparse.Namespace, limits: Limits) -> Iterator[tuple[dict[str, Any], str]]:
    """Grade ``entries``, ``args.jobs`` at a time, each in a forked worker under a watchdog; results in order."""
    context = multiprocessing.get_context("fork")
    budget = limits.start_timeout + limits.timeout + 60.0
    pending, running, done = list(enumerate(entries)), {}, {}
    emitted = 0
    while emitted < len(entries):
        while pending and len(running) < args.jobs:
            index, entry = pending.pop(0)
            if entry.problem:
                done[index] = _error(entry, entry.problem)
                continue
            parent, child = context.Pipe(duplex=False)
            process = context.Process(target=_worker, args=(entry, args, limits, child), daemon=True)
            process.start()
            child.close()
            running[index] = _Running(entry, process, parent, time.monotonic() + budget)
        ready = multiprocessing.connection.wait([job.pipe for job in running.values()], timeout=0.5)
        for index, job in list(running.items()):
            why = ""
            if job.pipe in ready:
                try:
                    kind, payload = job.pipe.recv()
                    if kind == "sandbox":
                        job.sandbox = payload
                        continue
                    job.result = payload
                except (EOFError, OSError):
                    why = f"the grader's worker for this notebook was killed (exit {job.process.exitcode})"
            elif time.monotonic() > job.deadline:
                why = f"no result after {budget:.0f} s: the worker was stopped or hung, and was killed"
            else:
                continue
            done[index] = _finish(job, why)
            job.pipe.close()
            del running[index]
        while emitted in done:
            yield done.pop(emitted)
            emitted += 1


# ------------------------------------------------------------------------------------ reports


def _summary(records: list[dict[str, Any]], roster: list[str], missing: list[str]) -> str:
    """Per task: mean points, how many full marks, the most common failed property; missing learners."""
    graded = [r for r in records if "tasks" in r]
    paths = [r for r in records if r.get("notebook")]
    lines = [f"class summary: {len(graded)} notebooks graded, {len(paths) - len(graded)} paths not gradable"]
    by_task: dict[str, list[dict[str, Any]]] = {}
    for record in graded:
        for task in record["tasks"]:
            by_task.setdefault(task["id"], []).append(task)
    for gid, tasks in by_task.items():
        mean = sum(t["points"] for t in tasks) / len(tasks)
        full = sum(t["points"] == t["max_points"] for t in tasks)
        fails = Counter(p["name"] for t in tasks for p in t["properties"] if p["status"] == Status.FAILED.value)
        common = f"; most often failed: {fails.most_common(1)[0][0]!r}" if fails else ""
        lines += wrap(f"{gid}: mean {mean:.2f} / {tasks[0]['max_points']:g}, full marks {full}/{len(tasks)}{common}", 2)
    if roster:
        lines += wrap(f"missing from the roster: {', '.join(missing) if missing else 'none'}", 2)
    return "\n".join(clean(line, 2000) for line in lines)


def _feedback(record: dict[str, Any]) -> str:
    """One learner's feedback in Markdown: each task, its points, each property with its input, hint and status."""
    lines = [f"# Feedback: {record['notebook']}", ""]
    if "error" in record:
        return "\n".join([*lines, f"Could not be graded: {record['error']}", ""])
    lines += [f"**Total: {record['score']:.2f} / {record['max_score']:g}**", ""]
    for task in record["tasks"]:
        lines += [f"## {task['id']}: {task['points']:.2f} / {task['max_points']:g} ({task['status']})", ""]
        if task["detail"]:
            lines += [task["detail"], ""]
        for prop in task["properties"]:
            mark = {"passed": "ok", "failed": "FAIL", "not attempted": "todo"}.get(prop["status"], prop["status"])
            lines.append(f"- {mark}: {prop['name']}" + (f" (on {prop['on']})" if prop["on"] else ""))
            if prop["detail"]:
                lines.append(f"  - {prop['detail']}".replace("\n", "\n    "))
        lines.append("")
    return "\n".join(lines)


def _write_csv(path: Path, records: list[dict[str, Any]]) -> None:
    tasks = list(dict.fromkeys(t["id"] for r in records for t in r.get("tasks", [])))
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["learner", "notebook", "score", "max_score", *tasks, "error"])
        for r in records:
            points = {t["id"]: t["points"] for t in r.get("tasks", [])}
            row = [r.get("learner", ""), r["notebook"], r.get("score", ""), r.get("max_score", "")]
            writer.writerow([*row, *(points.get(t, "") for t in tasks), r.get("error", "")])


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:100] or "_"


# ------------------------------------------------------------------------------------ main


def _class_seed(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``--seed``; else the seed in ``--seed-file`` (written with a random one if missing); else a random one."""
    if args.seed is not None:
        return args.seed
    if args.seed_file is None:
        return secrets.randbelow(2**62) + 1
    if not args.seed_file.exists():
        args.seed_file.write_text(f"{secrets.randbelow(2**62) + 1}\n", encoding="utf-8")
        args.seed_file.chmod(0o600)
    text = args.seed_file.read_text(encoding="utf-8").strip()
    if not text.isdigit() or int(text) < 1:
        parser.error(f"--seed-file {args.seed_file} must hold one positive integer")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bertcourse.grade", description=__doc__.splitlines()[0])
    defaults = Limits()
    add = parser.add_argument
    add(
        "paths",
        nargs="+",
        type=Path,
        help="notebooks, or folders of submissions (submitted/<learner>/... or <learner>/...)",
    )
    add("--json", action="store_true", help="one JSON object per notebook and line")
    add("--solutions", type=Path, default=SOLUTIONS, help="folder of source notebooks, matched by file name")
    add("--source", type=Path, help="grade every notebook against this source notebook")
    add("--jobs", type=int, default=max(1, (os.cpu_count() or 2) // 2), help="notebooks graded at once (%(default)s)")
    add("--sandbox", choices=("auto", "bubblewrap", "process"), default="auto", help="kernel sandbox (%(default)s)")
    add("--out", type=Path, help="also append each JSON record to this file (see --resume)")
    add("--resume", action="store_true", help="skip notebooks already recorded in --out")
    add("--csv", type=Path, help="write one row per notebook: learner, points per task, total")
    add("--feedback", type=Path, help="write one Markdown feedback file per notebook into this folder")
    add("--roster", type=Path, help="file of learner names, one a line: flag those with no submission")
    add("--timeout", type=float, default=defaults.timeout, help="seconds per notebook (%(default)s)")
    add("--task-timeout", type=float, default=defaults.task_timeout, help="seconds per task (%(default)s)")
    add("--start-timeout", type=float, default=defaults.start_timeout, help="seconds for a kernel to start")
    add("--seed", type=int, help="secret seed of the test inputs (0: the public ones; default: --seed-file or random)")
    add("--seed-file", type=Path, help="file holding the class's secret seed; written with a random one if missing")
    add("--memory-mb", type=int, default=defaults.memory_mb, help="address space (%(default)s MiB; 0: no limit)")
    add("--file-mb", type=int, default=defaults.file_mb, help="largest file written (%(default)s MiB; 0: no limit)")
    add("--processes", type=int, default=defaults.processes, help="extra processes/threads (%(default)s; 0: no limit)")
    add("--cpu-seconds", type=int, default=defaults.cpu_seconds, help="CPU time (%(default)s s; 0: no limit)")
    add("--notebook-mb", type=int, default=defaults.notebook_mb, help="largest notebook read (%(default)s MiB)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    for name in ("timeout", "task_timeout", "start_timeout"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.seed is not None and args.seed < 0:
        parser.error(f"--seed must be 0 (the public inputs) or a positive integer, got {args.seed}")
    if not args.notebook_mb > 0:
        parser.error(f"--notebook-mb must be positive, got {args.notebook_mb}")
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    for name in ("memory_mb", "file_mb", "processes", "cpu_seconds"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be 0 (no limit) or positive")
    if args.resume and args.out is None:
        parser.error("--resume needs --out FILE (the records to resume from)")
    try:
        mode, why = sandbox.sandbox_mode(args.sandbox)
    except ValueError as exc:
        parser.error(str(exc))
    limits = Limits(timeout=args.timeout, memory_mb=args.memory_mb, file_mb=args.file_mb, processes=args.processes,
                    cpu_seconds=args.cpu_seconds, notebook_mb=args.notebook_mb, sandbox=mode,
                    task_timeout=args.task_timeout, start_timeout=args.start_timeout)  # fmt: skip
    framework.set_class_seed(_class_seed(args, parser))
    roster = []
    if args.roster is not None:
        roster = [line.strip() for line in args.roster.read_text(encoding="utf-8").splitlines() if line.strip()]
    entries = _entries(args.paths)
    if not entries:
        parser.error(f"no notebooks found in {', '.join(map(str, args.paths))}")
    # The grader's own code and every source notebook are loaded before any submission runs.
    framework.all_checks()
    sources = {args.source} if args.source else {args.solutions / e.path.name for e in entries if not e.problem}
    for source in sources:
        with contextlib.suppress(GradingError, OSError):
            preload_source(source)
    done: set[str] = set()
    if args.resume and args.out.exists():
        for line in args.out.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                done.add(json.loads(line)["notebook"])
    todo = [e for e in entries if clean(e.path, 500) not in done]
    if mode != "bubblewrap":
        sys.stderr.write(f"WARNING: grading in the process sandbox only: {why}\n")
    become_subreaper()
    status, records = 0, []
    out = args.out.open("a", encoding="utf-8") if args.out else None
    progress = sys.stderr.isatty()
    for count, (record, text) in enumerate(_run_all(todo, args, limits), start=1):
        try:
            line = json.dumps(record, allow_nan=False)
        except ValueError as exc:  # never happens with clamped points; a batch still gets strict JSON
            record = {"notebook": record["notebook"], "error": f"internal error: {exc}"}
            line = text = json.dumps(record)
        status = 1 if "error" in record else status
        records.append(record)
        sys.stdout.write((line if args.json else text) + "\n")
        sys.stdout.flush()
        if out:
            out.write(line + "\n")
            out.flush()
        if args.feedback:
            args.feedback.mkdir(parents=True, exist_ok=True)
            name = _safe_name(f"{record.get('learner') or 'unknown'}__{Path(record['notebook']).stem}") + ".md"
            (args.feedback / name).write_text(_feedback(record), encoding="utf-8")
        if progress:
            sys.stderr.write(f"\r[{'#' * (30 * count // len(todo)):<30}] {count}/{len(todo)} notebooks")
            sys.stderr.flush()
    if progress:
        sys.stderr.write("\n")
    if out:
        out.close()
    if args.resume and args.out:
        records = [json.loads(line) for line in args.out.read_text(encoding="utf-8").splitlines() if line.strip()]
    missing = [name for name in roster if name not in {r.get("learner") for r in records}]
    for name in missing:  # one line each, like every path: on the roster, nothing found
        record = {"learner": clean(name, 200), "notebook": "", "error": "on the roster, but no submission was found"}
        records.append(record)
        sys.stdout.write((json.dumps(record) if args.json else f"{_one_line(name, 200)}: {record['error']}") + "\n")
    summary = _summary(records, roster, missing)
    if not args.json:
        sys.stdout.write(summary + "\n")
    if args.csv:
        _write_csv(args.csv, records)
    if args.feedback:
        args.feedback.mkdir(parents=True, exist_ok=True)
        (args.feedback / "summary.md").write_text(summary + "\n", encoding="utf-8")
    return status


if __name__ == "__main__":
    sys.exit(main())
