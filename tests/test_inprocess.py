"""In-process mode's bridge: requests answered without the loop, and those that must wait."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from emulator import images
from emulator.app import create_app
from emulator.config import Config
from emulator.handle import Checks
from emulator.images import RenderedImage
from emulator.inprocess import RespxEmulatorHandle
from emulator.marker import REAL_BASE_URL

HEADERS = {"Authorization": "Bearer aio_inprocess"}
BODY = {"model": "cogview-4", "prompt": "a red fox in the snow"}


def _handle(**config: object) -> RespxEmulatorHandle:
    app = create_app(Config(seed=0, clock="virtual", scenario="instant", **config))  # type: ignore[arg-type]
    return RespxEmulatorHandle(app.state.emulator, app, "aio_inprocess", Checks(False))


def test_a_sync_cycle_including_a_render_that_waits_for_its_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = images.render_image

    def slow(p: images.Placeholder, max_pixels: int) -> RenderedImage:
        time.sleep(0.02)  # the request yields to the loop while the thread renders
        return real(p, max_pixels)

    monkeypatch.setattr(images, "render_image", slow)
    handle = _handle()
    with handle._mocking(), httpx.Client(base_url=REAL_BASE_URL, headers=HEADERS) as client:
        task_id = client.post("/api/v1/images/generations", json=BODY).json()["data"]["task_id"]
        task = client.get(f"/api/v1/tasks/{task_id}").json()["data"]
        assert task["status"] == "completed"
        png = client.get(f"/files/{task_id}/0.png")
        assert png.status_code == 200
        assert png.content.startswith(b"\x89PNG")
        assert client.get(f"/files/{task_id}/0.png").content == png.content  # cached
        assert client.get("/_emulator/health").status_code == 200  # Starlette, in the loop


def test_scenario_latency_is_slept_in_the_loop_for_a_sync_client() -> None:
    handle = _handle()
    handle.emulator.use_scenario({"name": "lag", "defaults": {"latency": 30}})
    with handle._mocking(), httpx.Client(base_url=REAL_BASE_URL, headers=HEADERS) as client:
        started = time.perf_counter()
        created = client.post("/api/v1/images/generations", json=BODY)
        assert time.perf_counter() - started >= 0.03
    assert created.status_code == 200


def test_an_async_client_gets_the_same_answers() -> None:
    handle = _handle()

    async def cycle() -> bytes:
        async with httpx.AsyncClient(base_url=REAL_BASE_URL, headers=HEADERS) as client:
            created = await client.post("/api/v1/images/generations", json=BODY)
            task_id = created.json()["data"]["task_id"]
            await client.get(f"/api/v1/tasks/{task_id}")
            return (await client.get(f"/files/{task_id}/0.png")).content

    with handle._mocking():
        assert asyncio.run(cycle()).startswith(b"\x89PNG")


def test_a_side_effect_a_test_sets_on_the_route_still_answers() -> None:
    handle = _handle()
    with handle._mocking(), httpx.Client(base_url=REAL_BASE_URL, headers=HEADERS) as client:
        route = handle.router.routes[0]
        route.side_effect = lambda request: httpx.Response(418)
        assert client.get("/api/v1/tasks/x").status_code == 418
        assert route.call_count == 1
