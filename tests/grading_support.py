"""Helpers that keep each exercise's grader tests short (``tests/test_grading_exercises.py`` uses all of them).

- :func:`grade` runs the real ``python -m bertcourse.grade --json`` in a subprocess and returns its
  records by notebook path; :func:`assert_solution_full_and_exercise_zero` does the one run per
  exercise that proves the solution scores full marks and the generated exercise 0, not attempted.
- :func:`check` judges a function in-process through the very property code the grader uses (fast:
  no kernel), for correct answers and for the mutants in ``tests/mutants/exNN_<name>.py``.
- :func:`assert_tasks_match_notebook`: the source's graded cells and the exercise module agree.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import nbformat

from bertcourse.grading.driver import answer_queries
from bertcourse.grading.framework import Exercise, judge
from bertcourse.grading.report import CheckResult, Status

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS, EXERCISES = ROOT / "solutions", ROOT / "exercises"


@functools.cache
def grade(*paths: Path | str, args: tuple[str, ...] = (), timeout: float = 300) -> dict[str, dict]:
    """Run the grade command on ``paths`` with ``--json``; its records by the notebook path it printed.

    Cached: tests that need the same run (the solution and the exercise) share one.
    """
    run = subprocess.run(
        [sys.executable, "-m", "bertcourse.grade", *map(str, paths), "--json", "--seed", "0", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(records) == len({r["notebook"] for r in records}), run.stdout
    assert run.returncode == (1 if any("error" in r for r in records) else 0), run.stderr
    return {r["notebook"]: r for r in records}


def check(exercise: Exercise, function: str, fn: Callable[..., object]) -> CheckResult:
    """Judge ``fn`` as the task of ``function`` in-process: the same queries, driver and properties as the grader."""
    (gid,) = [gid for gid, (name, _, _) in exercise.builders.items() if name == function]
    task = exercise.build(gid)
    return judge(task, answer_queries(fn, task.request()))


def assert_correct_answer_passes(exercise: Exercise, function: str, fn: Callable[..., object]) -> None:
    result = check(exercise, function, fn)
    assert result.status is Status.PASSED, str(result)
    assert result.points == result.max_points and result.total >= 3


def assert_mutant_loses_points(exercise: Exercise, function: str, fn: Callable[..., object], hint: str) -> None:
    """The mutant fails some but not necessarily all properties, and one failure carries ``hint``."""
    result = check(exercise, function, fn)
    assert result.status is Status.FAILED, str(result)
    assert result.points < result.max_points
    assert any(hint in p.detail for p in result.properties if p.status is Status.FAILED), str(result)


def assert_tasks_match_notebook(exercise: Exercise) -> None:
    """Every graded cell of the solution has a task with its points, and every task a graded cell."""
    nb = nbformat.read(SOLUTIONS / exercise.notebook, as_version=4)
    cells = {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}
    assert set(cells) == set(exercise.builders)
    for gid, (function, points, _) in exercise.builders.items():
        assert cells[gid].metadata["nbgrader"]["points"] == points, gid
        assert cells[gid].source.strip().endswith(f"check_{function}({function})"), gid
        assert exercise.build(gid).properties, gid


def grade_all() -> dict[str, dict]:
    """One run of the real grade command on every solution and every generated exercise (cached).

    One process grades them all, each notebook in its own sandboxed kernel, so the command's start-up
    is paid once rather than once per notebook.
    """
    notebooks = sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb")) + sorted(EXERCISES.glob("[0-9][0-9]_*.ipynb"))
    return grade(*notebooks, args=("--jobs", "2"), timeout=900)


def assert_solution_full_and_exercise_zero(exercise: Exercise) -> dict[str, dict]:
    """The solution scores full marks and the generated exercise 0 in the real grade command's run."""
    solution, stub = SOLUTIONS / exercise.notebook, EXERCISES / exercise.notebook
    records = grade_all()  # cached: shared by every exercise and the nbgrader round trip
    full, zero = records[str(solution)], records[str(stub)]
    assert full["score"] == full["max_score"] > 0, json.dumps(full, indent=1)
    assert {t["status"] for t in full["tasks"]} == {"passed"}
    assert zero["score"] == 0 and zero["max_score"] == full["max_score"]
    assert {t["status"] for t in zero["tasks"]} == {"not attempted"}, json.dumps(zero, indent=1)
    return records


def grade_command(tmp: Path, *args: str, timeout: float = 600) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``python -m bertcourse.grade ARGS --seed 0`` (the public inputs, comparable with in-process checks)
    with its temporary folders under ``tmp / "grader-tmp"``; return the finished process and its seconds."""
    start = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "bertcourse.grade", *args, "--seed", "0"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp / "grader-tmp")},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return run, time.monotonic() - start
