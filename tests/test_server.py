"""The emulator on a real uvicorn socket, and the command line that starts it."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from emulator.app import create_app
from emulator.config import Config
from emulator.server import LiveServer

AUTH = {"Authorization": "Bearer aio_live"}


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    app = create_app(Config(seed=5, clock="virtual", max_body_bytes=10_000))
    with LiveServer(app) as server:
        yield server


def test_full_cycle_over_a_real_socket(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url, headers=AUTH) as c:
        r = c.post(
            "/api/v1/images/generations",
            json={"model": "cogview-4", "prompt": "a robot", "size": "720*1440"},
        )
        assert r.status_code == 200
        task_id = r.json()["data"]["task_id"]
        c.post("/_emulator/clock/advance", json={"seconds": 30})
        data = c.get(f"/api/v1/tasks/{task_id}").json()["data"]
        assert data["status"] == "completed"
        assert data["output"]["image_url"].startswith(live.url + "/files/")
        png = c.get(data["output"]["image_url"])
        assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
        head = c.head(data["output"]["image_url"])
        assert head.headers["content-length"] == str(len(png.content))
        assert head.content == b""


def _raw(live: LiveServer, data: bytes, then: bytes = b"") -> bytes:
    with socket.create_connection((live.host, live.port), timeout=5) as s:
        s.sendall(data)
        s.settimeout(5)
        reply = s.recv(65536)
        if then:
            with contextlib.suppress(OSError):
                s.sendall(then)
        return reply


def test_huge_content_length_is_refused_before_the_body_is_sent(live: LiveServer) -> None:
    head = (
        b"POST /api/v1/images/generations HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer aio_live\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000000000\r\n\r\n"
    )
    reply = _raw(live, head)
    assert reply.startswith(b"HTTP/1.1 413")
    assert b'"type":"request_too_large"' in reply


def test_chunked_body_over_the_limit_is_cut_off(live: LiveServer) -> None:
    head = (
        b"POST /api/v1/images/generations HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer aio_live\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n%s\r\n" % (6000, b" " * 6000)
    reply = _raw(live, head + chunk + chunk)  # 12,000 bytes > 10,000, never terminated
    assert reply.startswith(b"HTTP/1.1 413")


def test_garbage_on_the_wire_does_not_stop_the_server(live: LiveServer) -> None:
    _raw(live, b"\x00\x01 NOT HTTP \r\n\r\n")
    _raw(live, b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    r = httpx.get(live.url + "/_emulator/health")
    assert r.status_code == 200


def _start_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_cli_prints_where_it_listens_and_serves() -> None:
    proc = _start_cli("--seed", "3", "--clock", "virtual")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+) ", line)
        assert match, line
        assert "seed: 3" in line and "clock: virtual" in line and "Ctrl+C" in line
        health = httpx.get(match.group(1) + "/_emulator/health").json()
        assert health["seed"] == 3 and health["clock"]["mode"] == "virtual"
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "stopped" in out


def test_cli_stops_cleanly_on_sigterm() -> None:
    proc = _start_cli()
    assert proc.stdout is not None
    assert "listening on" in proc.stdout.readline()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=10)
    assert proc.returncode == 0


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        pytest.param(["--clock", "sometimes"], {}, "invalid choice", id="bad-clock"),
        pytest.param([], {"AIO_EMULATOR_SEED": "abc"}, "AIO_EMULATOR_SEED", id="bad-env"),
        pytest.param(["--key", "sk_nope"], {}, "must start with 'aio_'", id="bad-key"),
        pytest.param(["--public-url", "example.org"], {}, "public_url", id="bad-url"),
    ],
)
def test_cli_rejects_bad_settings_with_a_message_not_a_traceback(args, env, needle) -> None:
    proc = _start_cli(*args, env=env)
    _out, err = proc.communicate(timeout=10)
    assert proc.returncode == 2
    assert needle in err
    assert "Traceback" not in err


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emulator", *args], capture_output=True, text=True, timeout=30
    )


def test_validate_reports_every_problem_and_exits_non_zero(tmp_path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("name: good\nrules:\n  - match: {nth: 1}\n    error: {status: 429}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nrules:\n  - match: {endpoint: creat}\n    fault: melt\n")
    done = _cli("validate", str(good), str(bad))
    assert done.returncode == 1
    assert f"{good}: ok (good, 1 rules)" in done.stdout
    assert done.stderr.splitlines() == [
        f"{bad}:3: rules[0].match.endpoint: 'creat' is not one of: create, task, image, chat, any",
        f"{bad}:4: rules[0].fault: 'melt' is not one of: reset, hang, close_mid_body, "
        "malformed_json, truncated_json, dribble",
    ]
    assert _cli("validate", str(good)).returncode == 0


def test_serve_with_a_bad_scenario_fails_with_the_same_message(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nrules:\n  - match: {probability: 2}\n    fault: reset\n")
    proc = _start_cli("--scenario", str(bad))
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 2
    assert f"{bad}:3: rules[0].match.probability: 2 is out of range (allowed: 0 to 1)" in err
    assert "Traceback" not in err


def test_scenarios_and_schema_commands() -> None:
    listed = _cli("scenarios").stdout
    assert "rate-limited" in listed and "Per-key token buckets" in listed
    import json

    schema = json.loads(_cli("schema").stdout)
    assert schema["title"] == "API in One emulator scenario"


def test_serve_names_the_scenario_in_the_startup_line() -> None:
    proc = _start_cli("--scenario", "outage")
    try:
        assert proc.stdout is not None
        assert "(scenario: outage," in proc.stdout.readline()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)


def test_housekeeping_settles_ended_tasks_in_small_steps() -> None:
    import asyncio

    from emulator.housekeeping import HOUSEKEEPING_BATCH, housekeeping
    from emulator.service import Emulator

    emulator = Emulator(Config(seed=1, clock="virtual"))
    request = emulator.validate({"model": "cogview-4", "prompt": "a fox"})
    for _ in range(1000):
        emulator.create_task("aio_a", request)
    emulator.clock.advance(60)
    limits: list[int | None] = []
    settle = emulator.tasks.settle

    def spy(now: float | None = None, limit: int | None = None) -> bool:
        limits.append(limit)
        return settle(now, limit)

    emulator.tasks.settle = spy  # type: ignore[method-assign]

    async def run() -> None:
        task = asyncio.create_task(housekeeping(emulator))
        await asyncio.sleep(0.3)
        task.cancel()

    asyncio.run(run())
    account = emulator.ledger.account("aio_a")
    assert (account.reserved, account.spent) == (0, 4000)  # every task settled, none by a request
    assert set(limits) == {HOUSEKEEPING_BATCH}
    assert len(limits) >= 1000 // HOUSEKEEPING_BATCH + 1  # in steps, the loop free between them


def test_the_serving_process_collects_garbage_on_a_schedule(monkeypatch) -> None:
    import emulator.garbage as server

    collected: list[int] = []
    monkeypatch.setattr(server.gc, "collect", collected.append)
    for step in range(1, 2 * server.FULL_COLLECTION_EVERY + 1):
        server.collect_young(step)
    # young and middle generations every step, everything once per full period
    assert collected.count(2) == 2 and collected[server.FULL_COLLECTION_EVERY - 1] == 2
    assert collected.count(1) == 2 * server.FULL_COLLECTION_EVERY - 2 and collected[0] == 1


def test_the_serving_process_hands_free_memory_back_after_a_wave_of_expiry(monkeypatch) -> None:
    import emulator.garbage as garbage

    assert isinstance(garbage.release_free_memory(), bool)  # (a no-op off glibc)
    released: list[int] = []
    monkeypatch.setattr(garbage, "release_free_memory", lambda: released.append(step) or True)
    memory = garbage.MemoryReturn()
    held = {step: 5000 for step in range(1, garbage.RELEASE_EVERY + 1)}  # a steady load
    shrink = garbage.RELEASE_AFTER_TASKS
    held |= {garbage.RELEASE_EVERY + 1: 5000 - shrink + 1, garbage.RELEASE_EVERY + 2: 5000 - shrink}
    held |= {garbage.RELEASE_EVERY + 3: 5000, garbage.RELEASE_EVERY + 4: 0}  # up again, all gone
    held |= {garbage.RELEASE_EVERY + 5: 10, garbage.RELEASE_EVERY + 6: 0}  # a few, gone again
    for step, tasks in held.items():
        memory.step(step, tasks)
    # once per period under a steady load, as soon as the store has shrunk by enough, and
    # whenever it empties
    periodic = garbage.RELEASE_EVERY
    assert released == [periodic, periodic + 2, periodic + 4, periodic + 6]


@pytest.mark.parametrize(
    ("argv", "env", "needle"),
    [
        pytest.param(["serve", "--port", "99999"], {}, "--port: '99999' is not a port", id="port"),
        pytest.param(
            ["serve", "--port", "-1"], {}, "--port: '-1' is not a port", id="negative-port"
        ),
        pytest.param(["serve"], {"AIO_EMULATOR_PORT": "70000"}, "port: 70000", id="env-port"),
        pytest.param(["serve", "--state-interval", "-1"], {}, "--state-interval", id="interval"),
        pytest.param(["serve", "--task-ttl", "nan"], {}, "--task-ttl: 'nan'", id="nan-ttl"),
        pytest.param(["serve"], {"AIO_EMULATOR_TASK_TTL_S": "nan"}, "task_ttl_s", id="env-nan-ttl"),
        pytest.param(["serve", "--max-tasks", "0"], {}, "--max-tasks: '0'", id="max-tasks"),
        pytest.param(["serve", "--seed", "abc"], {}, "--seed: invalid int value", id="seed"),
        pytest.param(
            ["serve", "--host", "no..such..host", "--control-token", "t" * 8],
            {},
            "--host no..such..host",
            id="host",
        ),
        pytest.param(["serve", "--scenario", "/no/such.yaml"], {}, "/no/such.yaml", id="scenario"),
        pytest.param(
            ["record", "--port", "99999", "--upstream", "http://x", "--out", "o"],
            {},
            "--port",
            id="record-port",
        ),
        pytest.param(
            ["verify", "--base-url", "x", "--api-key", "aio_a"],
            {},
            "--base-url: 'x'",
            id="verify-url",
        ),
        pytest.param(
            ["verify", "--base-url", "http://x", "--api-key", "aio_a", "--timeout", "-1"],
            {},
            "--timeout",
            id="verify-timeout",
        ),
        pytest.param(
            [
                "verify",
                "--base-url",
                "http://x",
                "--api-key",
                "aio_a",
                "--json",
                "/no/such/dir/r.json",
            ],
            {},
            "no folder",
            id="verify-json-path",
        ),
    ],
)
def test_every_bad_flag_value_is_one_line_and_exit_2(argv, env, needle) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "emulator", *argv],
        capture_output=True, text=True, timeout=30, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert needle in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_closed_pipe_ends_a_command_quietly() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "schema"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    with proc.stderr:
        proc.stdout.readline()
        proc.stdout.close()  # like `| head -1`
        err = proc.stderr.read().decode()
    proc.wait(timeout=30)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert err == ""


def test_serve_raises_the_soft_descriptor_limit_to_the_hard_one() -> None:
    import resource
    import shlex

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    expected = 1 << 20 if hard == resource.RLIM_INFINITY else hard
    if expected <= 256:
        pytest.skip(f"the hard limit ({hard}) leaves nothing to raise")
    command = shlex.join([sys.executable, "-m", "emulator", "serve", "--port", "0"])
    proc = subprocess.Popen(
        ["sh", "-c", f"ulimit -Sn 256 && exec {command}"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and "listening on" in proc.stdout.readline()
        with open(f"/proc/{proc.pid}/limits") as fh:
            line = next(x for x in fh if x.startswith("Max open files"))
        assert int(line.split()[3]) == expected
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
