"""Grade one submission against its source notebook: run it contained, ask its functions, judge the answers here.

The tasks, their points and the locked cells come from the *source* (the solution notebook with the
same file name), never from the submission. Graded cells are the source's code cells with nbgrader
``grade: true``; each ``grade_id`` must appear once and belong to a task of the exercise module
(:func:`~bertcourse.grading.framework.exercise_for`). The submission's code cells run in order in a
:class:`~bertcourse.grading.sandbox.Sandbox`, except its check cells: where one stood (or at the
end, for a check cell the submission lost), the grader writes the task's queries to a file, has
:func:`~bertcourse.grading.driver.serve` answer them in the kernel, reads the answers back as plain
data and judges them with the task's properties in this process. A locked cell that is not a check
gets the source's code back, as nbgrader does. Markdown and raw cells never run, whatever they carry.

Task statuses: ``passed``, ``failed``, ``not attempted`` (only ``NotImplementedError``), ``error``
(no readable answers: the function is missing, or the kernel sent back something else), ``timed
out`` and ``kernel died`` (the run stopped before this task).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bertcourse.grading import codec
from bertcourse.grading.framework import Exercise, exercise_for, judge
from bertcourse.grading.report import clean
from bertcourse.grading.sandbox import KernelDiedError, Limits, MiB, Sandbox, SandboxError, read_regular_file

__all__ = ["SOLUTIONS", "GradingError", "NotebookGrade", "TaskGrade", "grade_notebook", "read_cells"]

REPO_ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = REPO_ROOT / "solutions"
"""The source notebooks: the tasks and points of ``NAME.ipynb`` come from ``solutions/NAME.ipynb``."""


class GradingError(Exception):
    """A notebook that cannot be graded: unreadable, malformed, no source, or a kernel that did not start."""


@dataclass(frozen=True)
class Cell:
    cell_type: str
    source: str
    grade_id: str | None  # nbgrader grade_id, if a string
    graded: bool  # nbgrader grade: true
    locked: bool
    points: Any  # nbgrader points, unchecked


def read_cells(path: Path, max_bytes: int) -> tuple[bytes, list[Cell]]:
    """The raw bytes and the cells of a notebook file; :class:`GradingError` for anything malformed."""
    try:
        data = read_regular_file(path, max_bytes)
        nb = json.loads(data.decode("utf-8"), parse_constant=lambda name: None)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise GradingError(f"cannot read {path.name}: {clean(exc, 200)}") from exc
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise GradingError(f"{path.name} is not a notebook (no list of cells)")
    if nb.get("nbformat") != 4:
        raise GradingError(f"{path.name} is not an nbformat 4 notebook")
    cells = []
    for index, cell in enumerate(nb["cells"]):
        if not isinstance(cell, dict) or not isinstance(cell.get("cell_type"), str):
            raise GradingError(f"{path.name}: cell {index} is not a cell")
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise GradingError(f"{path.name}: cell {index} has a source that is not text")
        meta = cell.get("metadata", {})
        meta = meta.get("nbgrader", {}) if isinstance(meta, dict) else {}
        meta = meta if isinstance(meta, dict) else {}
        gid = meta.get("grade_id") if isinstance(meta.get("grade_id"), str) else None
        cells.append(Cell(cell["cell_type"], source, gid, meta.get("grade") is True, meta.get("locked") is True,
                          meta.get("points")))  # fmt: skip
    return data, cells


@dataclass
class TaskGrade:
    """The grade of one task: a graded cell of the source notebook."""

    id: str  # the cell's nbgrader grade_id
    points: float
    max_points: float
    status: str
    properties: list[dict[str, str]] = field(default_factory=list)
    detail: str = ""  # why a task without judged properties got 0 (the time limit, a missing function, ...)
    output: str = ""  # warnings and stderr the learner's function wrote while it was checked


@dataclass
class NotebookGrade:
    """The grades of every task in one notebook."""

    notebook: str
    source: str
    tasks: list[TaskGrade]
    sandbox: str = ""  # "bubblewrap", or "process: <why no bubblewrap>"

    @property
    def score(self) -> float:
        return round(sum(t.points for t in self.tasks), 2)

    @property
    def max_score(self) -> float:
        return round(sum(t.max_points for t in self.tasks), 2)

    def to_json(self) -> dict[str, Any]:
        return {
            "notebook": self.notebook,
            "source": self.source,
            "score": self.score,
            "max_score": self.max_score,
            "tasks": [asdict(t) for t in self.tasks],
            "sandbox": self.sandbox,
        }


@dataclass(frozen=True)
class _Source:
    exercise: Exercise
    tasks: dict[str, float]  # grade_id -> points, in notebook order
    locked: dict[str, str]  # grade_id -> source code, for locked cells that are not checks


_SOURCES: dict[Path, _Source] = {}


def preload_source(path: Path) -> None:
    """Read and check the source notebook at ``path`` now; later grades use this copy, not the file."""
    key = Path(os.path.realpath(path))
    if key not in _SOURCES:
        _SOURCES[key] = _parse_source(path)


def _read_source(path: Path) -> _Source:
    """The source at ``path``: the copy read by :func:`preload_source` if there is one."""
    key = Path(os.path.realpath(path))
    return _SOURCES[key] if key in _SOURCES else _parse_source(path)


def _parse_source(path: Path) -> _Source:
    _, cells = read_cells(path, 64 * MiB)
    exercise = exercise_for(path.name)
    if exercise is None:
        raise GradingError(f"no checks for {path.name}: bertcourse/grading has no ex{path.stem} module")
    tasks: dict[str, float] = {}
    locked: dict[str, str] = {}
    seen: set[str] = set()
    for cell in cells:
        if cell.grade_id is None:
            continue
        if cell.grade_id in seen:
            raise GradingError(f"source {path.name}: grade_id {cell.grade_id!r} appears twice")
        seen.add(cell.grade_id)
        if cell.graded and cell.cell_type == "code":
            points = cell.points
            if not isinstance(points, (int, float)) or isinstance(points, bool) or not 0 <= points < math.inf:
                raise GradingError(f"source {path.name}: {cell.grade_id} has points {points!r}")
            if cell.grade_id not in exercise.builders:
                raise GradingError(f"source {path.name}: no task for graded cell {cell.grade_id!r}")
            if float(points) != float(exercise.builders[cell.grade_id][1]):
                raise GradingError(
                    f"source {path.name}: {cell.grade_id} has {points:g} points, but the grader's table says "
                    f"{exercise.builders[cell.grade_id][1]:g}: the source notebook was changed"
                )
            tasks[cell.grade_id] = float(points)
        elif cell.locked and cell.cell_type == "code":
            locked[cell.grade_id] = cell.source
    if not tasks:
        raise GradingError(f"source {path.name} has no graded code cells")
    return _Source(exercise, tasks, locked)


def _run_task(box: Sandbox, source: _Source, gid: str, max_points: float, deadline: float) -> TaskGrade:
    """Send one task's queries to the kernel, read the answers back as data, and judge them here.

    The task gets ``--task-timeout`` seconds (at most what is left of the notebook's), enforced in the
    kernel by an alarm per call, so a slow task costs only itself; the grader waits 10 s more before
    it gives up on the kernel.
    """
    if time.monotonic() >= deadline:
        raise TimeoutError("timed out")
    task = source.exercise.build(gid)
    request, response = box.io / f"{gid}.request", box.io / f"{gid}.answers"
    request.write_bytes(codec.dumps(task.request()))
    budget = max(min(box.limits.task_timeout, deadline - time.monotonic()), 0.1)
    code = (
        "__import__('bertcourse.grading.driver', fromlist=['serve'])"
        f".serve(globals(), {task.function!r}, {str(request)!r}, {str(response)!r}, {budget!r})"
    )
    reply = box.execute(code, time.monotonic() + budget + 10.0, silent=True)
    try:
        answers = codec.loads(read_regular_file(response, box.limits.answer_mb * MiB))
    except (ValueError, OSError) as exc:
        why = f"{reply.get('ename', '')}: {reply.get('evalue', '')}" if reply.get("status") == "error" else exc
        return TaskGrade(gid, 0.0, max_points, "error", detail=clean(f"no answers came back ({why})", 500))
    result = judge(task, answers)
    status = result.status.value
    detail = ""
    if isinstance(answers, dict) and isinstance(answers.get("missing"), str):
        status, detail = "error", clean(answers["missing"], 300)
    points = min(max(result.points_for(max_points), 0.0), max_points)
    return TaskGrade(gid, points, max_points, status, [p.to_json() for p in result.properties], detail, result.output)


def _steps(order: list[Cell], src: _Source) -> list[tuple[str, str | list[str]]]:
    """What to send to the kernel, in order: a task's grade_id, or the sources of a run of plain cells."""
    steps: list[tuple[str, str | list[str]]] = []
    first = 0
    for index, cell in enumerate(order):
        if cell.grade_id in src.tasks:
            steps.append((cell.grade_id, cell.grade_id))
            continue
        if not cell.source.strip():
            continue
        code = src.locked.get(cell.grade_id or "", cell.source)
        if steps and isinstance(steps[-1][1], list):
            steps[-1] = (f"code cells {first + 1}-{index + 1}", [*steps[-1][1], code])
        else:
            first = index
            steps.append((f"code cell {index + 1}", [code]))
    return steps


def grade_notebook(path: Path | str, source: Path | str, limits: Limits | None = None) -> NotebookGrade:
    """Run the submission at ``path`` in a sandbox and grade each task of ``source``.

    Raises :class:`GradingError` if the notebook cannot be graded at all.
    """
    path, source_path, limits = Path(path), Path(source), limits or Limits()
    src = _read_source(source_path)
    data, cells = read_cells(path, limits.notebook_mb * MiB)
    grades: dict[str, TaskGrade] = {}
    stopped, why = "", "the notebook could not be run"
    try:
        with Sandbox(data, "submission.ipynb", limits) as box:
            mode = box.mode if box.mode == "bubblewrap" else f"process: {box.why}"
            functions = sorted({function for function, _, _ in src.exercise.builders.values()})
            try:  # part of the kernel's start: not counted in the notebook's time
                box.execute(
                    f"__import__('bertcourse.grading.driver', fromlist=['forbid']).forbid("
                    f"{source_path.name[:2]!r}, {functions!r})",
                    time.monotonic() + limits.start_timeout,
                    silent=True,
                )
            except (TimeoutError, KernelDiedError) as exc:
                raise GradingError(f"the kernel did not start ({exc})") from exc
            deadline = time.monotonic() + limits.timeout
            order = [c for c in cells if c.cell_type == "code"] + [
                Cell("code", "", gid, True, True, None)
                for gid in src.tasks  # checks the submission lost
            ]
            for step, (where, what) in enumerate(_steps(order, src)):
                if stopped:
                    break
                try:
                    if isinstance(what, str):
                        if what not in grades:
                            grades[what] = _run_task(box, src, what, src.tasks[what], deadline)
                    elif len(what) == 1:
                        box.execute(what[0], deadline)
                    else:  # a run of plain cells in one round trip, each still its own IPython cell
                        batch = box.io / f"cells-{step}.json"
                        batch.write_text(json.dumps(what), encoding="utf-8")
                        runner = (
                            f"__import__('bertcourse.grading.driver', fromlist=['run_cells']).run_cells({str(batch)!r})"
                        )
                        box.execute(runner, deadline, silent=True)
                except TimeoutError:
                    stopped, why = "timed out", f"the kernel was still busy with {where} at the time limit"
                except KernelDiedError:
                    stopped, why = "kernel died", f"the kernel died during {where}"
    except SandboxError as exc:
        raise GradingError(str(exc)) from exc
    tasks = [
        grades.get(gid) or TaskGrade(gid, 0.0, points, stopped or "error", detail=f"not run: {why}")
        for gid, points in src.tasks.items()
    ]
    return NotebookGrade(str(path), str(source_path), tasks, mode)
