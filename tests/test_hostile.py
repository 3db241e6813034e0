"""Hostile input on a real socket: each answered with the error envelope (or a closed connection
for protocol abuse), and the server keeps serving everyone else afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from emulator.app import create_app
from emulator.config import Config
from emulator.protocol import MAX_HEADER_BYTES
from emulator.server import Server, bind, uvicorn_config

AUTH = {"Authorization": "Bearer aio_hostile"}
HEADER_TIMEOUT_S = 1.0


class Live:
    """The emulator on uvicorn in a thread, with short header and body deadlines for the slow
    clients."""

    def __init__(
        self, *, write_timeout_s: float = 30.0, header_timeout_s: float = HEADER_TIMEOUT_S,
        **config: Any,
    ) -> None:  # fmt: skip
        self.app = create_app(Config(seed=4, clock="virtual", **config))
        self.sock = bind("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = Server(
            uvicorn_config(
                self.app,
                header_timeout_s=header_timeout_s,
                body_timeout_s=header_timeout_s,
                write_timeout_s=write_timeout_s,
            )
        )
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.005)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    def healthy(self) -> None:
        r = httpx.get(self.url + "/_emulator/health", timeout=5)
        assert r.status_code == 200 and r.json()["status"] == "ok"


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    server = Live()
    yield server
    server.stop()


def raw(live: Live, data: bytes, timeout: float = 5.0) -> bytes:
    """Send bytes as they are (no client-side normalising) and read until the server closes."""
    with socket.create_connection(("127.0.0.1", live.port), timeout=timeout) as s:
        with contextlib.suppress(OSError):
            s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except OSError:
            pass
        return out


def get(live: Live, target: bytes) -> tuple[int, dict[str, Any]]:
    reply = raw(
        live,
        b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer aio_hostile\r\n"
        b"Connection: close\r\n\r\n",
    )
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head[9:12]), json.loads(body)


def envelope(status: int, body: dict[str, Any], code: int) -> str:
    assert status == code, body
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "type"}
    assert body["error"]["code"] == code
    return body["error"]["message"]


@pytest.mark.parametrize(
    "target",
    [
        b"/files/..%2F..%2Fetc%2Fpasswd/0.png",
        b"/files/../../etc/passwd",
        b"/files/x/..%2F..%2F..%2Fetc%2Fpasswd",
        b"/files/%2e%2e/%2e%2e/etc/passwd",
        b"/files/%00/0.png",
        b"/files/x/0.png%00.txt",
        b"/files/%C0%AE%C0%AE%2F/0.png",  # overlong UTF-8 for '.'
        b"/files/%ff%fe/0.png",
        b"/files/x/%E2%80%AE0.png",
        b"/files/..%5C..%5Cwindows/0.png",
    ],
)
def test_image_paths_with_traversal_or_odd_encodings_are_404(live: Live, target: bytes) -> None:
    status, body = get(live, target)
    message = envelope(status, body, 404)
    assert "root:" not in message and len(message) < 400
    live.healthy()


@pytest.mark.parametrize(
    "task_id",
    [
        b"a" * 20_000,
        b"%01%1b[31m%0a%0d%00",
        b"%E2%80%AE" * 100,
        b"n48" + b"%FF" * 50 + b"_cv4",
        b"..%2F..%2F",
    ],
    ids=["absurdly-long", "control-chars", "rtl-marks", "invalid-utf8", "traversal"],
)
def test_task_ids_of_absurd_length_or_with_control_characters_are_404(
    live: Live, task_id: bytes
) -> None:
    status, body = get(live, b"/api/v1/tasks/" + task_id)
    message = envelope(status, body, 404)
    assert len(message) < 1000  # the id is cut to 80 characters and shown with repr
    assert not re.search(r"[\x00-\x1f\x7f]", message)
    status, body = get(live, b"/files/" + task_id + b"/0.png")
    envelope(status, body, 404)
    live.healthy()


PROMPTS = [
    "<script>alert('x')</script><img src=x onerror=alert(1)>",
    "javascript:alert(document.cookie)//",
    "'; DROP TABLE tasks; -- \" OR 1=1",
    "\U0001f98a\U0001f3f3\ufe0f\u200d\U0001f308 fox emoji \U0001f468\u200d\U0001f469\u200d\U0001f467",
    "\u202eRTL override\u202c \u200f\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627",
    "NUL\x00in the middle\x00",
    "\x1b[2J\x1b[31mterminal escapes\x07\r\n%s%n{0}${jndi:ldap://x}",
]


@pytest.mark.parametrize("prompt", PROMPTS, ids=range(len(PROMPTS)))
def test_hostile_prompts_are_data_rendered_safely_and_echoed_exactly(
    live: Live, prompt: str
) -> None:
    with httpx.Client(base_url=live.url, headers=AUTH, timeout=10) as c:
        r = c.post("/api/v1/images/generations", json={"model": "cogview-4", "prompt": prompt})
        assert r.status_code == 200, r.text
        task_id = r.json()["data"]["task_id"]
        c.post("/_emulator/clock/advance", json={"seconds": 60})
        data = c.get(f"/api/v1/tasks/{task_id}").json()["data"]
        assert data["status"] == "completed"
        png = c.get(data["output"]["image_url"])
        assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.headers["content-type"] == "image/png"
        journal = c.get("/_emulator/requests", params={"path": "/api/v1/images/generations"})
        echoed = [e["body"]["prompt"] for e in journal.json()["requests"]]
        assert echoed[-1] == prompt  # JSON-escaped on the wire, exact after decoding
    live.healthy()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /_emulator/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n",
        b"GET /_emulator/health HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-%d: y\r\n" % i for i in range(20_000))
        + b"\r\n",
        b"GET /" + b"a" * 200_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["one-huge-header", "20000-headers", "huge-request-line"],
)
def test_huge_headers_get_431_and_a_closed_connection(live: Live, request_bytes: bytes) -> None:
    assert len(request_bytes) > MAX_HEADER_BYTES
    reply = raw(live, request_bytes)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431"), reply[:200]
    envelope(431, json.loads(body), 431)
    live.healthy()


def test_headers_just_under_the_limit_are_served(live: Live) -> None:
    r = httpx.get(live.url + "/_emulator/health", headers={"X-Pad": "a" * 30_000}, timeout=5)
    assert r.status_code == 200


def test_slow_loris_clients_are_dropped_and_do_not_block_others(live: Live) -> None:
    slow: list[socket.socket] = []
    for _ in range(64):
        s = socket.create_connection(("127.0.0.1", live.port), timeout=5)
        s.sendall(b"GET /_emulator/health HTTP/1.1\r\nHost: x\r\n")  # never finishes
        slow.append(s)
    idle = socket.create_connection(("127.0.0.1", live.port), timeout=5)  # sends nothing
    slow.append(idle)
    try:
        started = time.monotonic()
        for _ in range(5):  # others are served promptly meanwhile
            live.healthy()
        assert time.monotonic() - started < 2
        for s in slow[:8]:  # trickling one byte at a time does not extend the deadline
            s.sendall(b"X")
        time.sleep(HEADER_TIMEOUT_S + 0.5)
        for s in slow:
            s.settimeout(2)
            with contextlib.suppress(ConnectionResetError):  # a reset is a close too
                assert s.recv(100) == b""  # closed by the server
    finally:
        for s in slow:
            s.close()
    live.healthy()


def test_a_body_that_stops_arriving_is_cut_off_and_journaled(live: Live) -> None:
    httpx.delete(live.url + "/_emulator/requests", timeout=5)
    head = (
        b"POST /api/v1/images/generations HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer aio_hostile\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", live.port), timeout=5) as s:
        s.sendall(head + b'{"model": "cog')  # 14 of the 100 bytes it promised
        time.sleep(HEADER_TIMEOUT_S * 0.5)
        s.sendall(b"view-4")  # trickling does not extend the deadline
        s.settimeout(HEADER_TIMEOUT_S * 3)
        with contextlib.suppress(ConnectionResetError):
            assert s.recv(100) == b""  # closed by the server, no answer
    time.sleep(0.2)
    entries = httpx.get(live.url + "/_emulator/requests", timeout=5).json()["requests"]
    assert [(e["path"], e["status"]) for e in entries] == [("/api/v1/images/generations", 499)]
    assert httpx.get(live.url + "/_emulator/health", timeout=5).json()["status"] == "ok"


def test_a_body_that_arrives_in_pieces_in_time_is_served(live: Live) -> None:
    body = json.dumps({"model": "cogview-4", "prompt": "a fox in the snow"}).encode()
    head = (
        b"POST /api/v1/images/generations HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer aio_hostile\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    with socket.create_connection(("127.0.0.1", live.port), timeout=5) as s:
        s.sendall(head + body[:10])
        time.sleep(HEADER_TIMEOUT_S * 0.3)
        s.sendall(body[10:])
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]


def test_a_keep_alive_connection_is_not_cut_while_it_keeps_sending_requests(live: Live) -> None:
    with httpx.Client(base_url=live.url, timeout=5) as c:
        for _ in range(3):
            assert c.get("/_emulator/health").status_code == 200
            time.sleep(HEADER_TIMEOUT_S * 0.6)


# -- scenarios over HTTP ------------------------------------------------------------------------


def put_yaml(live: Live, text: str) -> httpx.Response:
    return httpx.put(
        live.url + "/_emulator/scenario",
        content=text.encode(),
        headers={"Content-Type": "application/yaml"},
        timeout=10,
    )


def test_a_yaml_scenario_body_past_the_limit_is_refused_before_it_is_read(live: Live) -> None:
    """413 for a YAML body past 64 KiB, whether it says its length or streams in chunks (it
    was read whole into memory, then refused)."""

    def chunks() -> Iterator[bytes]:
        for _ in range(64):  # 4 MiB in all, of which at most the limit and a chunk are read
            yield b"# " + b"x" * (64 * 1024 - 3) + b"\n"

    for content in (b"#" * (64 * 1024 + 1), chunks()):
        r = httpx.put(live.url + "/_emulator/scenario", content=content,
                      headers={"Content-Type": "application/yaml"}, timeout=10)  # fmt: skip
        assert r.status_code == 413, r.text
        assert r.json()["error"]["type"] == "request_too_large"
    assert httpx.get(live.url + "/_emulator/health").status_code == 200


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        pytest.param(
            'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
            "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
            "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
            "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
            "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
            "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
            "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
            "name: bomb\n",
            "alias bomb",
            id="billion-laughs",
        ),
        pytest.param(
            "name: !!python/object/apply:os.system ['touch /tmp/pwned']\n",
            "is not allowed",
            id="python-object-apply",
        ),
        pytest.param(
            "name: x\nrules: !!python/object:builtins.dict {}\n",
            "is not allowed",
            id="python-object",
        ),
        pytest.param("name: !!binary aGVsbG8=\n", "is not allowed", id="binary-tag"),
        pytest.param("name: x\n  bad: [unclosed\n", "not valid YAML", id="broken"),
    ],
)
def test_yaml_bombs_and_python_tags_are_rejected_over_http(
    live: Live, text: str, needle: str
) -> None:
    started = time.monotonic()
    r = put_yaml(live, text)
    assert time.monotonic() - started < 5
    message = envelope(r.status_code, r.json(), 400)
    assert needle in message
    live.healthy()


@pytest.mark.parametrize(
    "regex",
    [r"(a+)+$", r"(a*)*b", r"(.*)*x", r"(x+x+)+y", r"(\w+\s?)+$", r"(a|a)*b", r"a.*b.*c$"],
)
def test_catastrophic_regexes_match_in_bounded_time_over_http(live: Live, regex: str) -> None:
    """Scenario regexes run on RE2 (linear time): patterns that backtrack exponentially in
    Python's re are accepted and still answer at once on the longest prompt."""
    text = (
        f"name: redos\nrules:\n  - match: {{prompt_regex: '{regex}'}}\n    error: {{status: 503}}\n"
    )
    assert put_yaml(live, text).status_code == 200
    prompt = "a" * 2500 + "b" * 2499 + "!"
    started = time.monotonic()
    r = httpx.post(
        live.url + "/api/v1/images/generations",
        json={"model": "flux-2", "prompt": prompt},
        headers={"Authorization": "Bearer aio_hostile"},
        timeout=10,
    )
    assert time.monotonic() - started < 1.0
    assert r.status_code in (200, 503)
    httpx.put(live.url + "/_emulator/scenario", json={"scenario": "default"})
    live.healthy()


# -- the control token ---------------------------------------------------------------------------


def test_with_a_control_token_every_control_call_needs_it() -> None:
    server = Live(control_token="s3cret-token")
    try:
        with httpx.Client(base_url=server.url, timeout=5) as c:
            for path in ("/_emulator/health", "/_emulator/", "/_emulator", "/_emulator/tasks"):
                r = c.get(path)
                envelope(r.status_code, r.json(), 401)
            r = c.post("/_emulator/reset")
            assert r.status_code == 401
            r = c.get("/_emulator/health", headers={"Authorization": "Bearer wrong-token"})
            assert r.status_code == 401
            r = c.get("/_emulator/health", headers={"X-Emulator-Token": "s3cret-token"})
            assert r.status_code == 200
            r = c.get("/_emulator/health", headers={"Authorization": "Bearer s3cret-token"})
            assert r.status_code == 200
            # the emulated API is unaffected
            r = c.post(
                "/api/v1/images/generations",
                json={"model": "cogview-4", "prompt": "a fox"},
                headers=AUTH,
            )
            assert r.status_code == 200
    finally:
        server.stop()


def test_without_a_token_the_control_api_is_open_on_loopback(live: Live) -> None:
    assert httpx.get(live.url + "/_emulator/health").status_code == 200


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emulator", "serve", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1"])
def test_binding_beyond_loopback_without_a_token_is_refused(host: str) -> None:
    done = _serve("--host", host)
    assert done.returncode == 2
    assert "--control-token" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("source", ["flag", "file", "environment"])
def test_binding_beyond_loopback_with_a_token_starts(source: str, tmp_path: Path) -> None:
    """The token on the command line, in a file (out of the process list) or in the
    environment."""
    secret = tmp_path / "token"
    secret.write_text("s3cret-token\n")
    given = {
        "flag": ["--control-token", "s3cret-token"],
        "file": ["--control-token-file", str(secret)],
        "environment": [],
    }[source]
    env = {**os.environ, "AIO_EMULATOR_CONTROL_TOKEN_FILE": str(secret)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve", "--port", "0", "--host", "0.0.0.0", *given],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env if source == "environment" else None,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        port = re.search(r":(\d+) ", line).group(1)  # type: ignore[union-attr]
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(url + "/_emulator/health").status_code == 401
        ok = httpx.get(url + "/_emulator/health", headers={"X-Emulator-Token": "s3cret-token"})
        assert ok.status_code == 200
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert proc.returncode == 0


def test_an_empty_or_missing_token_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    for path in (empty, tmp_path / "missing"):
        done = subprocess.run(
            [sys.executable, "-m", "emulator", "serve", "--port", "0", "--control-token-file",
             str(path)],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert f"control token file {path}" in done.stderr


# -- hostile values in bodies (issue 15) --------------------------------------------------------


def _post_raw(c: httpx.Client, raw: bytes) -> httpx.Response:
    return c.post(
        "/api/v1/images/generations",
        content=raw,
        headers={**AUTH, "Content-Type": "application/json"},
    )


def test_a_5000_digit_integer_is_a_400_and_the_connection_stays_open(live: Live) -> None:
    with httpx.Client(base_url=live.url, timeout=5) as c:
        r = _post_raw(c, b'{"model": "cogview-4", "prompt": "a fox", "n": ' + b"9" * 5000 + b"}")
        assert "4300 digits" in envelope(r.status_code, r.json(), 400)
        assert r.headers.get("connection") != "close"
        assert _post_raw(c, b'{"model": "cogview-4", "prompt": "a fox"}').status_code == 200
    live.healthy()


def test_a_body_nested_1000_deep_is_refused_and_the_journal_stays_readable(live: Live) -> None:
    raw = b'{"model": "cogview-4", "prompt": "a fox", "x": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    with httpx.Client(base_url=live.url, timeout=5) as c:
        r = _post_raw(c, raw)
        assert "nested more than 32 levels" in envelope(r.status_code, r.json(), 400)
        journal = c.get("/_emulator/requests")
        assert journal.status_code == 200
        assert journal.json()["requests"][-1]["status"] == 400


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        pytest.param(
            "callback_url", "http://exa\r\nmple.com/hook", "control character", id="crlf-host"
        ),
        pytest.param("callback_url", "http://example.com:99999/hook", "port", id="port-99999"),
        pytest.param("callback_url", "http://example.com:0/hook", "port", id="port-0"),
        pytest.param(
            "callback_url", "http://user:pass@example.com/", "credentials", id="credentials"
        ),
        pytest.param("callback_url", None, "expected a URL string, got null", id="null"),
        pytest.param("callback_url", "http:///hook", "no host", id="no-host"),
        pytest.param("image_urls", ["http://"], "no host", id="image-url-without-host"),
    ],
)
def test_bad_urls_are_refused_at_input_naming_the_field(
    live: Live, field: str, value: Any, needle: str
) -> None:
    body = {"model": "grok-imagine/text-to-image", "prompt": "a fox", field: value}
    if field == "image_urls":
        body["model"] = "seedream/4.5-edit"
    r = httpx.post(live.url + "/api/v1/images/generations", json=body, headers=AUTH)
    message = envelope(r.status_code, r.json(), 400)
    assert message.startswith(field) and needle in message, message
    assert "pass@" not in message
    kept = httpx.get(live.url + "/_emulator/requests").json()["requests"][-1]["body"]
    assert "pass@" not in json.dumps(kept)  # the journal (and the dashboard) keep no secret


def test_a_malformed_body_keeps_no_credentials_in_the_journal(live: Live) -> None:
    raw = b'{"model": "cogview-4", "callback_url": "https:\\/\\/u:secret@x.test/h", '
    with httpx.Client(base_url=live.url, timeout=5) as c:
        assert _post_raw(c, raw).status_code == 400
        kept = c.get("/_emulator/requests").json()["requests"][-1]["body"]
    assert "secret" not in json.dumps(kept) and "***@x.test" in json.dumps(kept)


# -- bounded resources (issue 15) ---------------------------------------------------------------


def test_headers_over_the_limit_in_a_single_read_get_431() -> None:
    """All 118 KB of headers in one read of the server (no chance to count them piecewise)."""
    server = Live()
    try:
        head = b"GET /_emulator/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 118_000
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(head + b"\r\n\r\n")
            reply = b""
            with contextlib.suppress(OSError):
                while chunk := s.recv(65536):
                    reply += chunk
        assert reply.startswith(b"HTTP/1.1 431"), reply[:100]
        envelope(431, json.loads(reply.partition(b"\r\n\r\n")[2]), 431)
        server.healthy()
    finally:
        server.stop()


def _request(path: bytes) -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer aio_hostile\r\n\r\n"


def answers(raw: bytes) -> list[tuple[int, bytes]]:
    """The responses a connection sent (``raw``, read until it closed): (status, body) each."""
    found = []
    while raw:
        head, sep, raw = raw.partition(b"\r\n\r\n")
        assert sep, head[:200]
        lines = head.split(b"\r\n")
        fields = dict(line.lower().split(b": ", 1) for line in lines[1:])
        length = int(fields[b"content-length"])
        found.append((int(lines[0].split()[1]), raw[:length]))
        raw = raw[length:]
    return found


def test_a_pipelined_request_over_the_header_limit_gets_431_after_the_one_before_it(
    live: Live,
) -> None:
    """Both requests in one send, so usually in one read of the server."""
    big = (
        b"GET /_emulator/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
        + b"a" * 70_000
        + b"\r\n\r\n"
    )
    replies = answers(raw(live, _request(b"/api/v1/tasks/nope") + big))
    assert [status for status, _ in replies] == [404, 431]
    envelope(431, json.loads(replies[1][1]), 431)
    live.healthy()


def test_pipelined_requests_under_the_header_limit_are_all_served(live: Live) -> None:
    padded = (
        b"GET /_emulator/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: "
        + b"a" * 60_000
        + b"\r\n\r\n"
    )
    last = b"GET /_emulator/clock HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    replies = answers(raw(live, _request(b"/api/v1/tasks/nope") + padded * 3 + last))
    assert [status for status, _ in replies] == [404, 200, 200, 200, 200]
    assert json.loads(replies[-1][1])["mode"] == "virtual"


def test_headers_over_the_limit_behind_a_request_in_flight_get_431_after_its_answer() -> None:
    """The second request's headers arrive while the first is still being answered (1.5 s of
    scripted latency): they are held to the limit too, and answered in turn."""
    server = Live()
    try:
        slow = "name: slow polls\nrules:\n  - match: {endpoint: task}\n    latency: 1500\n"
        assert put_yaml(server, slow).status_code == 200
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(_request(b"/api/v1/tasks/nope"))
            time.sleep(0.2)  # the first is being answered
            with contextlib.suppress(OSError):
                s.sendall(b"GET /_emulator/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                for _ in range(25):  # 200 KB of headers, in pieces
                    s.sendall(b"X-Big: " + b"a" * 8000 + b"\r\n")
                s.sendall(b"\r\n")
            reply = b""
            with contextlib.suppress(OSError):
                while chunk := s.recv(65536):
                    reply += chunk
        replies = answers(reply)
        assert [status for status, _ in replies] == [404, 431]
        envelope(431, json.loads(replies[1][1]), 431)
        server.healthy()
    finally:
        server.stop()


def test_a_pipelined_request_answered_after_the_header_deadline_is_not_cut_off() -> None:
    """The second request is already read when the first is answered; it takes longer than
    the header deadline (1 s here) to answer, and must still be answered."""
    server = Live()
    try:
        slow = "name: slow polls\nrules:\n  - match: {endpoint: task}\n    latency: 1500\n"
        assert put_yaml(server, slow).status_code == 200
        second = _request(b"/api/v1/tasks/nope")[:-2] + b"Connection: close\r\n\r\n"
        reply = raw(server, _request(b"/api/v1/tasks/nope") + second, timeout=10)
        assert [status for status, _ in answers(reply)] == [404, 404]
    finally:
        server.stop()


class FakeTransport(asyncio.Transport):
    """What the protocol writes, and whether it paused reading or closed."""

    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.closed = self.paused = False

    def write(self, data: Any) -> None:
        self.out += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name)


def fed(reads: list[bytes]) -> bytes:
    """What the server's protocol answers to these reads of one connection, each handed to it
    as one read (once it reads again, as a socket would), until it closes the connection."""
    from uvicorn.server import ServerState

    async def run() -> bytes:
        config = uvicorn_config(create_app(Config(seed=1, clock="virtual")))
        config.load()
        protocol = config.http_protocol_class(
            config=config, server_state=ServerState(), app_state={}
        )
        transport = FakeTransport()
        protocol.connection_made(transport)
        for data in reads:
            for _ in range(500):
                if not transport.paused or transport.closed:
                    break
                await asyncio.sleep(0.01)
            if transport.closed:
                break
            protocol.data_received(data)
            await asyncio.sleep(0)
        for _ in range(500):
            if transport.closed:
                break
            await asyncio.sleep(0.01)
        protocol.connection_lost(None)
        return bytes(transport.out)

    return asyncio.run(run())


def _sized(size: int) -> bytes:
    """A request whose request line and headers are exactly ``size`` bytes."""
    head = b"GET /api/v1/tasks/nope HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer aio_hostile\r\n"
    pad = size - len(head) - len(b"X-Pad: \r\n\r\n")
    return head + b"X-Pad: " + b"a" * pad + b"\r\n\r\n"


@pytest.mark.parametrize("size", [MAX_HEADER_BYTES, MAX_HEADER_BYTES + 1])
@pytest.mark.parametrize(
    "split", ["one-read", "after-the-first", "inside-the-second", "4096-byte-reads"]
)
def test_the_header_limit_holds_to_the_byte_for_a_pipelined_request_however_it_is_read(
    size: int, split: str
) -> None:
    first = _request(b"/api/v1/tasks/nope")
    data = first + _sized(size)
    cut = {"after-the-first": len(first), "inside-the-second": len(first) + 30_000}
    if split == "one-read":
        reads = [data]
    elif split == "4096-byte-reads":
        reads = [data[i : i + 4096] for i in range(0, len(data), 4096)]
    else:
        reads = [data[: cut[split]], data[cut[split] :]]
    last = _request(b"/api/v1/tasks/last")[:-2] + b"Connection: close\r\n\r\n"
    replies = answers(fed([*reads, last]))
    if size <= MAX_HEADER_BYTES:
        assert [status for status, _ in replies] == [404, 404, 404]
    else:
        assert [status for status, _ in replies] == [404, 431]
        envelope(431, json.loads(replies[1][1]), 431)


def test_connections_beyond_the_limit_get_503_in_the_envelope_but_health_is_served() -> None:
    server = Live(max_connections=3)
    held = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(3)]
    try:
        time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as extra:
            extra.sendall(_request(b"/api/v1/tasks/abc"))
            reply = extra.recv(65536)
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503"), reply[:200]
        assert b"\r\nretry-after: 1" in head.lower()
        message = envelope(503, json.loads(body), 503)
        assert "at most 3" in message and json.loads(body)["error"]["type"] == "service_unavailable"
        server.healthy()  # a health probe is served even beyond the limit
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.1)
    r = httpx.get(server.url + "/api/v1/tasks/abc", headers=AUTH, timeout=5)
    assert r.status_code == 404  # below the limit again
    server.stop()


def test_a_client_that_never_reads_its_answers_is_dropped() -> None:
    server = Live(write_timeout_s=0.5, header_timeout_s=30)
    try:
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=5) as c:
            body = {"model": "cogview-4", "prompt": "a big picture", "size": "1440*720"}
            task_id = c.post("/api/v1/images/generations", json=body).json()["data"]["task_id"]
            c.post("/_emulator/clock/advance", json={"seconds": 60})
            url = c.get(f"/api/v1/tasks/{task_id}").json()["data"]["output"]["image_url"]
            size = len(c.get(url).content)
        path = httpx.URL(url).raw_path
        count = 40_000_000 // size + 1  # far more than any socket buffers
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", server.port))
        with contextlib.suppress(OSError):
            sock.sendall(_request(path) * count)  # pipelined, never read
        time.sleep(1.5)
        received = 0
        started = time.monotonic()
        with sock, contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(1 << 20):  # ends: the server has closed it
                received += len(chunk)
        assert time.monotonic() - started < 5
        assert received < count * size
        server.healthy()
    finally:
        server.stop()


# -- scenario files are read off the event loop (issue 15) ----------------------------------------


class Gate:
    """Holds the parse of every scenario YAML that contains ``gated`` until :attr:`release` is
    set: a file as slow to read as the test needs, whatever the machine."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        compose = yaml.compose

        def gated(stream: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(stream, str) and "gated" in stream:
                self.started.set()
                self.release.wait(30)
            return compose(stream, *args, **kwargs)

        monkeypatch.setattr(yaml, "compose", gated)


def big_scenario(name: str, status: int, size: int) -> str:
    """A valid scenario of about ``size`` bytes: every create answers ``status``, then rules
    that never match."""
    text = (
        f"name: {name}\nrules:\n  - match: {{endpoint: create}}\n    error: {{status: {status}}}\n"
    )
    i = 0
    while len(text) < size - 200:
        text += (
            f"  - name: padding rule {i} that never matches, only there to make the file big\n"
            f"    match: {{endpoint: create, prompt_contains: 'needle {i} nobody sends'}}\n"
            f"    error: {{status: 500, message: 'padding {i}'}}\n"
        )
        i += 1
    return text


def in_thread(call: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``call`` in a thread; its result lands in the dict under "result"."""
    out: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: out.setdefault("result", call()), daemon=True)
    thread.start()
    return thread, out


@pytest.mark.parametrize("how", ["hot-reload", "put-path", "put-yaml", "reset"])
def test_a_big_scenario_being_read_holds_up_no_other_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    import emulator.selection

    # a hot reload checks the file at every request; the other cases never check it
    monkeypatch.setattr(emulator.selection, "RELOAD_CHECK_S", 0.0 if how == "hot-reload" else 1e9)
    start = tmp_path / "start.yaml"
    start.write_text("name: small\n")
    server = Live(scenario=str(start))
    gate = Gate(monkeypatch)
    url = server.url
    big = big_scenario("gated big", 503, 60_000 if how == "put-yaml" else 250_000)
    if how in ("hot-reload", "reset"):
        start.write_text(big)
        os.utime(start, (time.time() - 5, time.time() - 5))  # changed, and stable
    body = {"model": "cogview-4", "prompt": "a fox"}
    triggers = {
        "hot-reload": lambda: httpx.post(
            url + "/api/v1/images/generations", json=body, headers=AUTH, timeout=30
        ),
        "put-path": lambda: httpx.put(
            url + "/_emulator/scenario", json={"scenario": str(tmp_path / "big.yaml")}, timeout=30
        ),
        "put-yaml": lambda: httpx.put(
            url + "/_emulator/scenario",
            content=big.encode(),
            headers={"Content-Type": "application/yaml"},
            timeout=30,
        ),
        "reset": lambda: httpx.post(url + "/_emulator/reset", timeout=30),
    }
    (tmp_path / "big.yaml").write_text(big)
    try:
        thread, out = in_thread(triggers[how])
        assert gate.started.wait(10), "the scenario was never read"
        # the file is being read now: other requests are answered meanwhile
        assert httpx.get(url + "/_emulator/health", timeout=5).status_code == 200
        assert httpx.get(url + "/api/v1/tasks/nope", headers=AUTH, timeout=5).status_code == 404
        assert thread.is_alive()  # answered before the read ended
        gate.release.set()
        thread.join(30)
        expected = 503 if how == "hot-reload" else 200  # the new scenario answers at once
        assert out["result"].status_code == expected, out["result"].text
        assert httpx.get(url + "/_emulator/scenario").json()["name"] == "gated big"
    finally:
        gate.release.set()
        server.stop()


def test_a_switch_asked_for_earlier_never_replaces_a_later_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = Live()
    gate = Gate(monkeypatch)
    slow = tmp_path / "slow.yaml"
    slow.write_text(big_scenario("gated slow", 500, 100_000))
    url = server.url + "/_emulator/scenario"
    try:
        thread, out = in_thread(lambda: httpx.put(url, json={"scenario": str(slow)}, timeout=30))
        assert gate.started.wait(10)
        later = httpx.put(url, json={"scenario": "outage"}, timeout=5)
        assert later.status_code == 200 and later.json()["name"] == "outage"
        gate.release.set()
        thread.join(30)
        message = envelope(out["result"].status_code, out["result"].json(), 409)
        assert "asked for after this one" in message
        assert httpx.get(url).json()["name"] == "outage"
    finally:
        gate.release.set()
        server.stop()


def test_a_hot_reload_read_while_the_scenario_is_switched_is_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import emulator.selection

    monkeypatch.setattr(emulator.selection, "RELOAD_CHECK_S", 0.0)
    path = tmp_path / "s.yaml"
    path.write_text("name: first\n")
    server = Live(scenario=str(path))
    gate = Gate(monkeypatch)
    path.write_text(big_scenario("gated edit", 503, 50_000))
    os.utime(path, (time.time() - 5, time.time() - 5))
    url = server.url
    try:
        thread, out = in_thread(
            lambda: httpx.get(url + "/api/v1/tasks/nope", headers=AUTH, timeout=30)
        )
        assert gate.started.wait(10)
        switched = httpx.put(url + "/_emulator/scenario", json={"scenario": "instant"}, timeout=5)
        assert switched.status_code == 200
        gate.release.set()
        thread.join(30)
        assert out["result"].status_code == 404
        scenario = httpx.get(url + "/_emulator/scenario").json()
        assert scenario["name"] == "instant" and scenario["reload_error"] is None
    finally:
        gate.release.set()
        server.stop()
