"""Exercise 03's grader: full marks and zero through the real grade command; every mutant loses points."""

from __future__ import annotations

import pytest

from bertcourse.grading import ex03_multi_head_attention
from tests import grading_support as support
from tests.mutants.ex03_multi_head_attention import CORRECT, MUTANTS

EXERCISE = ex03_multi_head_attention.EXERCISE


def test_tasks_match_the_notebook() -> None:
    support.assert_tasks_match_notebook(EXERCISE)


def test_solution_scores_full_marks_and_exercise_zero() -> None:
    support.assert_solution_full_and_exercise_zero(EXERCISE)


@pytest.mark.parametrize("function", sorted(CORRECT))
def test_correct_answer_passes(function: str) -> None:
    support.assert_correct_answer_passes(EXERCISE, function, CORRECT[function])


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_mutant_loses_points_with_its_hint(mutant: str) -> None:
    support.assert_mutant_loses_points(EXERCISE, *MUTANTS[mutant])
