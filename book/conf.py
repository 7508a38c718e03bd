"""Sphinx configuration of the course book: `make book` (or `sphinx-build -c book . build/book`).

The source directory is the repository root, so the chapters (`notebooks/`), the exercises (`exercises/`) and the
README are read where they live, under their own names; this folder holds only the configuration, the book's front
page and a redirect. Notebooks are rendered from their committed outputs and never executed. Math is typeset by the
MathJax 3 that the `sphinx-mathjax-offline` package ships, copied into the build, so no page fetches anything from
outside the build folder (tests/test_book.py checks it in Chromium).
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sphinx.application import Sphinx

ROOT = Path(__file__).resolve().parents[1]

project = "bertcourse: how BERT came to be"
author = "the bertcourse authors"
root_doc = "book/index"

extensions = ["myst_nb"]

# Read only the book's pages: every other top-level folder is pruned before Sphinx walks it (.venv, .git, ...).
BOOK_DIRS = {"book", "notebooks", "exercises"}
include_patterns = ["book/index.md", "README.md", "notebooks/*.ipynb", "exercises/*.ipynb"]
exclude_patterns = sorted(p.name for p in ROOT.iterdir() if p.is_dir() and p.name not in BOOK_DIRS)
exclude_patterns += ["**/.ipynb_checkpoints", "notebooks/results"]

# Notebooks: committed outputs, never executed; text/markdown outputs are MyST (tables, math).
nb_execution_mode = "off"
nb_render_markdown_format = "myst"
# tqdm's progress bars are ipywidgets. Their views stay inert <script> data (no widget manager is loaded: it would
# come from a CDN), so a bar shows nothing rather than its text fallback, a frozen "0%|".
nb_ipywidgets_js: dict[str, dict[str, str]] = {}
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]

# MathJax 3 from a registry package, served from the build folder.
_MATHJAX = importlib.util.find_spec("sphinx-mathjax-offline")
if _MATHJAX is None or _MATHJAX.origin is None:
    raise RuntimeError("the book needs its extra: pip install -e '.[book]' (sphinx-mathjax-offline is missing)")
MATHJAX_DIR = Path(_MATHJAX.origin).parent / "static" / "mathjax"
mathjax_path = "mathjax/tex-chtml.js"
# A TeX error or an unknown command shows as an error (mjx-merror, which the browser test looks for), not as its
# source in red (MathJax's noerrors and noundefined).
mathjax3_config = {"tex": {"packages": {"[-]": ["noerrors", "noundefined"]}}}

html_theme = "sphinx_book_theme"
html_title = "bertcourse"
html_use_index = False
html_copy_source = False
html_show_sourcelink = False
html_extra_path = ["_root"]  # index.html at the build root, a redirect to the front page
html_favicon = "favicon.svg"  # else every browser asks for /favicon.ico, a 404 in the console
html_context = {"default_mode": "light"}  # else the theme logs "Got invalid theme mode" on a first visit
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "navigation_with_keys": False,
}


def _copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    """Sphinx's build-finished callback: the offline MathJax copy goes beside the pages it typesets."""
    if exception is None:
        shutil.copytree(MATHJAX_DIR, Path(app.outdir) / "_static" / "mathjax", dirs_exist_ok=True)


def setup(app: Sphinx) -> None:
    app.connect("build-finished", _copy_mathjax)
