"""The course as a book: `make book` renders every chapter, exercise and the README offline, and every page works.

The book is built once per session (about 5 s) from the committed notebooks, never executing them. The browser test
opens every page in headless Chromium, served from 127.0.0.1, and asserts what a reader needs: no console errors,
every image loaded, every formula typeset by the bundled MathJax (no raw TeX left), every internal link and anchor
resolves, and nothing is requested from outside the build folder. A last test breaks a copy of the book (a figure
deleted, a formula's TeX broken, math left raw, a dead link, an outside image) and asserts that each defect is caught.
"""

from __future__ import annotations

import functools
import html
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from tests.browser_support import chromium, console_errors, needs_browser, requested_urls, screenshot_path

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXERCISES = sorted(p.stem for p in (ROOT / "exercises").glob("[0-9][0-9]_*.ipynb"))
BUILD_MISSING = next(
    (
        f"needs the book extra (pip install -e '.[book]'): {name} is missing"
        for name in ("sphinx", "myst_nb", "sphinx_book_theme", "sphinx-mathjax-offline")
        if importlib.util.find_spec(name) is None
    ),
    None,
)
pytestmark = [pytest.mark.slow, pytest.mark.skipif(BUILD_MISSING is not None, reason=BUILD_MISSING or "")]


def sphinx_command(out: Path) -> list[str]:
    """What `make book BOOK_DIR=out` runs, with this interpreter."""
    return [
        sys.executable,
        "-m",
        "sphinx",
        "-W",
        "--keep-going",
        "-q",
        "-c",
        "book",
        "-d",
        str(out / "doctrees"),
        "-b",
        "html",
        ".",
        str(out / "html"),
    ]


@pytest.fixture(scope="session")
def book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The book built once per session; returns its html folder."""
    out = tmp_path_factory.mktemp("book")
    start = time.perf_counter()
    done = subprocess.run(sphinx_command(out), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"the book did not build:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    print(f"book built in {time.perf_counter() - start:.1f} s")
    return out / "html"


def pages(html_dir: Path) -> list[str]:
    """Every page of a built book, as paths relative to its folder (theme fragments under _static excluded)."""
    return sorted(p.relative_to(html_dir).as_posix() for p in html_dir.rglob("*.html") if "_static" not in p.parts)


def test_make_book_runs_sphinx_with_the_book_configuration() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"}}
    cmd = subprocess.run(
        ["make", "-n", "-o", ".venv/bin/.installed", "book", "BOOK_DIR=out"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "-m sphinx -W --keep-going -q -c book -d out/doctrees -b html . out/html" in cmd


def test_the_book_has_every_chapter_and_exercise_in_order(book: Path) -> None:
    assert len(CHAPTERS) >= 11 and len(EXERCISES) >= 8
    expected = {"index.html", "book/index.html", "README.html", "search.html"}
    expected |= {f"notebooks/{c}.html" for c in CHAPTERS} | {f"exercises/{e}.html" for e in EXERCISES}
    assert set(pages(book)) == expected
    front = (book / "book" / "index.html").read_text()
    order = [front.index(f'href="../notebooks/{c}.html"') for c in CHAPTERS]
    order += [front.index(f'href="../exercises/{e}.html"') for e in EXERCISES]
    assert order == sorted(order), "the table of contents is out of order"
    assert "url=book/index.html" in (book / "index.html").read_text()


def test_every_figure_of_every_chapter_is_in_the_book(book: Path) -> None:
    for name in CHAPTERS:
        notebook = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
        figures = sum(
            any(m.startswith("image/") for m in output.get("data", {}))
            for cell in notebook["cells"]
            for output in cell.get("outputs", [])
        )
        page = (book / "notebooks" / f"{name}.html").read_text()
        shown = sum(chunk.count("<img") for chunk in page.split('<div class="cell_output')[1:])
        assert shown == figures, f"{name}: {figures} figures in the notebook, {shown} in the book"


def test_exercises_show_the_tasks_not_the_solutions(book: Path) -> None:
    for name in EXERCISES:
        text = html.unescape(re.sub(r"<[^>]+>", "", (book / "exercises" / f"{name}.html").read_text()))
        assert "YOUR CODE HERE" in text and "NotImplementedError" in text, name
        assert "BEGIN SOLUTION" not in text, name
    chapter = (book / "notebooks" / f"{CHAPTERS[1]}.html").read_text()
    assert chapter.count("<img") >= 1 and 'class="output' in chapter, "chapters keep their committed outputs"


def test_no_page_refers_to_anything_outside_the_book(book: Path) -> None:
    outside = re.compile(r"""<(?:script|link|img|iframe|source)\b[^>]*\b(?:src|href)=["'](?:https?:)?//""", re.I)
    for page in pages(book):
        assert not outside.search((book / page).read_text()), page
    assert (book / "_static" / "mathjax" / "tex-chtml.js").exists()


@pytest.fixture(scope="module")
def serve() -> Iterator[Any]:
    """serve(folder) -> base URL of a 127.0.0.1 server for that folder; all servers stop with the module."""
    servers: list[ThreadingHTTPServer] = []

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    def start(folder: Path) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


COLLECT = """
const done = arguments[arguments.length - 1];
const typeset = (window.MathJax && MathJax.startup && MathJax.startup.promise) || Promise.resolve();
typeset.then(() => {
  const outsideCode = {acceptNode: n => n.parentElement.closest(
      'pre, code, script, style, textarea, mjx-container, .highlight') ? NodeFilter.FILTER_REJECT
                                                                        : NodeFilter.FILTER_ACCEPT};
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, outsideCode);
  const prose = [];
  while (walker.nextNode()) prose.push(walker.currentNode.nodeValue);
  done({
    images: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src),
    untypeset: Array.from(document.querySelectorAll('.math'))
      .filter(m => !m.querySelector('mjx-container')).map(m => m.textContent.slice(0, 80)),
    texErrors: Array.from(document.querySelectorAll('mjx-merror'))
      .map(e => (e.getAttribute('data-mjx-error') || e.textContent).slice(0, 80)),
    prose: prose.join(' '),
    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
  });
}, err => done({error: String(err)}));
"""
RAW_TEX = re.compile(r"\$|\\[()\[\]]|\\[A-Za-z]{2,}")


def anchors(path: Path, cache: dict[Path, set[str]]) -> set[str]:
    if path not in cache:
        cache[path] = set(re.findall(r"""\b(?:id|name)=["']([^"']+)["']""", path.read_text(errors="replace")))
    return cache[path]


def page_problems(driver: Any, base: str, html_dir: Path, page: str, cache: dict[Path, set[str]]) -> list[str]:
    """What is wrong with one page as Chromium shows it: an empty list when nothing is."""
    requested_urls(driver), console_errors(driver)  # drain what earlier pages left in the logs
    driver.get(base + page)
    deadline = time.monotonic() + 20
    while driver.execute_script("return document.readyState") != "complete" and time.monotonic() < deadline:
        time.sleep(0.05)
    found = driver.execute_async_script(COLLECT)
    problems = [f"script: {found['error']}"] if "error" in found else []
    found.setdefault("prose", "")
    problems += [f"image not loaded: {src}" for src in found.get("images", [])]
    problems += [f"formula not typeset: {tex}" for tex in found.get("untypeset", [])]
    problems += [f"formula error: {err}" for err in found.get("texErrors", [])]
    problems += [
        f"raw TeX in the text: ...{found['prose'][max(0, m.start() - 30) : m.end() + 30]!r}..."
        for m in RAW_TEX.finditer(found["prose"])
    ][:3]
    for url in found.get("links", []):
        parts = urlsplit(url)
        if not url.startswith(base):
            continue  # a link to another site is allowed (never loaded); mailto: and the like too
        target = html_dir / unquote(parts.path[len(urlsplit(base).path) :])
        target = target / "index.html" if target.is_dir() else target
        if not target.is_file():
            problems.append(f"dead link: {url}")
        elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in anchors(target, cache):
            problems.append(f"dead anchor: {url}")
    problems += [f"console: {message[:200]}" for message in console_errors(driver)]
    problems += [
        f"outside request: {url}"
        for url in requested_urls(driver)
        if not url.startswith((base, "data:", "blob:", "about:"))
    ]
    return problems


@pytest.mark.browser
@needs_browser
def test_every_page_works_in_chromium(book: Path, serve: Any, tmp_path: Path) -> None:
    base, cache = serve(book), {}
    problems, typeset = {}, 0
    with chromium() as driver:
        for page in pages(book):
            if found := page_problems(driver, base, book, page, cache):
                problems[page] = found
            typeset += driver.execute_script("return document.querySelectorAll('mjx-container').length")
        assert page_problems(driver, base, book, f"notebooks/{CHAPTERS[1]}.html", cache) == []
        shot = screenshot_path("book-chapter01.png", tmp_path)
        driver.save_screenshot(str(shot))
    assert not problems, "\n".join(f"{page}: {p}" for page, found in problems.items() for p in found)
    assert typeset > 100, f"only {typeset} formulas typeset in the whole book"
    assert shot.stat().st_size > 20_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.browser
@needs_browser
def test_the_page_checks_catch_each_defect(book: Path, serve: Any, tmp_path: Path) -> None:
    """Break a copy of the book in seven ways; each break is reported, and an intact page reports nothing."""
    copy = tmp_path / "html"
    shutil.copytree(book, copy)
    chapter = f"notebooks/{CHAPTERS[1]}.html"
    source = (copy / chapter).read_text()
    figure = re.search(r'<img[^>]*src="\.\./(_images/[^"]+)"', source)
    assert figure, "chapter 01 has no figure to remove"
    (copy / figure.group(1)).unlink()  # a figure removed
    tex = re.search(r'<span class="math notranslate nohighlight">\\\((.*?)\\\)</span>', source)
    assert tex and "\\" in tex.group(1), "chapter 01 has no inline formula with a command to break"
    typo = tex.group(0).replace(tex.group(1), tex.group(1).replace("\\", "\\x", 1))  # \sqrt -> \xsqrt: unknown
    unbalanced = tex.group(0).replace("\\)", "{\\)", 1)  # an unclosed brace: MathJax never finds the formula
    paragraph = "<p>{}</p></main>"
    mutants = {
        "formula_typo": source.replace(tex.group(0), typo, 1),
        "formula_unbalanced": source.replace(tex.group(0), unbalanced, 1),
        "math_left_raw": source.replace("</main>", paragraph.format(r"the score $\frac{QK^\top}{\sqrt{d_k}}$")),
        "dead_link": source.replace("</main>", paragraph.format('<a href="no_such_chapter.html">next</a>')),
        "dead_anchor": source.replace("</main>", paragraph.format(f'<a href="{Path(chapter).name}#nowhere">x</a>')),
        "outside_image": source.replace("</main>", paragraph.format('<img src="http://localhost:9/logo.png">')),
    }
    for name, text in mutants.items():
        (copy / "notebooks" / f"mutant_{name}.html").write_text(text)
    expected = {
        "formula_typo": "formula error",
        "formula_unbalanced": "formula not typeset",
        "math_left_raw": "raw TeX",
        "dead_link": "dead link",
        "dead_anchor": "dead anchor",
        "outside_image": "outside request",
    }
    base, cache = serve(copy), {}
    with chromium() as driver:
        removed = page_problems(driver, base, copy, chapter, cache)
        assert any(p.startswith("image not loaded") and figure.group(1) in p for p in removed), removed
        assert page_problems(driver, base, copy, f"notebooks/{CHAPTERS[0]}.html", cache) == []
        for name, kind in expected.items():
            found = page_problems(driver, base, copy, f"notebooks/mutant_{name}.html", cache)
            assert any(p.startswith(kind) for p in found), (name, found)
