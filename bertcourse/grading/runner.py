"""Run a notebook in a fresh kernel under a time limit and collect the points of its graded cells.

The tasks and their points come from the nbgrader metadata of the *source* notebook (the solution
with the same file name) when there is one, else from the submission itself, so deleting a check
cell cannot shrink the maximum score. Graded cells that the source marks ``locked`` get the source's
code back before the run, as nbgrader does. Each check cell leaves a JSON record (MIME type
:data:`~bertcourse.grading.report.RESULT_MIME`) in its output; a task earns
``points * passed / total`` properties.

Task statuses: ``passed``, ``failed`` (some property failed), ``not attempted`` (the function still
raises ``NotImplementedError``), ``error`` (the check cell raised before a check could report, e.g. a
``NameError``), ``timed out`` (the time limit struck before the cell ran to its end), ``kernel died``,
``missing`` (the submission has no cell with that ``grade_id``).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from bertcourse.grading.report import RESULT_MIME, earned_points

__all__ = ["SOLUTIONS", "GradingError", "NotebookGrade", "TaskGrade", "grade_notebook", "graded_cells", "source_for"]

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The folder that holds the ``bertcourse`` package; the kernel gets it on ``PYTHONPATH``."""
SOLUTIONS = REPO_ROOT / "solutions"
"""The source notebooks: the tasks and points of ``exercises/NAME.ipynb`` come from ``solutions/NAME.ipynb``."""


class GradingError(Exception):
    """The grader itself could not grade a notebook (unreadable file, a kernel that failed to start)."""


@dataclass
class TaskGrade:
    """The grade of one task: a graded cell of the source notebook."""

    id: str  # the cell's nbgrader grade_id
    points: float
    max_points: float
    status: str
    properties: list[dict[str, str]] = field(default_factory=list)
    detail: str = ""  # why a task without a check record got 0 (the cell's error, the time limit, ...)


@dataclass
class NotebookGrade:
    """The grades of every task in one notebook."""

    notebook: str
    source: str | None  # the notebook the tasks and points came from; None: the submission itself
    tasks: list[TaskGrade]

    @property
    def score(self) -> float:
        return round(sum(t.points for t in self.tasks), 2)

    @property
    def max_score(self) -> float:
        return sum(t.max_points for t in self.tasks)

    def to_json(self) -> dict[str, Any]:
        return {
            "notebook": self.notebook,
            "source": self.source,
            "score": self.score,
            "max_score": self.max_score,
            "tasks": [asdict(t) for t in self.tasks],
        }


def graded_cells(nb: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    """The cells nbgrader grades (``grade: true``), by ``grade_id``, in notebook order."""
    cells = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade") and "grade_id" in meta:
            cells[meta["grade_id"]] = cell
    return cells


def _read(path: Path) -> nbformat.NotebookNode:
    try:
        return nbformat.read(path, as_version=4)
    except (OSError, ValueError) as exc:  # missing file, invalid JSON, not a notebook
        raise GradingError(f"cannot read {path}: {exc}") from exc


def _restore_locked_cells(nb: nbformat.NotebookNode, source: nbformat.NotebookNode) -> None:
    """Give locked graded cells their source code back, so an edited check cannot grade itself."""
    locked = {gid: cell for gid, cell in graded_cells(source).items() if cell.metadata["nbgrader"].get("locked")}
    for gid, cell in graded_cells(nb).items():
        if gid in locked:
            cell.source = locked[gid].source


def _execute(nb: nbformat.NotebookNode, workdir: Path, timeout: float) -> tuple[int, str]:
    """Run the code cells in order, errors and all, until the time limit.

    Returns the index of the first cell that did not finish (``len(nb.cells)`` if all did) and why.
    """
    client = NotebookClient(
        nb,
        allow_errors=True,
        kernel_name="python3",
        shutdown_kernel="immediate",
        resources={"metadata": {"path": str(workdir)}},
    )
    pythonpath = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": pythonpath, "MPLBACKEND": "Agg"}
    try:
        with client.setup_kernel(env=env):
            deadline = time.monotonic() + timeout
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return index, "timed out"
                client.timeout = math.ceil(remaining)
                try:
                    client.execute_cell(cell, index)
                except CellTimeoutError:
                    return index, "timed out"
                except DeadKernelError:
                    return index, "kernel died"
    except RuntimeError as exc:  # the kernel did not start or its client failed; learners' errors never get here
        raise GradingError(f"the kernel failed: {exc}") from exc
    return len(nb.cells), ""


def _grade_cell(cell: nbformat.NotebookNode, gid: str, max_points: float) -> TaskGrade:
    """Read the check's JSON record from a cell that ran; without one, the cell's error explains the 0."""
    records = [out["data"][RESULT_MIME] for out in cell.get("outputs", []) if RESULT_MIME in out.get("data", {})]
    if records:
        record = records[-1]
        points = earned_points(record["passed"], record["total"], max_points)
        return TaskGrade(gid, points, max_points, record["status"], record["properties"])
    errors = [
        f"{out['ename']}: {out['evalue']}" for out in cell.get("outputs", []) if out.get("output_type") == "error"
    ]
    detail = errors[-1] if errors else "the cell ran no check"
    return TaskGrade(gid, 0.0, max_points, "error", detail=detail)


def source_for(notebook: Path, solutions: Path = SOLUTIONS) -> Path | None:
    """The solution notebook with the same file name as ``notebook``, if ``solutions`` holds one."""
    candidate = solutions / notebook.name
    return candidate if candidate.is_file() else None


def grade_notebook(path: Path | str, timeout: float = 120.0, source: Path | str | None = None) -> NotebookGrade:
    """Execute the notebook at ``path`` in a fresh kernel and grade each task.

    Args:
        path: the submission.
        timeout: seconds for running all of its cells (the kernel's start is not counted).
        source: the solution notebook that defines the tasks, their points and the locked cells
            (see :func:`source_for`); None trusts the submission's own metadata.
    """
    path = Path(path)
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    nb = _read(path)
    reference = _read(Path(source)) if source is not None else nb
    tasks = {gid: float(cell.metadata["nbgrader"].get("points", 0)) for gid, cell in graded_cells(reference).items()}
    _restore_locked_cells(nb, reference)

    stopped, reason = _execute(nb, path.parent, timeout)
    submitted = graded_cells(nb)
    position = {id(cell): index for index, cell in enumerate(nb.cells)}
    grades = []
    for gid, max_points in tasks.items():
        cell = submitted.get(gid)
        if cell is None:
            grades.append(TaskGrade(gid, 0.0, max_points, "missing", detail="no cell with this grade_id"))
        elif position[id(cell)] >= stopped:
            grades.append(TaskGrade(gid, 0.0, max_points, reason, detail=f"the run stopped at cell {stopped}"))
        else:
            grades.append(_grade_cell(cell, gid, max_points))
    return NotebookGrade(str(path), None if source is None else str(source), grades)
