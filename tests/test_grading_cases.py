"""Grader v3's smaller holes (issue cases 3 and 8), each tried: secret inputs, constant answers, odd values,
a task that calls an unwritten one, and a slow task that must cost only itself.

In-process through the very driver and property code the grade command uses, except the slow task,
which runs once through the real command (its alarm lives in the kernel).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from bertcourse.grading import ex01_attention, ex07_fine_tuning, framework
from bertcourse.grading.driver import answer_queries
from bertcourse.grading.framework import Exercise, judge
from tests import grading_support as support
from tests.mutants.ex01_attention import CORRECT
from tests.test_grading_attacks import WRONG, _honest_points, _notebook


def _points(exercise: Exercise, function: str, fn: Callable[..., object]) -> float:
    return support.check(exercise, function, fn).points


@pytest.fixture
def class_seed() -> object:
    yield framework.set_class_seed
    framework.set_class_seed(0)


def _zeros_like_the_answer(exercise: Exercise, function: str) -> Callable[..., object]:
    """A constant answer of the right shape and dtype for every query: what the correct answer returns, zeroed."""
    (gid,) = [g for g, (name, _, _) in exercise.builders.items() if name == function]
    task = exercise.build(gid)
    correct = {**CORRECT, **{"warmup_cosine_lr": lambda *a, **k: 0.0, "mean_pool": None}}

    def zeros(*args: object, **kwargs: object) -> object:
        x = next((a for a in args if isinstance(a, torch.Tensor)), None)
        if function == "scaled_dot_product_attention":
            q, k, v = args[:3]
            return torch.zeros(*q.shape[:-1], v.shape[-1], dtype=q.dtype), torch.zeros(*q.shape[:-1], k.shape[-2],
                                                                                     dtype=q.dtype)  # fmt: skip
        if function == "causal_mask":
            return torch.zeros(args[0], args[0], dtype=torch.bool)
        if function == "padding_mask":
            return torch.zeros(len(args[0]), 1, 1, args[1], dtype=torch.bool)
        if function == "mean_pool":
            return torch.zeros(x.shape[0], x.shape[-1], dtype=x.dtype)
        if function in correct and x is not None:
            return torch.zeros_like(x)
        return 0.0

    assert task.properties
    return zeros


@pytest.mark.parametrize(
    ("exercise", "function"),
    [(ex01_attention.EXERCISE, f) for f in ("softmax", "scaled_dot_product_attention", "causal_mask", "padding_mask")]
    + [(ex07_fine_tuning.EXERCISE, f) for f in ("mean_pool", "warmup_cosine_lr")],
)
def test_constant_answers_earn_nothing(exercise: Exercise, function: str) -> None:
    """Case 8: zeros of the right shape passed the shape and input properties: 30% of exercise 01 before."""
    result = support.check(exercise, function, _zeros_like_the_answer(exercise, function))
    assert result.points == 0, str(result)
    assert any(framework.GATED in p.detail for p in result.properties) or result.passed == 0


def test_a_correct_answer_still_earns_everything_whatever_the_class_seed(class_seed: Callable[[int], None]) -> None:
    for seed in (1, 2**40 + 7):
        class_seed(seed)
        for function, fn in CORRECT.items():
            assert _points(ex01_attention.EXERCISE, function, fn) == ex01_attention.EXERCISE.build(
                f"check_{function}").points  # fmt: skip


def test_a_table_of_answers_to_the_public_inputs_is_worth_nothing_under_a_secret_seed(
    class_seed: Callable[[int], None],
) -> None:
    """Case 3: answers looked up by input, recorded from the public (seed 0) queries, as a stub would cheat."""
    table: dict[bytes, object] = {}
    for function in ("softmax", "scaled_dot_product_attention"):
        task = ex01_attention.EXERCISE.build(f"check_{function}")
        for query in task.request():
            args, kwargs = framework.codec.loads(query["inputs"].numpy().tobytes(), allow_objects=True)
            table[args[0].numpy().tobytes()] = CORRECT[function](*args, **kwargs)

    def lookup(x: torch.Tensor, *args: object, **kwargs: object) -> object:
        return table.get(x.numpy().tobytes(), torch.zeros_like(x))

    public = _points(ex01_attention.EXERCISE, "softmax", lookup)
    assert public > 1  # the table works on the public inputs: that is the attack
    class_seed(123456789)
    for function in ("softmax", "scaled_dot_product_attention"):
        assert _points(ex01_attention.EXERCISE, function, lookup) == 0
    again = [_points(ex01_attention.EXERCISE, "softmax", CORRECT["softmax"]) for _ in range(2)]
    assert again[0] == again[1] == 2  # the same submission, the same seed: the same points


@pytest.mark.parametrize(
    "value", [torch.zeros(3, dtype=torch.bits8), 10**5000, [1, {2: 10**30}]], ids=["bits8", "huge", "nested"]
)
def test_odd_values_are_unsupported_for_that_call_only(value: object) -> None:
    """Case 8: a torch.bits8 tensor or 10**5000 escaped the codec and made the whole task an error."""
    task = ex01_attention.EXERCISE.build("check_softmax")
    calls = iter(range(100))

    def softmax(x: torch.Tensor, dim: int = -1) -> object:
        return value if next(calls) == 0 else torch.softmax(x, dim)

    answers = answer_queries(softmax, task.request())
    outcomes = list(answers["outcomes"].values())
    assert "unsupported" in outcomes[0] and all("value" in o for o in outcomes[1:])
    json.dumps(answers["outcomes"], default=str)
    assert judge(task, answers).passed == judge(task, answers).total - 1


def test_a_task_whose_helper_is_unwritten_fails_and_says_so() -> None:
    """Case 8: an attention that calls a softmax still raising NotImplementedError showed 'not attempted'."""
    namespace: dict[str, object] = {"torch": torch, "math": math}
    exec(
        "def softmax(x, dim=-1):\n    raise NotImplementedError()\n"
        "def scaled_dot_product_attention(q, k, v, mask=None):\n"
        "    return softmax(q @ k.transpose(-2, -1), -1) @ v\n",
        namespace,
    )
    result = support.check(
        ex01_attention.EXERCISE, "scaled_dot_product_attention", namespace["scaled_dot_product_attention"]
    )
    assert result.status.value == "failed"
    assert "softmax, which this function calls, is not written yet" in " ".join(p.detail for p in result.properties)


@pytest.mark.slow
def test_a_slow_task_costs_only_itself(tmp_path: Path) -> None:
    """Case 8: one slow task zeroed every later task ("timed out before this task")."""
    slow = tmp_path / "01_attention.ipynb"
    looping = {  # slow on the grader's first input only (the notebook's own cells call it with 5)
        **WRONG,
        "causal_mask": "def causal_mask(seq_len):\n    while seq_len == 6:\n        pass\n"
        "    return torch.ones(seq_len, seq_len, dtype=torch.bool).tril(-1)\n",
    }
    slow.write_text(json.dumps(_notebook(looping)), "utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "bertcourse.grade", str(slow), "--json", "--task-timeout", "3", "--seed", "0"],
        cwd=support.ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    (record,) = [json.loads(line) for line in run.stdout.splitlines()]
    points = {t["id"]: t["points"] for t in record["tasks"]}
    honest = _honest_points()
    assert points["check_causal_mask"] == 0 <= honest["check_causal_mask"]
    assert {k: v for k, v in points.items() if k != "check_causal_mask"} == {
        k: v for k, v in honest.items() if k != "check_causal_mask"
    }
    assert "ran past the task's time limit" in json.dumps(record["tasks"][2])


@pytest.mark.slow
def test_ten_thousand_cells_cost_one_round_trip(tmp_path: Path) -> None:
    """Case 8: a notebook of 10,000 cells took 66 s (one message per cell); now a run of plain cells is one."""
    nb = json.loads(support.SOLUTIONS.joinpath("01_attention.ipynb").read_text(encoding="utf-8"))
    filler = [{"cell_type": "code", "metadata": {}, "source": f"x{i} = {i}", "outputs": [], "execution_count": None}
              for i in range(10_000)]  # fmt: skip
    nb["cells"] = nb["cells"][:3] + filler + nb["cells"][3:]
    big = tmp_path / "01_attention.ipynb"
    big.write_text(json.dumps(nb), encoding="utf-8")
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "bertcourse.grade", str(big), "--json"], cwd=support.ROOT,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    (record,) = [json.loads(line) for line in run.stdout.splitlines()]
    assert record["score"] == record["max_score"] == 10
    assert time.monotonic() - start < 40
