"""``python -m bertcourse.grade``: the grade command; it lives in :mod:`bertcourse.grading.cli`."""

from __future__ import annotations

import sys

from bertcourse.grading.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
