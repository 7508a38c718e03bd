"""The grader is right: solutions get full marks, stubs get "not attempted", every typical mistake loses points.

The checks are tested directly on the mutants in ``tests/mutants`` (fast); three tests run notebooks
through the grade command in fresh kernels (a few seconds each).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch
from torch import Tensor

from bertcourse import grading
from bertcourse.grade import main as grade_main
from bertcourse.grading import CheckFailedError, Status
from bertcourse.grading.report import earned_points
from bertcourse.grading.runner import grade_notebook
from tests.mutants import attention as answers
from tests.mutants.attention import MUTANTS

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "01_attention.ipynb"
EXERCISE = ROOT / "exercises" / "01_attention.ipynb"
CORRECT = {
    "softmax": answers.softmax,
    "scaled_dot_product_attention": answers.scaled_dot_product_attention,
    "causal_mask": answers.causal_mask,
    "padding_mask": answers.padding_mask,
}


def _check(name: str):
    return getattr(grading, f"check_{name}")


@pytest.mark.parametrize("name", sorted(CORRECT))
def test_correct_answer_passes_every_property(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    _check(name)(CORRECT[name])
    report = capsys.readouterr().out
    assert "FAIL" not in report and "todo" not in report
    passed, total = report.split(": ", 1)[1].split(" properties")[0].split("/")
    assert passed == total and int(total) >= 3


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_mutant_loses_points_with_the_right_hint(mutant: str, capsys: pytest.CaptureFixture[str]) -> None:
    check, fn, hint = MUTANTS[mutant]
    with pytest.raises(CheckFailedError) as failure:
        _check(check)(fn)
    result = failure.value.result
    assert result.status is Status.FAILED
    assert result.passed < result.total
    assert earned_points(result.passed, result.total, 4) < 4
    assert any(hint in p.detail for p in result.properties), str(result)
    assert str(result) in capsys.readouterr().out  # the learner sees the same report


def test_stub_is_not_attempted_rather_than_wrong() -> None:
    def scaled_dot_product_attention(q, k, v, mask=None):
        raise NotImplementedError

    with pytest.raises(CheckFailedError) as failure:
        grading.check_scaled_dot_product_attention(scaled_dot_product_attention)
    result = failure.value.result
    assert result.status is Status.NOT_ATTEMPTED and result.passed == 0
    assert all(p.status is Status.NOT_ATTEMPTED for p in result.properties)
    assert "not attempted" in str(result)


def test_half_done_function_scores_what_it_does() -> None:
    def scaled_dot_product_attention(q, k, v, mask=None):
        if mask is not None:
            raise NotImplementedError("masks come later")
        return answers.scaled_dot_product_attention(q, k, v)

    with pytest.raises(CheckFailedError) as failure:
        grading.check_scaled_dot_product_attention(scaled_dot_product_attention)
    statuses = {p.status for p in failure.value.result.properties}
    assert statuses == {Status.PASSED, Status.NOT_ATTEMPTED}
    assert failure.value.result.status is Status.FAILED


def test_learners_exception_shows_their_line_not_the_graders() -> None:
    with pytest.raises(CheckFailedError) as failure:
        grading.check_scaled_dot_product_attention(MUTANTS["sdpa_forgot_transpose"][1])
    detail = failure.value.result.properties[1].detail
    assert detail.startswith("your function raised RuntimeError: ")
    assert "in sdpa_forgot_transpose, line" in detail and "scores = q @ k / math.sqrt(q.shape[-1])" in detail
    assert "grading" not in detail and "Traceback" not in detail


def test_check_wants_the_function_itself() -> None:
    with pytest.raises(ValueError, match=r"check_softmax\(softmax\)"):
        grading.check_softmax("softmax")


def test_checks_do_not_depend_on_global_state() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    with pytest.raises(CheckFailedError) as first:
        grading.check_softmax(MUTANTS["softmax_global_max"][1])
    with pytest.raises(CheckFailedError) as second:
        grading.check_softmax(MUTANTS["softmax_global_max"][1])
    assert first.value.result.to_json() == second.value.result.to_json()
    assert torch.equal(torch.rand(1), before)  # the checks draw from their own generators


def test_in_place_softmax_cannot_spoil_the_checks_inputs() -> None:
    def softmax(x: Tensor, dim: int = -1) -> Tensor:
        out = answers.softmax(x.clone(), dim)
        x.zero_()  # vandalise the grader's tensor
        return out

    with pytest.raises(CheckFailedError) as failure:
        grading.check_softmax(softmax)
    result = failure.value.result
    assert [p.name for p in result.properties if p.status is Status.FAILED] == ["leaves its input unchanged"]


@pytest.mark.parametrize(("passed", "total", "points", "earned"), [(0, 7, 4, 0.0), (7, 7, 4, 4.0), (5, 7, 4, 2.86)])
def test_partial_credit(passed: int, total: int, points: float, earned: float) -> None:
    assert earned_points(passed, total, points) == earned


# ------------------------------------------------------------------------------ notebooks through the grader


def _replace_source(nb: nbformat.NotebookNode, grade_id: str, source: str) -> None:
    (cell,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    cell.source = source


def test_grade_folder_of_submissions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Solution: full marks. Untouched exercise: 0, all not attempted. A cheat with a bug loses what it should."""
    for name, path in (("solved", SOLUTION), ("untouched", EXERCISE)):
        (tmp_path / name).mkdir()
        (tmp_path / name / SOLUTION.name).write_bytes(path.read_bytes())
    nb = nbformat.read(SOLUTION, as_version=4)
    cheat = copy.deepcopy(nb)
    _replace_source(
        cheat, "softmax", "def softmax(x, dim=-1):\n    e = x.exp()\n    return e / e.sum(dim=dim, keepdim=True)"
    )
    _replace_source(cheat, "check_causal_mask", "print('all good')")  # restored from the source before the run
    cheat.cells = [c for c in cheat.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "check_padding_mask"]
    (tmp_path / "cheat").mkdir()
    nbformat.write(cheat, tmp_path / "cheat" / SOLUTION.name)

    assert grade_main([str(tmp_path), "--json", "--timeout", "60"]) == 0
    grades = {Path(g["notebook"]).parent.name: g for g in map(json.loads, capsys.readouterr().out.splitlines())}
    assert set(grades) == {"solved", "untouched", "cheat"}
    for grade in grades.values():
        assert set(grade) == {"notebook", "source", "score", "max_score", "tasks"}
        assert grade["source"] == str(SOLUTION)
        assert grade["max_score"] == 10  # from the source's metadata, even for the cheat
        for task in grade["tasks"]:
            assert set(task) == {"id", "points", "max_points", "status", "properties", "detail"}
            assert all(set(p) == {"name", "status", "on", "detail"} for p in task["properties"])

    assert grades["solved"]["score"] == 10
    assert {t["status"] for t in grades["solved"]["tasks"]} == {"passed"}
    assert grades["untouched"]["score"] == 0
    assert {t["status"] for t in grades["untouched"]["tasks"]} == {"not attempted"}

    tasks = {t["id"]: t for t in grades["cheat"]["tasks"]}
    assert tasks["check_softmax"]["status"] == "failed" and 0 < tasks["check_softmax"]["points"] < 2
    assert tasks["check_scaled_dot_product_attention"]["points"] < 4  # it calls the overflowing softmax
    assert tasks["check_causal_mask"] == {**tasks["check_causal_mask"], "status": "passed", "points": 2}
    assert tasks["check_padding_mask"]["status"] == "missing" and tasks["check_padding_mask"]["points"] == 0


def test_hanging_notebook_is_stopped_and_graded(tmp_path: Path) -> None:
    """A cell that never ends: the task after it times out with 0; an unreadable notebook is a grader error."""
    check = nbformat.v4.new_code_cell(
        "from bertcourse.grading import check_causal_mask\ncheck_causal_mask(causal_mask)"
    )
    check.metadata["nbgrader"] = {
        "grade": True,
        "grade_id": "check_causal_mask",
        "locked": True,
        "points": 2,
        "schema_version": 3,
        "solution": False,
        "task": False,
    }
    cells = [nbformat.v4.new_code_cell("causal_mask = None"), nbformat.v4.new_code_cell("while True:\n    pass"), check]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), tmp_path / "hang.ipynb")
    (tmp_path / "broken.ipynb").write_text("{not json", encoding="utf-8")

    run = subprocess.run(
        [sys.executable, "-m", "bertcourse.grade", "hang.ipynb", "broken.ipynb", "--timeout", "3"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert run.returncode == 1, run.stderr  # broken.ipynb could not be graded
    assert "check_causal_mask    0.00 / 2    timed out" in run.stdout
    assert "total                0.00 / 2" in run.stdout
    assert "hang.ipynb  (tasks from the notebook itself)" in run.stdout
    assert "broken.ipynb\n  cannot grade:" in run.stdout


def test_runner_reports_the_cells_own_error(tmp_path: Path) -> None:
    """A check cell whose function was never defined: status error, with the learner's NameError."""
    nb = nbformat.read(EXERCISE, as_version=4)
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "softmax"]
    nbformat.write(nb, tmp_path / "no_softmax.ipynb")
    grade = grade_notebook(tmp_path / "no_softmax.ipynb", timeout=60, source=SOLUTION)
    tasks = {t.id: t for t in grade.tasks}
    assert tasks["check_softmax"].status == "error"
    assert tasks["check_softmax"].detail == "NameError: name 'softmax' is not defined"
    assert tasks["check_causal_mask"].status == "not attempted"
    assert grade.score == 0 and grade.max_score == 10
