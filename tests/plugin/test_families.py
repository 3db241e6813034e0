"""Both fixtures serve every family: a test creates a video, speech and an image tool task with
httpx against the handle's URL, moves the virtual clock, polls and downloads real files."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

SUITE = """
import io

import av
import httpx
import pytest
from PIL import Image

CASES = [
    ("/api/v1/videos/generations", {"model": "kling-3", "prompt": "a fox", "duration": 3,
                                   "sound": False}, "video_url"),
    ("/api/v1/audio/speech", {"model": "elevenlabs-v3", "dialogue": [{"text": "Hello there."}]},
     "audio_url"),
    ("/api/v1/images/tools/upscale", {"model": "image-upscale", "image": "https://x.test/a.png",
                                     "scale": 2}, "image_url"),
]


@pytest.mark.parametrize(("path", "body", "field"), CASES)
def test_create_poll_download(FIXTURE, path, body, field):
    handle = FIXTURE
    with httpx.Client(base_url=handle.url, headers=handle.headers) as client:
        created = client.post(path, json=body)
        assert created.status_code == 200, created.text
        task_id = created.json()["data"]["task_id"]
        handle.advance(600)
        data = client.get(f"/api/v1/tasks/{task_id}").json()["data"]
        assert data["status"] == "completed"
        file = client.get(data["output"][field])
        assert file.status_code == 200
        if field == "image_url":
            assert Image.open(io.BytesIO(file.content)).size == (2048, 2048)
        else:
            with av.open(io.BytesIO(file.content)) as container:
                assert container.duration > 0
        part = client.get(data["output"][field], headers={"Range": "bytes=0-9"})
        assert part.status_code == 206 and part.content == file.content[:10]
    assert handle.credits() == 1_000_000 - data["credits_consumed"]
"""


@pytest.mark.parametrize("fixture", ["aio_emulator", "aio_emulator_respx"])
def test_every_family_through_both_fixtures(suite: pytest.Pytester, fixture: str) -> None:
    suite.makepyfile(test_families=SUITE.replace("FIXTURE", fixture))
    suite.runpytest().assert_outcomes(passed=3)
