"""exercises/ is generated from solutions/: up to date, nbgrader's stubs and lock flags, nbgrader metadata intact."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest

from bertcourse.grading.exercises import main, render_exercise, strip_solutions, write_exercises

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS, EXERCISES = ROOT / "solutions", ROOT / "exercises"
NOTEBOOKS = sorted(SOLUTIONS.glob("*.ipynb"))
NBGRADER_KEYS = {"grade", "grade_id", "locked", "schema_version", "solution", "task"}


def test_there_are_solution_notebooks() -> None:
    assert NOTEBOOKS, f"no notebooks in {SOLUTIONS}"


def test_exercises_are_up_to_date(tmp_path: Path) -> None:
    """Regenerate into a fresh folder: the bytes must equal what is committed (else run `make exercises`)."""
    write_exercises(SOLUTIONS, tmp_path)
    generated = sorted(p.name for p in tmp_path.glob("*.ipynb"))
    assert generated == sorted(p.name for p in EXERCISES.glob("*.ipynb"))
    for name in generated:
        assert (tmp_path / name).read_bytes() == (EXERCISES / name).read_bytes(), f"exercises/{name} is stale"
    assert write_exercises(SOLUTIONS, EXERCISES, check=True) == []


@pytest.mark.parametrize("solution", NOTEBOOKS, ids=lambda p: p.name)
def test_exercise_is_the_solution_minus_solutions(solution: Path) -> None:
    source = nbformat.read(solution, as_version=4)
    exercise = nbformat.reads(render_exercise(solution), as_version=4)
    assert len(exercise.cells) == len(source.cells)
    for mine, theirs in zip(exercise.cells, source.cells, strict=True):
        kept = {key: value for key, value in theirs.metadata.items() if key != "execution"}
        meta = theirs.metadata.get("nbgrader", {})
        if meta.get("solution"):
            kept["deletable"] = False  # nbgrader's LockCells
        elif meta.get("grade") or meta.get("locked"):
            kept.update(deletable=False, editable=False)
        assert mine.metadata == kept and mine.cell_type == theirs.cell_type
        if mine.cell_type != "code":
            assert mine.source == theirs.source
            continue
        assert mine.outputs == [] and mine.execution_count is None
        assert "SOLUTION" not in mine.source
        solution_cell = theirs.metadata.get("nbgrader", {}).get("solution", False)
        assert ("# BEGIN SOLUTION" in theirs.source) == solution_cell
        if solution_cell:
            assert re.search(r"\n( *)# YOUR CODE HERE\n\1raise NotImplementedError\(\)$", mine.source)
        else:
            assert mine.source == theirs.source


@pytest.mark.parametrize("solution", NOTEBOOKS, ids=lambda p: p.name)
def test_nbgrader_metadata(solution: Path) -> None:
    """nbgrader can run on these files: full schema-3 metadata, unique ids, checks that pass a function object."""
    nb = nbformat.read(solution, as_version=4)
    ids, functions = [], set()
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader")
        if meta is None:
            continue
        ids.append(meta["grade_id"])
        assert meta["schema_version"] == 3 and meta["task"] is False
        if meta["solution"]:
            assert set(meta) == NBGRADER_KEYS and not meta["grade"] and not meta["locked"]
            functions |= set(re.findall(r"^def (\w+)\(", cell.source, flags=re.M))
        else:
            assert set(meta) == NBGRADER_KEYS | {"points"} and meta["grade"] and meta["locked"]
            assert isinstance(meta["points"], int) and meta["points"] > 0
            (call,) = re.findall(r"^(check_\w+)\((\w+)\)$", cell.source, flags=re.M)
            assert call[0] == f"check_{call[1]}" and call[1] in functions  # the function object, not its name
    assert len(ids) == len(set(ids)), f"duplicate grade_id in {ids}"
    assert ids, "no graded cells"


def test_strip_solutions_keeps_indentation_and_code_around() -> None:
    source = (
        "def f(x):\n    y = 1\n    # BEGIN SOLUTION\n    return x + y\n    # END SOLUTION\n"
        "# BEGIN SOLUTION\nz = 2\n# END SOLUTION\nprint(f)"
    )
    assert strip_solutions(source) == (
        "def f(x):\n    y = 1\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
        "# YOUR CODE HERE\nraise NotImplementedError()\nprint(f)"
    )


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("# BEGIN SOLUTION\nx = 1", "never closed"),
        ("x = 1\n# END SOLUTION", "without '# BEGIN SOLUTION'"),
        ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION", "inside another"),
    ],
)
def test_strip_solutions_rejects_broken_markers(source: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        strip_solutions(source)


def test_check_mode_finds_stale_and_orphan_exercises(tmp_path: Path) -> None:
    solutions, exercises = tmp_path / "solutions", tmp_path / "exercises"
    shutil.copytree(SOLUTIONS, solutions)
    assert main([str(solutions), str(exercises), "--check"]) == 1  # nothing generated yet
    assert not exercises.exists()
    assert main([str(solutions), str(exercises)]) == 0
    assert main([str(solutions), str(exercises), "--check"]) == 0
    first = exercises / NOTEBOOKS[0].name
    first.write_text(first.read_text(encoding="utf-8").replace("YOUR CODE HERE", "my answer"), encoding="utf-8")
    assert main([str(solutions), str(exercises), "--check"]) == 1
    assert main([str(solutions), str(exercises)]) == 0
    assert first.read_bytes() == (EXERCISES / first.name).read_bytes()
    (exercises / "99_orphan.ipynb").write_text("{}", encoding="utf-8")
    assert main([str(solutions), str(exercises), "--check"]) == 1
