"""The request journal: what each client sent and what the emulator answered, newest last.

Bounded by count and by the size of the bodies it keeps (oldest entries drop off), so a long
session's memory stays flat. Entries are kept as flat dicts of plain values, with the request
body as the text that was sent: the garbage collector never has to walk them, and a body is
parsed only when someone reads it.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["DEFAULT_JOURNAL_BODY_CHARS", "DEFAULT_JOURNAL_SIZE", "Journal"]

DEFAULT_JOURNAL_SIZE = 10_000
#: most characters of request bodies the journal keeps (a full journal of 1 MiB bodies would
#: otherwise hold 10 GiB); past it the oldest entries drop off
DEFAULT_JOURNAL_BODY_CHARS = 64 * 1024 * 1024
#: internal marker: ``body`` holds JSON text that parsed when the request was served
_JSON = "_json"


class Journal:
    def __init__(
        self, maxlen: int = DEFAULT_JOURNAL_SIZE, max_body_chars: int = DEFAULT_JOURNAL_BODY_CHARS
    ) -> None:
        self.maxlen = maxlen
        self.max_body_chars = max_body_chars
        self._entries: deque[dict[str, Any]] = deque()
        self._body_chars = 0
        self.seq = 0  # of the newest entry ever recorded: a reset empties the journal, not this

    def record(self, entry: dict[str, Any], *, json_body: str | None = None) -> None:
        """Append ``entry`` (plain values only). ``json_body`` is the text of a body that parsed
        as JSON: it is stored as text and given back parsed by the readers."""
        self.seq += 1
        entry["seq"] = self.seq
        if json_body is not None:
            entry["body"] = json_body
            entry[_JSON] = True
        body = entry.get("body")
        if isinstance(body, str):
            self._body_chars += len(body)
        entries = self._entries
        entries.append(entry)
        while len(entries) > self.maxlen or (
            self._body_chars > self.max_body_chars and len(entries) > 1
        ):
            self._drop_oldest()

    def entries(
        self, key: str | None = None, path: str | None = None, since: int = 0
    ) -> list[dict[str, Any]]:
        """Entries newer than seq ``since``, of ``key`` and ``path`` when given, oldest first."""
        found: list[dict[str, Any]] = []
        for entry in reversed(self._entries):
            if entry["seq"] <= since:
                break
            if (key is None or entry.get("key") == key) and (path is None or entry["path"] == path):
                found.append(entry)
        found.reverse()
        return [public(e) for e in found]

    def newest(self) -> Iterator[dict[str, Any]]:
        """Entries newest first, as stored (``body`` as text): for cheap scans like the
        dashboard's feed. Use :func:`public` on an entry to get it as the readers see it."""
        return reversed(self._entries)

    @property
    def oldest_seq(self) -> int | None:
        return self._entries[0]["seq"] if self._entries else None

    def find(self, seq: int) -> dict[str, Any] | None:
        """The entry ``seq``, as readers see it (None once it has dropped off)."""
        for entry in reversed(self._entries):
            if entry["seq"] == seq:
                return public(entry)
            if entry["seq"] < seq:
                break
        return None

    def stored(self) -> list[dict[str, Any]]:
        """Every entry as stored, oldest first (for the state file)."""
        return list(self._entries)

    def restore(self, entries: Iterable[dict[str, Any]], seq: int) -> None:
        """Replace the contents with ``entries`` (as :meth:`stored` gave them) and ``seq``.
        Entries saved by older versions, with a parsed body, are kept as they are."""
        self.clear()
        for entry in entries:
            self._entries.append(entry)
            body = entry.get("body")
            if isinstance(body, str):
                self._body_chars += len(body)
        self.seq = seq
        while len(self._entries) > self.maxlen:
            self._drop_oldest()

    def clear(self) -> None:
        self._entries.clear()
        self._body_chars = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (public(e) for e in self._entries)

    def _drop_oldest(self) -> None:
        body = self._entries.popleft().get("body")
        if isinstance(body, str):
            self._body_chars -= len(body)


def public(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry as readers see it: a body that parsed as JSON is given back parsed."""
    if not entry.get(_JSON):
        return dict(entry)
    view = dict(entry)
    del view[_JSON]
    view["body"] = json.loads(view["body"])
    return view
