"""The garbage-collection policy of a process that only serves (the CLI, not the pytest plugin,
whose process is the user's test session)."""

from __future__ import annotations

import gc

__all__ = ["FULL_COLLECTION_EVERY", "collect_young", "freeze_startup_objects"]

#: housekeeping steps between full collections (about 100 s)
FULL_COLLECTION_EVERY = 2000


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
