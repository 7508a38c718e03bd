"""Exercise 08's grader: full marks and zero through the real grade command; every mutant loses points."""

from __future__ import annotations

import pytest

from bertcourse.grading import ex08_head_to_head
from tests import grading_support as support
from tests.mutants.ex08_head_to_head import ALSO_CORRECT, CORRECT, MUTANTS

EXERCISE = ex08_head_to_head.EXERCISE


def test_tasks_match_the_notebook() -> None:
    support.assert_tasks_match_notebook(EXERCISE)


def test_solution_scores_full_marks_and_exercise_zero() -> None:
    support.assert_solution_full_and_exercise_zero(EXERCISE)


@pytest.mark.parametrize("function", sorted(CORRECT))
def test_correct_answer_passes(function: str) -> None:
    support.assert_correct_answer_passes(EXERCISE, function, CORRECT[function])


@pytest.mark.parametrize("name", sorted(ALSO_CORRECT))
def test_another_correct_answer_passes(name: str) -> None:
    support.assert_correct_answer_passes(EXERCISE, "influence_matrix", ALSO_CORRECT[name])


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_mutant_loses_points_with_its_hint(mutant: str) -> None:
    support.assert_mutant_loses_points(EXERCISE, *MUTANTS[mutant])
