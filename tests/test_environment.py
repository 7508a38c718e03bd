"""environment.yml (conda) and pyproject.toml (pip) must install the same packages."""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
CONDA_NAMES = {"pytorch": "torch"}  # conda-forge name -> PyPI name
NOT_PACKAGES = {"python", "pip", "tomli"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def pyproject_packages() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in ("dev", "pretrained", "instructor", "book"):
        reqs += project["optional-dependencies"][extra]
    return {_name(r) for r in reqs} - NOT_PACKAGES


def environment_packages() -> set[str]:
    names = set()
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("dependencies:", 1)[1].splitlines():
        m = re.match(r"^\s+- (?!-e )([A-Za-z0-9_.\-]+)", line)
        if m and not line.strip().endswith(":"):
            names.add(CONDA_NAMES.get(_name(m.group(1)), _name(m.group(1))))
    return names - NOT_PACKAGES


def test_environment_yml_matches_pyproject() -> None:
    pip_side, conda_side = pyproject_packages(), environment_packages()
    assert pip_side == conda_side, (
        f"only in pyproject: {pip_side - conda_side}; only in environment.yml: {conda_side - pip_side}"
    )


def test_torch_range_admits_the_ci_build() -> None:
    from packaging.specifiers import SpecifierSet

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (torch_req,) = [r for r in project["dependencies"] if _name(r) == "torch"]
    assert "2.13.0" in SpecifierSet(torch_req[len("torch") :])


def test_every_statement_of_the_torch_floor_agrees() -> None:
    """pyproject's lower bound on torch is the one environment.yml, the README and chapter 00's check state."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (torch_req,) = [r for r in project["dependencies"] if _name(r) == "torch"]
    floor = re.search(r">=\s*(\d+)\.(\d+)", torch_req)
    assert floor, f"pyproject's torch requirement {torch_req!r} has no >= lower bound"
    major, minor = floor.groups()
    assert f"pytorch>={major}.{minor}," in (ROOT / "environment.yml").read_text()
    assert f"torch {major}.{minor} or newer" in (ROOT / "README.md").read_text()
    welcome = (ROOT / "notebooks" / "00_welcome.ipynb").read_text()
    assert f"torch_major_minor >= ({major}, {minor})" in welcome
    assert f"needs PyTorch {major}.{minor} or newer" in welcome
