"""The fixtures: the live handle, the in-process handle, per-test reset, overrides."""

from __future__ import annotations

import httpx
import pytest

pytest_plugins = ["pytester"]

CYCLE = """
import httpx
import pytest

BODY = {"model": "cogview-4", "prompt": "a red fox in the snow", "size": "1024*1024"}


def cycle(client):
    task_id = client.post("/api/v1/images/generations", json=BODY).json()["data"]["task_id"]
    task = client.get(f"/api/v1/tasks/{task_id}").json()["data"]
    png = client.get(task["output"]["image_url"]) if task["output"] else None
    return task_id, task, png
"""


def test_live_handle_serves_a_full_cycle(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        CYCLE
        + """
def test_it(aio_emulator):
    assert aio_emulator.url.startswith("http://127.0.0.1:")
    assert aio_emulator.api_key == "aio_pytest"
    assert aio_emulator.headers == {"Authorization": "Bearer aio_pytest"}
    with httpx.Client(base_url=aio_emulator.url, headers=aio_emulator.headers) as client:
        task_id, task, png = cycle(client)
    assert task["status"] == "completed"  # the instant scenario: done on the first poll
    assert task["output"]["image_url"] == f"{aio_emulator.url}/files/{task_id}/0.png"
    assert png.content.startswith(b"\\x89PNG")
    assert [(r["method"], r["status"]) for r in aio_emulator.requests()] == [
        ("POST", 200), ("GET", 200), ("GET", 200)
    ]
    assert aio_emulator.polls(task_id) == 1
    assert aio_emulator.task(task_id)["state"] == "succeeded"
    assert aio_emulator.credits() == 1_000_000 - 4
    assert aio_emulator.account()["spent"] == 4
    assert aio_emulator.clock.mode == "virtual"
"""
    )
    suite.runpytest().assert_outcomes(passed=1)


def test_every_test_starts_from_a_clean_repeatable_emulator(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        CYCLE
        + """
ids = []


@pytest.mark.parametrize("run", [1, 2, 3])
def test_it(aio_emulator, run):
    assert aio_emulator.requests() == [] and aio_emulator.tasks() == []
    assert aio_emulator.credits() == 1_000_000
    assert aio_emulator.now() == 1767225600.0  # the virtual clock is rewound
    with httpx.Client(base_url=aio_emulator.url, headers=aio_emulator.headers) as client:
        ids.append(cycle(client)[0])
    aio_emulator.set_credits(aio_emulator.api_key, 1)
    aio_emulator.advance(3600)
    assert len(set(ids)) == 1  # same seed, same requests: same task id in every test
"""
    )
    suite.runpytest().assert_outcomes(passed=3)


def test_respx_handle_serves_sync_and_async_httpx_with_the_real_base_url(
    suite: pytest.Pytester,
) -> None:
    suite.makepyfile(
        CYCLE
        + """
def test_sync(aio_emulator_respx):
    assert aio_emulator_respx.url == "https://apiin.one"
    with httpx.Client(base_url="https://apiin.one", headers=aio_emulator_respx.headers) as c:
        task_id, task, png = cycle(c)
    assert task["output"]["image_url"] == f"https://apiin.one/files/{task_id}/0.png"
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\\x89PNG")
    head = httpx.head(task["output"]["image_url"])
    assert head.content == b"" and int(head.headers["content-length"]) == len(png.content)
    assert aio_emulator_respx.polls(task_id) == 1
    calls = aio_emulator_respx.router.calls  # respx records what the emulator answered
    assert [c.request.method for c in calls] == ["POST", "GET", "GET", "HEAD"]
    assert calls.last.response.request is calls.last.request


@pytest.mark.anyio
async def test_async(aio_emulator_respx):
    headers = aio_emulator_respx.headers
    async with httpx.AsyncClient(base_url="https://apiin.one", headers=headers) as client:
        r = await client.post("/api/v1/images/generations", json=BODY)
        task = (await client.get(f"/api/v1/tasks/{r.json()['data']['task_id']}")).json()
        png = await client.get(task["data"]["output"]["image_url"])
    assert png.content.startswith(b"\\x89PNG")


@pytest.mark.anyio
async def test_sync_client_inside_an_async_test(aio_emulator_respx):
    with httpx.Client(base_url="https://apiin.one", headers=aio_emulator_respx.headers) as c:
        assert cycle(c)[2].content.startswith(b"\\x89PNG")


def test_other_hosts_are_not_served(aio_emulator_respx):
    aio_emulator_respx.router.get("https://example.test/ok").respond(204)
    assert httpx.get("https://example.test/ok").status_code == 204
    with pytest.raises(Exception, match="not mocked"):
        httpx.get("https://example.test/other")
"""
    )
    suite.runpytest().assert_outcomes(passed=4)


def test_each_in_process_test_starts_with_a_router_of_its_own_making(
    suite: pytest.Pytester,
) -> None:
    """The router is kept on the app for the next test (building one costs ~0.15 ms): what a
    test adds to it, its routes and recorded calls, ends with that test."""
    suite.makepyfile(
        CYCLE
        + """
def test_first_adds_a_route(aio_emulator_respx):
    aio_emulator_respx.router.get("https://example.test/ok").respond(204)
    with httpx.Client(base_url="https://apiin.one", headers=aio_emulator_respx.headers) as c:
        cycle(c)
    assert httpx.get("https://example.test/ok").status_code == 204
    assert len(aio_emulator_respx.router.calls) == 4


def test_second_sees_none_of_it(aio_emulator_respx):
    assert len(aio_emulator_respx.router.calls) == 0
    with pytest.raises(Exception, match="not mocked"):
        httpx.get("https://example.test/ok")
    with httpx.Client(base_url="https://apiin.one", headers=aio_emulator_respx.headers) as c:
        assert cycle(c)[2].content.startswith(b"\\x89PNG")
    assert len(aio_emulator_respx.router.calls) == 3
"""
    )
    suite.runpytest().assert_outcomes(passed=2)


def test_a_handle_made_while_another_holds_the_app_s_router_gets_its_own() -> None:
    from emulator.app import create_app
    from emulator.handle import Checks
    from emulator.inprocess import RespxEmulatorHandle

    app = create_app()
    emulator = app.state.emulator

    def handle() -> RespxEmulatorHandle:
        return RespxEmulatorHandle(emulator, app, "aio_pytest", Checks(allow_unserved=False))

    first = handle()
    second = handle()  # made while the first one is held: its own router
    assert second.router is not first.router
    with first.mocking():
        pass
    third = handle()  # the first gave the app's router back
    assert third.router is first.router
    client = httpx.Client(base_url="https://apiin.one")
    with second.mocking(), third.mocking(), client:  # both at once: each its own router
        assert client.get("/api/v1/tasks/x").status_code == 401


def test_advance_and_settle_move_the_virtual_clock(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        CYCLE
        + """
@pytest.mark.aio_emulator(scenario="default")
def test_it(aio_emulator):
    with httpx.Client(base_url=aio_emulator.url, headers=aio_emulator.headers) as client:
        ids = [cycle(client)[0] for _ in range(3)]
        aio_emulator.advance(1)
        assert {t["status"] for t in aio_emulator.tasks()} == {"IN_PROGRESS"}
        assert aio_emulator.account()["reserved"] == 12
        moved = aio_emulator.settle()
        assert 3 <= moved <= 8 - 1
        assert aio_emulator.settle() == 0
        assert [client.get(f"/api/v1/tasks/{i}").json()["data"]["status"] for i in ids] == [
            "completed"
        ] * 3
    assert aio_emulator.account() == {
        "key": "aio_pytest", "credits": 1_000_000 - 12, "reserved": 0, "spent": 12
    }
"""
    )
    suite.runpytest().assert_outcomes(passed=1)


def test_settle_names_the_tasks_that_never_end(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        CYCLE
        + """
from emulator.plugin import AioEmulatorError

FOREVER = {"name": "stuck", "defaults": {"task": {"queued": 0, "running": 5, "forever": True}}}


@pytest.mark.aio_emulator(scenario=FOREVER)
def test_it(aio_emulator):
    with httpx.Client(base_url=aio_emulator.url, headers=aio_emulator.headers) as client:
        task_id = cycle(client)[0]
    with pytest.raises(AioEmulatorError) as info:
        aio_emulator.settle()
    assert str(info.value) == (
        f"settle(): 1 task(s) never finish on their own in this scenario: {task_id}. "
        "Advance by a fixed time with advance(seconds) instead."
    )
"""
    )
    suite.runpytest().assert_outcomes(passed=1)


def test_the_real_clock_cannot_be_advanced(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
import pytest
from emulator.plugin import AioEmulatorError


@pytest.mark.aio_emulator(clock="real")
@pytest.mark.parametrize("method", ["advance", "settle"])
def test_it(aio_emulator, method):
    assert aio_emulator.clock.mode == "real"
    with pytest.raises(AioEmulatorError, match="needs the virtual clock, and this test runs"):
        getattr(aio_emulator, method)(*([1] if method == "advance" else []))
"""
    )
    suite.runpytest().assert_outcomes(passed=2)


def test_poll_intervals_show_the_client_backing_off(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        CYCLE
        + """
@pytest.mark.aio_emulator(scenario="default")
@pytest.mark.parametrize("mode", ["aio_emulator", "aio_emulator_respx"])
def test_it(request, mode):
    emulator = request.getfixturevalue(mode)
    with httpx.Client(base_url=emulator.url, headers=emulator.headers) as client:
        task_id = client.post("/api/v1/images/generations", json=BODY).json()["data"]["task_id"]
        delay = 0.5
        while client.get(f"/api/v1/tasks/{task_id}").json()["data"]["status"] != "completed":
            emulator.advance(delay)  # the client's sleep, on the virtual clock
            delay *= 2
    assert emulator.poll_intervals(task_id) == [0.5, 1.0, 2.0, 4.0]
    assert emulator.polls(task_id) == 5
    assert all(0 <= gap < 1 for gap in emulator.poll_intervals(task_id, wall=True))
"""
    )
    suite.runpytest().assert_outcomes(passed=2)


def test_use_scenario_switches_during_a_test(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        CYCLE
        + """
def test_it(aio_emulator_respx):
    aio_emulator_respx.use_scenario("failing-tasks")
    with httpx.Client(base_url="https://apiin.one", headers=aio_emulator_respx.headers) as c:
        task_id = cycle(c)[0]
        aio_emulator_respx.settle()
        task = c.get(f"/api/v1/tasks/{task_id}").json()["data"]
    assert task["status"] == "failed"
    assert task["error"] == "Generation failed: upstream provider error"
    assert aio_emulator_respx.credits() == 1_000_000  # refunded
"""
    )
    suite.runpytest().assert_outcomes(passed=1)


def test_the_config_fixture_can_be_overridden(suite: pytest.Pytester) -> None:
    suite.makeconftest(
        """
import pytest


@pytest.fixture(scope="session")
def aio_emulator_config(aio_emulator_config):
    return aio_emulator_config.with_(scenario="default", default_credits=50)
"""
    )
    suite.makepyfile(
        CYCLE
        + """
def test_it(aio_emulator):
    assert aio_emulator.credits() == 50
    with httpx.Client(base_url=aio_emulator.url, headers=aio_emulator.headers) as client:
        task_id, task, png = cycle(client)
    assert task["status"] == "IN_PROGRESS" and png is None  # realistic timing
"""
    )
    suite.runpytest().assert_outcomes(passed=1)


def test_one_app_per_clock_and_seed_and_both_fixtures_share_it(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
import pytest

urls = {}


@pytest.mark.parametrize("n", [1, 2])
def test_default(aio_emulator, n):
    urls.setdefault("default", set()).add(aio_emulator.url)


@pytest.mark.aio_emulator(seed=7)
def test_seed(aio_emulator):
    urls["seed"] = aio_emulator.url
    assert aio_emulator.emulator.seed == 7


@pytest.mark.aio_emulator(clock="real")
def test_real(aio_emulator):
    urls["real"] = aio_emulator.url


def test_urls():
    (default,) = urls["default"]
    assert len({default, urls["seed"], urls["real"]}) == 3


@pytest.mark.aio_emulator(credits=3)
def test_both(aio_emulator, aio_emulator_respx):
    assert aio_emulator.emulator is aio_emulator_respx.emulator
    assert aio_emulator_respx.credits() == 3
"""
    )
    suite.runpytest().assert_outcomes(passed=6)


def test_scenario_faults_reach_an_in_process_client_as_transport_errors(
    suite: pytest.Pytester,
) -> None:
    suite.makepyfile(
        CYCLE
        + """
def faulty(fault):
    rule = {"name": fault, "match": {"endpoint": "create"}, "fault": fault}
    return {"name": fault, "rules": [rule]}


@pytest.mark.aio_emulator(scenario=faulty("reset"))
def test_reset(aio_emulator_respx):
    with pytest.raises(httpx.RemoteProtocolError, match="connection reset by the emulator"):
        httpx.post("https://apiin.one/api/v1/images/generations", json=BODY,
                   headers=aio_emulator_respx.headers)


@pytest.mark.aio_emulator(scenario=faulty("hang"))
@pytest.mark.anyio
async def test_hang(aio_emulator_respx):
    async with httpx.AsyncClient(headers=aio_emulator_respx.headers) as client:
        with pytest.raises(httpx.ReadTimeout, match="the emulator sent no response"):
            await client.post("https://apiin.one/api/v1/images/generations", json=BODY)


@pytest.mark.aio_emulator(scenario=faulty("close_mid_body"))
def test_close_mid_body(aio_emulator_respx):
    with pytest.raises(httpx.RemoteProtocolError, match="mid-body"):
        httpx.post("https://apiin.one/api/v1/images/generations", json=BODY,
                   headers=aio_emulator_respx.headers)
"""
    )
    suite.runpytest().assert_outcomes(passed=3)


def test_the_handle_key_is_valid_with_only_known_keys(suite: pytest.Pytester) -> None:
    suite.makeconftest(
        """
import pytest


@pytest.fixture(scope="session")
def aio_emulator_config(aio_emulator_config):
    return aio_emulator_config.with_(only_known_keys=True)
"""
    )
    suite.makepyfile(
        CYCLE
        + """
@pytest.mark.aio_emulator(allow_unserved=True)
def test_it(aio_emulator_respx):
    with httpx.Client(base_url="https://apiin.one", headers=aio_emulator_respx.headers) as c:
        assert cycle(c)[1]["status"] == "completed"
        assert c.get("/api/v1/tasks/x", headers={"Authorization": "Bearer aio_other"}).status_code == 401
"""
    )
    suite.runpytest().assert_outcomes(passed=1)
