"""Background housekeeping of a serving process: settling ended tasks between requests."""

from __future__ import annotations

import asyncio
from typing import Any

from .garbage import MemoryReturn, collect_young

__all__ = ["HOUSEKEEPING_BATCH", "HOUSEKEEPING_S", "housekeeping"]

#: how often a serving process settles ended tasks in the background, and at most how many
#: at a time before letting requests in again
HOUSEKEEPING_S = 0.05
HOUSEKEEPING_BATCH = 256


async def housekeeping(emulator: Any, *, collect_garbage: bool = False) -> None:
    """Settle tasks that ended and forget expired ones between requests, in small steps, so
    the first requests after a quiet spell do not pay for everything that ended meanwhile
    (each request still settles a bounded number itself, which covers in-process use). With
    ``collect_garbage``, also runs the garbage collector's schedule (:func:`collect_young`)
    and hands free memory back to the system after a wave of expiry (:class:`MemoryReturn`)."""
    step = 0
    memory = MemoryReturn()
    while True:
        await asyncio.sleep(HOUSEKEEPING_S)
        while emulator.tasks.settle(limit=HOUSEKEEPING_BATCH):
            await asyncio.sleep(0)
        if collect_garbage:
            step += 1
            collect_young(step)
            memory.step(step, len(emulator.tasks))
