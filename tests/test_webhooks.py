"""Webhooks, black-box: a live emulator POSTs finished tasks to a live receiver on 127.0.0.1.

Under the virtual clock a delivery's delay and retry backoff are waited on the emulator's clock:
each retry goes out when the clock is advanced to it, and its journal entry's ``at`` says when.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any

import httpx
import jsonschema
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator.app import create_app
from emulator.config import Config
from emulator.scenarios import ScenarioError, loads
from emulator.server import LiveServer

from .conftest import make_client

KEY = "aio_webhooks"
AUTH = {"Authorization": f"Bearer {KEY}"}
MODEL = "grok-imagine/text-to-image"  # a family whose docs support callback_url
BACKOFF = 0.01  # config.webhook_backoff_s: retries after 10, 20, 40 ms
#: asyncio's timers run on the monotonic clock, the journal's "wall" is time.time(): the two may
#: disagree by a fraction of a millisecond (a CI run measured a 20 ms backoff as 19.87 ms)
SLACK = 0.002


class Receiver:
    """A webhook receiver: records every POST; answers the queued statuses, then 200."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.statuses: deque[int] = deque()
        self.lock = threading.Lock()
        self.app = Starlette(routes=[Route("/{path:path}", self.hook, methods=["POST"])])

    async def hook(self, request: Request) -> Response:
        raw = await request.body()
        with self.lock:
            self.received.append(
                {
                    "path": request.url.path,
                    "query": request.url.query,
                    "content_type": request.headers.get("content-type"),
                    "body": json.loads(raw),
                    "wall": time.time(),
                }
            )
            status = self.statuses.popleft() if self.statuses else 200
        return Response(status_code=status)

    def clear(self) -> None:
        with self.lock:
            self.received.clear()
            self.statuses.clear()


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, str]]:
    hooks = Receiver()
    with LiveServer(hooks.app) as server:
        yield hooks, server.url


def _serve(clock: str) -> Iterator[httpx.Client]:
    config = Config(seed=3, clock=clock, webhook_backoff_s=BACKOFF)
    with (
        LiveServer(create_app(config)) as server,
        httpx.Client(base_url=server.url, headers=AUTH, timeout=5) as c,
    ):
        yield c


@pytest.fixture(scope="module")
def virtual_http() -> Iterator[httpx.Client]:
    yield from _serve("virtual")


@pytest.fixture(scope="module")
def real_http() -> Iterator[httpx.Client]:
    yield from _serve("real")


def _fresh(c: httpx.Client, hooks: Receiver) -> Iterator[httpx.Client]:
    c.post("/_emulator/reset")
    hooks.clear()
    yield c
    c.post("/_emulator/reset")  # cancels deliveries still in flight


@pytest.fixture
def client(virtual_http: httpx.Client, receiver: tuple[Receiver, str]) -> Iterator[httpx.Client]:
    """The virtual-clock emulator, reset, with an empty receiver."""
    yield from _fresh(virtual_http, receiver[0])


@pytest.fixture
def real_client(real_http: httpx.Client, receiver: tuple[Receiver, str]) -> Iterator[httpx.Client]:
    """The real-clock emulator, reset, with an empty receiver."""
    yield from _fresh(real_http, receiver[0])


# -- helpers --------------------------------------------------------------------------------


def use(client: httpx.Client, task: dict[str, Any], **extra: Any) -> None:
    scenario = {"name": "webhooks", "defaults": {"task": task}, **extra}
    r = client.put("/_emulator/scenario", json={"scenario": scenario})
    assert r.status_code == 200, r.text


def create(client: httpx.Client, callback: str, model: str = MODEL) -> str:
    body = {"model": model, "prompt": "a kite over the sea", "callback_url": callback}
    r = client.post("/api/v1/images/generations", json=body)
    assert r.status_code == 200, r.text
    return r.json()["data"]["task_id"]


def poll(client: httpx.Client, task_id: str) -> dict[str, Any]:
    r = client.get(f"/api/v1/tasks/{task_id}")
    assert r.status_code == 200, r.text
    return r.json()


def advance(client: httpx.Client, seconds: float) -> None:
    assert client.post("/_emulator/clock/advance", json={"seconds": seconds}).status_code == 200


def hooks_of(client: httpx.Client) -> list[dict[str, Any]]:
    journal = client.get("/_emulator/requests").json()["requests"]
    return [e for e in journal if e.get("kind") == "webhook"]


def now(client: httpx.Client) -> float:
    return float(client.get("/_emulator/clock").json()["epoch"])


def attempts_after(client: httpx.Client, n: int) -> list[dict[str, Any]]:
    """The webhook entries once there are ``n``, after a moment to show no more come."""
    entries = wait_until(lambda: len(hooks_of(client)) >= n and hooks_of(client))
    time.sleep(0.05)  # (wall time passing must not send the next one: only the clock does)
    assert len(hooks_of(client)) == n
    return entries


def wait_until(check: Callable[[], Any], timeout: float = 3.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {check}")
        time.sleep(0.005)


def closed_port() -> int:
    """A loopback port nobody listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- delivery -------------------------------------------------------------------------------


def test_delivered_when_the_virtual_clock_ends_the_task(
    client: httpx.Client, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    callback = f"{url}/hooks/images?source=emulator"
    task_id = create(client, callback)
    advance(client, 1)  # grok-imagine takes 3-10 s: not ended yet
    time.sleep(0.05)
    assert hooks.received == []
    advance(client, 60)
    wait_until(lambda: hooks.received)
    got = hooks.received[0]
    assert (got["path"], got["query"]) == ("/hooks/images", "source=emulator")
    assert got["content_type"] == "application/json"
    assert got["body"] == poll(client, task_id)
    data = got["body"]["data"]
    assert (data["status"], data["task_id"]) == ("completed", task_id)
    image = httpx.get(data["output"]["image_url"], timeout=5)
    assert image.status_code == 200
    assert image.content.startswith(b"\x89PNG")
    [entry] = hooks_of(client)
    assert entry["method"] == "POST" and entry["path"] == callback
    assert (entry["key"], entry["task_id"], entry["attempt"]) == (KEY, task_id, 1)
    assert (entry["status"], entry["error"], entry["rule"]) == (200, None, None)
    assert entry["body"] == got["body"]
    clock = client.get("/_emulator/clock").json()
    assert (entry["time"], entry["at"]) == (clock["now"], clock["epoch"])  # emulator clock
    assert entry["latency_ms"] >= 0 and entry["wall"] > 0
    time.sleep(0.05)
    assert len(hooks.received) == 1  # once per task


def test_delivered_when_a_task_fails(client: httpx.Client, receiver: tuple[Receiver, str]) -> None:
    hooks, url = receiver
    use(
        client,
        {"queued": 0, "running": 1, "outcome": "fail", "error": "GPU on fire"},
        status_words={"failed": "FAILED"},
    )
    task_id = create(client, f"{url}/hook", model="imagen4")
    advance(client, 2)
    wait_until(lambda: hooks.received)
    body = hooks.received[0]["body"]
    assert body == poll(client, task_id)
    assert body["data"]["status"] == "FAILED"
    assert body["data"]["error"] == "GPU on fire"
    assert body["data"]["output"] is None


def test_a_task_failed_by_a_poll_delivers_on_that_poll(
    client: httpx.Client, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    use(client, {"queued": 100, "fail_at_poll": 2, "error": "moderation"})
    task_id = create(client, f"{url}/hook", model="flux-2")
    assert poll(client, task_id)["data"]["status"] == "IN_PROGRESS"
    time.sleep(0.05)
    assert hooks.received == []
    failed = poll(client, task_id)
    wait_until(lambda: hooks.received)
    assert hooks.received[0]["body"] == failed
    assert failed["data"]["error"] == "moderation"


def test_delivered_under_the_real_clock_without_any_poll(
    real_client: httpx.Client, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    use(real_client, {"queued": 0, "running": 0.2})
    started = time.time()
    task_id = create(real_client, f"{url}/hook", model="seedream/4.5-text-to-image")
    wait_until(lambda: hooks.received)
    assert hooks.received[0]["wall"] - started >= 0.2 - SLACK
    data = hooks.received[0]["body"]["data"]
    assert (data["task_id"], data["status"], data["progress"]) == (task_id, "completed", 100)
    assert data["credits_consumed"] == 12


def test_public_url_builds_the_image_urls_in_process(receiver: tuple[Receiver, str]) -> None:
    hooks, url = receiver
    hooks.clear()
    with make_client(public_url="https://cdn.example.test", webhook_backoff_s=BACKOFF) as c:
        body = {"model": "gpt-image-1-5", "prompt": "a logo", "callback_url": f"{url}/hook"}
        r = c.post("/api/v1/images/generations", json=body, headers=AUTH)
        task_id = r.json()["data"]["task_id"]
        c.advance(60)
        wait_until(lambda: hooks.received)
        image_url = hooks.received[0]["body"]["data"]["output"]["image_url"]
        assert image_url == f"https://cdn.example.test/files/{task_id}/0.png"


# -- retries and failures -------------------------------------------------------------------


def test_retries_with_backoff_on_the_virtual_clock_until_the_receiver_accepts(
    client: httpx.Client, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    hooks.statuses.extend([500, 503])
    task_id = create(client, f"{url}/hook")
    advance(client, 60)
    ended = now(client)
    [first] = attempts_after(client, 1)  # the retry waits for the clock, not for wall time
    assert (first["attempt"], first["status"], first["at"]) == (1, 500, ended)
    advance(client, BACKOFF / 2)
    attempts_after(client, 1)  # not yet due
    advance(client, BACKOFF / 2)
    attempts_after(client, 2)
    advance(client, 2 * BACKOFF)
    entries = attempts_after(client, 3)
    assert [e["attempt"] for e in entries] == [1, 2, 3]
    assert [e["status"] for e in entries] == [500, 503, 200]
    assert "500" in entries[0]["error"] and entries[2]["error"] is None
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(entries)]
    assert gaps == pytest.approx([BACKOFF, 2 * BACKOFF], abs=1e-6)  # on the emulator's clock
    assert len(hooks.received) == 3
    assert hooks.received[0]["body"] == hooks.received[2]["body"] == poll(client, task_id)
    advance(client, 60)
    attempts_after(client, 3)  # delivered: nothing more


def test_retries_with_backoff_on_the_real_clock(
    real_client: httpx.Client, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    hooks.statuses.extend([500, 503])
    use(real_client, {"queued": 0, "running": 0})
    create(real_client, f"{url}/hook", model="seedream/4.5-text-to-image")
    entries = attempts_after(real_client, 3)
    assert [(e["attempt"], e["status"]) for e in entries] == [(1, 500), (2, 503), (3, 200)]
    gaps = [b["wall"] - a["wall"] for a, b in itertools.pairwise(entries)]
    assert gaps[0] >= BACKOFF - SLACK and gaps[1] >= 2 * BACKOFF - SLACK


def test_an_unreachable_callback_changes_nothing(client: httpx.Client) -> None:
    callback = f"http://127.0.0.1:{closed_port()}/hook"
    before = client.get(f"/_emulator/keys/{KEY}").json()["credits"]
    task_id = create(client, callback)
    advance(client, 60)
    for n in (1, 2, 3):
        attempts_after(client, n)
        advance(client, BACKOFF * 2 ** (n - 1))
    entries = attempts_after(client, 4)
    assert [e["attempt"] for e in entries] == [1, 2, 3, 4]
    assert all(e["status"] is None and e["error"] for e in entries)
    data = poll(client, task_id)["data"]
    assert (data["status"], data["credits_consumed"]) == ("completed", 5)
    assert client.get(f"/_emulator/keys/{KEY}").json()["credits"] == before - 5
    assert client.get("/_emulator/health").json()["status"] == "ok"
    advance(client, 60)
    assert len(attempts_after(client, 4)) == 4  # gave up after the default 4 attempts
    create(client, callback)  # still serving


def test_a_model_without_webhooks_ignores_callback_url(
    client: httpx.Client, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    task_id = create(client, f"{url}/hook", model="cogview-4")
    advance(client, 60)
    assert poll(client, task_id)["data"]["status"] == "completed"
    time.sleep(0.2)
    assert hooks.received == []
    assert hooks_of(client) == []


def test_reset_cancels_pending_deliveries(
    real_client: httpx.Client, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    use(real_client, {"queued": 0, "running": 0, "webhook": {"delay": 0.3}})
    create(real_client, f"{url}/hook", model="seedream/4.5-text-to-image")
    time.sleep(0.05)
    real_client.post("/_emulator/reset")
    time.sleep(0.4)
    assert hooks.received == []
    assert hooks_of(real_client) == []


def test_reset_cancels_a_retry_waiting_for_the_virtual_clock(
    client: httpx.Client, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    hooks.statuses.append(500)
    create(client, f"{url}/hook")
    advance(client, 60)
    attempts_after(client, 1)
    client.post("/_emulator/reset")
    advance(client, 60)
    time.sleep(0.05)
    assert len(hooks.received) == 1
    assert hooks_of(client) == []


# -- scenario control -----------------------------------------------------------------------


def test_scenario_drop_never_delivers(client: httpx.Client, receiver: tuple[Receiver, str]) -> None:
    hooks, url = receiver
    use(client, {"webhook": {"drop": True}})
    task_id = create(client, f"{url}/hook")
    advance(client, 60)
    [entry] = wait_until(lambda: hooks_of(client))
    assert (entry["attempt"], entry["status"], entry["task_id"]) == (0, None, task_id)
    assert "drop" in entry["error"]
    time.sleep(0.1)
    assert hooks.received == []


def test_scenario_duplicate_sends_twice(
    client: httpx.Client, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    use(client, {"webhook": {"duplicate": True}})
    create(client, f"{url}/hook")
    advance(client, 60)
    wait_until(lambda: len(hooks.received) >= 2)
    assert hooks.received[0]["body"] == hooks.received[1]["body"]
    entries = wait_until(lambda: len(hooks_of(client)) >= 2 and hooks_of(client))
    assert [(e["attempt"], e["status"], e.get("duplicate")) for e in entries] == [
        (1, 200, None),
        (1, 200, True),
    ]
    time.sleep(0.05)
    assert len(hooks.received) == 2


def test_scenario_fail_attempts_fails_without_sending_then_retries(
    client: httpx.Client, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    use(client, {"webhook": {"fail_attempts": 2}})
    create(client, f"{url}/hook")
    advance(client, 60)
    attempts_after(client, 1)
    advance(client, BACKOFF)
    attempts_after(client, 2)
    advance(client, 2 * BACKOFF)
    entries = attempts_after(client, 3)
    assert [(e["attempt"], e["status"]) for e in entries] == [(1, None), (2, None), (3, 200)]
    assert "fail_attempts" in entries[0]["error"]
    assert len(hooks.received) == 1


def test_scenario_delay_holds_the_first_attempt_on_the_virtual_clock(
    client: httpx.Client, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    task = {"queued": 0, "running": 1, "webhook": {"delay": 2}}
    rule = {"match": {"model": MODEL}, "task": task}
    r = client.put("/_emulator/scenario", json={"scenario": {"name": "d", "rules": [rule]}})
    assert r.status_code == 200, r.text
    start = now(client)
    create(client, f"{url}/hook")
    advance(client, 1.5)  # the task ended at +1: the delay runs from there
    advance(client, 1.4)
    time.sleep(0.05)
    assert hooks.received == [] and hooks_of(client) == []
    advance(client, 0.1)
    [entry] = attempts_after(client, 1)
    assert (entry["attempt"], entry["status"], entry["at"]) == (1, 200, start + 3)
    assert len(hooks.received) == 1


def test_a_delay_already_over_when_the_clock_lands_sends_at_once(
    client: httpx.Client, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    use(client, {"queued": 0, "running": 1, "webhook": {"delay": 2}})
    create(client, f"{url}/hook")
    advance(client, 60)  # ended at +1, due at +3: long past
    [entry] = attempts_after(client, 1)
    assert entry["status"] == 200 and entry["at"] == now(client)
    assert len(hooks.received) == 1


def test_scenario_delay_holds_the_first_attempt_on_the_real_clock(
    real_client: httpx.Client, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    use(real_client, {"queued": 0, "running": 0, "webhook": {"delay": 0.25}})
    started = time.time()
    create(real_client, f"{url}/hook", model="seedream/4.5-text-to-image")
    wait_until(lambda: hooks.received)
    assert hooks.received[0]["wall"] - started >= 0.25 - SLACK


BAD = """\
name: bad-webhooks
defaults:
  task:
    webhook:
      delay: -1
      fail_attempts: 1.5
      duplicate: "yes"
      retry: 3
rules:
  - task:
      webhook: drop
"""


def test_bad_webhook_settings_get_precise_messages() -> None:
    with pytest.raises(ScenarioError) as info:
        loads(BAD, source="bad.yaml")
    assert info.value.problems == [
        "bad.yaml:8: defaults.task.webhook.retry: unknown key "
        "(allowed: delay, fail_attempts, duplicate, drop)",
        "bad.yaml:5: defaults.task.webhook.delay: -1 is out of range (allowed: 0 to 3600)",
        "bad.yaml:6: defaults.task.webhook.fail_attempts: expected an integer, got a number",
        "bad.yaml:7: defaults.task.webhook.duplicate: expected true or false, got a string",
        "bad.yaml:11: rules[0].task.webhook: expected a mapping, got a string",
    ]


def test_the_json_schema_knows_webhook() -> None:
    text = resources.files("emulator").joinpath("data/scenario.schema.json").read_text()
    validator = jsonschema.Draft202012Validator(json.loads(text))
    good = {"webhook": {"delay": 2, "fail_attempts": 1, "duplicate": True, "drop": False}}
    assert list(validator.iter_errors({"name": "w", "defaults": {"task": good}})) == []
    loads(json.dumps({"name": "w", "defaults": {"task": good}}))  # the loader agrees
    bad = {"name": "w", "defaults": {"task": {"webhook": {"retry": 3}}}}
    assert list(validator.iter_errors(bad))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_callback_to_the_emulator_itself_is_never_sent(client: httpx.Client, host: str) -> None:
    """A key holder must not make the emulator call its own control API (here: a reset)."""
    port = httpx.URL(str(client.base_url)).port
    task_id = create(client, f"http://{host}:{port}/_emulator/reset")
    advance(client, 60)
    (entry,) = wait_until(lambda: hooks_of(client))
    assert entry["attempt"] == 1 and entry["status"] is None
    assert "the emulator's own address" in entry["error"]
    time.sleep(0.1)
    assert len(hooks_of(client)) == 1  # not retried
    assert poll(client, task_id)["data"]["status"] == "completed"  # no reset happened


def test_deliveries_wait_for_a_slot_in_order_and_past_the_queue_are_journaled(
    receiver: tuple[Receiver, str],
) -> None:
    """At most ``max_concurrent`` in flight, ``max_waiting`` waiting (in the order their tasks
    ended); the rest is journaled as not sent, and every accepted delivery is accounted for."""
    import asyncio

    from emulator.service import Emulator
    from emulator.tasks import end_time
    from emulator.webhooks import QUEUE_FULL

    hooks, url = receiver
    hooks.clear()
    emulator = Emulator(Config(seed=3, clock="virtual", webhook_backoff_s=BACKOFF))
    dispatcher = emulator.webhooks
    dispatcher.max_concurrent, dispatcher.max_waiting = 1, 3

    async def run() -> dict[str, int]:
        for i in range(7):
            body = {"model": MODEL, "prompt": "a kite", "callback_url": f"{url}/hook/{i}"}
            emulator.create_task(KEY, emulator.validate(body))
        emulator.clock.advance(60)
        emulator.tasks.settle()  # all seven end now
        queued = dispatcher.stats()
        for _ in range(500):
            if dispatcher.stats()["finished"] == 4:
                break
            await asyncio.sleep(0.01)
        return queued

    queued = asyncio.run(run())
    assert queued == {"accepted": 7, "running": 1, "waiting": 3, "finished": 0, "not_sent": 3}
    assert dispatcher.stats() == {
        "accepted": 7, "running": 0, "waiting": 0, "finished": 4, "not_sent": 3
    }  # fmt: skip
    by_end = [t.webhook.url for t in sorted(emulator.tasks, key=end_time)]
    assert [url + h["path"] for h in hooks.received] == by_end[:4]  # in the order they ended
    journal = [e for e in emulator.journal if e.get("kind") == "webhook"]
    refused = [e["path"] for e in journal if e["error"] == QUEUE_FULL]
    assert refused == by_end[4:] and all(e["attempt"] == 0 for e in journal if e["error"])
