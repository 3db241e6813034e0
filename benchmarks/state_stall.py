"""How long saving the state file holds the event loop, with a big state.

Builds an emulator with ``--tasks`` tasks (1,000-character prompts) and a full journal of the
same number of create entries (3,000-character bodies), then saves it with the server's
autosaver while a ticker task measures the longest gap between its 1 ms sleeps: that gap is
what every request waited.

    python benchmarks/state_stall.py [--tasks 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from emulator import state
from emulator.config import Config
from emulator.journal import Entry
from emulator.service import Emulator


def big_emulator(tasks: int) -> Emulator:
    emulator = Emulator(Config(seed=1, clock="virtual", journal_size=tasks, max_tasks=tasks))
    request = emulator.validate({"model": "cogview-4", "prompt": "p" * 1000})
    body = json.dumps({"model": "cogview-4", "prompt": "p" * 3000})
    for i in range(tasks):
        emulator.create_task(f"aio_k{i % 50}", request)
        journal = emulator.journal
        journal.append(
            Entry(
                journal.next_seq(), "POST", "/api/v1/images/generations", "", "aio_k", body,
                True, 200, None, f"id{i}", None, 0.0, 0.0, 0.001,
            )
        )  # fmt: skip
    return emulator


async def measure(saver: state.Autosaver) -> tuple[float, float]:
    """(longest loop stall, whole save) in seconds."""
    worst = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            worst = max(worst, now - last)
            last = now

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    if hasattr(saver, "save"):
        await saver.save()
    else:  # the code before the save moved off the loop
        saver.interval_s = 0.001
        runner = asyncio.create_task(saver.run())
        while saver.saves == 0:
            await asyncio.sleep(0.001)
        runner.cancel()
    took = time.perf_counter() - started
    done.set()
    await tick
    return worst, took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    emulator = big_emulator(args.tasks)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "state.json")
        for _ in range(args.repeat):
            saver = state.Autosaver(emulator, path, 60)
            worst, took = asyncio.run(measure(saver))
            size = os.path.getsize(path) / 1e6
            print(f"{args.tasks} tasks, {size:.1f} MB: loop stalled at most {worst * 1000:.1f} ms "
                  f"(save took {took * 1000:.0f} ms)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
