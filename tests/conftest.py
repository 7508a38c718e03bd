"""Shared pytest set-up: GPU tests are skipped without CUDA; torch uses few threads on a 2-core CPU."""

from __future__ import annotations

import pytest
import torch

# Notebooks under tests/ are fixtures for the grader (some raise or loop on purpose), never nbval targets.
collect_ignore_glob = ["**/*.ipynb"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
