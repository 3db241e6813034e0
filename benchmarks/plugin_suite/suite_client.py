"""The code under test of the benchmark suites: a typical API in One client (sync httpx).

It takes its ``httpx.Client`` from the caller, as an application holding one client would: a
new client per call loads the CA bundle (about 40 ms here), which would swamp what is measured.
"""

import time

import httpx


def generate_image(
    client: httpx.Client, base_url: str, api_key: str, prompt: str, *, sleep=time.sleep
) -> bytes:
    """Create a cogview-4 task, poll it with exponential backoff, download the PNG."""
    headers = {"Authorization": f"Bearer {api_key}"}
    body = {"model": "cogview-4", "prompt": prompt, "size": "1024*1024"}
    created = client.post(f"{base_url}/api/v1/images/generations", json=body, headers=headers)
    task_id = created.raise_for_status().json()["data"]["task_id"]
    delay = 1.0
    for _ in range(20):
        task = client.get(f"{base_url}/api/v1/tasks/{task_id}", headers=headers)
        data = task.raise_for_status().json()["data"]
        if data["status"] == "completed":
            return client.get(data["output"]["image_url"]).raise_for_status().content
        if data["status"] == "failed":
            raise RuntimeError(f"generation failed: {data['error']}")
        sleep(delay)
        delay = min(delay * 2, 30.0)
    raise TimeoutError(task_id)
