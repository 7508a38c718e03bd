"""Generate the exercise notebooks from the solutions: ``python -m bertcourse.grading.exercises SOLUTIONS EXERCISES``.

Exactly what nbgrader's ``generate_assignment`` does to the cells: every ``# BEGIN SOLUTION`` ...
``# END SOLUTION`` block becomes ``# YOUR CODE HERE`` and ``raise NotImplementedError()`` at the
block's indentation; solution cells get ``deletable: false``, graded and locked cells ``deletable:
false`` and ``editable: false`` (nbgrader's LockCells). Outputs, execution counts and execution
timings (``metadata.execution``) are cleared, all other metadata (nbgrader's included) is kept. The
output is deterministic (nbformat's JSON layout), so a test can compare bytes. ``--check`` writes
nothing and exits 1 if ``EXERCISES`` is out of date.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import nbformat

__all__ = ["render_exercise", "strip_solutions", "write_exercises"]

BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION\s*$")
END = re.compile(r"^[ \t]*# END SOLUTION\s*$")
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")


def strip_solutions(source: str, where: str = "cell") -> str:
    """Replace each solution block of a code cell's source with the stub, keeping the block's indentation."""
    lines, out, indent = source.split("\n"), [], None
    for number, line in enumerate(lines, start=1):
        begin, end = BEGIN.match(line), END.match(line)
        if begin:
            if indent is not None:
                raise ValueError(f"{where}, line {number}: '# BEGIN SOLUTION' inside another solution block")
            indent = begin["indent"]
        elif end:
            if indent is None:
                raise ValueError(f"{where}, line {number}: '# END SOLUTION' without '# BEGIN SOLUTION'")
            out += [indent + stub for stub in STUB]
            indent = None
        elif indent is None:
            out.append(line)
    if indent is not None:
        raise ValueError(f"{where}: '# BEGIN SOLUTION' is never closed by '# END SOLUTION'")
    return "\n".join(out)


def _lock(cell: nbformat.NotebookNode) -> None:
    """nbgrader's LockCells: learners cannot delete solution cells, nor edit or delete graded and locked ones."""
    meta = cell.metadata.get("nbgrader", {})
    if meta.get("solution"):
        cell.metadata["deletable"] = False
    elif meta.get("grade") or meta.get("locked"):
        cell.metadata["deletable"] = False
        cell.metadata["editable"] = False


def render_exercise(solution: Path) -> str:
    """The exercise notebook generated from one solution notebook, as the exact text to write."""
    nb = nbformat.read(solution, as_version=4)
    for index, cell in enumerate(nb.cells):
        _lock(cell)
        if cell.cell_type != "code":
            continue
        cell.source = strip_solutions(cell.source, where=f"{solution} cell {index}")
        cell.outputs = []
        cell.execution_count = None
        cell.metadata.pop("execution", None)  # timings of the solution's last run
    return nbformat.writes(nb) + "\n"


def write_exercises(solutions: Path, exercises: Path, check: bool = False) -> list[Path]:
    """Generate ``exercises/NAME.ipynb`` for every ``solutions/NAME.ipynb``; return the files that were stale.

    With ``check`` nothing is written. A notebook in ``exercises`` without a solution counts as stale.
    """
    if not solutions.is_dir():
        raise ValueError(f"solutions folder {solutions} does not exist")
    sources = sorted(solutions.glob("*.ipynb"))
    stale = []
    for solution in sources:
        target = exercises / solution.name
        text = render_exercise(solution)
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            stale.append(target)
            if not check:
                exercises.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
    names = {s.name for s in sources}
    stale += [p for p in sorted(exercises.glob("*.ipynb")) if p.name not in names]
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bertcourse.grading.exercises", description=__doc__.splitlines()[0])
    parser.add_argument("solutions", type=Path, help="folder of solution notebooks (the source)")
    parser.add_argument("exercises", type=Path, help="folder to write the exercise notebooks to")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if exercises are out of date")
    args = parser.parse_args(argv)
    stale = write_exercises(args.solutions, args.exercises, check=args.check)
    orphans = [p for p in stale if not (args.solutions / p.name).is_file()]
    for path in stale:
        if path in orphans:
            sys.stderr.write(f"{path}: no solution notebook {args.solutions / path.name}; remove it\n")
        elif args.check:
            sys.stderr.write(
                f"{path}: out of date; run `python -m bertcourse.grading.exercises {args.solutions} {args.exercises}`\n"
            )
        else:
            sys.stderr.write(f"wrote {path}\n")
    return 1 if (args.check and stale) or orphans else 0


if __name__ == "__main__":
    sys.exit(main())
