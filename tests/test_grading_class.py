"""A class of 30 graded at once with ``--jobs 2``: solutions, stubs, typical mistakes, and every hostile trick.

One run of the real grade command over a nbgrader-style folder (``submitted/<learner>/ex01/...``)
plus a roster, a CSV, feedback files and a class summary. The hostile learners of grader v3's issue
(numbers are its cases) each must earn no more than the same answers without the trick (0 where
those are a stub), the batch must give exactly one line per path (skipped ones with their reason),
and nothing may be left running or on disk. A second, short run covers a course checkout that a
submission tampers with (process sandbox, the only mode where it can write there).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bertcourse.grading.sandbox import sandbox_mode
from tests import grading_support as support
from tests.test_grading_attacks import PATCHES, WRONG, _honest_points, _leftovers, _notebook

pytestmark = pytest.mark.slow  # grading kernels and sandboxes: seconds each

SOLUTION = support.SOLUTIONS / "01_attention.ipynb"
STUB = support.EXERCISES / "01_attention.ipynb"
BUBBLEWRAP = sandbox_mode()[0] == "bubblewrap"

READ_THE_ANSWERS = r"""
import glob, json, os
if os.environ.get("BERTCOURSE_SANDBOX"):  # case 1: read the solution notebook through $PYTHONPATH
    for root in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        for path in glob.glob(os.path.join(root, "solutions", "*.ipynb")):
            for cell in json.load(open(path))["cells"]:
                if cell["cell_type"] == "code" and cell["metadata"].get("nbgrader", {}).get("solution"):
                    try:
                        exec("".join(cell["source"]), globals())
                    except Exception:
                        pass
"""
COURSE_REFERENCES = {  # case 2: the course's own implementations, no code of one's own
    "scaled_dot_product_attention": (
        "from bertcourse import scaled_dot_product_attention as course\n"
        "def scaled_dot_product_attention(q, k, v, mask=None):\n"
        "    return course(q, k, v, attn_mask=mask, return_weights=True, backend='math')\n"
    ),
    "causal_mask": "from bertcourse.attention import causal_mask\n",
    "padding_mask": (
        "import torch\nimport bertcourse.attention as A\n"
        "def padding_mask(lengths, max_len):\n"
        "    return A.padding_mask((torch.arange(max_len) < lengths[:, None]).long())\n"
    ),
}
ORACLES = {  # case 2: the grader's own oracles
    "scaled_dot_product_attention": (
        "def scaled_dot_product_attention(q, k, v, mask=None):\n"
        "    from bertcourse.grading.kit import attention_oracle\n"
        "    return attention_oracle(q, k, v, mask)\n"
    ),
    "softmax": (
        "def softmax(x, dim=-1):\n"
        "    from bertcourse.grading import ex01_attention\n"
        "    return ex01_attention.torch.softmax(x, dim)\n"
    ),
}
REPLACE_THE_CHECKS = (  # case 4: what fools nbgrader, which trusts the kernel
    "import bertcourse.grading\n"
    "points = {'softmax': 2, 'scaled_dot_product_attention': 4, 'causal_mask': 2, 'padding_mask': 2}\n"
    "for name, points in points.items():\n"
    "    setattr(bertcourse.grading, f'check_{name}', lambda fn, p=points: p)\n"
)
KILL_EVERYTHING = r"""
import os, signal
me = os.getpid()
for entry in os.listdir("/proc"):  # case 6: SIGSTOP, then SIGKILL, every process this kernel can see
    if entry.isdigit() and int(entry) not in (me, 1):
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            try:
                os.kill(int(entry), sig)
            except OSError:
                pass
"""
STOP_MYSELF = "import os, signal\nos.killpg(0, signal.SIGSTOP)\n"  # case 6: the kernel and its nanny stop

ONE_FIXED = {  # typical partial answers: the wrong answers with one function right
    "softmax": "def softmax(x, dim=-1):\n    e = (x - x.amax(dim=dim, keepdim=True)).exp()\n"
    "    return e / e.sum(dim=dim, keepdim=True)\n",
    "causal_mask": "def causal_mask(seq_len):\n    return torch.ones(seq_len, seq_len, dtype=torch.bool).tril()\n",
    "padding_mask": "def padding_mask(lengths, max_len):\n"
    "    return (torch.arange(max_len) < lengths[:, None])[:, None, None, :]\n",
}


def _stub(before_checks: str = "", answers: dict[str, str] | None = None) -> dict:
    """The untouched exercise notebook, with ``answers`` replacing stub cells and ``before_checks`` run first."""
    nb = json.loads(STUB.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        gid = cell["metadata"].get("nbgrader", {}).get("grade_id")
        if answers and gid in answers:
            cell["source"] = answers[gid]
    if before_checks:
        first = next(i for i, c in enumerate(nb["cells"]) if c["metadata"].get("nbgrader", {}).get("solution"))
        nb["cells"].insert(first + 1, {"cell_type": "code", "metadata": {}, "source": before_checks,
                                       "outputs": [], "execution_count": None})  # fmt: skip
    return nb


def _put(root: Path, learner: str, content: dict | Path, name: str = "01_attention.ipynb") -> Path:
    path = root / "submitted" / learner / "ex01" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, Path):
        shutil.copyfile(content, path)
    else:
        path.write_text(json.dumps(content), encoding="utf-8")
    return path


def _class(root: Path) -> tuple[list[str], dict[str, str]]:
    """30 paths in the class folder; the learners' names, and the walker's expected reasons by learner."""
    for name in ("ada", "ben", "cy"):
        _put(root, name, SOLUTION)
    for name in ("dee", "eve", "fay"):
        _put(root, name, STUB)
    for name in ("gus", "hal", "kim"):
        _put(root, name, _notebook())
    for i, (function, source) in enumerate(ONE_FIXED.items()):
        _put(root, f"ivy{i}", _notebook({**WRONG, function: source}))
    _put(root, "jon", _notebook({**WRONG, **ONE_FIXED}))
    _put(root, "case1_reader", _stub(READ_THE_ANSWERS))
    _put(root, "case2_references", _stub(answers=COURSE_REFERENCES))
    _put(root, "case2_oracles", _stub(answers=ORACLES))
    _put(root, "case4_checks", _stub(REPLACE_THE_CHECKS))
    _put(root, "patched", _notebook(before_checks=PATCHES))
    # Only where the kernel sees nothing but itself: in a process sandbox it would kill the machine's processes.
    _put(root, "case6_killer", _stub(KILL_EVERYTHING if BUBBLEWRAP else ""))
    _put(root, "case6_stopper", _stub(STOP_MYSELF))
    _put(root, "other_exercise", support.SOLUTIONS / "07_fine_tuning.ipynb", "07_fine_tuning.ipynb")
    _put(root, "other_stub", support.EXERCISES / "07_fine_tuning.ipynb", "07_fine_tuning.ipynb")
    # case 7: every path accounted for
    (root / "submitted" / "case7_folder" / "ex01" / "01_attention.ipynb").mkdir(parents=True)
    _put(root, "case7_upper", STUB, "01_attention.IPYNB")
    checkpoint = root / "submitted" / "case7_checkpoint" / "ex01" / ".ipynb_checkpoints"
    checkpoint.mkdir(parents=True)
    shutil.copyfile(STUB, checkpoint / "01_attention-checkpoint.ipynb")
    _put(root, "case7_twice", STUB)
    _put(root, "case7_twice", STUB, "../copy/01_attention.ipynb")
    (root / "submitted" / "case7_link").symlink_to(root / "submitted" / "ada")
    # case 8: a folder name that forges report lines
    _put(root, "case8\n  total                                10.00 / 10", STUB, "01_attention (copy).ipynb")
    expected = {
        "case7_folder": "a folder named like a notebook",
        "case7_upper": "not .ipynb in lower case",
        "case7_checkpoint": "only a Jupyter checkpoint",
        "case7_link": "a symbolic link",
    }
    return ["ada", "ben", "cy", "dee", "eve", "fay", "zed_never_submitted"], expected


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("class")
    (root / "grader-tmp").mkdir()
    roster, expected = _class(root)
    (root / "roster.txt").write_text("\n".join(roster) + "\n", encoding="utf-8")
    args = [str(root / "submitted"), str(root / "nobody_here"), "--json", "--jobs", "2", "--timeout", "30"]
    args += [
        "--csv",
        str(root / "grades.csv"),
        "--feedback",
        str(root / "feedback"),
        "--roster",
        str(root / "roster.txt"),
    ]
    args += ["--out", str(root / "grades.jsonl")]
    started = time.time() - 1
    run, seconds = support.grade_command(root, *args)
    print(f"class of 30 with --jobs 2: {seconds:.1f} s")
    records = [json.loads(line) for line in run.stdout.splitlines()]
    text, _ = support.grade_command(
        root, str(root / "submitted" / next(p.name for p in (root / "submitted").iterdir() if "\n" in p.name))
    )
    return {"root": root, "run": run, "records": records, "expected": expected, "text": text, "started": started}


def _by_learner(graded: dict) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for record in graded["records"]:
        found.setdefault(record.get("learner", ""), []).append(record)
    return found


def test_every_path_gets_one_line_and_nothing_is_left(graded: dict) -> None:
    run, root = graded["run"], graded["root"]
    assert run.returncode == 1, run.stderr  # some paths could not be graded; the batch finished
    assert len(graded["records"]) == 31, run.stdout  # 30 paths and the learner on the roster with none
    assert len({r["notebook"] for r in graded["records"]}) == 31
    assert _leftovers(root) == []
    assert list((root / "grader-tmp").iterdir()) == []
    assert [p for p in Path("/tmp").glob("bcg-*") if p.stat().st_mtime >= graded["started"]] == []  # socket folders
    if BUBBLEWRAP:
        assert run.stderr == "" and {r.get("sandbox") for r in graded["records"] if "tasks" in r} == {"bubblewrap"}


def test_solutions_full_stubs_zero_mistakes_between(graded: dict) -> None:
    learners = _by_learner(graded)
    for name in ("ada", "ben", "cy", "other_exercise"):
        (record,) = learners[name]
        assert record["score"] == record["max_score"] > 0, record
    for name in ("dee", "eve", "fay", "other_stub"):
        assert learners[name][0]["score"] == 0
    honest = learners["gus"][0]["score"]
    assert 0 < honest < 10 and learners["hal"][0]["score"] == honest
    assert all(honest < learners[f"ivy{i}"][0]["score"] < learners["jon"][0]["score"] for i in range(3))


@pytest.mark.parametrize("attack", ["case1_reader", "case2_references", "case2_oracles", "case4_checks",
                                    "case6_killer", "case6_stopper"])  # fmt: skip
def test_hostile_stubs_earn_nothing(graded: dict, attack: str) -> None:
    if attack == "case1_reader" and not BUBBLEWRAP:
        pytest.skip("only bubblewrap hides solutions/ from the kernel (the process sandbox says so loudly)")
    (record,) = _by_learner(graded)[attack]
    assert record["score"] == 0 and record["max_score"] == 10, json.dumps(record, indent=1)


def test_references_refuse_with_a_clear_message(graded: dict) -> None:
    (record,) = _by_learner(graded)["case2_references"]
    details = " ".join(p["detail"] for t in record["tasks"] for p in t["properties"])
    assert "exercise 01 asks you to write scaled_dot_product_attention yourself" in details
    (record,) = _by_learner(graded)["case2_oracles"]
    details = " ".join(p["detail"] for t in record["tasks"] for p in t["properties"])
    assert "holds the grader's oracles: it is not available while grading" in details


def test_patches_earn_no_more_than_the_wrong_answers(graded: dict) -> None:
    learners = _by_learner(graded)
    assert learners["patched"][0]["score"] <= learners["gus"][0]["score"]


def test_skipped_paths_say_why(graded: dict) -> None:
    learners = _by_learner(graded)
    for learner, reason in graded["expected"].items():
        (record,) = learners[learner]
        assert reason in record["error"], record
    twice = sorted(learners["case7_twice"], key=lambda r: "error" in r)
    assert "score" in twice[0] and "a second copy" in twice[1]["error"]
    (missing,) = [r for r in graded["records"] if r["notebook"].endswith("nobody_here")]
    assert missing["error"] == "no such file or folder"


def test_text_reports_escape_forged_lines(graded: dict) -> None:
    out = graded["text"].stdout
    assert "case8\\n  total" in out
    assert not any(line.strip().startswith("total") and "10.00 / 10" in line for line in out.splitlines()), out


def test_csv_summary_feedback_and_roster(graded: dict) -> None:
    root = graded["root"]
    rows = list(csv.DictReader((root / "grades.csv").open(encoding="utf-8")))
    assert len(rows) == 31 and {"learner", "score", "check_softmax", "error"} <= set(rows[0])
    assert next(r for r in rows if r["learner"] == "zed_never_submitted")["error"].startswith("on the roster")
    ada = next(r for r in rows if r["learner"] == "ada")
    assert float(ada["score"]) == 10 and float(ada["check_softmax"]) == 2
    summary = (root / "feedback" / "summary.md").read_text(encoding="utf-8")
    assert "check_softmax: mean" in summary and "most often failed" in summary
    assert "missing from the roster: zed_never_submitted" in summary
    gus = (root / "feedback" / "gus__01_attention.md").read_text(encoding="utf-8")
    assert "FAIL" in gus and "the scores are not scaled" in gus and "**Total: " in gus
    assert len(list((root / "feedback").glob("*.md"))) >= 25


def test_resume_skips_what_is_done(graded: dict) -> None:
    root = graded["root"]
    before = (root / "grades.jsonl").read_text(encoding="utf-8")
    ada = str(root / "submitted" / "ada")
    run, seconds = support.grade_command(root, ada, "--out", str(root / "grades.jsonl"), "--resume", "--json")
    assert run.returncode == 0 and run.stdout == "" and seconds < 60
    assert (root / "grades.jsonl").read_text(encoding="utf-8") == before


def test_a_tampered_checkout_changes_no_other_grade(tmp_path: Path) -> None:
    """Case 5, in the process sandbox (bubblewrap mounts the course read-only): a submission rewrites the
    source's points and a grading module; the grader loaded both before it ran, so the next learner's
    grade is the honest one."""
    course = tmp_path / "course"
    shutil.copytree(support.ROOT / "bertcourse", course / "bertcourse", ignore=shutil.ignore_patterns("__pycache__"))
    (course / "solutions").mkdir()
    shutil.copyfile(SOLUTION, course / "solutions" / SOLUTION.name)
    tamper = f"""
import json, pathlib
course = pathlib.Path({str(course)!r})
source = course / "solutions" / "01_attention.ipynb"
nb = json.loads(source.read_text())
for cell in nb["cells"]:
    if cell["metadata"].get("nbgrader", {{}}).get("grade"):
        cell["metadata"]["nbgrader"]["points"] = 100
source.write_text(json.dumps(nb))
for name in ("ex08_head_to_head.py", "report.py", "framework.py"):
    with open(course / "bertcourse" / "grading" / name, "a") as f:
        f.write("\\nimport bertcourse.grading.report as _r\\n_r.earned_points = lambda *a, **k: 100.0\\n")
"""
    folder = tmp_path / "submitted"
    _put(tmp_path, "a_tamperer", _stub(tamper))
    _put(tmp_path, "b_honest", _notebook())
    (tmp_path / "grader-tmp").mkdir()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bertcourse.grade",
            str(folder),
            "--json",
            "--sandbox",
            "process",
            "--jobs",
            "1",
            "--seed",
            "0",
        ],
        cwd=course,
        env={**os.environ, "PYTHONPATH": str(course), "TMPDIR": str(tmp_path / "grader-tmp")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    records = {r["learner"]: r for r in map(json.loads, run.stdout.splitlines())}
    assert "WARNING: grading in the process sandbox only" in run.stderr
    assert records["a_tamperer"]["sandbox"].startswith("process: ")
    assert records["a_tamperer"]["score"] == 0 and records["a_tamperer"]["max_score"] == 10
    assert records["b_honest"]["max_score"] == 10
    assert records["b_honest"]["score"] == round(sum(_honest_points().values()), 2)
    assert _leftovers(tmp_path) == []
