"""Real nbgrader agrees with ``python -m bertcourse.grade``, point for point, on exercise 01.

An nbgrader course folder is built from ``solutions/``; ``generate_assignment`` must release exactly
our ``exercises/`` cells (nbgrader's stub and lock flags), and ``autograde`` must give the solution (full
marks), the untouched release and a partly wrong answer (with a correct function that warns and writes to
stderr) the same points as our grade command, to 0.01. (``nbgrader validate`` runs the same tests one
notebook at a time; it is left out to save its 3 kernel runs.)
Needs the ``instructor`` extra (nbgrader); skipped with that reason without it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests import grading_support as support

pytestmark = pytest.mark.slow  # grading kernels and sandboxes: seconds each


pytest.importorskip("nbgrader", reason="nbgrader is not installed: pip install -e '.[instructor]'")

NAME = "01_attention.ipynb"
PARTLY_WRONG = {  # a correct softmax that warns and prints to stderr, a missing scale, an off-by-one, untouched
    "softmax": (
        "import sys, warnings\n\n"
        "def softmax(x, dim=-1):\n"
        "    warnings.warn('a warning from a correct answer')\n"
        "    print('debugging output', file=sys.stderr)\n"
        "    e = (x - x.amax(dim=dim, keepdim=True)).exp()\n"
        "    return e / e.sum(dim=dim, keepdim=True)\n"
    ),
    "scaled_dot_product_attention": (
        "def scaled_dot_product_attention(q, k, v, mask=None):\n"
        "    scores = q @ k.transpose(-2, -1)\n"
        "    if mask is not None:\n"
        "        scores = scores.masked_fill(~mask, float('-inf'))\n"
        "    weights = softmax(scores, dim=-1)\n"
        "    if mask is not None:\n"
        "        weights = weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)\n"
        "    return weights @ v, weights\n"
    ),
    "causal_mask": "def causal_mask(seq_len):\n    return torch.ones(seq_len, seq_len, dtype=torch.bool).tril(-1)\n",
}


def _nbgrader(course: Path, *args: str) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=course,
        env={
            **os.environ,
            "PYTHONPATH": str(support.ROOT),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # nbgrader runs alembic
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def _cells(nb: nbformat.NotebookNode) -> list[tuple[str, str, object, object]]:
    return [(c.cell_type, c.source, c.metadata.get("editable"), c.metadata.get("deletable")) for c in nb.cells]


def test_nbgrader_gives_the_same_points_as_the_grade_command(tmp_path: Path) -> None:
    course = tmp_path / "course"
    (course / "source" / "ex01").mkdir(parents=True)
    shutil.copy(support.SOLUTIONS / NAME, course / "source" / "ex01" / NAME)
    (course / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.root = {str(course)!r}\nc.CourseDirectory.course_id = 'bertcourse'\n"
    )
    _nbgrader(course, "generate_assignment", "ex01", "--create")
    release = nbformat.read(course / "release" / "ex01" / NAME, as_version=4)
    assert _cells(release) == _cells(nbformat.read(support.EXERCISES / NAME, as_version=4))

    partly = nbformat.read(course / "release" / "ex01" / NAME, as_version=4)
    for cell in partly.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in PARTLY_WRONG:
            cell.source = PARTLY_WRONG[gid]
    submissions = {"solution": support.SOLUTIONS / NAME, "untouched": course / "release" / "ex01" / NAME}
    for student in ("solution", "untouched", "partly"):
        (course / "submitted" / student / "ex01").mkdir(parents=True)
    for student, path in submissions.items():
        shutil.copy(path, course / "submitted" / student / "ex01" / NAME)
    nbformat.write(partly, course / "submitted" / "partly" / "ex01" / NAME)

    submitted = [course / "submitted" / s / "ex01" / NAME for s in ("solution", "untouched", "partly")]
    _nbgrader(course, "autograde", "ex01", "--create")
    script = (
        "import json, sys\nfrom nbgrader.api import Gradebook\n"
        "with Gradebook(f'sqlite:///{sys.argv[1]}') as gb:\n"
        "    notebooks = {s: gb.find_submission_notebook(sys.argv[2], 'ex01', s) for s in sys.argv[3:]}\n"
        "    print(json.dumps({s: {g.name: g.score for g in nb.grades} for s, nb in notebooks.items()}))\n"
    )
    theirs = json.loads(
        _nbgrader_python(script, str(course / "gradebook.db"), NAME[:-6], "solution", "untouched", "partly")
    )

    # The solution and the exercise (whose cells equal the release's, as asserted above) are graded once
    # for test_grading_exercises too; the grade command's run is shared.
    ours = {**support.grade_all(), **support.grade(submitted[2])}
    paths = (support.SOLUTIONS / NAME, support.EXERCISES / NAME, submitted[2])
    for student, path in zip(("solution", "untouched", "partly"), paths, strict=True):
        mine = {t["id"]: t["points"] for t in ours[str(path)]["tasks"]}
        assert mine.keys() == theirs[student].keys()
        for gid, points in mine.items():
            assert abs(points - theirs[student][gid]) <= 0.01, (student, gid, points, theirs[student][gid])
    assert abs(sum(theirs["solution"].values()) - ours[str(paths[0])]["max_score"]) <= 0.01  # full marks
    partly_points = {t["id"]: t["points"] for t in ours[str(paths[2])]["tasks"]}
    assert partly_points["check_softmax"] == 2  # the warning and the stderr output were captured, not held against it
    assert 0 < sum(partly_points.values()) < 10


def _nbgrader_python(script: str, *args: str) -> str:
    run = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return run.stdout
