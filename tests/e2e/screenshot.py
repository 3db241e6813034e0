"""The README's screenshot of the dashboard: a few tasks in every state, some refused requests.

    .venv/bin/python -m tests.e2e.screenshot [docs/dashboard.png]

Deterministic (seeded, virtual clock); needs Debian's /usr/bin/chromium, like the e2e tests.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx

from emulator.app import create_app
from emulator.config import Config
from emulator.server import LiveServer

from .browser import chromium

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"


def populate(api: httpx.Client) -> None:
    """A failed task, finished ones with images, running and queued ones, refused requests."""

    def create(key: str, **body: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"}
        return api.post("/api/v1/images/generations", json=body, headers=headers)

    def advance(seconds: float) -> None:
        api.post("/_emulator/clock/advance", json={"seconds": seconds}).raise_for_status()

    create("aio_flaky", model="cogview-4", prompt="A knight guarding a castle gate at dawn")
    advance(45)  # aio_flaky runs the failing-tasks scenario
    create("aio_demo", model="cogview-4", prompt="A futuristic robot assistant in a kitchen",
           size="1440*720")  # fmt: skip
    create("aio_demo", model="imagen4", prompt="A watercolour fox asleep in the snow")
    create("aio_demo", model="flux-2", prompt="An isometric city block at night, neon signs")
    create("aio_demo", model="cogview-4", prompt="A bowl of ramen", size="1000*1000")
    api.get("/api/v1/tasks/n48nosuchtask_cv4", headers={"Authorization": "Bearer aio_demo"})
    advance(8)
    create("aio_demo", model="seedream/4.5-text-to-image", prompt="A paper boat on a rainy street")
    create("aio_other", model="gpt-image-1-5", prompt="A <b>bold</b> claim, shown as text")
    advance(2)
    create("aio_other", model="ideogram-v3-turbo", prompt="A poster that says HELLO")
    api.post("/api/v1/images/generations", json={"model": "cogview-4", "prompt": "no key"})
    outage = {"Authorization": "Bearer aio_other", "X-Emulator-Scenario": "outage"}
    api.post("/api/v1/images/generations", json={"prompt": "a cat"}, headers=outage)


def take(path: Path, context: Any | None = None) -> Path:
    """Serve a populated emulator, open the dashboard and save a full-page PNG at ``path``."""
    app = create_app(Config(seed=11, clock="virtual", key_scenarios={"aio_flaky": "failing-tasks"}))
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=10) as api:
        populate(api)
        if context is None:
            with chromium() as own:
                return _shoot(own, server.url, path)
        return _shoot(context, server.url, path)


def _shoot(context: Any, url: str, path: Path) -> Path:
    page = context.new_page()
    try:
        page.goto(f"{url}/_emulator/?poll=100")
        page.wait_for_selector("#live.ok")
        page.wait_for_function(
            "() => [...document.querySelectorAll('#tasks img')].length >= 3 && "
            "[...document.querySelectorAll('#tasks img')].every(i => i.complete && i.naturalWidth)"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path), full_page=True)
        return path
    finally:
        page.close()


if __name__ == "__main__":
    print(take(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PATH))
