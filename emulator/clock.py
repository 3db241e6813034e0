"""Clocks the emulator reads time from: real wall time, or a virtual clock a test moves.

Task state is computed from the clock, so under :class:`VirtualClock` tasks progress only when
the clock is advanced. HTTP latency (scenarios) always uses real time.
"""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["VIRTUAL_EPOCH", "Clock", "RealClock", "VirtualClock", "iso"]

#: Where a virtual clock starts by default (2026-01-01T00:00:00Z): fixed, so runs are repeatable.
VIRTUAL_EPOCH = 1767225600.0


class Clock(Protocol):
    """What the emulator reads time from."""

    #: "real" or "virtual"
    mode: str

    def now(self) -> float:
        """Seconds since the Unix epoch."""
        ...

    def reset(self) -> None:
        """Back to where it started (a real clock: nothing to do)."""
        ...


class RealClock:
    """Wall-clock time."""

    mode = "real"
    #: seconds since the Unix epoch (``time.time`` itself: read on every request)
    now = staticmethod(time.time)

    def reset(self) -> None:
        """Nothing to reset: real time moves on its own."""


class VirtualClock:
    """Time that moves only when :meth:`advance` is called."""

    mode = "virtual"

    def __init__(self, start: float = VIRTUAL_EPOCH) -> None:
        self.start = start
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        if not 0 <= seconds < float("inf"):  # (also refuses NaN)
            raise ValueError(f"seconds must be a non-negative finite number, got {seconds!r}")
        self._now += seconds
        return self._now

    def reset(self) -> None:
        self._now = self.start

    def restore(self, now: float, start: float | None = None) -> None:
        """Put the clock back where a saved state had it (``start`` is where reset goes)."""
        if start is not None:
            self.start = start
        self._now = now


def iso(ts: float) -> str:
    """ISO-8601 UTC with a Z suffix, to the second (as the real docs write timestamps)."""
    return _iso_second(int(ts // 1))


@functools.lru_cache(maxsize=4096)
def _iso_second(second: int) -> str:  # formatting is the costliest part of a poll; seconds repeat
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
