"""What an open dashboard costs the emulator, measured (not a test; takes about two minutes).

    .venv/bin/python -m tests.e2e.cost

1. Server time of one feed poll, calling the handler in-process: a quiet poll, one watching 50
   running tasks, and a full snapshot with 10,000 tasks and journal entries (the defaults).
2. CPU time of a real server process (``aio-emulator serve``, pinned to CPU 0; wrk, Chromium
   and this script on CPU 1), read from /proc, so other load on the machine barely moves it:
   idle for 10 s after a reset with no page open and with the dashboard open (polling at its
   default 1 s), then under create load (wrk, 1 thread, 16 connections, 5 s) as CPU ms per 1,000 creates,
   with and without the page. Rounds alternate.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from starlette.requests import Request

from emulator import dashboard
from emulator.app import create_app
from emulator.config import Config

from .browser import chromium

ROOT = Path(__file__).resolve().parents[2]
LUA = """wrk.method = "POST"
wrk.body = '{"model": "cogview-4", "prompt": "a red fox in the snow"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer aio_load"
"""
TICK = os.sysconf("SC_CLK_TCK")


def feed_times() -> dict[str, float]:
    """Milliseconds per call of the feed handler (no HTTP), median of 5 batches."""
    app = create_app(Config(seed=1, clock="virtual", default_credits=10**12))
    emulator = app.state.emulator
    from emulator.validation import validate_create

    request = validate_create({"model": "cogview-4", "prompt": "a red fox"}, emulator.catalogue)
    for n in range(10_000):
        task = emulator.create_task("aio_load", request)
        emulator.journal.record(
            {"method": "POST", "path": "/api/v1/images/generations", "query": "",
             "key": "aio_load", "status": 200, "task_id": task.id, "latency_ms": 0.3,
             "time": "2026-01-01T00:00:00Z", "n": n}
        )  # fmt: skip
    loop = asyncio.new_event_loop()

    def call(query: str) -> bytes:
        scope = {"type": "http", "method": "GET", "path": "/_emulator/ui/feed", "app": app,
                 "query_string": query.encode(), "headers": []}  # fmt: skip
        return loop.run_until_complete(dashboard.feed(Request(scope))).body

    def ms(query: str, n: int) -> float:
        batches = []
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(n):
                call(query)
            batches.append((time.perf_counter() - started) / n * 1000)
        return statistics.median(batches)

    snap: dict[str, Any] = json.loads(call(""))
    cursor = f"since={snap['seq']}&first={snap['first']}"
    watch = ",".join(t["id"] for t in snap["tasks"][:50])
    return {
        "quiet poll": ms(cursor, 2000),
        "poll watching 50 running tasks": ms(f"{cursor}&watch={watch}", 200),
        "full snapshot (200 newest of 10k tasks)": ms("", 50),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def wrk(url: str, script: str, seconds: int = 5) -> int:
    pin = ["taskset", "-c", "1"] if shutil.which("taskset") else []
    out = subprocess.run(
        [*pin, "wrk", "-t1", "-c16", f"-d{seconds}s", "-s", script, url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]


def server_cpu(rounds: int = 3) -> dict[str, list[float]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    server = subprocess.Popen(
        [*pin, str(ROOT / ".venv/bin/aio-emulator"), "serve", "--port", str(port), "--seed", "1",
         "--default-credits", str(10**12)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {1})  # this script and Chromium (its child) stay off CPU 0
    out: dict[str, list[float]] = {k: [] for k in ("idle", "idle+page", "load", "load+page")}
    try:
        time.sleep(1.5)
        create = url + "/api/v1/images/generations"
        with tempfile.NamedTemporaryFile("w", suffix=".lua") as script, chromium() as browser:
            script.write(LUA)
            script.flush()
            wrk(create, script.name, 2)  # warm-up
            for _ in range(rounds):
                for page_open in (False, True):
                    page = None
                    if page_open:  # opened before the reset: it must notice the reset
                        page = browser.new_page()
                        page.goto(url + "/_emulator/")
                        page.wait_for_selector("#live.ok")
                    suffix = "+page" if page_open else ""
                    reset = urllib.request.Request(url + "/_emulator/reset", method="POST")
                    urllib.request.urlopen(reset).close()  # idle: polling only, no thumbnails
                    before = cpu_s(server.pid)
                    time.sleep(10)
                    out["idle" + suffix].append((cpu_s(server.pid) - before) * 1000 / 10)
                    before = cpu_s(server.pid)
                    done = wrk(create, script.name)
                    out["load" + suffix].append((cpu_s(server.pid) - before) * 1e6 / done)
                    if page is not None:
                        page.close()
    finally:
        server.terminate()
        server.wait(10)
    return out


def main() -> None:
    for name, ms in feed_times().items():
        print(f"feed handler, {name:42} {ms:7.3f} ms")
    cpu = server_cpu()
    med = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"server CPU idle, no page:        {med['idle']:6.1f} ms/s   {cpu['idle']}")
    print(f"server CPU idle, dashboard open: {med['idle+page']:6.1f} ms/s   {cpu['idle+page']}")
    print(f"server CPU per 1000 creates, no page:        {med['load']:6.0f} ms   {cpu['load']}")
    print(f"server CPU per 1000 creates, dashboard open: {med['load+page']:6.0f} ms   "
          f"{cpu['load+page']}")  # fmt: skip


if __name__ == "__main__":
    main()
