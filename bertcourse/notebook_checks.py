"""Checks that a chapter's prose agrees with what its cells print: no drift between words and outputs.

Three rules, each a function that returns what breaks it (an empty list means the notebook passes):

- :func:`prose_drift`: every number written in a markdown cell appears in some cell output of the same
  notebook (rounded as the prose rounds it), unless the sentence marks it as quoted (a citation such as
  "Devlin et al.", "(paper)", a year in parentheses, or a "Paper vs code" section), or it is code
  (backticks), math (``$...$``), a chapter/exercise/section reference, a year, a name such as "GPT-2",
  or a single digit (counts like "two layers" are read from code, not from outputs).
- :func:`next_chapter_errors`: a chapter's "Next"/"What's next" pointer names the next existing chapter,
  and the last chapter has no forward pointer.
- :func:`long_code_cells`: code cells longer than a limit, counted in lines of code (blank lines and
  comment-only lines do not count).

Notebooks are read as plain JSON (``nbformat``'s on-disk layout), so the checks need no kernel.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Drift",
    "chapter_number",
    "load_notebook",
    "long_code_cells",
    "next_chapter_errors",
    "output_numbers",
    "prose_drift",
    "prose_numbers",
]

Notebook = dict[str, Any]

# A number standing alone: not glued to letters ("GPT-2", "bf16", "L6"), slashes ("80/10/10", "1/2"),
# hyphenated names, or other digits. Thousands may be written with commas ("1,024").
_NUMBER = re.compile(r"(?<![\w./\-^_])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(%?)(?![\w/^]|\.\d)")
_REFERENCE = re.compile(
    r"(?:chapters?|exercises?|sections?|§|steps? \d+ (?:to|and)|figure|table|ch\.)\s*$", re.IGNORECASE
)
_QUOTED = re.compile(
    r"et al\.?|\(paper\)|\bpaper\b|\bquoted\b|\((?:[^()]*\s)?(?:19|20)\d\d[a-z]?\)|\b(?:19|20)\d\d\b.{0,3}\)"
    r"|measured elsewhere|on a GPU run|\bGPU:",
    re.IGNORECASE,
)
_CODE_SPAN = re.compile(r"```.*?```|`[^`]*`", re.DOTALL)
_MATH = re.compile(r"\$\$.*?\$\$|\$[^$]*\$", re.DOTALL)
_LINK_TARGET = re.compile(r"\]\([^)]*\)")
_FIGURE_REPR = re.compile(r"<Figure size [^>]*>")
_TAG = re.compile(r"<[^>]+>")
_SENTENCE_END = re.compile(r"(?<=[.!?:;])\s+(?=[A-Z*(\"'])")


@dataclass(frozen=True)
class Drift:
    """A number in the prose that no output of the notebook shows.

    Attributes:
        cell: index of the markdown cell in the notebook.
        number: the number as written ("320", "0.67", "15%").
        sentence: the sentence it sits in, for the error message.
    """

    cell: int
    number: str
    sentence: str

    def __str__(self) -> str:
        return f"cell {self.cell}: {self.number!r} in {self.sentence!r}"


def load_notebook(path: str | Path) -> Notebook:
    """Read a ``.ipynb`` file as a dict; raises ``ValueError`` naming the file when it is not a notebook."""
    path = Path(path)
    try:
        notebook = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"path {str(path)!r} is not a readable notebook: {error}") from error
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise ValueError(f"path {str(path)!r} has no 'cells' list: not a Jupyter notebook")
    return notebook


def _source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _value(integer: str, fraction: str | None, percent: str) -> tuple[float, int]:
    """(value, decimals) of a written number; a percentage is returned as a fraction with 2 more decimals."""
    value = float(integer.replace(",", "") + (fraction or ""))
    decimals = len(fraction) - 1 if fraction else 0
    if percent:
        return value / 100, decimals + 2
    return value, decimals


def output_numbers(notebook: Notebook) -> list[float]:
    """Every number printed by the notebook's code cells (stream, text/plain, text/html; not figure reprs)."""
    texts: list[str] = []
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            if "text" in output:
                texts.append("".join(output["text"]))
            data = output.get("data", {})
            for key in ("text/plain", "text/html", "text/markdown"):
                if key in data:
                    texts.append(_TAG.sub(" ", _FIGURE_REPR.sub(" ", "".join(data[key]))))
    numbers: list[float] = []
    # outputs: any digits count, even glued to letters ("x19.7", "100%")
    for match in re.finditer(r"(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(%?)", "\n".join(texts)):
        integer, fraction, percent = match.groups()
        numbers.append(_value(integer, fraction, "")[0])
        if percent:
            numbers.append(_value(integer, fraction, percent)[0])
    return numbers


def _units(markdown: str) -> Iterable[tuple[str, bool]]:
    """Split a markdown cell into (sentence, quoted) units; a 'Paper vs code' block is quoted throughout."""
    quoted_block = False
    for block in re.split(r"\n\s*\n", markdown):
        if re.match(r"\s*#", block) or re.match(r"\s*\*\*[^*]+\*\*", block):
            quoted_block = bool(re.search(r"paper vs code", block, re.IGNORECASE))
        for line in re.split(r"\n(?=\s*(?:[-*] |\d+\. |\|))", block):  # list items and table rows
            for sentence in _SENTENCE_END.split(line):
                yield sentence, quoted_block or bool(_QUOTED.search(sentence))


def prose_numbers(markdown: str) -> list[tuple[str, float, int, str]]:
    """Numbers in ``markdown`` that must be backed by an output: (written, value, decimals, sentence).

    Skipped: H1 titles, code spans, math, link targets, references ("chapter 05"), years, single digits
    and anything in a quoted sentence (see the module docstring).
    """
    found = []
    for sentence, quoted in _units(markdown):
        if quoted or re.match(r"\s*# ", sentence):
            continue
        text = _LINK_TARGET.sub("]", _MATH.sub(" ", _CODE_SPAN.sub(" ", sentence)))
        text = re.sub(r"^\s*\|[^|]*\|", "|", text)  # a table's first column holds identifiers
        for match in _NUMBER.finditer(text):
            integer, fraction, percent = match.groups()
            written = match.group(0)
            if _REFERENCE.search(text[: match.start()]):
                continue
            if (
                not fraction
                and not percent
                and "," not in integer
                and (len(integer) == 1 or integer.startswith("0") or 1900 <= int(integer) <= 2030)
            ):
                continue  # single digits, identifiers such as "05" and years
            value, decimals = _value(integer, fraction, percent)
            found.append((written, value, decimals, " ".join(sentence.split())))
    return found


def _shown(value: float, decimals: int, printed: Iterable[float]) -> bool:
    """True when some printed number, rounded to ``decimals``, equals ``value`` (prose may round outputs)."""
    tolerance = 0.5 * 10.0**-decimals + 1e-9
    return any(abs(p - value) <= tolerance for p in printed)


def _code_literals(notebook: Notebook) -> set[str]:
    """Every number literal in the notebook's code cells, underscores and commas removed ("20_000" -> "20000")."""
    code = "\n".join(_source(c) for c in notebook["cells"] if c.get("cell_type") == "code")
    return {m.replace("_", "") for m in re.findall(r"\d[\d_]*(?:\.\d+)?(?:e-?\d+)?", code)}


def prose_drift(notebook: Notebook) -> list[Drift]:
    """The numbers of the notebook's markdown that no cell output shows (see the module docstring).

    A number inside a code span (`` `n_pairs = 20_000` ``) quotes code, so it must appear in a code cell.
    """
    printed = output_numbers(notebook)
    literals = _code_literals(notebook)
    drifts = []
    for index, cell in enumerate(notebook["cells"]):
        if cell.get("cell_type") != "markdown":
            continue
        source = _source(cell)
        for written, value, decimals, sentence in prose_numbers(source):
            if not _shown(value, decimals, printed):
                drifts.append(Drift(index, written, sentence))
        for span in _CODE_SPAN.findall(_MATH.sub(" ", source)):
            if span.startswith("```"):
                continue  # a fenced block is a command to run, not a quote of the notebook's code
            for number in re.findall(r"(?<![\w.])\d[\d_,]*(?:\.\d+)?(?:e-?\d+)?(?![\w.])", span):
                if number.replace("_", "").replace(",", "") not in literals and len(number) > 1:
                    drifts.append(Drift(index, number, span))
    return drifts


def chapter_number(path: str | Path) -> int:
    """The chapter number a notebook's file name starts with ("06_bert.ipynb" -> 6)."""
    match = re.match(r"(\d+)_", Path(path).name)
    if match is None:
        raise ValueError(f"path {str(path)!r}: a chapter's file name starts with its number, like '06_bert.ipynb'")
    return int(match.group(1))


_NEXT_POINTER = re.compile(r"(?:\*\*next:?\*\*:?|\*\*what['’]s next\.?\*\*|#+ what['’]s next)", re.IGNORECASE)


def next_chapter_errors(notebook: Notebook, number: int, chapters: Iterable[int]) -> list[str]:
    """What is wrong with chapter ``number``'s pointer to the next chapter, given the existing ``chapters``.

    The pointer is the first "chapter N" after the last "Next:" / "What's next" marker of the notebook.
    A chapter that has a next one must point to it; the last chapter must not point forward at all.
    """
    later = sorted(c for c in set(chapters) if c > number)
    markdown = "\n\n".join(_source(c) for c in notebook["cells"] if c.get("cell_type") == "markdown")
    markers = list(_NEXT_POINTER.finditer(markdown))
    if not markers:
        return [f"chapter {number:02d} has no 'Next:' / 'What's next' pointer"] if later else []
    pointer = re.search(r"chapter (\d+)", markdown[markers[-1].end() :], re.IGNORECASE)
    if not later:
        named = f"chapter {pointer.group(1)}" if pointer else "nothing"
        return [f"chapter {number:02d} is the last chapter, but its 'What's next' points to {named}"]
    if pointer is None:
        return [f"chapter {number:02d}'s 'What's next' names no chapter (expected chapter {later[0]:02d})"]
    if int(pointer.group(1)) != later[0]:
        return [f"chapter {number:02d}'s 'What's next' points to chapter {pointer.group(1)}, not {later[0]:02d}"]
    return []


def long_code_cells(notebook: Notebook, limit: int = 30) -> list[tuple[int, int]]:
    """(cell index, lines of code) of every code cell with more than ``limit`` lines of code.

    Lines of code exclude blank lines and comment-only lines, so a docstring-free, well-commented cell is
    judged by what a reader has to follow.
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    found = []
    for index, cell in enumerate(notebook["cells"]):
        if cell.get("cell_type") != "code":
            continue
        lines = [line for line in _source(cell).splitlines() if line.strip() and not line.strip().startswith("#")]
        if len(lines) > limit:
            found.append((index, len(lines)))
    return found
