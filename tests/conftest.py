"""Shared pytest set-up.

- GPU tests (``@pytest.mark.gpu``) are skipped without CUDA.
- Notebook kernels started by nbval or the grader import the package from this checkout, installed or not.
- Torch uses one thread: the tests run tiny models, for which a second thread costs more than it gives
  (measured: 100 GPT steps 1.0 s with one thread, 14.6 s with two on a loaded 2-core machine).
- Notebooks under tests/ are fixtures for the grader (some raise or loop on purpose), never nbval targets.
- Browser tests (``browser``) and notebooks run by nbval count as ``slow``: ``pytest -m "not slow"`` is the
  quick inner loop, ``make test`` runs everything.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(1)

collect_ignore_glob = ["**/*.ipynb"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "browser" in item.keywords or str(item.path).endswith(".ipynb"):
            item.add_marker(pytest.mark.slow)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip)
