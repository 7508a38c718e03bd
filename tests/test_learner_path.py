"""The newcomer's path: what `make lab` and `make grade` run, and a live lab driven in headless Chromium.

The live tests start the README's `make lab` once for the module, with the environment pytest runs in: the course's
`.venv` (`make test`), or another one (the README's conda path), which `make lab VENV=<that prefix>` uses instead.
A learner's session then runs in the browser: both folders in the file browser, chapter 01 with its figures, an
exercise's check cells (an untouched task is "not attempted", a solved one earns its points), File > Shut Down; and
nothing the lab started is left running.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.browser_support import chromium, needs_browser, screenshot_path

ROOT = Path(__file__).resolve().parents[1]
ENV = Path(sys.prefix)  # the environment pytest runs in: the lab is started from its bin/
IN_COURSE_VENV = ENV.resolve() == (ROOT / ".venv").resolve()

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("make") is None, reason="needs make")]

# Under `make test` the parent make exports its command-line variables (CI's TORCH=...) both in MAKEFLAGS
# and as environment variables; the makes these tests start must see only the arguments each test gives.
KNOBS = set(re.findall(r"^(\w+) \?=", (ROOT / "Makefile").read_text(), flags=re.MULTILINE))
MAKE_ENV = {
    k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", *KNOBS}
}


def dry_run(*args: str) -> str:
    """The commands `make -n ARGS` would run; the install stamp counts as up to date unless ARGS name it."""
    keep = [] if ".venv/bin/.installed" in args else ["-o", ".venv/bin/.installed"]
    out = subprocess.run(
        ["make", "-n", *keep, *args], cwd=ROOT, env=MAKE_ENV, capture_output=True, text=True, check=True
    )
    return out.stdout


def test_lab_opens_at_the_root_with_the_venv_first_on_path() -> None:
    cmd = dry_run("lab")
    assert f'--ServerApp.root_dir="{ROOT}"' in cmd
    assert "notebooks/00_welcome.ipynb" in cmd
    assert f'PATH="{ROOT}/.venv/bin:$PATH"' in cmd
    assert ("--allow-root" in cmd) == (os.geteuid() == 0)
    assert "--no-browser --port=1234" in dry_run("lab", "LAB_ARGS=--no-browser --port=1234")


def test_torch_knob_cpu_build_and_pip_arguments() -> None:
    cpu = dry_run("-W", "pyproject.toml", ".venv/bin/.installed", "TORCH=cpu")
    assert re.search(r"pip install --quiet torch --index-url \S+/whl/cpu", cpu)
    pinned = dry_run("-W", "pyproject.toml", ".venv/bin/.installed", "TORCH=torch==2.13.0")
    assert "pip install --quiet torch==2.13.0" in pinned
    default = dry_run("-W", "pyproject.toml", ".venv/bin/.installed")
    assert "pip install --quiet torch" not in default
    system = dry_run("-W", "pyproject.toml", ".venv/bin/.installed", "VENV_ARGS=--system-site-packages")
    assert "-m venv --system-site-packages .venv" in system


def test_grade_needs_a_notebook_and_calls_the_grader() -> None:
    assert "-m bertcourse.grade exercises/01_attention.ipynb --json" in dry_run(
        "grade", "NB=exercises/01_attention.ipynb", "GRADE_ARGS=--json"
    )
    out = subprocess.run(
        ["make", "-o", ".venv/bin/.installed", "grade"], cwd=ROOT, env=MAKE_ENV, capture_output=True, text=True
    )
    assert out.returncode != 0 and "usage: make grade NB=" in out.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> set[int]:
    """Every living process below `pid` (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@dataclass
class Lab:
    proc: subprocess.Popen[bytes]
    url: str
    token: str
    runtime_dir: Path
    started: set[int]  # every process the lab has started so far (updated by the tests)

    def api(self, endpoint: str) -> Any:
        with urllib.request.urlopen(f"{self.url}api/{endpoint}?token={self.token}", timeout=10) as response:
            return json.load(response)

    def shutdown(self) -> None:
        """What File > Shut Down does: POST /api/shutdown."""
        request = urllib.request.Request(f"{self.url}api/shutdown?token={self.token}", method="POST")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(request, timeout=5).close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The README's `make lab` on a free port, headless; stopped at the end, with everything it started."""
    if not (ENV / "bin" / "jupyter-lab").exists():
        pytest.skip(f"needs jupyterlab in {ENV}")
    tmp = tmp_path_factory.mktemp("lab")
    settings = tmp / "settings" / "@jupyterlab"
    for plugin, values in {
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},  # no outside request
        "notebook-extension/tracker": {"windowingMode": "none"},  # every cell in the page, so every figure loads
    }.items():
        (settings / plugin).parent.mkdir(parents=True, exist_ok=True)
        (settings / plugin).with_suffix(".jupyterlab-settings").write_text(json.dumps(values))
    env = {
        **MAKE_ENV,
        "JUPYTER_RUNTIME_DIR": str(tmp),
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
    }
    port, token = free_port(), "bertcourse-test"
    lab_args = f"LAB_ARGS=--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token={token}"
    venv = [] if IN_COURSE_VENV else [f"VENV={ENV}"]  # the conda path: the lab of the environment that runs pytest
    stamp = ".venv/bin/.installed" if IN_COURSE_VENV else f"{ENV}/bin/.installed"
    proc = subprocess.Popen(
        ["make", "-o", stamp, "lab", lab_args, *venv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    running = Lab(proc, f"http://127.0.0.1:{port}/", token, tmp, set())
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{running.url}api/status?token={token}", timeout=2).close()
                break
            except OSError:
                time.sleep(0.3)
        assert proc.poll() is None and time.monotonic() < deadline, "the lab did not answer within 60 s"
        yield running
    finally:
        running.started |= descendants(proc.pid)
        if proc.poll() is None:
            running.shutdown()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
        left = {pid for pid in running.started if alive(pid)}
        with contextlib.suppress(ProcessLookupError):  # the group is gone when the lab stopped by itself
            os.killpg(proc.pid, 9)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        proc.wait(timeout=10)
        assert not left, f"the lab left processes running: {sorted(left)}"


def test_live_lab_lists_notebooks_and_exercises_and_its_terminal_python_is_the_venv(lab: Lab) -> None:
    names = {item["name"] for item in lab.api("contents")["content"]}
    assert {"notebooks", "exercises"} <= names
    # Lab's terminals inherit the server's environment: its PATH starts with the course's environment.
    server = json.loads(next(lab.runtime_dir.glob("jpserver-*.json")).read_text())
    environ = Path(f"/proc/{server['pid']}/environ")
    if environ.exists():
        path = dict(v.split("=", 1) for v in environ.read_text().split("\0") if "=" in v)["PATH"]
        assert Path(path.split(":")[0]).resolve() == (ENV / "bin").resolve()


def solved_copy(task: str, folder: Path) -> Path:
    """exercises/01_attention.ipynb with one task's answer pasted in from solutions/, as a learner would write it."""
    notebook = json.loads((ROOT / "exercises" / "01_attention.ipynb").read_text())
    solution = json.loads((ROOT / "solutions" / "01_attention.ipynb").read_text())

    def grade_id(cell: dict[str, Any]) -> str | None:
        return cell["metadata"].get("nbgrader", {}).get("grade_id")

    (answer,) = [
        "".join(line for line in cell["source"] if " SOLUTION" not in line)
        for cell in solution["cells"]
        if grade_id(cell) == task
    ]
    (stub,) = [cell for cell in notebook["cells"] if grade_id(cell) == task]
    stub["source"] = answer
    path = folder / "01_attention.ipynb"
    path.write_text(json.dumps(notebook, indent=1))
    return path


VISIBLE_PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
CHECK_OUTPUT = f"""
return [...document.querySelectorAll('{VISIBLE_PANEL} .jp-CodeCell')]
  .filter(c => c.querySelector('.jp-InputArea').textContent.includes(arguments[0]))
  .map(c => c.querySelector('.jp-OutputArea').innerText).find(t => t.includes(' points'));
"""


@pytest.mark.browser
@needs_browser
def test_learner_path_in_chromium(lab: Lab, tmp_path: Path) -> None:
    """Run last in this module: it ends the lab through File > Shut Down."""
    from selenium.webdriver.common.action_chains import ActionChains

    (ROOT / "build").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="learner-path-", dir=ROOT / "build"))
    try:
        solved_copy("causal_mask", work)
        with chromium() as driver:

            def wait(script: str, *args: object, timeout: float = 30) -> Any:
                deadline = time.monotonic() + timeout
                while not (found := driver.execute_script(script, *args)):
                    if time.monotonic() > deadline:
                        driver.save_screenshot(str(screenshot_path("lab-timeout.png", tmp_path)))
                        pytest.fail(f"timed out after {timeout} s waiting for: {script.strip()[:200]} {args}")
                    time.sleep(0.2)
                return found

            def open_item(name: str) -> None:  # a double click in the file browser, as a learner opens a folder
                item = wait(
                    """return [...document.querySelectorAll('.jp-DirListing-item')].find(e =>
                    e.querySelector('.jp-DirListing-itemText').textContent === arguments[0]
                    && e.getBoundingClientRect().height > 0)""",
                    name,
                )
                ActionChains(driver).double_click(item).perform()

            def menu(top: str, label: str) -> None:
                wait(
                    "return [...document.querySelectorAll('.lm-MenuBar-itemLabel')].find(e => "
                    "e.textContent === arguments[0] && e.getBoundingClientRect().width > 0)",
                    top,
                ).click()
                wait(
                    "return [...document.querySelectorAll('.lm-Menu-itemLabel')].find(e => "
                    "e.textContent === arguments[0] && e.getBoundingClientRect().height > 0)",
                    label,
                ).click()

            def home() -> None:  # the breadcrumb's root folder, once it is on screen
                wait("""const home = document.querySelector('.jp-FileBrowser .jp-BreadCrumbs-home');
                    return home && home.getBoundingClientRect().width > 0 && home""").click()

            driver.get(f"{lab.url}lab?token={lab.token}")
            wait("return !document.getElementById('jupyterlab-splash')")
            home()
            shown = wait("""const names = [...document.querySelectorAll('.jp-DirListing-itemText')]
                .filter(e => e.getBoundingClientRect().height > 0).map(e => e.textContent);
                return names.length > 0 && names;""")
            assert {"notebooks", "exercises"} <= set(shown), shown

            chapter = ROOT / "notebooks" / "01_queries_keys_values.ipynb"
            figures = sum(
                "image/png" in output.get("data", {})
                for cell in json.loads(chapter.read_text())["cells"]
                for output in cell.get("outputs", [])
            )
            assert figures >= 1
            open_item("notebooks")
            open_item(chapter.name)
            shown = wait(
                f"""const images = [...document.querySelectorAll('{VISIBLE_PANEL} .jp-OutputArea-output img')];
                return images.length >= arguments[0] && images.every(i => i.complete && i.naturalWidth > 0)
                    && images.length;""",
                figures,
            )
            assert shown == figures

            home()
            open_item("build")
            open_item(work.name)
            open_item("01_attention.ipynb")
            # Run All needs a kernel: this notebook's session on the server, idle, and "... | Idle" in the status bar.
            exercise = (work / "01_attention.ipynb").relative_to(ROOT).as_posix()
            deadline = time.monotonic() + 90
            while not any(
                session["path"] == exercise and session["kernel"]["execution_state"] == "idle"
                for session in lab.api("sessions")
            ):
                assert time.monotonic() < deadline, f"no idle kernel for {exercise} within 90 s"
                time.sleep(0.3)
            wait("""return document.title.includes('01_attention') && [...document.querySelectorAll(
                '.jp-StatusBar-TextItem')].some(e => /\\| Idle$/.test(e.textContent.trim()))""")
            menu("Run", "Run All Cells")
            solved = wait(CHECK_OUTPUT, "check_causal_mask(causal_mask)", timeout=60)
            untouched = wait(CHECK_OUTPUT, "check_softmax(softmax)", timeout=10)
            assert "not attempted" in untouched and "0 of 2 points" in untouched and "todo" in untouched, untouched
            assert "2 of 2 points" in solved and "todo" not in solved and "FAIL" not in solved, solved
            driver.execute_script("""[...document.querySelectorAll('.jp-CodeCell')].find(c => c.querySelector(
                '.jp-InputArea').textContent.includes('check_causal_mask(')).scrollIntoView()""")
            driver.save_screenshot(str(screenshot_path("lab-exercise-checks.png", tmp_path)))

            lab.started |= descendants(lab.proc.pid)
            assert len(lab.started) >= 3, "expected the server and two kernels"  # make's shell may exec jupyter
            menu("File", "Shut Down")
            wait(
                "return [...document.querySelectorAll('.jp-Dialog-button')]"
                ".find(b => b.textContent.trim() === 'Shut Down')"
            ).click()
            assert lab.proc.wait(timeout=30) == 0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    left = {pid for pid in lab.started if alive(pid)}
    assert not left, f"the lab left processes running: {sorted(left)}"
