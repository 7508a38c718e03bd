"""Exercise 08 beyond the shared grader tests (tests/test_grading_exercises.py): other correct answers pass."""

from __future__ import annotations

import pytest

from bertcourse.grading import ex08_head_to_head
from tests import grading_support as support
from tests.mutants.ex08_head_to_head import ALSO_CORRECT


@pytest.mark.parametrize("name", sorted(ALSO_CORRECT))
def test_another_correct_answer_passes(name: str) -> None:
    function = "interaction" if name.startswith("interaction") else "influence_matrix"
    support.assert_correct_answer_passes(ex08_head_to_head.EXERCISE, function, ALSO_CORRECT[name])
