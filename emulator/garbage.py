"""The memory policy of a process that only serves (the CLI, not the pytest plugin, whose
process is the user's test session): when the garbage collector runs, and when the C
allocator's free memory goes back to the system."""

from __future__ import annotations

import ctypes
import functools
import gc
from collections.abc import Callable

__all__ = [
    "FULL_COLLECTION_EVERY",
    "RELEASE_AFTER_TASKS",
    "RELEASE_EVERY",
    "MemoryReturn",
    "collect_young",
    "freeze_startup_objects",
    "release_free_memory",
]

#: housekeeping steps between full collections (about 100 s)
FULL_COLLECTION_EVERY = 2000
#: tasks the store must have shrunk by since the last release for another (a wave of expiry
#: or a reset, not the churn of a steady load, which forgets one task per create)
RELEASE_AFTER_TASKS = 1000
#: housekeeping steps between releases under a steady load (about 10 s)
RELEASE_EVERY = 200


def freeze_startup_objects() -> None:
    """Take what start-up built (modules, catalogue, scenarios, app) out of the garbage
    collector's sight: it lives as long as the process, yet every full collection walked it
    again, about 16 ms a time on this stack. For a process that only serves (the CLI), not the
    pytest plugin, whose process is the user's test session. See also :func:`collect_young`.
    """
    gc.collect()
    gc.freeze()
    # full collections only when asked for by collect_young's schedule, not by the churn of
    # tasks (our objects form no cycles in steady state: collections find nothing to free)
    gc.set_threshold(700, 10, 2 * FULL_COLLECTION_EVERY)


def collect_young(step: int) -> None:
    """Collect the young and middle generations on a schedule (everything, every 100 s).

    CPython starts a collection when allocations minus frees pass a threshold. A busy server
    frees an old task for each task it creates, so that count stays near zero while the young
    generation keeps growing, until one collection has 20,000 objects to walk (40 ms, the
    create p99). Collecting every housekeeping step keeps a pause typically under 1 ms.
    Both generations at once: what survives 50 ms here is a task, which lives until evicted,
    so walking it again in a separate middle-generation pass (as CPython's default schedule
    does) only cost time: 30% more collection work and 2-2.5 ms pauses every 200 ms under load
    (measured with ``gc.callbacks`` under ``make bench``'s create load).
    """
    gc.collect(2 if step % FULL_COLLECTION_EVERY == 0 else 1)


def release_free_memory() -> bool:
    """Hand the free pages of every malloc arena back to the system (glibc's ``malloc_trim``;
    a no-op elsewhere). glibc gives memory back only from the top of each arena, and only
    past a threshold that grows with the largest block freed: the rendered files of expired
    tasks (allocated by the render threads) and the objects of a wave of forgotten tasks stay
    resident otherwise (``benchmarks/soak.py``). True when memory was released."""
    trim = _malloc_trim()
    return trim is not None and bool(trim(0))


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError, TypeError):  # not glibc (musl, macOS, Windows)
        return None
    return trim


class MemoryReturn:
    """When a serving process calls :func:`release_free_memory`: once the store has shrunk by
    :data:`RELEASE_AFTER_TASKS` since the last time or emptied (expiry, a reset), and every
    :data:`RELEASE_EVERY` housekeeping steps (the renders' free memory under a steady load)."""

    def __init__(self) -> None:
        self.high = 0  # the most tasks held since the last release

    def step(self, step: int, held: int) -> bool:
        """After housekeeping step ``step``, with ``held`` tasks in the store: True when it
        released memory."""
        self.high = max(self.high, held)
        shrunk = self.high - held
        wave = shrunk >= RELEASE_AFTER_TASKS or (held == 0 and shrunk > 0)
        if not wave and step % RELEASE_EVERY != 0:
            return False
        self.high = held
        return release_free_memory()
