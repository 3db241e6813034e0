"""Example: code under test calls API in One with ``httpx.AsyncClient`` and the real base URL.

Async tests run with anyio's pytest plugin (``@pytest.mark.anyio``, shipped with anyio).
"""

import asyncio

import httpx
import pytest

API = "https://apiin.one"

pytestmark = pytest.mark.anyio


async def generate_image(
    client: httpx.AsyncClient, prompt: str, *, sleep=asyncio.sleep, max_polls=20
) -> bytes:
    """Create a cogview-4 task, poll it with exponential backoff, download the PNG."""
    body = {"model": "cogview-4", "prompt": prompt, "size": "1024*1024"}
    created = (await client.post("/api/v1/images/generations", json=body)).raise_for_status()
    task_id = created.json()["data"]["task_id"]
    delay = 1.0
    for _ in range(max_polls):
        task = (await client.get(f"/api/v1/tasks/{task_id}")).raise_for_status().json()["data"]
        if task["status"] == "completed":
            return (await client.get(task["output"]["image_url"])).raise_for_status().content
        if task["status"] == "failed":
            raise RuntimeError(f"generation failed: {task['error']}")
        await sleep(delay)
        delay = min(delay * 2, 30.0)
    raise TimeoutError(f"task {task_id} still running after {max_polls} polls")


def api_client(api_key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=API, headers={"Authorization": f"Bearer {api_key}"})


@pytest.fixture
def virtual_sleep(aio_emulator_respx):
    """Stands in for ``asyncio.sleep``: moves the emulator's virtual clock, waits for nothing."""

    async def sleep(seconds: float) -> None:
        aio_emulator_respx.advance(seconds)

    return sleep


async def test_generates_images_concurrently(aio_emulator_respx):
    prompts = ["a red fox", "a snowy owl", "a grey wolf"]
    async with api_client(aio_emulator_respx.api_key) as client:
        pngs = await asyncio.gather(*(generate_image(client, p) for p in prompts))
    assert all(png.startswith(b"\x89PNG") for png in pngs)
    assert len(aio_emulator_respx.tasks()) == 3
    assert aio_emulator_respx.credits() == 1_000_000 - 3 * 4


@pytest.mark.aio_emulator(scenario="default")  # realistic timing: cogview-4 takes 3-8 s
async def test_backs_off_on_the_virtual_clock(aio_emulator_respx, virtual_sleep):
    async with api_client(aio_emulator_respx.api_key) as client:
        await generate_image(client, "a red fox", sleep=virtual_sleep)
    (task,) = aio_emulator_respx.tasks()
    assert aio_emulator_respx.poll_intervals(task["task_id"])[:2] == [1.0, 2.0]


@pytest.mark.aio_emulator(scenario="content-policy")  # prompts with listed words fail
async def test_reports_a_refused_prompt(aio_emulator_respx, virtual_sleep):
    async with api_client(aio_emulator_respx.api_key) as client:
        with pytest.raises(RuntimeError, match="rejected by the safety system"):
            await generate_image(client, "a knight with a weapon", sleep=virtual_sleep)
