"""Graded exercises: checks a learner calls in a notebook, and the runner behind ``python -m bertcourse.grade``.

In a notebook, pass your function itself to its check::

    from bertcourse.grading import check_softmax
    check_softmax(softmax)

The check prints one line per property (passed, failed with a hint, or not attempted), leaves a JSON
record in the cell's output for the grader, and raises ``AssertionError`` if anything failed.
"""

from bertcourse.grading.attention import (
    check_causal_mask,
    check_padding_mask,
    check_scaled_dot_product_attention,
    check_softmax,
)
from bertcourse.grading.report import RESULT_MIME, CheckFailedError, CheckResult, PropertyResult, Status

__all__ = [
    "RESULT_MIME",
    "CheckFailedError",
    "CheckResult",
    "PropertyResult",
    "Status",
    "check_causal_mask",
    "check_padding_mask",
    "check_scaled_dot_product_attention",
    "check_softmax",
]
