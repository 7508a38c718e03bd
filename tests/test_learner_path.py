"""The newcomer's path: what `make lab` and `make grade` run, and a live lab that shows both folders."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")

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


@pytest.mark.skipif(not (VENV_BIN / "jupyter-lab").exists(), reason="needs jupyterlab in this environment")
def test_live_lab_lists_notebooks_and_exercises_and_its_terminal_python_is_the_venv(tmp_path: Path) -> None:
    port, token = free_port(), "bertcourse-test"
    env = {**MAKE_ENV, "JUPYTER_RUNTIME_DIR": str(tmp_path), "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    lab_args = f"LAB_ARGS=--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token={token}"
    proc = subprocess.Popen(
        ["make", "-o", ".venv/bin/.installed", "lab", lab_args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/api/contents?token={token}"
        deadline, listing = time.monotonic() + 30, None
        while listing is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    listing = json.load(response)
            except OSError:
                time.sleep(0.3)
        assert listing is not None, "the lab did not answer within 30 s"
        names = {item["name"] for item in listing["content"]}
        assert {"notebooks", "exercises"} <= names
        # Lab's terminals inherit the server's environment: its PATH starts with the course's venv.
        server = json.loads(next(tmp_path.glob("jpserver-*.json")).read_text())
        environ = Path(f"/proc/{server['pid']}/environ")
        if environ.exists():
            path = dict(v.split("=", 1) for v in environ.read_text().split("\0") if "=" in v)["PATH"]
            assert path.split(":")[0] == str(ROOT / ".venv" / "bin")
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=20)
