"""Bytes per retained task and per journal entry, measured with tracemalloc.

Creates N tasks through the ASGI app (as ``count.py`` calls it: no sockets), polls each once
and, with ``--download``, downloads its image, on an emulator whose journal keeps one entry,
then on one whose journal keeps every request; the traced memory each holds afterwards
(after a full collection), divided by N, gives the bytes a task costs while it is retained
and the bytes a journal entry costs. Rendered images are counted apart (the cache's own
byte count), since the cache has its own budget.

    python benchmarks/memory.py                # 5,000 tasks
    python benchmarks/memory.py --tasks 20000 --download
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import tracemalloc
from typing import Any

from count import _scope

BODY = json.dumps({"model": "cogview-4", "prompt": "a memory test", "size": "1024*1024"}).encode()
HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"authorization", b"Bearer aio_memory"),
    (b"content-type", b"application/json"),
    (b"content-length", b"%d" % len(BODY)),
]


async def _call(app: Any, method: str, path: str, body: bytes = b"") -> bytes:
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        chunks.append(message.get("body", b""))

    await app(_scope(method, path, HEADERS), receive, send)
    return b"".join(chunks)


async def _held(tasks: int, journal: int, download: bool) -> tuple[int, int, int]:
    """(traced bytes held after ``tasks`` cycles, tasks held, bytes of cached images)."""
    from emulator.app import create_app
    from emulator.config import Config

    config = Config(seed=1, clock="virtual", scenario="instant", default_credits=10**12,
                    journal_size=journal, max_tasks=max(tasks, 1))  # fmt: skip
    app = create_app(config)
    emulator = app.state.emulator
    await _call(app, "POST", "/api/v1/images/generations", BODY)  # imports, first-call caches
    emulator.reset()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(tasks):
        created = json.loads(await _call(app, "POST", "/api/v1/images/generations", BODY))
        task_id = created["data"]["task_id"]
        await _call(app, "GET", f"/api/v1/tasks/{task_id}")
        if download:
            await _call(app, "GET", f"/files/{task_id}/0.png")
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    cache = emulator.media.cache.size_bytes if download else 0
    return held, len(emulator.tasks), cache


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--download", action="store_true", help="download every image too")
    args = parser.parse_args(argv)
    n = args.tasks
    requests = n * (3 if args.download else 2)
    no_journal, kept, cache = asyncio.run(_held(n, 1, args.download))  # keeps one entry
    with_journal, _, _ = asyncio.run(_held(n, requests, args.download))
    per_task = (no_journal - cache) / kept
    per_entry = (with_journal - no_journal) / (requests - 1)
    print(f"{n:,} tasks ({kept:,} held), {requests:,} requests, tracemalloc after gc.collect()")
    print(f"  per retained task       {per_task:8,.0f} B (images apart)")
    print(f"  per journal entry       {per_entry:8,.0f} B")
    if args.download:
        print(f"  cached images           {cache / n:8,.0f} B per task ({cache / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
