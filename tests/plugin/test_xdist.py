"""Parallel safety: under pytest-xdist every worker has its own server and its own state."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

SUITE = """
import os

import httpx
import pytest

BODY = {"model": "cogview-4", "prompt": "a red fox in the snow"}


@pytest.mark.parametrize("n", range(8))
def test_it(aio_emulator, n):
    with httpx.Client(base_url=aio_emulator.url, headers=aio_emulator.headers) as client:
        task_id = client.post("/api/v1/images/generations", json=BODY).json()["data"]["task_id"]
        assert client.get(f"/api/v1/tasks/{task_id}").json()["data"]["status"] == "completed"
    assert [t["task_id"] for t in aio_emulator.tasks()] == [task_id]
    assert len(aio_emulator.requests()) == 2
    with open("runs.txt", "a") as out:
        out.write(f"{os.environ['PYTEST_XDIST_WORKER']} {aio_emulator.url} {task_id}\\n")
"""


def test_each_worker_runs_its_own_server(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_a=SUITE, test_b=SUITE)
    result = suite.runpytest_subprocess("-n", "2")
    result.assert_outcomes(passed=16)
    runs = [line.split() for line in (suite.path / "runs.txt").read_text().splitlines()]
    assert len(runs) == 16
    urls = {worker: url for worker, url, _ in runs}
    assert sorted(urls) == ["gw0", "gw1"]
    assert len(set(urls.values())) == 2  # one server per worker, each on a port of its own
    assert len({worker_url for worker_url in ((w, u) for w, u, _ in runs)}) == 2
    assert len({task_id for _, _, task_id in runs}) == 1  # reset and re-seeded for every test
