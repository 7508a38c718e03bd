"""Real text for pre-training: offline English from CPython, local files, and Hugging Face datasets.

* :func:`pydoc_documents` — the Python language reference that CPython ships as plain text
  (``pydoc_data.topics``), cleaned into prose: code blocks, grammar rules, headings and version notes
  are dropped, sentences are split and de-duplicated. About 80 documents, offline on every Python.
* :func:`load_text` — any local ``.txt`` file or folder of them.
* :func:`load_hf_dataset` — wikitext-2, SST-2 or any dataset ``datasets.load_dataset`` can read
  (needs the optional ``datasets`` package and, for hub names, a network connection).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from pydoc_data.topics import topics  # CPython's own help text: offline on every install
from typing import Any, Literal

__all__ = ["load_hf_dataset", "load_text", "pydoc_documents", "pydoc_sentences", "split_sentences"]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"“(])")
_UNDERLINE = re.compile(r"^[*=\-~^]{3,}$")
_NOTE = re.compile(r"^(Changed in version|Added in version|New in version|Deprecated since|See also|Note:)")
_FOOTNOTE = re.compile(r"\s*\[\d+\]")
_EMPHASIS = re.compile(r"\*([A-Za-z][\w\- ]*?)\*")
_ALLOWED = re.compile(r"^[A-Za-z0-9_ ,;:.!?'\"“”‘’()\-]+$")

KNOWN_DATASETS: dict[str, tuple[str, str | None, str, str | None]] = {
    "wikitext-2": ("wikitext", "wikitext-2-raw-v1", "text", None),
    "sst2": ("stanfordnlp/sst2", None, "sentence", "label"),
}
"""Short name -> (hub path, config, text field, label field)."""


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences at ``.``, ``!`` or ``?`` followed by space and a capital or quote.

    Abbreviations such as "e.g. the" stay whole because a lower-case word follows them.
    """
    text = " ".join(text.split())
    return [s for s in _SENTENCE_END.split(text) if s]


def _prose_paragraphs(topic: str) -> Iterable[str]:
    """The unindented paragraphs of one pydoc topic that are neither headings nor version notes."""
    blocks = re.split(r"\n\s*\n", topic)
    for i, block in enumerate(blocks):
        lines = block.split("\n")
        if not lines[0] or lines[0][0].isspace() or _NOTE.match(lines[0]):
            continue  # code, grammar (always indented) or "Changed in version ..."
        if any(_UNDERLINE.match(line.strip()) for line in lines):
            continue  # a heading
        if len(lines) > 1 and lines[1].startswith("   "):
            block = "\n".join(lines[1:])  # a definition list: drop the term, keep its definition
        next_first = blocks[i + 1].lstrip("\n") if i + 1 < len(blocks) else ""
        if next_first.startswith(" ") and block.rstrip().endswith(":"):
            yield block.rstrip()[:-1]  # "is equivalent to:" introduces code: keep the prose only
            continue
        yield block.removeprefix("* ")


def _clean(sentence: str) -> str:
    sentence = _EMPHASIS.sub(r"\1", _FOOTNOTE.sub("", sentence.replace("**", "")))
    return " ".join(sentence.split())


def pydoc_documents(min_words: int = 4, max_words: int = 60) -> list[list[str]]:
    """The Python language reference (``pydoc_data.topics``) as documents of clean English sentences.

    One document per topic, topics in sorted order. A sentence is kept when it starts with a capital
    or a quote, ends in ``.``, ``!`` or ``?``, has ``min_words`` to ``max_words`` words, and holds only
    letters, digits and ordinary punctuation (no ``::=`` or brackets of code; ``*emphasis*`` markup is
    removed). Each sentence appears once, in the first document that has it; empty documents are dropped.
    """
    if min_words < 1 or max_words < min_words:
        raise ValueError(f"need 1 <= min_words <= max_words, got min_words={min_words}, max_words={max_words}")
    seen: set[str] = set()
    documents = []
    for name in sorted(topics):
        sentences = []
        for paragraph in _prose_paragraphs(topics[name]):
            for sentence in map(_clean, split_sentences(paragraph)):
                n_words = len(sentence.split())
                if (
                    (sentence[0].isupper() or sentence[0] in '"“')
                    and sentence[-1] in ".!?"
                    and min_words <= n_words <= max_words
                    and _ALLOWED.match(sentence)
                    and sentence not in seen
                ):
                    seen.add(sentence)
                    sentences.append(sentence)
        if sentences:
            documents.append(sentences)
    return documents


def pydoc_sentences(min_words: int = 4, max_words: int = 60) -> list[str]:
    """All sentences of :func:`pydoc_documents`, in order."""
    return [s for doc in pydoc_documents(min_words, max_words) for s in doc]


def load_text(path: str | Path, by: Literal["block", "file"] = "block", suffix: str = ".txt") -> list[str]:
    """Read a text file, or every ``*suffix`` file under a folder (sorted), into documents.

    ``by="block"``: one document per blank-line-separated block; ``by="file"``: one per file. Each
    document has its whitespace collapsed to single spaces; empty documents are dropped.
    """
    path = Path(path)
    if by not in ("block", "file"):
        raise ValueError(f"by must be 'block' or 'file', got {by!r}")
    if path.is_dir():
        files = sorted(p for p in path.rglob(f"*{suffix}") if p.is_file())
        if not files:
            raise ValueError(f"path {str(path)!r} is a folder with no '*{suffix}' files")
    elif path.is_file():
        files = [path]
    else:
        raise FileNotFoundError(f"path {str(path)!r} is neither a file nor a folder")
    documents = []
    for file in files:
        text = file.read_text(encoding="utf-8")
        parts = re.split(r"\n\s*\n", text) if by == "block" else [text]
        documents += [" ".join(p.split()) for p in parts if p.strip()]
    return documents


def load_hf_dataset(
    name: str,
    split: str = "train",
    *,
    text_field: str | None = None,
    label_field: str | None = None,
    data_files: str | list[str] | None = None,
    **kwargs: Any,
) -> tuple[list[str], list[int] | None]:
    """Load texts (and labels) with Hugging Face ``datasets``; return ``(texts, labels or None)``.

    ``name`` is a short name from ``KNOWN_DATASETS`` (``"wikitext-2"``, ``"sst2"``: fields filled
    in), a hub path, or a local format (``"json"``, ``"csv"``, ``"parquet"``, ``"text"``) read from
    ``data_files`` — the offline path. Blank texts (wikitext's empty lines) are dropped.

    Raises ``ImportError`` when ``datasets`` is not installed, and ``ValueError`` when the dataset
    cannot be loaded (offline, unknown name or split) or lacks ``text_field``/``label_field``.
    """
    try:
        import datasets
    except ImportError as err:
        raise ImportError(
            "load_hf_dataset needs the optional package 'datasets' (pip install datasets); "
            "offline, use bertcourse.data.load_text or pydoc_documents instead"
        ) from err
    path, config, default_text, default_label = KNOWN_DATASETS.get(name, (name, None, "text", None))
    text_field = text_field or default_text
    label_field = label_field or default_label
    try:
        dataset = datasets.load_dataset(path, config, split=split, data_files=data_files, **kwargs)
    except Exception as err:  # datasets raises many types (ConnectionError, FileNotFoundError, ...)
        raise ValueError(
            f"could not load dataset {name!r} (split {split!r}) with datasets: {type(err).__name__}: {err}. "
            "Offline? Pass a local copy: load_hf_dataset('json' | 'parquet' | 'text', data_files=PATH)"
        ) from err
    columns = list(dataset.column_names)
    for argument, column in (("text_field", text_field), ("label_field", label_field)):
        if column is not None and column not in columns:
            raise ValueError(f"{argument}={column!r} is not a column of {name!r}; columns are {columns}")
    texts = list(dataset[text_field])
    keep = [i for i, t in enumerate(texts) if t.strip()]
    labels = [int(dataset[label_field][i]) for i in keep] if label_field is not None else None
    return [texts[i] for i in keep], labels
