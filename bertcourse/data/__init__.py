"""Data for the course: the toy language, real corpora, datasets and collators."""

from bertcourse.data.collators import (
    ClassificationDataset,
    LMCollator,
    MLMCollator,
    NSPDataset,
    PadCollator,
    TextDataset,
    TokenClassificationDataset,
    pad_sequences,
)
from bertcourse.data.corpora import load_hf_dataset, load_text, pydoc_documents, pydoc_sentences, split_sentences
from bertcourse.data.toylang import POS_TAGS, Cue, Document, Sentence, TaskItem, ToyLanguage

__all__ = [
    "POS_TAGS",
    "ClassificationDataset",
    "Cue",
    "Document",
    "LMCollator",
    "MLMCollator",
    "NSPDataset",
    "PadCollator",
    "Sentence",
    "TaskItem",
    "TextDataset",
    "TokenClassificationDataset",
    "ToyLanguage",
    "load_hf_dataset",
    "load_text",
    "pad_sequences",
    "pydoc_documents",
    "pydoc_sentences",
    "split_sentences",
]
