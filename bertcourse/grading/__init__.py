"""Graded exercises: the checks a learner calls in a notebook, and the grader behind ``python -m bertcourse.grade``.

In a notebook, pass your function itself to its check::

    from bertcourse.grading import check_softmax
    check_softmax(softmax)

The check prints one line per property (ok, FAIL with a hint, or todo while not attempted) and
evaluates to the points earned. Every ``check_*`` of every exercise module
(``bertcourse/grading/exNN_*.py``) is importable from here. How to write an exercise's checks:
:mod:`bertcourse.grading.framework`.
"""

from __future__ import annotations

from typing import Any

from bertcourse.grading.report import CheckResult, PropertyResult, Status

__all__ = ["CheckResult", "PropertyResult", "Status"]


def __getattr__(name: str) -> Any:
    """``check_<function>`` of whichever exercise module defines it."""
    if name.startswith("check_"):
        from bertcourse.grading.framework import find_check

        check = find_check(name)
        if check is not None:
            return check
    raise AttributeError(f"module 'bertcourse.grading' has no attribute {name!r}")


def __dir__() -> list[str]:
    from bertcourse.grading.framework import all_checks

    return sorted([*globals(), *all_checks()])
