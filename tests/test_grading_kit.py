"""The grader's kit and module discovery: shared oracles are independent, find_check refuses ambiguity."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bertcourse.grading import framework, kit
from bertcourse.grading.framework import randn


def test_attention_oracle_agrees_with_torch_and_zeroes_rows_that_see_nothing() -> None:
    q, k, v = randn(2, 3, 4, 8, seed=1), randn(2, 3, 6, 8, seed=2), randn(2, 3, 6, 5, seed=3)
    mask = torch.rand(2, 1, 4, 6, generator=torch.Generator().manual_seed(4)) < 0.6
    mask[..., 0] = True
    mask[0, :, 1, :] = False  # one query that may attend to nothing
    output, weights = kit.attention_oracle(q, k, v, mask)
    assert torch.equal(output[0, :, 1], torch.zeros_like(output[0, :, 1]))
    assert torch.allclose(weights[1].sum(-1), torch.ones(3, 4, dtype=torch.float64))
    keep = mask.any(-1, keepdim=True)
    assert torch.allclose(output * keep, F.scaled_dot_product_attention(q, k, v, attn_mask=mask).nan_to_num() * keep)
    assert kit.attend(q, k, v, mask, zero_empty=False)[1][0, :, 1].isnan().all()


def test_compare_all_names_the_mistake_that_explains_every_value() -> None:
    assert kit.compare_all([1.0, 2.0], [1.0, 2.0]) is None
    assert kit.compare_all([2.0, 4.0], [1.0, 2.0], [("doubled", [2.0, 4.0])]) == "doubled"
    assert kit.compare_all([1.0, 3.0], [1.0, 2.0], labels=["a", "b"]).startswith("b: expected 2.0")


def test_readers() -> None:
    assert kit.unpack((1, 2)) == (1, 2) and kit.unpack([1, 2, 3], 3) == (1, 2, 3) and kit.unpack(5) is None
    assert kit.output_and_weights(7) == (7, None)
    assert kit.scalar(torch.tensor([2.0])).shape == () and kit.as_number(torch.tensor(0.5)) == 0.5
    assert kit.as_float64(torch.ones(2)).dtype == torch.float64 and kit.as_float64("x") == "x"
    assert math.isclose(kit.as_number(torch.tensor(0.25, dtype=torch.float64)), 0.25)


def test_first_labels_the_first_problem_and_stops_there() -> None:
    seen = []

    def problem(label: str, text: str | None) -> tuple[str, str | None]:
        seen.append(label)
        return label, text

    assert kit.first(problem(x, None) for x in "ab") is None and seen == ["a", "b"]
    seen.clear()
    assert kit.first(problem(x, "wrong" if x == "b" else None) for x in "abc") == "b: wrong" and seen == ["a", "b"]
    assert kit.first([("", "bare"), ("x", "later")]) == "bare"


def test_variants_evaluate_a_table_of_knobs() -> None:
    def oracle(x: float, scale: float = 1.0, shift: float = 0.0) -> float:
        return x * scale + shift

    table = [("doubled", {"scale": 2.0}), ("shifted", {"shift": 1.0})]
    assert kit.variants(oracle, table, 3.0) == [("doubled", 6.0), ("shifted", 4.0)]
    assert kit.variants(oracle, table, 3.0, shift=5.0) == [("doubled", 11.0), ("shifted", 4.0)]  # a knob wins


def test_expect_tensors_judges_each_part_in_the_order_of_its_specs() -> None:
    names, good = ("output", "weights"), (torch.zeros(2, 3), torch.zeros(2, 2))
    specs = {"weights": ((2, 2), torch.float32), "output": ((2, 3), torch.float32, {(3, 2): "transposed"})}
    assert kit.expect_tensors(good, names, specs) is None
    assert kit.expect_tensors(torch.zeros(2), names, specs) == "expected a pair (output, weights), got Tensor"
    assert kit.expect_tensors(5, names, specs, not_a_pair="return a pair") == "return a pair"
    assert kit.expect_tensors((torch.zeros(3, 2), torch.zeros(2, 2)), names, specs).endswith(": transposed")
    both_wrong = (torch.zeros(3, 2), torch.zeros(1))
    assert kit.expect_tensors(both_wrong, names, specs).startswith("weights: expected shape (2, 2)")


def test_reproducible_draws() -> None:
    a, b = torch.tensor([1, 2, 3]), torch.tensor([3, 2, 1])
    assert kit.reproducible(a, a.clone(), b, "use it") is None
    assert kit.reproducible(a, b, b, "use it").endswith("gave different draws: use it")
    assert "ignore the generator argument" in kit.reproducible(a, a.clone(), a.clone(), "use it")


def test_fail_and_the_task_forms_equals_with_a_hint_and_same() -> None:
    task = framework.Task("f", 1.0, "check_f")
    task.equals("equals 1", "one", 1.0, hint="never 1")
    task.same("does not move", "moved", "one", "it moved")
    task.property("a malformed answer fails")(lambda a: kit.fail("malformed") if a["one"] != 1.0 else None)
    outcomes = {"one": {"value": 2.0}, "moved": {"value": 3.0}}
    details = [p.detail for p in framework.judge(task, {"outcomes": outcomes}).properties]
    assert details == ["never 1", "it moved", "malformed"]
    assert task.properties[1].gated and not task.properties[0].gated
    passed = framework.judge(task, {"outcomes": {"one": {"value": 1.0}, "moved": {"value": 1.0}}})
    assert passed.points == 1.0


def test_oracles_never_import_the_functions_a_learner_writes() -> None:
    """No exercise module or the kit imports bertcourse.heads/attention/lstm/objectives (the learner's functions)."""
    from pathlib import Path

    folder = Path(framework.__file__).parent
    for path in [*sorted(folder.glob("ex[0-9][0-9]_*.py")), folder / "kit.py"]:
        text = path.read_text(encoding="utf-8")
        for module in ("heads", "lstm", "objectives", "scalar_mix"):
            assert f"from bertcourse.{module} import" not in text, (path.name, module)
        assert "import scaled_dot_product_attention" not in text, path.name


def test_find_check_refuses_two_modules_for_one_check(monkeypatch: pytest.MonkeyPatch) -> None:
    assert framework.find_check("check_softmax") is not None
    owners = {**framework._check_owners(), "check_softmax": ["a.ex01_attention", "a.ex01_other"]}
    monkeypatch.setattr(framework, "_check_owners", lambda: owners)
    with pytest.raises(ValueError, match="check_softmax is defined by two check modules"):
        framework.find_check("check_softmax")


def test_two_modules_with_one_number_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    modules = {**framework._exercise_modules(), "ex01_copy": "bertcourse.grading.ex01_copy"}
    monkeypatch.setattr(framework, "_exercise_modules", lambda: modules)
    with pytest.raises(ValueError, match="two check modules for exercise 01"):
        framework.exercise_for("01_attention.ipynb")


@pytest.mark.parametrize("flag", ["--timeout", "--notebook-mb"])
def test_limits_that_cannot_be_turned_off_refuse_zero(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    from bertcourse.grading.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["nothing.ipynb", flag, "0"])
    assert exit_.value.code == 2 and f"{flag} must be positive" in capsys.readouterr().err


def test_the_old_command_paths_still_work() -> None:
    import subprocess
    import sys

    from tests.grading_support import ROOT

    run = subprocess.run([sys.executable, "-m", "bertcourse.grade", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0 and "python -m bertcourse.grade" in run.stdout


def test_the_class_seed_comes_from_the_flag_the_file_or_chance(tmp_path: Path) -> None:
    import argparse

    from bertcourse.grading.cli import _class_seed, _parser

    parser = _parser()
    seed_file = tmp_path / "class.seed"
    first = _class_seed(argparse.Namespace(seed=None, seed_file=seed_file), parser)
    assert seed_file.read_text().strip() == str(first) and oct(seed_file.stat().st_mode)[-3:] == "600"
    assert _class_seed(argparse.Namespace(seed=None, seed_file=seed_file), parser) == first  # kept: same inputs
    assert _class_seed(argparse.Namespace(seed=7, seed_file=seed_file), parser) == 7
    draws = {_class_seed(argparse.Namespace(seed=None, seed_file=None), parser) for _ in range(3)}
    assert len(draws) == 3 and min(draws) > 0
