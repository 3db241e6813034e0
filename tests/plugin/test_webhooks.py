"""Webhooks under the fixtures: in-process they go through httpx to the test's respx routes, on
the emulator's loop and clock; on the live server they reach a real receiver; ``webhooks()``
lists every attempt."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

HEADER = """
import asyncio
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

HOOK = "https://hooks.example.test/cb"
CREATE = "https://apiin.one/api/v1/images/generations"
BODY = {"model": "grok-imagine/text-to-image", "prompt": "a kite", "callback_url": HOOK}


def create(handle, client=httpx, callback=HOOK, base="https://apiin.one"):
    body = {**BODY, "callback_url": callback}
    r = client.post(f"{base}/api/v1/images/generations", json=body, headers=handle.headers)
    assert r.status_code == 200, r.text
    return r.json()["data"]["task_id"]


def poll(handle, task_id, client=httpx, base="https://apiin.one"):
    return client.get(f"{base}/api/v1/tasks/{task_id}", headers=handle.headers).json()


def sent(route):
    return [json.loads(call.request.content) for call in route.calls]


@pytest.fixture
def receiver():
    # a real webhook receiver on 127.0.0.1: records each POST, answers the queued statuses
    got, statuses = [], []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            got.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(raw)})
            self.send_response(statuses.pop(0) if statuses else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", got, statuses
    server.shutdown()
    server.server_close()


def wait_until(check, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.fixture
def no_sockets(monkeypatch):
    # every way out of the process refused, and noted
    opened = []

    def refuse(*args, **kwargs):
        opened.append(args[1:] or kwargs)
        raise OSError("a socket was opened")

    async def refuse_async(*args, **kwargs):
        refuse(*args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(asyncio.base_events.BaseEventLoop, "create_connection", refuse_async)
    monkeypatch.setattr(asyncio.base_events.BaseEventLoop, "getaddrinfo", refuse_async)
    return opened
"""


def test_in_process_settle_delivers_to_a_respx_route(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        HEADER
        + """
def test_sync(aio_emulator_respx, respx_mock):
    route = respx_mock.post(HOOK).respond(200)
    task_id = create(aio_emulator_respx)
    assert not route.called  # instant: the task has ended, nobody has noticed yet
    aio_emulator_respx.settle()
    assert route.call_count == 1
    assert sent(route) == [poll(aio_emulator_respx, task_id)]  # the task's body, as polled
    request = route.calls.last.request
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("aio-emulator/")
    assert request.headers["connection"] == "close"
    [hook] = aio_emulator_respx.webhooks()
    assert hook == {
        "url": HOOK, "task_id": task_id, "attempt": 1, "status": 200, "error": None,
        "body": sent(route)[0], "at": aio_emulator_respx.now(), "duplicate": False,
    }
    aio_emulator_respx.settle()
    assert route.call_count == 1  # once per task


def test_the_poll_that_sees_the_end_sends_it(aio_emulator_respx):
    route = aio_emulator_respx.router.post(HOOK).respond(204)
    task_id = create(aio_emulator_respx)
    assert poll(aio_emulator_respx, task_id)["data"]["status"] == "completed"
    assert route.call_count == 1  # before the poll answered
    assert aio_emulator_respx.webhooks(task_id)[0]["status"] == 204
    assert aio_emulator_respx.webhooks("n0_other") == []


@pytest.mark.aio_emulator(scenario="default")
def test_realistic_timing(aio_emulator_respx, respx_mock):
    route = respx_mock.post(HOOK).respond(200)
    task_id = create(aio_emulator_respx)
    aio_emulator_respx.advance(1)
    assert not route.called  # grok-imagine takes 3 to 10 s
    moved = aio_emulator_respx.settle()
    assert 2 <= moved <= 9 and route.call_count == 1
    assert sent(route)[0]["data"]["status"] == "completed"
    assert aio_emulator_respx.webhooks()[0]["at"] == 1767225600.0 + 1 + moved
"""
    )
    suite.runpytest().assert_outcomes(passed=3)


def test_in_process_delivery_from_async_tests(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        HEADER
        + """
@pytest.mark.anyio
async def test_async_client(aio_emulator_respx, respx_mock):
    route = respx_mock.post(HOOK).respond(200)
    async with httpx.AsyncClient() as client:
        r = await client.post(CREATE, json=BODY, headers=aio_emulator_respx.headers)
        task_id = r.json()["data"]["task_id"]
        aio_emulator_respx.settle()
        assert route.call_count == 1  # no await needed: settle() ran the delivery
        assert sent(route) == [(await client.get(
            f"https://apiin.one/api/v1/tasks/{task_id}", headers=aio_emulator_respx.headers
        )).json()]


@pytest.mark.anyio
async def test_the_async_poll_that_sees_the_end_sends_it(aio_emulator_respx):
    route = aio_emulator_respx.router.post(HOOK).respond(200)
    async with httpx.AsyncClient(headers=aio_emulator_respx.headers) as client:
        r = await client.post(CREATE, json=BODY)
        await client.get(f"https://apiin.one/api/v1/tasks/{r.json()['data']['task_id']}")
    assert route.call_count == 1


@pytest.mark.anyio
async def test_sync_client_inside_an_async_test(aio_emulator_respx, respx_mock):
    route = respx_mock.post(HOOK).respond(500)
    create(aio_emulator_respx)
    aio_emulator_respx.settle()
    assert route.call_count == 1
    aio_emulator_respx.advance(1)
    assert route.call_count == 2
    assert [h["status"] for h in aio_emulator_respx.webhooks()] == [500, 500]
"""
    )
    suite.runpytest().assert_outcomes(passed=3)


def test_retries_wait_for_the_virtual_clock(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        HEADER
        + """
def test_retry_after_a_500(aio_emulator_respx, respx_mock):
    route = respx_mock.post(HOOK)
    route.side_effect = [httpx.Response(500), httpx.Response(503), httpx.Response(200)]
    create(aio_emulator_respx)
    aio_emulator_respx.settle()
    assert route.call_count == 1
    time.sleep(0.05)
    aio_emulator_respx.advance(0.5)
    assert route.call_count == 1  # wall time and half the backoff send nothing
    aio_emulator_respx.advance(0.5)
    assert route.call_count == 2  # 1 s after the first attempt
    aio_emulator_respx.advance(1.9)
    assert route.call_count == 2
    aio_emulator_respx.advance(0.1)
    assert route.call_count == 3  # 2 s after the second
    hooks = aio_emulator_respx.webhooks()
    assert [(h["attempt"], h["status"], h["at"] - 1767225600.0) for h in hooks] == [
        (1, 500, 0.0), (2, 503, 1.0), (3, 200, 3.0)
    ]
    assert "HTTP 500" in hooks[0]["error"] and hooks[2]["error"] is None
    assert hooks[0]["body"] == hooks[2]["body"]
    aio_emulator_respx.advance(60)
    assert route.call_count == 3


def test_it_gives_up_after_four_attempts(aio_emulator_respx, respx_mock):
    route = respx_mock.post(HOOK).mock(side_effect=httpx.ConnectError("refused"))
    create(aio_emulator_respx)
    aio_emulator_respx.settle()
    for _ in range(10):
        aio_emulator_respx.advance(1)
    assert route.call_count == 4
    hooks = aio_emulator_respx.webhooks()
    assert [h["at"] - 1767225600.0 for h in hooks] == [0, 1, 3, 7]
    assert all(h["status"] is None and h["error"] == "ConnectError: refused" for h in hooks)
    assert aio_emulator_respx.task(hooks[0]["task_id"])["status"] == "completed"


@pytest.fixture
def nothing_left_running(aio_emulator_server):
    yield
    emulator = aio_emulator_server.app(aio_emulator_server.config).state.emulator
    assert emulator.webhooks.running == 0  # the fixture's teardown cancelled the retry


def test_a_test_that_ends_with_a_retry_waiting(nothing_left_running, aio_emulator_respx,
                                                respx_mock):
    respx_mock.post(HOOK).respond(500)
    create(aio_emulator_respx)
    aio_emulator_respx.settle()  # the retry waits for a time this test never reaches
    assert aio_emulator_respx.emulator.webhooks.running == 1


def test_the_next_test_starts_with_no_delivery(aio_emulator_respx):
    aio_emulator_respx.advance(60)
    assert aio_emulator_respx.webhooks() == []


@pytest.mark.aio_emulator(scenario={
    "name": "late-hooks", "defaults": {"task": {"queued": 0, "running": 2, "webhook": {"delay": 5}}}
})
def test_a_scenario_delay_runs_on_the_virtual_clock(aio_emulator_respx, respx_mock):
    route = respx_mock.post(HOOK).respond(200)
    create(aio_emulator_respx)
    assert aio_emulator_respx.settle() == 2
    aio_emulator_respx.advance(4.9)
    assert not route.called
    aio_emulator_respx.advance(0.1)
    assert route.call_count == 1
    assert aio_emulator_respx.webhooks()[0]["at"] == 1767225600.0 + 7


@pytest.mark.aio_emulator(scenario={
    "name": "no-hooks", "defaults": {"task": {"webhook": {"drop": True}}}
})
def test_a_dropped_delivery_is_listed_as_not_sent(aio_emulator_respx, respx_mock):
    route = respx_mock.post(HOOK).respond(200)
    create(aio_emulator_respx)
    aio_emulator_respx.settle()
    [hook] = aio_emulator_respx.webhooks()
    assert (hook["attempt"], hook["status"]) == (0, None) and "drop" in hook["error"]
    assert not route.called
"""
    )
    suite.runpytest().assert_outcomes(passed=6)


def test_no_socket_for_a_mocked_host_the_network_for_the_others(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        HEADER
        + """
def test_mocked_host(aio_emulator_respx, respx_mock, no_sockets):
    route = respx_mock.post(HOOK).respond(200)
    create(aio_emulator_respx)
    create(aio_emulator_respx, callback="https://unmocked.example.test/cb")
    aio_emulator_respx.settle()
    assert route.call_count == 1
    hooks = {h["url"]: h for h in aio_emulator_respx.webhooks()}
    assert hooks[HOOK]["status"] == 200
    # the host with no route went to the network, which this test refuses: the check bites
    assert hooks["https://unmocked.example.test/cb"]["error"] == "OSError: a socket was opened"
    assert len(no_sockets) == 1


@pytest.mark.anyio
async def test_mocked_host_async(aio_emulator_respx, respx_mock, no_sockets):
    route = respx_mock.post(HOOK).respond(200)
    async with httpx.AsyncClient(headers=aio_emulator_respx.headers) as client:
        await client.post(CREATE, json=BODY)
    aio_emulator_respx.settle()
    assert route.call_count == 1 and no_sockets == []


def test_an_unmocked_host_is_reached_over_the_network(aio_emulator_respx, receiver):
    url, got, statuses = receiver
    statuses.append(500)
    task_id = create(aio_emulator_respx, callback=f"{url}/hooks?from=emulator")
    aio_emulator_respx.settle()
    aio_emulator_respx.advance(1)
    assert [g["path"] for g in got] == ["/hooks?from=emulator"] * 2
    assert got[1]["body"] == poll(aio_emulator_respx, task_id)
    assert got[1]["headers"]["Content-Type"] == "application/json"
    assert got[1]["headers"]["User-Agent"].startswith("aio-emulator/")
    assert [h["status"] for h in aio_emulator_respx.webhooks()] == [500, 200]


@pytest.mark.parametrize("host", ["apiin.one", "mirror.example.test"])
def test_a_callback_to_the_emulator_itself_is_never_sent(aio_emulator_respx, host):
    # (the test sends a second host to the emulator too: any route to it is refused)
    aio_emulator_respx.router.route(host="mirror.example.test").mock(
        side_effect=aio_emulator_respx.serve
    )
    create(aio_emulator_respx, callback=f"https://{host}/_emulator/reset")
    aio_emulator_respx.settle()
    aio_emulator_respx.advance(60)
    [hook] = aio_emulator_respx.webhooks()  # not retried
    assert hook["status"] is None and "the emulator's own address" in hook["error"]
    assert len(aio_emulator_respx.tasks()) == 1  # no reset happened
"""
    )
    suite.runpytest().assert_outcomes(passed=5)


def test_in_process_on_the_real_clock_a_retry_waits_for_the_next_call(
    suite: pytest.Pytester,
) -> None:
    suite.makeconftest(
        """
import pytest


@pytest.fixture(scope="session")
def aio_emulator_config(aio_emulator_config):
    return aio_emulator_config.with_(webhook_backoff_s=0.05)
"""
    )
    suite.makepyfile(
        HEADER
        + """
@pytest.mark.aio_emulator(clock="real")
def test_real_clock(aio_emulator_respx, respx_mock):
    route = respx_mock.post(HOOK).mock(side_effect=[httpx.Response(500), httpx.Response(200)])
    create(aio_emulator_respx)
    aio_emulator_respx.credits()  # settles the task (instant: ended at once): sends it
    assert route.call_count == 1
    time.sleep(0.1)
    assert route.call_count == 1  # nothing runs in the background in-process
    hooks = aio_emulator_respx.webhooks()  # the retry is due: this call sends it first
    assert [h["status"] for h in hooks] == [500, 200] and route.call_count == 2
    assert hooks[1]["at"] - hooks[0]["at"] >= 0.05
"""
    )
    suite.runpytest().assert_outcomes(passed=1)


def test_the_live_fixture_delivers_to_a_real_receiver(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        HEADER
        + """
def test_live(aio_emulator, receiver):
    url, got, statuses = receiver
    statuses.append(503)
    with httpx.Client(base_url=aio_emulator.url, headers=aio_emulator.headers) as client:
        task_id = create(aio_emulator, client, callback=f"{url}/hook", base=aio_emulator.url)
        aio_emulator.settle()
        wait_until(lambda: len(aio_emulator.webhooks()) == 1)
        time.sleep(0.05)
        assert len(got) == 1  # the retry waits for the virtual clock
        aio_emulator.advance(1)
        wait_until(lambda: len(aio_emulator.webhooks()) == 2)
        hooks = aio_emulator.webhooks()
        assert [(h["attempt"], h["status"]) for h in hooks] == [(1, 503), (2, 200)]
        assert hooks[1]["at"] - hooks[0]["at"] == 1
        assert got[1]["body"] == hooks[1]["body"] == poll(aio_emulator, task_id, client,
                                                         aio_emulator.url)


def test_both_fixtures(aio_emulator, aio_emulator_respx, respx_mock):
    # a poll through the live server ends the task: its delivery, on the server's loop, is
    # still sent with httpx, so the test's route gets it
    route = respx_mock.post(HOOK).respond(200)
    task_id = create(aio_emulator_respx)
    poll(aio_emulator, task_id, base=aio_emulator.url)
    wait_until(lambda: route.called)
    assert aio_emulator.webhooks() == aio_emulator_respx.webhooks()
"""
    )
    suite.runpytest().assert_outcomes(passed=2)


def test_the_docs_example_passes(suite: pytest.Pytester) -> None:
    docs = (Path(__file__).parents[2] / "docs" / "pytest.md").read_text("utf-8")
    section = docs.split("\n## Webhooks\n", 1)[1]
    example = re.search(r"^```python\n(.*?)^```", section, re.S | re.M)
    assert example is not None
    suite.makepyfile(example.group(1))
    suite.runpytest().assert_outcomes(passed=1)
