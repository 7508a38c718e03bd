"""The check framework: plain data across the boundary, properties judged apart, points, feedback.

Exercise-specific tests live in ``tests/test_grading_exNN.py``; the grade command's containment
and the attacks on it in ``tests/test_grading_attacks.py``.
"""

from __future__ import annotations

import copy
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save
from torch import Tensor, nn

from bertcourse import GPT, GPTConfig, grading
from bertcourse.grading import codec
from bertcourse.grading.driver import answer_queries
from bertcourse.grading.ex01_attention import EXERCISE
from bertcourse.grading.framework import Exercise, Task, compare, judge
from bertcourse.grading.report import WIDTH, Status, clean, earned_points
from bertcourse.grading.runner import GradingError, _read_source, grade_notebook
from bertcourse.grading.sandbox import read_regular_file
from tests.grading_support import ROOT, check
from tests.mutants import ex01_attention as answers
from tests.mutants.ex01_attention import MUTANTS

# ------------------------------------------------------------------------------------------- codec


def test_plain_values_cross_unchanged() -> None:
    value = {
        "t": torch.arange(6.0).reshape(2, 3).T,  # not contiguous
        "b": torch.tensor([True, False]),
        "empty": torch.zeros(0, 3, dtype=torch.int64),
        3: [1, 2.5, True, None, "s", (math.inf, -0.0)],
        "nan": math.nan,
        "np": np.float64(0.25),
    }
    back = codec.plain_copy(value)
    assert set(back) == set(value) and back[3][:5] == [1, 2.5, True, None, "s"]
    assert isinstance(back[3][5], tuple) and back[3][5][0] == math.inf and math.copysign(1, back[3][5][1]) == -1
    assert type(back[3][2]) is bool and type(back[3][0]) is int
    assert math.isnan(back["nan"]) and type(back["np"]) is float
    for key in ("t", "b", "empty"):
        assert type(back[key]) is Tensor and back[key].dtype == value[key].dtype and torch.equal(back[key], value[key])


class Sneaky(Tensor):
    """The attack seen in review: a subclass whose comparisons always say 'close'."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):  # type: ignore[override]
        if func in (torch.allclose, torch.equal):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (torch.zeros(2).as_subclass(Sneaky), "tensor subclass"),
        (nn.Parameter(torch.zeros(2)), "tensor subclass"),
        (np.zeros(2), "numpy.ndarray"),
        ([object()], "builtins.object"),
        (torch.zeros(2, dtype=torch.complex64), "dense real tensor"),
        ({(1, 2): 3}, "dict key"),
        (codec.Seed(1), "Seed"),  # grader-built objects only travel towards the learner
    ],
)
def test_unreadable_answers_are_refused_by_name(value: object, why: str) -> None:
    with pytest.raises(codec.CodecError, match=why):
        codec.dumps(value)


def _blob(tree: str) -> bytes:
    return save({}, metadata={"tree": tree})


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"\x80\x04\x95pickle",
        (10**9).to_bytes(8, "little") + b"{}",
        _blob('["x", "1"]'),  # an unknown node
        _blob('["f", NaN]'),  # non-standard JSON
        _blob('["t", "t0"]'),  # a tensor that is not there
        _blob('["m", "GPT", "{}", {}]'),  # a model, in an answer
        _blob('["l", ' * 5000 + "[]" + "]" * 5000),  # too deep
    ],
)
def test_malformed_blobs_are_refused(blob: bytes) -> None:
    with pytest.raises(codec.CodecError):
        codec.loads(blob)


def test_grader_built_objects_are_rebuilt_fresh() -> None:
    model = GPT(GPTConfig(vocab_size=11, d_model=8, n_layers=1, n_heads=2, d_ff=16, max_len=8)).eval()
    ids = torch.tensor([[1, 2, 3]])
    rebuilt, generator = codec.plain_copy([model, codec.Seed(5)], allow_objects=True)
    assert type(rebuilt) is GPT and not rebuilt.training and rebuilt is not model
    assert torch.equal(rebuilt(ids).logits, model(ids).logits)
    assert torch.equal(torch.rand(3, generator=generator), torch.rand(3, generator=torch.Generator().manual_seed(5)))
    with pytest.raises(codec.CodecError):
        codec.plain_copy(codec.ModelFunction("os", "system", model), allow_objects=True)


# ----------------------------------------------------------------------------------- judging outputs


def _toy_task() -> Task:
    t = Task("double", points=3, grade_id="check_double")
    x = torch.arange(4.0)
    t.query("x", x)
    t.query("y", -x)

    @t.property("doubles x")
    def doubles_x(a):
        return compare(a["x"], 2 * x, [("you added instead of multiplying", x + 2)])

    @t.property("doubles -x")
    def doubles_y(a):
        return compare(a["y"], -2 * x)

    @t.property("returns a tensor")
    def is_tensor(a):
        return None if type(a["x"]) is Tensor else "not a tensor"

    return t


def _judge(fn) -> grading.CheckResult:
    task = _toy_task()
    return judge(task, answer_queries(fn, task.request()))


def test_one_mistake_fails_only_the_properties_it_breaks() -> None:
    def double(x):
        return x + 2 if x.sum() >= 0 else 2 * x

    result = _judge(double)
    assert [p.status for p in result.properties] == [Status.FAILED, Status.PASSED, Status.PASSED]
    assert result.properties[0].detail == "you added instead of multiplying"
    assert result.points == 2.0 and result.status is Status.FAILED


def test_not_attempted_is_not_wrong_and_half_done_scores_what_it_does() -> None:
    def stub(x):
        raise NotImplementedError()

    result = _judge(stub)
    assert result.status is Status.NOT_ATTEMPTED and result.points == 0
    assert "not attempted" in str(result)

    def half(x):
        if x.sum() < 0:
            raise NotImplementedError("negative numbers later")
        return 2 * x

    result = _judge(half)
    assert [p.status for p in result.properties] == [Status.PASSED, Status.NOT_ATTEMPTED, Status.PASSED]
    assert result.status is Status.FAILED and result.points == 2.0


def test_odd_outputs_fail_properties_without_crashing_the_grader() -> None:
    for odd in ("text", None, {"a": 1}, [torch.zeros(2)], 10**400, math.nan, torch.zeros(3, 0), torch.zeros(4).int()):
        result = _judge(lambda x, odd=odd: odd)
        assert result.properties[0].status is result.properties[1].status is Status.FAILED, odd
    result = _judge(lambda x: np.zeros(4))
    assert "numpy.ndarray" in result.properties[0].detail


def test_the_learners_exception_shows_their_line_not_the_graders() -> None:
    result = check(EXERCISE, "scaled_dot_product_attention", MUTANTS["sdpa_forgot_transpose"][1])
    detail = result.properties[1].detail
    assert detail.startswith("your function raised RuntimeError: ")
    assert "in sdpa_forgot_transpose, line" in detail and "scores = q @ k / math.sqrt(q.shape[-1])" in detail
    assert "grading" not in detail and "Traceback" not in detail


def test_baseexceptions_and_exits_are_the_learners_too() -> None:
    class Escape(BaseException):
        pass

    def escape(x):
        raise Escape("out")

    for fn in (escape, lambda x: exit(3), lambda x: (_ for _ in ()).throw(KeyboardInterrupt())):
        result = _judge(fn)
        assert result.passed == 0 and "your function raised" in result.properties[0].detail


# ----------------------------------------------------------------------------------- the check cell


def test_check_prints_the_report_and_evaluates_to_the_points(capsys: pytest.CaptureFixture[str]) -> None:
    points = grading.check_softmax(MUTANTS["softmax_global_max"][1])
    report = capsys.readouterr()
    assert points == 1.33 and type(points) is float
    assert "softmax: 4/6 properties passed, 1.33 of 2 points" in report.out and report.err == ""
    assert max(len(line) for line in report.out.splitlines()) <= WIDTH


def test_check_captures_the_learners_warnings_and_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    def softmax(x, dim=-1):
        warnings.warn("my own warning", stacklevel=1)
        print("debug print", file=sys.stderr)
        return answers.softmax(x, dim)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning that escaped the check would fail this test
        points = grading.check_softmax(softmax)
    report = capsys.readouterr()
    assert points == 2.0 and report.err == ""  # nbgrader gives 0 to a check cell that writes to stderr
    assert "UserWarning: my own warning" in report.out and "debug print" in report.out


def test_check_wants_the_function_itself() -> None:
    with pytest.raises(ValueError, match=r"check_softmax\(softmax\)"):
        grading.check_softmax("softmax")
    with pytest.raises(AttributeError):
        grading.check_no_such_function  # noqa: B018


def test_checks_do_not_touch_the_global_generator_and_are_deterministic() -> None:
    def noisy(x, dim=-1):
        return answers.softmax(x + 1e-3 * torch.rand(x.shape, dtype=x.dtype), dim)

    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = check(EXERCISE, "softmax", noisy).to_json()
    assert first == check(EXERCISE, "softmax", noisy).to_json()
    assert torch.equal(torch.rand(1), before)


def test_in_place_vandalism_cannot_spoil_the_checks_inputs() -> None:
    def softmax(x, dim=-1):
        out = answers.softmax(x.clone(), dim)
        x.zero_()  # vandalise the tensor it was given
        return out

    result = check(EXERCISE, "softmax", softmax)
    assert [p.name for p in result.properties if p.status is Status.FAILED] == ["leaves its input unchanged"]


def test_points_are_partial_credit_clamped_to_the_task() -> None:
    assert [earned_points(p, 7, 4) for p in (0, 5, 7, 1000, -500)] == [0.0, 2.86, 4.0, 4.0, 0.0]
    assert earned_points(3, 0, 4) == 0.0


def test_report_text_is_cleaned_and_wrapped() -> None:
    assert clean("a\x1b[2J\x1b]0;owned\x07b\u202ec", 100) == "a[2J]0;ownedbc"
    assert len(clean("x" * 5000, 100)) == 100


def test_exercise_refuses_duplicate_tasks_and_queries() -> None:
    exercise = Exercise("99_toy.ipynb")
    exercise.task("f", points=1)(lambda t: None)
    with pytest.raises(ValueError, match="declared twice"):
        exercise.task("f", points=1)(lambda t: None)
    t = Task("f", 1, "check_f")
    t.query("a", 1)
    with pytest.raises(ValueError, match="declared twice"):
        t.query("a", 2)


# ------------------------------------------------------------------------------ sources and files


def _source(tmp_path: Path, edit) -> Path:
    nb = json.loads((ROOT / "solutions" / "01_attention.ipynb").read_text(encoding="utf-8"))
    edit(nb["cells"])
    path = tmp_path / "01_attention.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


def test_a_source_with_a_grade_id_twice_or_a_graded_cell_without_checks_is_refused(tmp_path: Path) -> None:
    checks = [c for c in json.loads((ROOT / "solutions" / "01_attention.ipynb").read_text())["cells"]
              if c["metadata"].get("nbgrader", {}).get("grade")]  # fmt: skip
    twice = _source(tmp_path, lambda cells: cells.append(checks[0]))
    with pytest.raises(GradingError, match="appears twice"):
        grade_notebook(twice, twice)
    unknown = copy.deepcopy(checks[0])
    unknown["metadata"]["nbgrader"]["grade_id"] = "check_bonus"
    bonus = _source(tmp_path, lambda cells: cells.append(unknown))
    with pytest.raises(GradingError, match="no task for graded cell 'check_bonus'"):
        grade_notebook(bonus, bonus)


def test_graded_cells_come_only_from_the_sources_code_cells(tmp_path: Path) -> None:
    def to_markdown(cells: list[dict]) -> None:
        for cell in cells:
            if cell["metadata"].get("nbgrader", {}).get("grade_id") == "check_padding_mask":
                cell["cell_type"] = "markdown"
                del cell["outputs"], cell["execution_count"]

    source = _source(tmp_path, to_markdown)
    assert list(_read_source(source).tasks) == ["check_softmax", "check_scaled_dot_product_attention",
                                                "check_causal_mask"]  # fmt: skip


def test_only_regular_files_under_the_cap_are_read(tmp_path: Path) -> None:
    (tmp_path / "ok").write_bytes(b"12345")
    assert read_regular_file(tmp_path / "ok", 5) == b"12345"
    with pytest.raises(ValueError, match="over the limit"):
        read_regular_file(tmp_path / "ok", 4)
    (tmp_path / "link").symlink_to(tmp_path / "ok")
    with pytest.raises(ValueError, match="symbolic link"):
        read_regular_file(tmp_path / "link", 5)
    with pytest.raises(ValueError, match="not a regular file"):
        read_regular_file(tmp_path, 5)
