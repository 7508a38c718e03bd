"""Corpora: CPython's language reference as clean English, local text files, and the datasets wrapper."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

from bertcourse.data.corpora import load_hf_dataset, load_text, pydoc_documents, pydoc_sentences, split_sentences

CORPUS = Path(__file__).parent / "data" / "corpus"
HAS_DATASETS = importlib.util.find_spec("datasets") is not None


def test_pydoc_corpus_is_large_and_clean() -> None:
    documents = pydoc_documents()
    sentences = [s for doc in documents for s in doc]
    assert len(documents) > 40 and len(sentences) > 800
    assert sentences == pydoc_sentences()
    assert len(set(sentences)) == len(sentences)
    for s in sentences:
        assert s[0].isupper() or s[0] in '"“', s
        assert s[-1] in ".!?", s
        assert 4 <= len(s.split()) <= 60, s
        assert s == " ".join(s.split()), s  # no newlines, tabs or double spaces
        for fragment in ("::=", ">>>", "**", "[1]", "Changed in version", "Added in version"):
            assert fragment not in s, s


def test_pydoc_word_limits_are_respected() -> None:
    short = pydoc_sentences(min_words=4, max_words=8)
    assert short and all(4 <= len(s.split()) <= 8 for s in short)
    with pytest.raises(ValueError, match="min_words"):
        pydoc_documents(min_words=10, max_words=5)


def test_split_sentences() -> None:
    text = 'Attention is all you need.  Is it? Yes, e.g. for BERT!\n"Quotes" start sentences too.'
    assert split_sentences(text) == [
        "Attention is all you need.",
        "Is it?",
        "Yes, e.g. for BERT!",
        '"Quotes" start sentences too.',
    ]


def test_load_text_file_by_block_and_folder_by_file() -> None:
    blocks = load_text(CORPUS / "story.txt")
    assert blocks == [
        "The fox lived at the edge of the wood. It hunted at night and slept through the day.",
        "One winter the snow came early. The fox found no mice.",
        "In spring the fox had four cubs.",
    ]
    assert len(load_text(CORPUS)) == 5  # 3 blocks of story.txt + 2 of more/notes.txt
    files = load_text(CORPUS, by="file")
    assert len(files) == 2 and files[0].startswith("Attention lets")  # sorted paths: more/notes.txt first


def test_load_text_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="neither"):
        load_text(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="no"):
        load_text(tmp_path)
    with pytest.raises(ValueError, match="by"):
        load_text(CORPUS, by="line")


@pytest.mark.skipif(HAS_DATASETS, reason="datasets is installed")
def test_load_hf_dataset_without_datasets_says_how_to_install() -> None:
    with pytest.raises(ImportError, match="pip install datasets"):
        load_hf_dataset("sst2")


class _FakeDataset:
    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows
        self.column_names = list(rows[0])

    def __getitem__(self, column: str) -> list:
        return [r[column] for r in self.rows]


def test_load_hf_dataset_fills_fields_drops_blanks_and_wraps_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def load_dataset(path, config=None, *, split, data_files=None, **kwargs):
        calls.append((path, config, split, data_files))
        if path == "offline/name":
            raise ConnectionError("no network")
        rows = [
            {"sentence": "a moving film", "label": 1},
            {"sentence": "  ", "label": 0},
            {"sentence": "dull", "label": 0},
        ]
        return _FakeDataset(rows)

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    texts, labels = load_hf_dataset("sst2", "validation")
    assert calls[-1] == ("stanfordnlp/sst2", None, "validation", None)
    assert texts == ["a moving film", "dull"] and labels == [1, 0]
    texts, labels = load_hf_dataset("json", data_files="x.jsonl", text_field="sentence")
    assert calls[-1] == ("json", None, "train", "x.jsonl") and labels is None and len(texts) == 2
    with pytest.raises(ValueError, match="text_field='text'"):
        load_hf_dataset("json", data_files="x.jsonl")
    with pytest.raises(ValueError, match="Offline"):
        load_hf_dataset("offline/name")


@pytest.mark.skipif(not HAS_DATASETS, reason="needs the optional package datasets")
def test_load_hf_dataset_reads_a_local_sst2_file() -> None:
    texts, labels = load_hf_dataset(
        "json", data_files=str(CORPUS / "sst2_sample.jsonl"), text_field="sentence", label_field="label"
    )
    assert texts == ["a gorgeous and moving film", "the plot is dull and the jokes fall flat", "not bad at all"]
    assert labels == [1, 0, 1]
