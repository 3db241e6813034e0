"""The files of finished tasks: the content-keyed cache."""

from __future__ import annotations

import pytest

from emulator import images

from .conftest import Client, make_client


def _finished_task(client: Client) -> str:
    task_id: str = client.create().json()["data"]["task_id"]
    client.run_to_end(task_id)
    return task_id


def test_the_cache_outlives_a_reset_so_the_next_test_renders_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    renders: list[images.Placeholder] = []
    real = images.render_png

    def counted(p: images.Placeholder, *, max_pixels: int) -> bytes:
        renders.append(p)
        return real(p, max_pixels=max_pixels)

    monkeypatch.setattr(images, "render_png", counted)
    with make_client() as client:
        first = client.get(f"/files/{_finished_task(client)}/0.png")
        client.post("/_emulator/reset")
        again = client.get(f"/files/{_finished_task(client)}/0.png")  # same seed: same task
    assert first.url == again.url
    assert again.content == first.content
    assert again.headers["etag"] == first.headers["etag"]
    assert len(renders) == 1
