"""Rules in one line (``add_rule`` and its helpers) and the journal a test can query, written
as a user of the plugin would write them."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

CLIENT = """
import httpx
import pytest

BODY = {"model": "cogview-4", "prompt": "a red fox in the snow", "size": "1024*1024"}


def client(handle):
    return httpx.Client(base_url=handle.url, headers=handle.headers)


def create(c, **extra):
    return c.post("/api/v1/images/generations", json={**BODY, **extra})


def poll(c, task_id):
    return c.get(f"/api/v1/tasks/{task_id}")
"""


def test_add_rule_and_its_helpers(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        CLIENT
        + """
def test_add_rule_goes_first_for_this_test(aio_emulator_respx):
    label = aio_emulator_respx.add_rule(
        {"name": "sea", "match": {"prompt_contains": "sea"}, "error": {"status": 503}}
    )
    assert label == "add_rule() (sea)"
    with client(aio_emulator_respx) as c:
        assert create(c, prompt="a calm sea").status_code == 503
        assert create(c).status_code == 200
    assert aio_emulator_respx.last_request(status=503)["rule"] == "add_rule() (sea)"


def test_the_next_test_starts_without_it(aio_emulator_respx):
    with client(aio_emulator_respx) as c:
        assert create(c, prompt="a calm sea").status_code == 200


def test_a_bad_rule_is_told_as_a_scenario_file_would_be(aio_emulator_respx):
    with pytest.raises(ValueError) as info:
        aio_emulator_respx.add_rule({"match": {"endpoint": "creat"}, "error": {"status": 503}})
    assert str(info.value) == (
        "add_rule(): rule.match.endpoint: 'creat' is not one of: create, task, image, chat, any"
    )


def test_fail_next_create(aio_emulator_respx):
    aio_emulator_respx.fail_next_create(status=502, message="upstream down")
    with client(aio_emulator_respx) as c:
        first, second = create(c), create(c)
    assert first.status_code == 502
    assert first.json()["error"]["message"] == "upstream down"
    assert second.status_code == 200


def test_fail_next_task_keeps_the_scenario_timing(aio_emulator_respx):
    aio_emulator_respx.fail_next_task(reason="NSFW content detected")
    with client(aio_emulator_respx) as c:
        failing = create(c).json()["data"]["task_id"]
        fine = create(c).json()["data"]["task_id"]
        assert poll(c, failing).json()["data"]["status"] == "failed"  # instant: at once
        assert poll(c, failing).json()["data"]["error"] == "NSFW content detected"
        assert poll(c, fine).json()["data"]["status"] == "completed"
    assert aio_emulator_respx.credits() == 1_000_000 - 4  # the failed one was refunded


@pytest.mark.aio_emulator(scenario="default")
def test_fail_next_task_under_realistic_timing(aio_emulator):
    aio_emulator.fail_next_task()
    with client(aio_emulator) as c:
        task_id = create(c).json()["data"]["task_id"]
        assert poll(c, task_id).json()["data"]["status"] == "IN_PROGRESS"
        aio_emulator.settle()
        assert poll(c, task_id).json()["data"]["status"] == "failed"


def test_rate_limit_next_poll(aio_emulator):
    aio_emulator.rate_limit_next_poll(retry_after=7)
    with client(aio_emulator) as c:
        task_id = create(c).json()["data"]["task_id"]
        limited = poll(c, task_id)
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
        assert poll(c, task_id).status_code == 200
"""
    )
    suite.runpytest().assert_outcomes(passed=7)


def test_journal_queries(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        CLIENT
        + """
@pytest.mark.aio_emulator(allow_unserved=True)
@pytest.mark.parametrize("mode", ["aio_emulator", "aio_emulator_respx"])
def test_filters(request, mode):
    emulator = request.getfixturevalue(mode)
    with client(emulator) as c:
        fox = create(c).json()["data"]["task_id"]
        grok = {"model": "grok-imagine/text-to-image", "prompt": "a cat"}
        other = c.post("/api/v1/images/generations", json=grok).json()["data"]["task_id"]
        assert create(c, model="nope").status_code == 400
        png = poll(c, fox).json()["data"]["output"]["image_url"]
        poll(c, other)
        c.get(png)
        c.get("/api/v1/nowhere")
    assert [e["status"] for e in emulator.requests(endpoint="create")] == [200, 200, 400]
    assert [e["task_id"] for e in emulator.requests(endpoint="task")] == [fox, other]
    assert len(emulator.requests(endpoint="image")) == 1
    assert [e["path"] for e in emulator.requests(endpoint="unknown")] == ["/api/v1/nowhere"]
    assert len(emulator.requests(status=range(400, 500))) == 2
    assert [e["path"] for e in emulator.requests(model="cogview-4")] == [
        "/api/v1/images/generations", f"/api/v1/tasks/{fox}", f"/files/{fox}/0.png"
    ]  # a poll and a download count as their task's model
    assert [e["task_id"] for e in emulator.requests(model="grok-imagine", endpoint="task")] == [
        other
    ]  # an alias names its model
    assert emulator.requests(path="/api/v1/tasks/") == emulator.requests(endpoint="task")
    assert emulator.requests(key="aio_other") == []
    assert emulator.last_request(endpoint="task")["task_id"] == other
    assert emulator.last_request()["path"] == "/api/v1/nowhere"
    with pytest.raises(ValueError, match="endpoint: 'poll' is not one of: create, task, image, "
                       "chat, webhook, unknown"):
        emulator.requests(endpoint="poll")
    with pytest.raises(AssertionError, match="no request in the journal matches status=201"):
        emulator.last_request(status=201)


@pytest.mark.aio_emulator(scenario="default")
def test_polling_assertions_pass(aio_emulator_respx):
    emulator = aio_emulator_respx
    with client(emulator) as c:
        task_id = create(c).json()["data"]["task_id"]
        delay = 1.0
        while poll(c, task_id).json()["data"]["status"] != "completed":
            emulator.advance(delay)
            delay *= 2
    emulator.assert_polled_at_most_every(task_id, 1)
    emulator.assert_backed_off(task_id)


@pytest.mark.aio_emulator(scenario="default")
def test_polling_too_fast(aio_emulator_respx):
    emulator = aio_emulator_respx
    with client(emulator) as c:
        task_id = create(c).json()["data"]["task_id"]
        for delay in (2, 0.5, 2, 0.25):
            poll(c, task_id)
            emulator.advance(delay)
        poll(c, task_id)
    emulator.assert_polled_at_most_every(task_id, 1)


@pytest.mark.aio_emulator(scenario="default")
def test_not_backing_off(aio_emulator_respx):
    emulator = aio_emulator_respx
    with client(emulator) as c:
        task_id = create(c).json()["data"]["task_id"]
        for delay in (1, 2, 1):
            poll(c, task_id)
            emulator.advance(delay)
        poll(c, task_id)
    emulator.assert_backed_off(task_id)
"""
    )
    result = suite.runpytest()
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(
        [
            "E*AssertionError: task n48*_cv4 was polled more often than every 1 s: 2 of the 4 "
            "interval(s) between its 5 polls are shorter (on the emulator's clock):",
            "E*- poll 2 -> 3: 0.5 s",
            "E*- poll 4 -> 5: 0.25 s",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "E*AssertionError: task n48*_cv4 was not polled with back-off: the wait between "
            "polls shrank 1 time(s) (on the emulator's clock):",
            "E*- poll 3 -> 4: 1 s, after 2 s before it",
        ]
    )
    assert "intervals: [2.0, 0.5, 2.0, 0.25]" in result.stdout.str()
    assert "intervals: [1.0, 2.0, 1.0]" in result.stdout.str()
    assert "emulator/handle.py" not in result.stdout.str()  # the frames of the plugin are hidden
