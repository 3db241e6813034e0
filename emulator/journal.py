"""The request journal: what each client sent and what the emulator answered, newest last.

Bounded (oldest entries drop off) so a long session's memory stays flat.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

__all__ = ["DEFAULT_JOURNAL_SIZE", "Journal"]

DEFAULT_JOURNAL_SIZE = 10_000


class Journal:
    def __init__(self, maxlen: int = DEFAULT_JOURNAL_SIZE) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self._seq = 0

    def record(self, entry: dict[str, Any]) -> None:
        self._seq += 1
        entry["seq"] = self._seq
        self._entries.append(entry)

    def entries(self, key: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self._entries
            if (key is None or e.get("key") == key) and (path is None or e["path"] == path)
        ]

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._entries)
