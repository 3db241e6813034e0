"""Example: code under test calls API in One with ``requests``, against the live emulator.

``aio_emulator.url`` is a real server on 127.0.0.1 (one per test session or xdist worker):
any HTTP client works, as long as the code under test takes its base URL as a setting.
"""

import struct
import time

import pytest
import requests


def generate_image(base_url: str, api_key: str, prompt: str, *, sleep=time.sleep) -> bytes:
    """Create a task (retrying 429/503 after Retry-After), poll it with backoff, download."""
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {api_key}"
        body = {"model": "cogview-4", "prompt": prompt, "size": "1440*720"}
        for _attempt in range(3):
            created = session.post(f"{base_url}/api/v1/images/generations", json=body)
            if created.status_code not in (429, 503):
                break
            sleep(float(created.headers.get("Retry-After", "1")))
        created.raise_for_status()
        task_id = created.json()["data"]["task_id"]
        delay = 1.0
        for _ in range(20):
            task = session.get(f"{base_url}/api/v1/tasks/{task_id}")
            task.raise_for_status()
            data = task.json()["data"]
            if data["status"] == "completed":
                image = session.get(data["output"]["image_url"])
                image.raise_for_status()
                return image.content
            if data["status"] == "failed":
                raise RuntimeError(f"generation failed: {data['error']}")
            sleep(delay)
            delay = min(delay * 2, 30.0)
        raise TimeoutError(f"task {task_id} still running")


def test_returns_a_png_of_the_requested_size(aio_emulator):
    png = generate_image(aio_emulator.url, aio_emulator.api_key, "a robot in a kitchen")
    assert struct.unpack(">II", png[16:24]) == (1440, 720)


ONE_OUTAGE = {  # the first create answers 503 with Retry-After: 2, then all is well
    "name": "one-outage",
    "rules": [
        {
            "name": "first-create-fails",
            "match": {"endpoint": "create", "nth": [1]},
            "error": {"status": 503, "message": "Busy", "headers": {"Retry-After": 2}},
        }
    ],
}


@pytest.mark.aio_emulator(scenario=ONE_OUTAGE)
def test_retries_a_503_after_retry_after(aio_emulator):
    generate_image(aio_emulator.url, aio_emulator.api_key, "a robot", sleep=aio_emulator.advance)
    creates = aio_emulator.requests(path="/api/v1/images/generations")
    assert [r["status"] for r in creates] == [503, 200]
    assert creates[1]["at"] - creates[0]["at"] == 2.0  # it waited as told, on the virtual clock
