"""Network faults over a real socket, and a client with retry/backoff surviving bad days."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from emulator.app import create_app
from emulator.config import Config
from emulator.server import LiveServer

AUTH = {"Authorization": "Bearer aio_faults"}
BODY = {"model": "cogview-4", "prompt": "a lighthouse"}


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    with LiveServer(create_app(Config(seed=2, clock="virtual"))) as server:
        yield server


@pytest.fixture
def client(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, headers=AUTH, timeout=5) as c:
        c.post("/_emulator/reset")
        yield c


def use(client: httpx.Client, scenario) -> None:
    r = client.put("/_emulator/scenario", json={"scenario": scenario})
    assert r.status_code == 200, r.text


def fault(name, endpoint: str = "create") -> dict:
    return {"name": "f", "rules": [{"match": {"endpoint": endpoint}, "fault": name}]}


def test_reset_cuts_the_connection_and_creates_nothing(client: httpx.Client) -> None:
    use(client, fault("reset"))
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.post("/api/v1/images/generations", json=BODY)
    assert client.get("/_emulator/tasks").json()["tasks"] == []
    assert client.get("/_emulator/health").status_code == 200


def test_close_mid_body_breaks_the_response(client: httpx.Client) -> None:
    use(client, fault("close_mid_body"))
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.post("/api/v1/images/generations", json=BODY)


@pytest.mark.parametrize("name", ["malformed_json", "truncated_json"])
def test_broken_json_bodies(client: httpx.Client, name: str) -> None:
    use(client, fault(name))
    r = client.post("/api/v1/images/generations", json=BODY)
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.content)


def test_dribble_sends_the_whole_body_slowly(client: httpx.Client) -> None:
    use(client, fault({"dribble": {"chunk_bytes": 20, "interval_ms": 20}}))
    started = time.perf_counter()
    r = client.post("/api/v1/images/generations", json=BODY)
    assert r.json()["data"]["status"] == "IN_PROGRESS"
    assert time.perf_counter() - started >= 0.08


def test_hang_until_the_client_gives_up_then_keeps_serving(client: httpx.Client) -> None:
    use(client, fault("hang", endpoint="task"))
    task_id = client.post("/api/v1/images/generations", json=BODY).json()["data"]["task_id"]
    with pytest.raises(httpx.ReadTimeout):
        client.get(f"/api/v1/tasks/{task_id}", timeout=0.3)
    use(client, "default")
    assert client.get(f"/api/v1/tasks/{task_id}").status_code == 200


def test_latency_is_real_time_even_under_the_virtual_clock(client: httpx.Client) -> None:
    use(client, {"name": "l", "rules": [{"match": {"endpoint": "create"}, "latency": 150}]})
    started = time.perf_counter()
    client.post("/api/v1/images/generations", json=BODY)
    assert time.perf_counter() - started >= 0.15
    assert client.get("/_emulator/clock").json()["now"] == "2026-01-01T00:00:00Z"


def call(client: httpx.Client, method: str, url: str, attempts: int = 30, **kw) -> httpx.Response:
    """A typical client's request: retried on 429/5xx/transport errors with backoff, honouring
    Retry-After. Its sleeps move the emulator's virtual clock (as a test passes the handle's
    ``advance`` to the code under test as its sleep)."""
    delay = 0.01
    for _ in range(attempts):
        try:
            r = client.request(method, url, **kw)
        except httpx.TransportError:
            r = None
        if r is not None and r.status_code < 429:
            return r
        wait = float(r.headers.get("retry-after", delay)) if r is not None else delay
        client.post("/_emulator/clock/advance", json={"seconds": min(wait, 2.0)})
        delay = min(delay * 2, 0.2)
    raise AssertionError(f"gave up on {method} {url}")


def create(client: httpx.Client) -> str:
    return call(client, "POST", "/api/v1/images/generations", json=BODY).json()["data"]["task_id"]


def finish(client: httpx.Client, task_id: str) -> str:
    """Poll until the task ends, a second apart; its final status word."""
    while True:
        data = call(client, "GET", f"/api/v1/tasks/{task_id}").json()["data"]
        if data["status"] in ("completed", "failed"):
            return data["status"]
        client.post("/_emulator/clock/advance", json={"seconds": 1})


def generate(client: httpx.Client) -> str:
    return finish(client, create(client))


def test_reset_is_a_real_tcp_reset_on_the_wire(client: httpx.Client, live: LiveServer) -> None:
    """The client's read fails with ECONNRESET (an RST), not an orderly close (a FIN)."""
    import socket

    use(client, fault("reset"))
    body = json.dumps(BODY).encode()
    request = (
        b"POST /api/v1/images/generations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer aio_faults"
        b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    with socket.create_connection((live.host, live.port), timeout=5) as sock:
        sock.sendall(request)
        with pytest.raises(ConnectionResetError):
            while sock.recv(65536):  # an orderly close would end this loop with b""
                pass
    assert client.get("/_emulator/health").status_code == 200


def test_in_process_a_reset_raises_into_the_caller() -> None:
    from emulator.faults import NetworkFault

    from .conftest import make_client

    with make_client() as c:
        c.put("/_emulator/scenario", json={"scenario": fault("reset")})
        with pytest.raises(NetworkFault, match="connection reset"):
            c.create()
