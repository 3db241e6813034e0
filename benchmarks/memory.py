"""Bytes per retained task and per journal entry, measured with tracemalloc.

Creates N tasks through the ASGI app (no sockets), polls each once and downloads the image of
every ``--download-every``-th, first on an emulator whose journal keeps one entry, then on one
whose journal keeps every request; the traced memory each holds afterwards (after a full
collection), divided by N, gives the bytes a task costs while it is retained and the bytes a
journal entry costs. The scope of each request is built as uvicorn builds it (method and path
decoded from the request's bytes, a new string each), so an entry costs what it costs in a
server. Rendered files are counted apart (the cache's own byte count): the cache has its own
budget, and a task's files leave it with the task.

    python benchmarks/memory.py                      # 5,000 tasks, no downloads
    python benchmarks/memory.py --download-every 10  # the mix of make soak

``--expiry`` asks instead what stays resident once every task has expired: ``--tasks`` cycles
on a virtual clock at the soak's rate (task ttl 5 s, the journal at its default and at one
entry), then the clock moved past the retention; the process's resident memory, Python's
small-object arenas and the bytes live in them, warm, after the cycles and after expiry.

    python benchmarks/memory.py --expiry --tasks 30000 --download-every 10
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import sys
import tempfile
import traceback
import tracemalloc
from typing import Any, NamedTuple

from processes import memory_mib  # (benchmarks/, beside this script)

BODY = json.dumps({"model": "cogview-4", "prompt": "a memory test", "size": "1024*1024"}).encode()


class Footprint(NamedTuple):
    """What one measurement found."""

    tasks: int
    requests: int
    per_task: float  # bytes per retained task, its files apart
    per_entry: float  # bytes per journal entry
    files_per_task: float  # bytes of cached files per task (the downloaded ones' share)


def _scope(method: bytes, path: bytes) -> dict[str, Any]:
    """An HTTP scope as uvicorn's httptools protocol builds it: fresh strings per request."""
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": method.decode("ascii"), "scheme": "http", "path": path.decode("ascii"),
        "raw_path": path, "query_string": b"", "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8000"), (b"authorization", b"Bearer aio_memory"),
            (b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY)),
        ],
        "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip


async def _call(app: Any, method: bytes, path: bytes, body: bytes = b"") -> bytes:
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        chunks.append(message.get("body", b""))

    await app(_scope(method, path), receive, send)
    return b"".join(chunks)


async def _cycle(app: Any, body: bytes, *, download: bool) -> None:
    """One create of ``body``, a poll of its task and, with ``download``, its image."""
    created = await _call(app, b"POST", b"/api/v1/images/generations", body)
    task_id = json.loads(created)["data"]["task_id"]
    await _call(app, b"GET", f"/api/v1/tasks/{task_id}".encode())
    if download:
        await _call(app, b"GET", f"/files/{task_id}/0.png".encode())


async def _held(tasks: int, journal: int, download_every: int) -> tuple[int, int, int]:
    """(traced bytes held after ``tasks`` cycles, tasks held, bytes of cached files)."""
    from emulator.app import create_app
    from emulator.config import Config

    config = Config(seed=1, clock="virtual", scenario="instant", default_credits=10**12,
                    journal_size=journal, max_tasks=max(tasks, 1))  # fmt: skip
    app = create_app(config)
    emulator = app.state.emulator
    # imports, first-call caches, the render threads and the renderer's own caches
    await _cycle(app, BODY, download=bool(download_every))
    emulator.reset()
    emulator.media.clear()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for n in range(1, tasks + 1):
        await _cycle(app, BODY, download=bool(download_every) and n % download_every == 0)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return held, len(emulator.tasks), emulator.media.cache.size_bytes


def footprint(tasks: int = 5000, download_every: int = 0) -> Footprint:
    """Bytes per retained task and per journal entry after ``tasks`` create -> poll cycles
    (and a download every ``download_every``-th; 0: none), in this process."""
    requests = 2 * tasks + (tasks // download_every if download_every else 0)
    no_journal, kept, files = asyncio.run(_held(tasks, 1, download_every))  # keeps one entry
    with_journal, _, _ = asyncio.run(_held(tasks, requests, download_every))
    return Footprint(
        tasks, requests, (no_journal - files) / kept,
        (with_journal - no_journal) / (requests - 1), files / tasks,
    )  # fmt: skip


class Resident(NamedTuple):
    """The process's memory at one point of :func:`expiry`."""

    rss_mib: float
    arenas_mib: float  # Python's small-object arenas allocated (1 MiB each on 64-bit Linux)
    live_mib: float  # bytes of the objects in them


def resident() -> Resident:
    """This process's resident memory and its small-object arenas, after a full collection
    and ``malloc_trim`` (what the serving process does once its store has shrunk)."""
    from emulator.garbage import release_free_memory

    gc.collect()
    release_free_memory()
    rss = memory_mib(os.getpid())  # (no worker processes: images render on threads)
    with tempfile.TemporaryFile("w+") as out:  # the allocator's statistics go to C's stderr
        saved = os.dup(2)
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        stats = out.read()

    arenas = re.search(r"(\d+) arenas \* (\d+) bytes/arena", stats)
    live = re.search(r"# bytes in allocated blocks\s*=\s*([\d,]+)", stats)
    if arenas is None or live is None:
        raise SystemExit(f"sys._debugmallocstats() printed no arena figures:\n{stats[:2000]}")
    arena_bytes = int(arenas.group(1)) * int(arenas.group(2))
    return Resident(rss, arena_bytes / 2**20, int(live.group(1).replace(",", "")) / 2**20)


async def _expiry(tasks: int, journal: int, download_every: int) -> list[Resident]:
    """[warm, after ``tasks`` cycles, after expiry] on one emulator."""
    from emulator.app import create_app
    from emulator.config import Config

    config = Config(seed=1, clock="virtual", scenario="instant", default_credits=10**12,
                    journal_size=journal, task_ttl_s=5)  # fmt: skip
    app = create_app(config)
    emulator = app.state.emulator

    async def cycle(n: int) -> None:
        body = BODY.replace(b"a memory test", b"soak client %d" % (n % 32))
        await _cycle(app, body, download=bool(download_every) and n % download_every == 0)
        emulator.clock.advance(1 / 2400)  # the soak's rate: about 2,400 cycles a second

    await cycle(0)  # the renderer loaded
    found = [resident()]
    for n in range(1, tasks + 1):
        await cycle(n)
    found.append(resident())
    emulator.clock.advance(60)
    emulator.settle()
    found.append(resident())
    return found


def expiry(tasks: int = 30000, download_every: int = 10) -> dict[str, list[Resident]]:
    """:func:`_expiry` with the default journal and with a journal of one entry, each in a
    process of its own (so neither inherits the other's arenas)."""
    from emulator.journal import DEFAULT_JOURNAL_SIZE

    found: dict[str, list[Resident]] = {}
    for name, journal in (("journal 10,000", DEFAULT_JOURNAL_SIZE), ("journal 1", 1)):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: its rows as JSON down the pipe, or its traceback and exit 1
            os.close(read)
            try:
                rows = asyncio.run(_expiry(tasks, journal, download_every))
                os.write(write, json.dumps(rows).encode())
            except BaseException:
                traceback.print_exc()
                os._exit(1)
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            sent = pipe.read()
        if os.waitpid(pid, 0)[1] != 0:
            raise SystemExit(f"the {name} measurement failed (its traceback is above)")
        found[name] = [Resident(*row) for row in json.loads(sent)]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument(
        "--download-every", type=int, default=0, help="download every n-th image (0: none)"
    )
    parser.add_argument(
        "--expiry", action="store_true", help="what stays resident once every task expired"
    )
    args = parser.parse_args(argv)
    if args.expiry:
        print(f"{args.tasks:,} cycles (task ttl 5 s), download every {args.download_every}; "
              "MiB after gc.collect() and malloc_trim")  # fmt: skip
        print(f"{'':16} {'':12} {'RSS':>7} {'arenas':>7} {'live':>7}")
        for name, rows in expiry(args.tasks, args.download_every).items():
            for when, row in zip(("warm", "after cycles", "after expiry"), rows, strict=True):
                print(f"{name:16} {when:12} {row.rss_mib:7.1f} {row.arenas_mib:7.1f} "
                      f"{row.live_mib:7.1f}")  # fmt: skip
        return 0
    found = footprint(args.tasks, args.download_every)
    print(f"{found.tasks:,} tasks, {found.requests:,} requests, tracemalloc after gc.collect()")
    print(f"  per retained task       {found.per_task:8,.0f} B (its files apart)")
    print(f"  per journal entry       {found.per_entry:8,.0f} B")
    if args.download_every:
        print(f"  cached files            {found.files_per_task:8,.0f} B per task")
    return 0


if __name__ == "__main__":
    sys.exit(main())
