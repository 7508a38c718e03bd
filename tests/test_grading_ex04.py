"""Exercise 04 beyond the shared grader tests (tests/test_grading_exercises.py): the package's own answer passes."""

from __future__ import annotations

from bertcourse.grading import ex04_elmo
from tests import grading_support as support


def test_the_package_reference_functions_pass() -> None:
    """The course's own reverse_padded passes the check written for learners."""
    from bertcourse.lstm import reverse_padded

    support.assert_correct_answer_passes(ex04_elmo.EXERCISE, "reverse_padded", reverse_padded)
