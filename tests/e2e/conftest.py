"""Browser fixtures: one emulator on a real socket (virtual clock) and one headless Chromium per
module; each test gets a reset emulator and a fresh page polling fast.

Without Chromium the tests skip, except under CI (``CI=true``), where they fail: CI's
``make test`` installs the browser, so a missing one is a broken set-up, not a reason to skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from emulator.app import create_app
from emulator.config import Config
from emulator.server import LiveServer

from .browser import chromium, require

POLL_MS = 100
#: how long a page's wait or an ``expect`` may take before the test fails
WAIT_MS = 15_000


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    app = create_app(Config(seed=7, clock="virtual"))
    with LiveServer(app) as live:
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require()
    with chromium() as context:
        yield context


@pytest.fixture
def api(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        client.post("/_emulator/reset").raise_for_status()
        yield client


@pytest.fixture
def page(browser: Any, server: LiveServer, api: httpx.Client) -> Iterator[Any]:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # a 400 is a control call the test meant to refuse (a bad scenario); anything else, such
    # as an image that does not load (404) or a CSP violation, fails the test
    page.on(
        "console",
        lambda m: m.type == "error" and "status of 400" not in m.text and errors.append(m.text),
    )
    # generous: a passing test never waits this long, but on a saturated 2-core machine a
    # thumbnail's first render (a worker thread at low priority) can take seconds
    page.set_default_timeout(WAIT_MS)
    from playwright.sync_api import expect  # (importable: the browser fixture checked)

    expect.set_options(timeout=WAIT_MS)
    page.goto(f"{server.url}/_emulator/?poll={POLL_MS}")
    page.wait_for_selector("#live.ok")
    yield page
    page.close()
    assert errors == [], errors  # no script errors, no failed loads, no CSP violations
