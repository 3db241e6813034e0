"""The files of finished tasks: the content-keyed cache, single renders, the render pool."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
from concurrent.futures.process import BrokenProcessPool

import httpx
import pytest

from emulator import images
from emulator.images import RenderedImage
from emulator.media import Media, placeholder
from emulator.service import Emulator

from .conftest import AUTH, Client, make_client


def _finished_task(client: Client) -> str:
    task_id: str = client.create().json()["data"]["task_id"]
    client.run_to_end(task_id)
    return task_id


def _emulator(client: Client) -> Emulator:
    return client.app.state.emulator  # type: ignore[attr-defined,no-any-return]


def test_the_cache_outlives_a_reset_so_the_next_test_renders_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    renders: list[images.Placeholder] = []
    real = images.render_image

    def counted(p: images.Placeholder, max_pixels: int) -> RenderedImage:
        renders.append(p)
        return real(p, max_pixels)

    monkeypatch.setattr(images, "render_image", counted)
    with make_client() as client:
        first = client.get(f"/files/{_finished_task(client)}/0.png")
        client.post("/_emulator/reset")
        again = client.get(f"/files/{_finished_task(client)}/0.png")  # same seed: same task
    assert first.url == again.url
    assert again.content == first.content
    assert again.headers["etag"] == first.headers["etag"]
    assert len(renders) == 1


def test_concurrent_requests_for_one_image_wait_for_one_render(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    renders = 0
    real = images.render_image

    def slow(p: images.Placeholder, max_pixels: int) -> RenderedImage:
        nonlocal renders
        renders += 1
        time.sleep(0.05)
        return real(p, max_pixels)

    monkeypatch.setattr(images, "render_image", slow)
    with make_client() as client:
        task_id = _finished_task(client)
        other = _finished_task(client)
        emulator = _emulator(client)

        async def many() -> list[RenderedImage]:
            return await asyncio.gather(
                *(emulator.image(task_id, 0) for _ in range(8)), emulator.image(other, 0)
            )

        got = asyncio.run(many())
    assert renders == 2
    assert all(image is got[0] for image in got[:8])
    assert got[8] is not got[0]


def test_a_failed_render_is_not_kept_and_the_next_request_renders_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with make_client() as client:
        task_id = _finished_task(client)
        emulator = _emulator(client)

        def broken(p: images.Placeholder, max_pixels: int) -> RenderedImage:
            raise ValueError("boom")

        monkeypatch.setattr(images, "render_image", broken)
        with pytest.raises(ValueError, match="boom"):
            asyncio.run(emulator.image(task_id, 0))
        monkeypatch.undo()
        assert asyncio.run(emulator.image(task_id, 0)).body.startswith(b"\x89PNG")


def test_the_process_pool_renders_the_same_bytes_and_closes_promptly() -> None:
    with make_client() as client:
        task_id = _finished_task(client)
        media: Media = _emulator(client).media
        task = media.tasks.get(task_id)
        assert task is not None
        inline = images.render_image(placeholder(task, 0), media.max_pixels)
        media.use_process_pool()
        try:
            pooled = asyncio.run(media.image(task_id, 0))
        finally:
            start = time.monotonic()
            media.close()
        assert time.monotonic() - start < 5
    assert pooled == inline
    media.close()  # idempotent


def test_the_cli_renders_in_its_pool_and_stops_cleanly() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve", "--port", "0", "--clock", "virtual"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        found = re.search(r"listening on (http://\S+) ", proc.stdout.readline())
        assert found, "the CLI printed no address"
        with httpx.Client(base_url=found.group(1), headers=AUTH) as http:
            body = {"model": "cogview-4", "prompt": "a fox"}
            task_id = http.post("/api/v1/images/generations", json=body).json()["data"]["task_id"]
            http.post("/_emulator/clock/advance", json={"seconds": 60})
            png = http.get(f"/files/{task_id}/0.png")
        assert png.status_code == 200
        assert png.content.startswith(b"\x89PNG")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    assert proc.returncode == 0


def test_a_pool_whose_worker_died_is_replaced_by_the_next_render() -> None:
    with make_client() as client:
        task_id = _finished_task(client)
        media: Media = _emulator(client).media
        media.use_process_pool()
        try:
            pool = media._process_pool()
            asyncio.run(media.image(task_id, 0))  # starts the workers
            for process in list(pool._processes.values()):  # type: ignore[attr-defined]
                process.kill()
            media.cache.clear()
            with pytest.raises(BrokenProcessPool):
                asyncio.run(media.image(task_id, 0))
            assert asyncio.run(media.image(task_id, 0)).body.startswith(b"\x89PNG")
        finally:
            media.close()
