"""Example: code under test calls API in One with ``httpx.Client`` and the real base URL.

``aio_emulator_respx`` answers for https://apiin.one in-process, so the code runs unmodified.
"""

import itertools
import time

import httpx
import pytest

API = "https://apiin.one"


def generate_image(api_key: str, prompt: str, *, sleep=time.sleep, max_polls=20) -> bytes:
    """Create a cogview-4 task, poll it with exponential backoff, download the PNG."""
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=API, headers=headers, timeout=30) as client:
        body = {"model": "cogview-4", "prompt": prompt, "size": "1024*1024"}
        created = client.post("/api/v1/images/generations", json=body).raise_for_status()
        task_id = created.json()["data"]["task_id"]
        delay = 1.0
        for _ in range(max_polls):
            task = client.get(f"/api/v1/tasks/{task_id}").raise_for_status().json()["data"]
            if task["status"] == "completed":
                return client.get(task["output"]["image_url"]).raise_for_status().content
            if task["status"] == "failed":
                raise RuntimeError(f"generation failed: {task['error']}")
            sleep(delay)
            delay = min(delay * 2, 30.0)
        raise TimeoutError(f"task {task_id} still running after {max_polls} polls")


def test_returns_a_png(aio_emulator_respx):
    png = generate_image(aio_emulator_respx.api_key, "a red fox in the snow")
    assert png.startswith(b"\x89PNG")
    assert len(aio_emulator_respx.requests()) == 3  # create, one poll, download


@pytest.mark.aio_emulator(scenario="default")  # realistic timing: cogview-4 takes 3-8 s
def test_backs_off_while_the_task_runs(aio_emulator_respx):
    # the client's sleep moves the emulator's virtual clock: no real waiting
    generate_image(aio_emulator_respx.api_key, "a red fox", sleep=aio_emulator_respx.advance)
    (task,) = aio_emulator_respx.tasks()
    intervals = aio_emulator_respx.poll_intervals(task["task_id"])
    assert intervals[:2] == [1.0, 2.0]
    assert all(later == 2 * earlier for earlier, later in itertools.pairwise(intervals))


@pytest.mark.aio_emulator(scenario="failing-tasks")
def test_reports_a_failed_task(aio_emulator_respx):
    with pytest.raises(RuntimeError, match="upstream provider error"):
        generate_image(aio_emulator_respx.api_key, "a red fox", sleep=aio_emulator_respx.advance)
    assert aio_emulator_respx.credits() == 1_000_000  # the reserved credits were refunded


@pytest.mark.aio_emulator(credits=3)  # cogview-4 costs 4
def test_out_of_credits(aio_emulator_respx):
    with pytest.raises(httpx.HTTPStatusError) as error:
        generate_image(aio_emulator_respx.api_key, "a red fox")
    assert error.value.response.json()["error"]["type"] == "insufficient_credits"
