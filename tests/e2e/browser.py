"""Debian's Chromium driven by Playwright: no browser is ever downloaded (never run
``playwright install``); the executable is /usr/bin/chromium or ``$AIO_CHROMIUM``."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM = os.environ.get("AIO_CHROMIUM", "/usr/bin/chromium")

#: As the machine notes prescribe: headless, no sandbox (root in CI), and nothing that phones
#: home (the network here is closed; Chromium would keep trying).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def missing(executable: str | None = None) -> str | None:
    """Why the browser tests cannot run here, or None."""
    executable = executable or CHROMIUM
    if not os.access(executable, os.X_OK):
        return (
            f"{executable} not found: run `make test` as root (it installs Debian's chromium) "
            "or `apt-get install chromium chromium-driver`"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed: pip install -e '.[test]'"
    return None


def require() -> None:
    """Skip the calling test when the browser is missing, or fail it under CI (``CI=true``),
    whose ``make test`` installs the browser: there a missing one is a broken set-up."""
    reason = missing()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI needs the browser tests: {reason}", pytrace=False)
    pytest.skip(reason)


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium with a fresh profile, closed and removed afterwards."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="aio-chromium-")
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=FLAGS,
                viewport={"width": 1400, "height": 900},
            )
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
