"""Headless Chromium for the browser tests: the distribution's `chromium` and `chromium-driver`, driven by Selenium.

`chromium()` gives a driver that records the console (`browser` log) and every request the page makes (`performance`
log), or skips the test where Chromium, its driver or Selenium is missing. `.ci/run` installs both from Debian.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver",)


def _first_on_path(names: tuple[str, ...]) -> str | None:
    return next((path for name in names if (path := shutil.which(name))), None)


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "needs selenium (the dev extra)"
    if _first_on_path(BROWSERS) is None or _first_on_path(DRIVERS) is None:
        return "needs chromium and chromedriver (apt-get install chromium chromium-driver)"
    return None


def screenshot_path(name: str, tmp_path: Path) -> Path:
    """Where a test keeps its screenshot NAME: the folder $BERTCOURSE_SCREENSHOTS when set (for a note), else tmp."""
    folder = Path(os.environ.get("BERTCOURSE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


needs_browser = pytest.mark.skipif(browser_missing() is not None, reason=browser_missing() or "")


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[Any]:
    """A headless Chromium WebDriver; quits the browser and its driver on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _first_on_path(BROWSERS) or ""
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=_first_on_path(DRIVERS)))
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: Any) -> list[str]:
    """The console messages at level SEVERE since the last call (each call drains the log)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def requested_urls(driver: Any) -> list[str]:
    """Every URL the browser requested since the last call (each call drains the performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls
