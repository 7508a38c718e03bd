"""Results of a check: one outcome per property, a hint for each failure, points, and how they are shown.

A task worth ``p`` points earns ``p * passed / total`` (rounded to 2 decimals), where ``passed``
counts its properties that passed; a task whose function still raises ``NotImplementedError``
everywhere is *not attempted* and earns 0. Every string a submission can influence goes through
:func:`clean` (control characters stripped, length capped) before it is shown or written.
"""

from __future__ import annotations

import enum
import re
import textwrap
from dataclasses import dataclass, field
from typing import Any

__all__ = ["WIDTH", "CheckResult", "PropertyResult", "Status", "clean", "earned_points", "wrap"]

WIDTH = 80
"""Reports wrap at this many columns."""
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


class Status(str, enum.Enum):
    """Outcome of one property, or of a whole task."""

    PASSED = "passed"
    FAILED = "failed"
    NOT_ATTEMPTED = "not attempted"


def clean(text: object, limit: int = 1000) -> str:
    """``text`` as a safe, short string: control characters (ANSI escapes included) removed, at most ``limit`` chars."""
    text = _CONTROL.sub("", str(text).replace("\t", "    ").replace("\r\n", "\n"))
    return text if len(text) <= limit else text[: limit - 14] + " [... cut ...]"


def wrap(text: str, indent: int, width: int = WIDTH) -> list[str]:
    """Wrap each line of ``text`` at ``width`` columns, indented by ``indent``, keeping the line's own indent."""
    lines = []
    for line in text.splitlines() or [""]:
        own = " " * (indent + len(line) - len(line.lstrip()))
        lines += textwrap.wrap(line.strip(), width, initial_indent=own, subsequent_indent=own + "  ") or [own]
    return lines


def earned_points(passed: int, total: int, max_points: float) -> float:
    """Partial credit: ``max_points * passed / total``, rounded to 2 decimals and clamped to [0, max_points]."""
    if total <= 0 or max_points <= 0:
        return 0.0
    return round(max_points * min(max(passed, 0), total) / total, 2)


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

    check: str  # the function's name, e.g. "softmax"
    max_points: float
    properties: list[PropertyResult] = field(default_factory=list)
    output: str = ""  # warnings and stderr the function wrote while it was checked

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

    @property
    def points(self) -> float:
        return self.points_for(self.max_points)

    def points_for(self, max_points: float) -> float:
        """The partial credit of this result for a task worth ``max_points``."""
        return earned_points(self.passed, self.total, max_points)

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
        lines = [f"{head}, {self.points:g} of {self.max_points:g} points"]
        for p in self.properties:
            lines += wrap(f"{marks[p.status]} {p.name}", 2)
            if p.status is Status.FAILED:
                lines += wrap(f"on {p.on}", 9) if p.on else []
                lines += wrap(p.detail, 9) if p.detail else []
        if self.output:
            lines += ["  your function also wrote (warnings and stderr, captured):", *wrap(self.output, 6)]
        return "\n".join(lines)
