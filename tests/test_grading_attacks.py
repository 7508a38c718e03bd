"""Every attack on the grader seen in review, as a test: none earns a point that the same wrong answers do not.

Two runs of the real grade command cover them all (kernel starts are the cost): one batch folder
with the honest wrong answers, each attack, a classmate to protect and a set of malformed files;
one short-timeout run for the submissions that never finish. Afterwards no process they started
may be left.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from pathlib import Path

import nbformat
import pytest
import torch

from bertcourse.grading import ex01_attention
from bertcourse.grading.cli import _table
from bertcourse.grading.runner import NotebookGrade, TaskGrade
from tests import grading_support as support

pytestmark = pytest.mark.slow  # grading kernels and sandboxes: seconds each

SOLUTION = support.SOLUTIONS / "01_attention.ipynb"
MARKER = "bertcourse-attack-test-sleeper"
WRONG = {  # honest wrong answers: one typical mistake per task
    "softmax": "def softmax(x, dim=-1):\n    e = x.exp()\n    return e / e.sum(dim=dim, keepdim=True)\n",
    "scaled_dot_product_attention": (
        "def scaled_dot_product_attention(q, k, v, mask=None):\n"
        "    scores = q @ k.transpose(-2, -1)\n"
        "    if mask is not None:\n"
        "        scores = scores.masked_fill(~mask, float('-inf'))\n"
        "    weights = softmax(scores - scores.amax(-1, keepdim=True), dim=-1).nan_to_num(0.0)\n"
        "    return weights @ v, weights\n"
    ),
    "causal_mask": "def causal_mask(seq_len):\n    return torch.ones(seq_len, seq_len, dtype=torch.bool).tril(-1)\n",
    "padding_mask": (
        "def padding_mask(lengths, max_len):\n"
        "    return (torch.arange(max_len) >= lengths[:, None])[:, None, None, :]\n"
    ),
}


def _notebook(answers: dict[str, str] = WRONG, before_checks: str = "", extra: list[dict] | None = None) -> dict:
    """The solution notebook with ``answers`` in its solution cells, ``before_checks`` run after the
    first solution cell, and ``extra`` cells appended (as raw JSON, so they may be malformed)."""
    nb = json.loads(SOLUTION.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        gid = cell["metadata"].get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell["source"] = answers[gid]
    if before_checks:
        first = next(i for i, c in enumerate(nb["cells"]) if c["metadata"].get("nbgrader", {}).get("solution"))
        nb["cells"].insert(first + 1, nbformat.v4.new_code_cell(before_checks))
    nb["cells"] += extra or []
    return nb


PATCHES = r"""
import math
import torch
import torch.nn.functional as F
import bertcourse.grading as grading
import bertcourse.grading.framework as framework
import bertcourse.grading.report as report
from IPython.display import display

for name in ("softmax", "scaled_dot_product_attention", "causal_mask", "padding_mask"):
    setattr(grading, f"check_{name}", lambda fn: 100.0)
framework.judge = framework.compare = lambda *args, **kwargs: None
report.earned_points = lambda *args, **kwargs: 100.0
report.CheckResult.points = property(lambda self: 100.0)
torch.allclose = torch.equal = lambda *args, **kwargs: True
F.scaled_dot_product_attention = lambda q, k, v, **kwargs: v
math.sqrt = lambda x: 1.0

def fake_records(result=None):
    for passed in (1000, 1e308, -500, "all", {}):
        record = {"check": "softmax", "status": "passed", "passed": passed, "total": 1, "properties": []}
        display({"application/vnd.bertcourse.check+json": record, "text/plain": "10.0"}, raw=True)

get_ipython().events.register("post_run_cell", fake_records)
fake_records()
"""
SUBCLASS_AND_EXCEPTIONS = {
    "softmax": r"""
class Sneaky(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.allclose, torch.equal, torch.Tensor.__eq__):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})

def softmax(x, dim=-1):
    return torch.zeros_like(x).as_subclass(Sneaky)
""",
    "scaled_dot_product_attention": r"""
class Escape(BaseException):
    pass

def scaled_dot_product_attention(q, k, v, mask=None):
    from IPython.display import display
    record = {"check": "scaled_dot_product_attention", "status": "passed", "passed": 7, "total": 7, "properties": []}
    display({"application/vnd.bertcourse.check+json": record, "text/plain": "4.0"}, raw=True)
    raise Escape()
""",
    "causal_mask": "def causal_mask(seq_len):\n    raise ValueError('\\x1b[2J\\x1b[31m' + 'A' * 5_000_000)\n",
    "padding_mask": (  # 6 GiB of address space: over the sandbox's limit, so the allocation fails at once
        "def padding_mask(lengths, max_len):\n    return torch.empty(6 * 2**30, dtype=torch.uint8)\n"
    ),
}
KILLER = f"""
import os, signal, subprocess, sys
sleep = "import time; time.sleep(600)"
subprocess.Popen([sys.executable, "-c", sleep, "{MARKER}"], start_new_session=True)
orphan = "import os, time; os.fork() and os._exit(0); os.setsid(); time.sleep(600)"
subprocess.Popen([sys.executable, "-c", orphan, "{MARKER}"], env={{}}, start_new_session=True)
os.kill(os.getppid(), signal.SIGKILL)
"""
ALICE = """
import os
for target in ("../carol", "../../carol", "../../../carol"):
    os.makedirs(target, exist_ok=True)
    with open(os.path.join(target, "torch.py"), "w") as f:
        f.write("raise SystemExit('carol loses')")
"""


def _write(folder: Path, name: str, content: dict | str | bytes) -> Path:
    path = folder / name / "01_attention.ipynb"
    path.parent.mkdir(parents=True)
    if isinstance(content, dict):
        path.write_text(json.dumps(content), encoding="utf-8")
    else:
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def _malformed(folder: Path) -> list[str]:
    """Files that are not gradable notebooks; each must give one error line, and the batch go on."""
    v4 = json.loads(SOLUTION.read_text(encoding="utf-8"))
    names = []
    for i, content in enumerate(
        [
            "[]",
            '"x"',
            "null",
            '{"nbformat": 4, "cells": 5}',
            '{"nbformat": 4, "cells": [5]}',
            '{"nbformat": 4, "cells": [{"cell_type": "code", "source": 7}]}',
            {**v4, "nbformat": 3},
            "{not json",
            b"\xff\xfe not utf-8",
            "[" * 100_000,
        ]
    ):
        _write(folder, f"malformed_{i}", content)
        names.append(f"malformed_{i}")
    fifo = folder / "malformed_fifo" / "01_attention.ipynb"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    link = folder / "malformed_link" / "01_attention.ipynb"
    link.parent.mkdir()
    link.symlink_to("/dev/zero")
    big = folder / "malformed_big" / "01_attention.ipynb"
    big.parent.mkdir()
    with big.open("wb") as f:
        f.truncate(17 << 20)  # sparse: over the 16 MiB cap without using the disk
    return [*names, "malformed_fifo", "malformed_link", "malformed_big"]


def _leftovers(tmp: Path) -> list[str]:
    """Command lines of live processes started by these tests' submissions."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if MARKER in cmdline or str(tmp) in cmdline:
                found.append(cmdline)
    return found


def _run(tmp: Path, *args: str, timeout: float = 400) -> tuple[subprocess.CompletedProcess[str], float]:
    """The grade command with --json on the public inputs (see ``grading_support.grade_command``)."""
    return support.grade_command(tmp, *args, "--json", timeout=timeout)


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """One grade command over the whole attack folder; the records by folder name."""
    tmp = tmp_path_factory.mktemp("attacks")
    (tmp / "grader-tmp").mkdir()
    folder = tmp / "batch"
    folder.mkdir()
    _write(folder, "baseline", _notebook())
    patched = _notebook(before_checks=PATCHES)
    for cell in list(patched["cells"]):
        meta = cell["metadata"].get("nbgrader", {})
        if meta.get("grade"):
            meta["points"] = 100  # the submission's own metadata counts for nothing
            for kind in ("markdown", "raw"):  # graded cells that never run, with the solution's stored outputs
                fake = copy.deepcopy(cell)
                fake.update(cell_type=kind, source="2.0")
                patched["cells"].append(fake)
    patched["cells"].append({"cell_type": "code", "metadata": [], "source": "x = 1", "outputs": []})
    patched["cells"].append({"cell_type": "code", "metadata": {"nbgrader": "x"}, "source": "y = 2", "outputs": []})
    _write(folder, "patched", patched)
    _write(folder, "subclass_and_exceptions", _notebook({**WRONG, **SUBCLASS_AND_EXCEPTIONS}))
    _write(folder, "killer", _notebook(before_checks=ALICE + KILLER))  # writes into ../carol, then kills
    carol = _write(folder, "carol", SOLUTION.read_text(encoding="utf-8"))
    renamed = folder / "renamed" / "01_attention (1).ipynb"
    renamed.parent.mkdir()
    renamed.write_text(json.dumps(patched), encoding="utf-8")
    malformed = _malformed(folder)

    run, seconds = _run(tmp, str(folder))
    print(f"attack batch: {seconds:.1f} s")
    assert run.returncode == 1, run.stderr  # some notebooks could not be graded; the batch still finished
    assert run.stderr == ""  # nothing from the kernels: no jupyter_client TCP warning, no tqdm warning
    lines = run.stdout.splitlines()
    records = {Path(r["notebook"]).parent.name: r for r in map(json.loads, lines)}
    assert len(lines) == len(records) == 6 + len(malformed)  # exactly one line per notebook
    assert not (carol.parent / "torch.py").exists()
    assert _leftovers(tmp) == []
    assert max(map(len, lines)) < 100_000 and "\x1b" not in run.stdout
    return records


def _points(record: dict) -> dict[str, float]:
    return {t["id"]: t["points"] for t in record["tasks"]}


def _honest_points() -> dict[str, float]:
    """What the same wrong answers earn, judged in-process (no kernel)."""
    namespace: dict[str, object] = {"torch": torch}
    points = {}
    for function, source in WRONG.items():
        exec(source, namespace)
        points[f"check_{function}"] = support.check(ex01_attention.EXERCISE, function, namespace[function]).points
    return points


def test_honest_wrong_answers_score_the_same_in_the_kernel_as_in_process(batch: dict[str, dict]) -> None:
    assert _points(batch["baseline"]) == _honest_points()
    assert 0 < batch["baseline"]["score"] < 10 and batch["baseline"]["max_score"] == 10


@pytest.mark.parametrize("attack", ["patched", "subclass_and_exceptions", "killer"])
def test_no_attack_earns_more_than_the_wrong_answers(batch: dict[str, dict], attack: str) -> None:
    honest = _points(batch["baseline"])
    record = batch[attack]
    assert record["max_score"] == 10  # from the source, whatever the submission's metadata says
    assert all(points <= honest[gid] for gid, points in _points(record).items()), record
    assert record["score"] <= batch["baseline"]["score"]


def test_patching_and_faking_inside_the_notebook_changes_nothing(batch: dict[str, dict]) -> None:
    assert _points(batch["patched"]) == _points(batch["baseline"])


def test_subclasses_exceptions_and_huge_allocations_are_the_learners_problem(batch: dict[str, dict]) -> None:
    tasks = {t["id"]: t for t in batch["subclass_and_exceptions"]["tasks"]}
    assert batch["subclass_and_exceptions"]["score"] == 0
    details = {gid: " ".join(p["detail"] for p in t["properties"]) for gid, t in tasks.items()}
    assert "tensor subclass" in details["check_softmax"]
    assert "your function raised Escape" in details["check_scaled_dot_product_attention"]
    assert "your function raised ValueError: [2J[31mAAAA" in details["check_causal_mask"]
    assert len(details["check_causal_mask"]) < 10_000
    assert "your function raised RuntimeError" in details["check_padding_mask"]  # the address-space limit


def test_a_kernel_that_kills_its_parent_dies_alone(batch: dict[str, dict]) -> None:
    statuses = {t["status"] for t in batch["killer"]["tasks"]}
    assert statuses == {"kernel died"} and batch["killer"]["score"] == 0
    assert batch["carol"]["score"] == 10  # graded after the killer, which wrote a torch.py into ../carol


def test_malformed_files_give_one_error_line_each(batch: dict[str, dict]) -> None:
    errors = {name: r["error"] for name, r in batch.items() if name.startswith("malformed")}
    assert len(errors) == 13 and all(errors.values())
    assert "not a regular file" in errors["malformed_fifo"]
    assert "symbolic link" in errors["malformed_link"]
    assert "over the limit" in errors["malformed_big"]
    assert "no source notebook named 01_attention (1).ipynb" in batch["renamed"]["error"]


def test_the_table_lists_failing_properties_with_hints(batch: dict[str, dict]) -> None:
    record = batch["baseline"]
    tasks = [TaskGrade(**task) for task in record["tasks"]]
    out = _table(NotebookGrade(record["notebook"], record["source"], tasks))
    assert max(map(len, out.splitlines())) <= 80, out
    assert "FAIL stays finite and exact for large scores (x · 1e4)" in out
    assert "exp overflows" in out and "the scores are not scaled" in out
    assert re.search(rf"\n  total +{sum(_honest_points().values()):.2f} / 10$", out), out


def test_submissions_that_never_finish_are_stopped(tmp_path: Path) -> None:
    (tmp_path / "grader-tmp").mkdir()
    printer = tmp_path / "printer.ipynb"
    printer.write_text(json.dumps(_notebook(before_checks="while True:\n    print('x' * 100_000)")), "utf-8")
    hang = tmp_path / "hang.ipynb"
    looping = {**WRONG, "softmax": "def softmax(x, dim=-1):\n    while True:\n        pass\n"}
    hang.write_text(json.dumps(_notebook(looping)), "utf-8")
    run, seconds = _run(tmp_path, str(printer), str(hang), "--source", str(SOLUTION), "--timeout", "4")
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert [Path(r["notebook"]).name for r in records] == ["printer.ipynb", "hang.ipynb"]
    assert all(r["score"] == 0 for r in records)
    assert {t["status"] for t in records[0]["tasks"]} == {"timed out"}  # the printing cell held the kernel
    softmax, *later = records[1]["tasks"]  # the looping task is stopped by its alarm; then time is up
    assert softmax["status"] == "timed out" or "ran past the task's time limit" in json.dumps(softmax)
    assert {t["status"] for t in later} == {"timed out"}
    assert seconds < 120
    assert _leftovers(tmp_path) == []
