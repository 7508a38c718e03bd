"""Every exercise's grader, one parametrized test per claim: the source notebook and the checks module
agree, the solution scores full marks and the generated exercise zero through the real grade command,
each correct answer in ``tests/mutants/exNN_<name>.py`` passes, and each of its mutants loses points
with its hint. An exercise is found from its module ``bertcourse/grading/exNN_<name>.py``.
"""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest

from bertcourse import grading
from tests import grading_support as support

NAMES = sorted(m.name for m in pkgutil.iter_modules(grading.__path__) if re.fullmatch(r"ex\d\d_\w+", m.name))
EXERCISES = {name: importlib.import_module(f"bertcourse.grading.{name}").EXERCISE for name in NAMES}
LIBRARIES = {name: importlib.import_module(f"tests.mutants.{name}") for name in NAMES}
CORRECT = [(name, function) for name in NAMES for function in sorted(LIBRARIES[name].CORRECT)]
MUTANTS = [(name, mutant) for name in NAMES for mutant in sorted(LIBRARIES[name].MUTANTS)]


def test_every_exercise_has_a_checks_module() -> None:
    assert [name[:4] for name in NAMES] == [f"ex{n:02d}" for n in range(1, 9)]


@pytest.mark.parametrize("name", NAMES)
def test_tasks_match_the_notebook(name: str) -> None:
    support.assert_tasks_match_notebook(EXERCISES[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_solution_scores_full_marks_and_exercise_zero(name: str) -> None:
    support.assert_solution_full_and_exercise_zero(EXERCISES[name])


@pytest.mark.parametrize(("name", "function"), CORRECT, ids=[f"{n}-{f}" for n, f in CORRECT])
def test_correct_answer_passes(name: str, function: str) -> None:
    support.assert_correct_answer_passes(EXERCISES[name], function, LIBRARIES[name].CORRECT[function])


@pytest.mark.parametrize(("name", "mutant"), MUTANTS, ids=[f"{n}-{m}" for n, m in MUTANTS])
def test_mutant_loses_points_with_its_hint(name: str, mutant: str) -> None:
    support.assert_mutant_loses_points(EXERCISES[name], *LIBRARIES[name].MUTANTS[mutant])
