"""Under the virtual clock the emulator's clock decides every outcome: rate limits, task
timing, and the hint for a test whose tasks wait on a clock nobody moves."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

CLIENT = """
import httpx
import pytest

BODY = {"model": "cogview-4", "prompt": "a red fox in the snow", "size": "1024*1024"}


def create(client):
    return client.post("/api/v1/images/generations", json=BODY)
"""


def test_rate_limited_five_creates_then_429_then_retry_after_refills(
    suite: pytest.Pytester,
) -> None:
    suite.makepyfile(
        CLIENT
        + """
@pytest.mark.aio_emulator(scenario=["rate-limited", "instant"])
@pytest.mark.parametrize("run", range(12))
@pytest.mark.parametrize("mode", ["aio_emulator", "aio_emulator_respx"])
def test_it(request, mode, run):
    emulator = request.getfixturevalue(mode)
    with httpx.Client(base_url=emulator.url, headers=emulator.headers) as client:
        answers = []
        for _ in range(6):
            answers.append(create(client))
            emulator.advance(0.1)  # the code under test's sleep, on the virtual clock
        assert [a.status_code for a in answers] == [200] * 5 + [429]
        limited = answers[-1]
        assert limited.json()["error"]["type"] == "rate_limit_exceeded"
        retry_after = float(limited.headers["Retry-After"])
        assert create(client).status_code == 429  # no time has passed: still empty
        emulator.advance(retry_after)
        assert create(client).status_code == 200  # exactly what Retry-After promised
        assert create(client).status_code == 429
    assert emulator.requests()[-1]["rule"] == "rate-limited: rules[0] (create-limit)"
"""
    )
    suite.runpytest().assert_outcomes(passed=24)


def test_task_timing_and_image_expiry_follow_the_virtual_clock(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        CLIENT
        + """
EXPIRING = {
    "name": "expiring",
    "defaults": {"task": {"queued": 1, "running": 2, "image": {"expire": {"after_s": 30}}}},
}


@pytest.mark.aio_emulator(scenario=EXPIRING)
def test_it(aio_emulator_respx):
    emulator = aio_emulator_respx
    with httpx.Client(base_url=emulator.url, headers=emulator.headers) as client:
        task_id = create(client).json()["data"]["task_id"]
        poll = lambda: client.get(f"/api/v1/tasks/{task_id}").json()["data"]
        assert poll()["status"] == "IN_PROGRESS"
        emulator.advance(2.999)
        assert poll()["status"] == "IN_PROGRESS"
        emulator.advance(0.001)
        url = poll()["output"]["image_url"]
        assert client.get(url).status_code == 200
        emulator.advance(30)
        assert client.get(url).status_code == 404
"""
    )
    suite.runpytest().assert_outcomes(passed=1)


def test_a_failing_test_whose_tasks_wait_on_an_unmoved_clock_is_told_why(
    suite: pytest.Pytester,
) -> None:
    suite.makepyfile(
        CLIENT
        + """
import time


def generate_all(client, n):  # code under test: sleeps for real, polls, gives up
    ids = [create(client).json()["data"]["task_id"] for _ in range(n)]
    for _ in range(3):
        if all(client.get(f"/api/v1/tasks/{i}").json()["data"]["status"] == "completed"
               for i in ids):
            return ids
        time.sleep(0.01)
    raise TimeoutError("gave up waiting for the images")


@pytest.mark.aio_emulator(scenario="default")
def test_gives_up(aio_emulator_respx):
    with httpx.Client(base_url=aio_emulator_respx.url, headers=aio_emulator_respx.headers) as c:
        generate_all(c, 3)


@pytest.mark.aio_emulator(scenario="default")
def test_moves_the_clock_then_fails(aio_emulator_respx):
    with httpx.Client(base_url=aio_emulator_respx.url, headers=aio_emulator_respx.headers) as c:
        create(c)
    aio_emulator_respx.advance(1)
    assert False, "no hint: the clock was moved"


@pytest.mark.aio_emulator(scenario="default")
def test_passes_with_tasks_in_progress(aio_emulator_respx):
    with httpx.Client(base_url=aio_emulator_respx.url, headers=aio_emulator_respx.headers) as c:
        assert create(c).json()["data"]["status"] == "IN_PROGRESS"
"""
    )
    result = suite.runpytest()
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*- Captured aio_emulator call -*",
            "aio_emulator: 3 task(s) still IN_PROGRESS on a virtual clock nobody advanced: call "
            "handle.advance(...) or handle.settle(), or use the 'instant' scenario",
        ]
    )
    assert result.stdout.str().count("on a virtual clock nobody advanced") == 1
