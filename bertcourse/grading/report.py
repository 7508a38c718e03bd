"""Results of a check: one outcome per property, a hint for each failure, and how they are shown.

A check runs a learner's function on a few fixed inputs and tests *properties* (shape, values against
a framework oracle, behaviour of a mask, ...). Each property ends in one :class:`Status`; a check's
:class:`CheckResult` is shown in the notebook as plain text and, for the grader, as a JSON record under
the MIME type :data:`RESULT_MIME` in the check cell's output (see :mod:`bertcourse.grading.runner`).

Partial credit: a task worth ``p`` points earns ``p * passed / total`` (rounded to 2 decimals), where
``passed`` counts properties that passed; a task whose function raises ``NotImplementedError`` earns 0.
"""

from __future__ import annotations

import enum
import sys
import sysconfig
import textwrap
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "RESULT_MIME",
    "CheckFailedError",
    "CheckResult",
    "Checker",
    "LearnerError",
    "NotAttemptedError",
    "PropertyResult",
    "Status",
    "call_learner",
    "describe_exception",
    "earned_points",
    "show",
]

RESULT_MIME = "application/vnd.bertcourse.check+json"
"""MIME type of the JSON record a check leaves in its cell's output for the grader to collect."""


class Status(str, enum.Enum):
    """Outcome of one property, or of a whole task."""

    PASSED = "passed"
    FAILED = "failed"
    NOT_ATTEMPTED = "not attempted"


class NotAttemptedError(Exception):
    """The learner's function raised ``NotImplementedError``: the task is still the generated stub."""


@dataclass(frozen=True)
class PropertyResult:
    """One property of the learner's function: its name, the input it was tested on, the outcome and a hint."""

    name: str
    status: Status
    on: str = ""  # the input, in words: "B=2, h=3, L_q=4, L_k=5, d_k=8, d_v=6, float64"
    detail: str = ""  # for a failure: what went wrong and a hint that points at the mistake

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status.value, "on": self.on, "detail": self.detail}


@dataclass
class CheckResult:
    """Everything one check found out about one learner function."""

    check: str  # the check's name, e.g. "softmax"
    properties: list[PropertyResult] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(p.status is Status.PASSED for p in self.properties)

    @property
    def total(self) -> int:
        return len(self.properties)

    @property
    def status(self) -> Status:
        """Not attempted if every property hit ``NotImplementedError``; passed if every one passed."""
        if self.properties and all(p.status is Status.NOT_ATTEMPTED for p in self.properties):
            return Status.NOT_ATTEMPTED
        return Status.PASSED if self.passed == self.total else Status.FAILED

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": self.status.value,
            "passed": self.passed,
            "total": self.total,
            "properties": [p.to_json() for p in self.properties],
        }

    def __str__(self) -> str:
        marks = {Status.PASSED: "ok  ", Status.FAILED: "FAIL", Status.NOT_ATTEMPTED: "todo"}
        if self.status is Status.NOT_ATTEMPTED:
            head = f"{self.check}: not attempted yet (your function raises NotImplementedError)"
        else:
            head = f"{self.check}: {self.passed}/{self.total} properties passed"
        lines = [head]
        for p in self.properties:
            on = f"  [on {p.on}]" if p.on and p.status is Status.FAILED else ""
            lines.append(f"  {marks[p.status]} {p.name}{on}")
            if p.status is Status.FAILED and p.detail:
                for line in p.detail.splitlines():
                    indent = " " * (9 + len(line) - len(line.lstrip()))
                    lines += textwrap.wrap(line.strip(), 110, initial_indent=indent, subsequent_indent=indent + "  ")
        return "\n".join(lines)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """Jupyter shows the text; the grader reads the JSON record."""
        return {"text/plain": str(self), RESULT_MIME: self.to_json()}


class CheckFailedError(AssertionError):
    """Raised by a check cell when any property failed, so nbgrader and nbval see the cell fail too."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(f"{result.check}: {result.passed}/{result.total} properties passed (see the report above)")
        self.result = result

    def _render_traceback_(self) -> list[str]:
        """IPython shows this instead of a traceback: the report above already says what went wrong."""
        return [f"{type(self).__name__}: {self}"]


def earned_points(passed: int, total: int, max_points: float) -> float:
    """Partial credit: ``max_points * passed / total``, rounded to 2 decimals."""
    if total <= 0:
        return 0.0
    return round(max_points * passed / total, 2)


_LIBRARY_DIRS = tuple(
    str(Path(p).resolve()) for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"]} if p
)
_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])


def _is_learner_frame(filename: str) -> bool:
    """A frame of the learner's code: not the course package, not the standard library, not an installed package."""
    if filename.startswith("<frozen"):
        return False
    path = str(Path(filename).resolve()) if not filename.startswith("<") else filename
    return not path.startswith((_PACKAGE_DIR, *_LIBRARY_DIRS)) and "site-packages" not in path


def describe_exception(exc: BaseException) -> str:
    """The learner's exception as they would want to see it: type, message and the line in *their* code."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _is_learner_frame(f.filename)]
    message = f"{type(exc).__name__}: {exc}"
    if not frames:
        return f"your function raised {message}"
    frame = frames[-1]
    line = f"    {frame.line.strip()}" if frame.line else ""
    return f"your function raised {message}\n  in {frame.name}, line {frame.lineno}:\n{line}".rstrip()


class LearnerError(Exception):
    """The learner's function raised; ``original`` is their exception."""

    def __init__(self, original: Exception) -> None:
        super().__init__(str(original))
        self.original = original


def call_learner(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the learner's function, telling their exceptions apart from the grader's own.

    ``NotImplementedError`` (the generated stub) becomes :class:`NotAttemptedError`, any other exception
    :class:`LearnerError`.
    """
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as exc:
        raise NotAttemptedError(str(exc)) from exc
    except Exception as exc:
        raise LearnerError(exc) from exc


class Checker:
    """Collect property outcomes for one check, then show them and fail the cell if any failed.

    Each property is a zero-argument test that returns ``None`` when it holds and a message (what went
    wrong, with a hint) when it does not. Tests call the learner's function through
    :func:`call_learner`, so the learner's exceptions are reported as theirs.
    """

    def __init__(self, check: str, fn: object) -> None:
        if not callable(fn):
            raise ValueError(
                f"check_{check} expects your function itself, e.g. check_{check}({check}), "
                f"got {type(fn).__name__} {fn!r:.60}"
            )
        self.result = CheckResult(check)

    def property(self, name: str, on: str, test: Callable[[], str | None]) -> None:
        """Run one property test and record its outcome."""
        try:
            detail = test()
        except NotAttemptedError:
            self.result.properties.append(PropertyResult(name, Status.NOT_ATTEMPTED, on, "raises NotImplementedError"))
            return
        except LearnerError as err:
            detail = describe_exception(err.original)
        status = Status.PASSED if detail is None else Status.FAILED
        self.result.properties.append(PropertyResult(name, status, on, detail or ""))

    def finish(self) -> None:
        """Show the report; raise :class:`CheckFailedError` unless every property passed.

        Returns nothing, so that Jupyter does not show the report a second time as the cell's value.
        """
        show(self.result)
        if self.result.status is not Status.PASSED:
            raise CheckFailedError(self.result)


def show(result: CheckResult) -> None:
    """Display the report in the notebook (text plus the grader's JSON record), or print it outside Jupyter."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # plain Python without IPython installed
        sys.stdout.write(f"{result}\n")
        return
    if get_ipython() is None:
        sys.stdout.write(f"{result}\n")
    else:
        display(result)
