"""Instructions per request, emulator vs the bare Starlette app, counted by callgrind.

Wall-clock figures on a shared 2-core machine move by 10-30% between runs; instruction counts
move by about 1%, so this is the instrument for judging a change to the hot path. Each
endpoint is called in one process, straight through the ASGI app (no sockets, no uvicorn: what
the server adds is the same for both apps), in a steady state: the store full, tasks ending at
the create rate. Per request = (count after N2 calls - count after N1 calls) / (N2 - N1), so
start-up and warm-up cancel out.

Usage: ``make count`` or ``python benchmarks/count.py [--endpoints create,poll,download]``
(needs valgrind; about 5 minutes for the three endpoints, 2 for one). Not part of
``make bench``: run it when changing the hot path.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from workloads import CHAT_BODY as CHAT_JSON
from workloads import CHAT_PATH, CREATE_BODY, CREATE_PATH, VIDEO_PATH
from workloads import VIDEO_BODY as VIDEO_JSON

BENCH_DIR = Path(__file__).resolve().parent
BODY = CREATE_BODY.encode()
HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"authorization", b"Bearer aio_bench"),
    (b"content-type", b"application/json"),
    (b"content-length", str(len(BODY)).encode()),
]
VIDEO_BODY = VIDEO_JSON.encode()
VIDEO_HEADERS = [*HEADERS[:3], (b"content-length", str(len(VIDEO_BODY)).encode())]
CHAT_BODY = CHAT_JSON.encode()
CHAT_HEADERS = [*HEADERS[:3], (b"content-length", str(len(CHAT_BODY)).encode())]
WARMUP, FEW, MANY = 4000, 1000, 3000
ENDPOINTS = ("create", "poll", "download")
#: also countable, not in the default run: ``--endpoints video-create,chat``
EXTRA_ENDPOINTS = ("video-create", "chat")


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }  # fmt: skip


async def _call(app: Any, scope: dict[str, Any], body: bytes = b"") -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(dict(scope), receive, send)
    return sent


async def _run(app_name: str, endpoint: str, calls: int) -> None:
    """The child process: warm up, then make ``calls`` calls of ``endpoint``."""
    sys.path.insert(0, str(BENCH_DIR))
    from bare_app import create_app as bare_app

    from emulator.app import create_app
    from emulator.config import Config

    emulator_app = create_app(Config(seed=1, clock="virtual", default_credits=10**12))
    emulator = emulator_app.state.emulator
    create = _scope("POST", CREATE_PATH, HEADERS)
    sent = await _call(emulator_app, create, BODY)
    task_id = json.loads(sent[1]["body"])["data"]["task_id"]
    emulator.clock.advance(60)
    image = f"/files/{task_id}/0.png"
    png = b"".join(m.get("body", b"") for m in await _call(emulator_app, _scope("GET", image, [])))
    app = bare_app(png) if app_name == "bare" else emulator_app
    scope, body, tick = {
        "create": (create, BODY, 0.002),  # ~500 creates per emulated second: tasks end as made
        "poll": (_scope("GET", f"/api/v1/tasks/{task_id}", HEADERS[:2]), b"", 0.0),
        "download": (_scope("GET", image, HEADERS[:1]), b"", 0.0),
        "video-create": (
            _scope("POST", VIDEO_PATH, VIDEO_HEADERS),
            VIDEO_BODY,
            0.002,
        ),
        "chat": (_scope("POST", CHAT_PATH, CHAT_HEADERS), CHAT_BODY, 0.0),
    }[endpoint]
    for _ in range(WARMUP):
        await _call(app, scope, body)
        emulator.clock.advance(tick)
    gc.collect()
    gc.freeze()
    for _ in range(calls):
        await _call(app, scope, body)
        emulator.clock.advance(tick)


def valgrind_path() -> str:
    """Where valgrind is; without it, exit (status 1) saying how to install it."""
    found = shutil.which("valgrind")
    if found is None:
        sys.exit("valgrind is required: sudo apt-get install valgrind")
    return found


def per_request(valgrind: str, script: str, side: str, what: str, few: int, many: int) -> float:
    """Instructions per call of ``script --child side what N``: the count after ``many`` calls
    minus the count after ``few``, so start-up and warm-up cancel out."""
    counts = [instructions(valgrind, script, "--child", side, what, str(n)) for n in (few, many)]
    return (counts[1] - counts[0]) / (many - few)


def instructions(valgrind: str, script: str, *args: str) -> int:
    """Instructions callgrind counts for ``python script *args``."""
    command = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
               script, *args]  # fmt: skip
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same dict layouts in every run
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise SystemExit(f"no callgrind total for {args}:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", default=",".join(ENDPOINTS))
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = set(args.endpoints.split(",")) - {*ENDPOINTS, *EXTRA_ENDPOINTS}
    if unknown:
        parser.error(f"unknown endpoint(s) {sorted(unknown)}: choose from "
                     f"{', '.join((*ENDPOINTS, *EXTRA_ENDPOINTS))}")  # fmt: skip
    if args.child:
        app, endpoint, calls = args.child
        asyncio.run(_run(app, endpoint, int(calls)))
        return 0
    valgrind = valgrind_path()
    print("instructions per request (callgrind, in one process, steady state)")
    print(f"{'endpoint':10} {'emulator':>10} {'bare':>10} {'ratio':>7}")
    for endpoint in args.endpoints.split(","):
        per = {app: per_request(valgrind, __file__, app, endpoint, FEW, MANY)
               for app in ("emulator", "bare")}  # fmt: skip
        ratio = per["emulator"] / per["bare"]
        print(f"{endpoint:10} {per['emulator']:>10,.0f} {per['bare']:>10,.0f} {ratio:>6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
