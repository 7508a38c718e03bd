"""Prose agrees with outputs, chapters point forward, code cells stay short: every notebook, checked.

The checker itself is tested first, on small hand-made notebooks with a planted drift, so a pass over the
real chapters means something.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from bertcourse.notebook_checks import (
    chapter_number,
    load_notebook,
    long_code_cells,
    next_chapter_errors,
    prose_drift,
    prose_numbers,
)

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
ALL_NOTEBOOKS = CHAPTERS + sorted((ROOT / "solutions").glob("*.ipynb")) + sorted((ROOT / "exercises").glob("*.ipynb"))
CHAPTER_NUMBERS = [chapter_number(p) for p in CHAPTERS]
MAX_CODE_LINES = 30


def markdown(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def code(text: str, printed: str = "") -> dict:
    outputs = [{"output_type": "stream", "name": "stdout", "text": printed}] if printed else []
    return {"cell_type": "code", "metadata": {}, "source": text, "outputs": outputs, "execution_count": 1}


def notebook(*cells: dict) -> dict:
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


CLEAN = notebook(
    markdown("# 05 · GPT\n\nThe tokenizer stops at 280 entries; perplexity falls to 7.3, a 97% cut."),
    code("tok = train(vocab_size=320)\nprint(tok.vocab_size, 7.34, 0.972)", "280 7.34 0.972\n"),
    markdown("## What's next\n\nChapter 06 builds BERT. Devlin et al. (2019) used 15% masking."),
)


# --- the checker, on planted cases ------------------------------------------------------------------------


def test_clean_notebook_has_no_drift() -> None:
    assert prose_drift(CLEAN) == []


def test_planted_drift_is_found() -> None:
    drifted = copy.deepcopy(CLEAN)
    drifted["cells"][0]["source"] = drifted["cells"][0]["source"].replace("280 entries", "320 entries")
    found = prose_drift(drifted)
    assert [d.number for d in found] == ["320"]  # in the code, not in any output: that is the drift
    assert found[0].cell == 0 and "320 entries" in found[0].sentence


def test_prose_may_round_an_output_but_not_change_it() -> None:
    rounded = copy.deepcopy(CLEAN)
    rounded["cells"][0]["source"] = "Perplexity 7.3 and 7.34 and 97% are fine; 7.4 is not."
    assert [d.number for d in prose_drift(rounded)] == ["7.4"]


def test_quoted_numbers_math_and_references_are_exempt() -> None:
    text = (
        "BERT-base has 12 layers of width 768 (paper). Chapter 08 and chapters 05 to 08 are references; "
        "$\\sqrt{512}$ is math, GPT-2 and 80/10/10 are names, 1997 is a year, `lr=3e-3` is code.\n\n"
        "## Paper vs code\n\n- BERT trained for 1,000,000 steps."
    )
    assert prose_numbers(text) == []
    assert [n for n, *_ in prose_numbers("A model of width 128 and 2 layers.")] == ["128"]


def test_code_span_must_quote_real_code() -> None:
    quoting = copy.deepcopy(CLEAN)
    quoting["cells"][0]["source"] = "It asks for `vocab_size=320` and gets 280."
    assert prose_drift(quoting) == []
    quoting["cells"][0]["source"] = "It asks for `vocab_size=512` and gets 280."
    assert [d.number for d in prose_drift(quoting)] == ["512"]


def test_next_chapter_pointer() -> None:
    assert next_chapter_errors(CLEAN, 5, [4, 5, 6, 7]) == []
    assert next_chapter_errors(CLEAN, 5, [5, 7])  # chapter 06 does not exist: 07 is next
    assert next_chapter_errors(CLEAN, 7, [5, 6, 7])  # the last chapter points nowhere forward
    no_pointer = notebook(markdown("# 01\n\nThe end."))
    assert next_chapter_errors(no_pointer, 1, [1, 2])
    assert next_chapter_errors(no_pointer, 2, [1, 2]) == []


def test_long_code_cells_count_lines_of_code() -> None:
    body = "\n".join(f"x{i} = {i}  # comment" for i in range(31))
    padded = "\n\n# only a comment\n".join(f"x{i} = {i}" for i in range(30))
    assert long_code_cells(notebook(code(body))) == [(0, 31)]
    assert long_code_cells(notebook(code(padded))) == []
    with pytest.raises(ValueError, match="limit"):
        long_code_cells(CLEAN, limit=0)


def test_load_notebook_names_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.ipynb"):
        load_notebook(bad)
    with pytest.raises(ValueError, match="starts with its number"):
        chapter_number("bert.ipynb")


# --- every real notebook ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_numbers_in_prose_appear_in_outputs(path: Path) -> None:
    drifts = prose_drift(load_notebook(path))
    assert not drifts, f"{path.name}: numbers in the prose that no output shows:\n" + "\n".join(map(str, drifts))


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_next_points_to_the_next_chapter(path: Path) -> None:
    assert next_chapter_errors(load_notebook(path), chapter_number(path), CHAPTER_NUMBERS) == []


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_code_cell_over_30_lines(path: Path) -> None:
    long = long_code_cells(load_notebook(path), limit=MAX_CODE_LINES)
    assert not long, f"{path.name}: (cell, lines of code) over {MAX_CODE_LINES}: {long}"
