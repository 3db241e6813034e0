"""The request journal: what each client sent and what the emulator answered, newest last.

Bounded by count and by the size of the bodies it keeps (oldest entries drop off), so a long
session's memory stays flat. Requests to the emulated endpoints are kept as flat tuples (every
request records one: a tuple costs a tenth of a dict to build) with the body as the text that
was sent; other entries (webhook deliveries) as flat dicts. The garbage collector never has to
walk them, and a body is parsed, a time formatted, only when someone reads the entry.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .clock import iso

__all__ = ["DEFAULT_JOURNAL_BODY_CHARS", "DEFAULT_JOURNAL_SIZE", "Journal"]

DEFAULT_JOURNAL_SIZE = 10_000
#: most characters of request bodies the journal keeps (a full journal of 1 MiB bodies would
#: otherwise hold 10 GiB); past it the oldest entries drop off
DEFAULT_JOURNAL_BODY_CHARS = 64 * 1024 * 1024
#: internal marker: ``body`` holds JSON text that parsed when the request was served
_JSON = "_json"

#: A request as :meth:`Journal.record_request` stores it: ``(seq, method, path, query (bytes),
#: key, body, json_body, status, error, task_id, rule, at, wall, latency_s)``.
Stored = tuple[Any, ...] | dict[str, Any]


class Journal:
    def __init__(
        self, maxlen: int = DEFAULT_JOURNAL_SIZE, max_body_chars: int = DEFAULT_JOURNAL_BODY_CHARS
    ) -> None:
        self.maxlen = maxlen
        self.max_body_chars = max_body_chars
        self._entries: deque[Stored] = deque()
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
        self._append(entry, body if isinstance(body, str) else None)

    def record_request(
        self, method: str, path: str, query: bytes, key: str | None, body: str | None,
        json_body: str | None, status: int, error: str | None, task_id: str | None,
        rule: str | None, at: float, wall: float, latency_s: float,
    ) -> None:  # fmt: skip
        """Append a request to an emulated endpoint. ``at`` is the emulator's clock, ``wall``
        the real time; ``json_body`` the text of a body that parsed as JSON, ``body`` any other
        body as text."""
        self.seq += 1
        self._append(
            (self.seq, method, path, query, key, body, json_body, status, error, task_id, rule,
             at, wall, latency_s),
            json_body if json_body is not None else body,
        )  # fmt: skip

    def _append(self, entry: Stored, text: str | None) -> None:
        entries = self._entries
        entries.append(entry)
        if text is not None:
            self._body_chars += len(text)
        if len(entries) > self.maxlen or self._body_chars > self.max_body_chars:
            self._trim()

    def _trim(self) -> None:
        """Drop the oldest entries past the count or the body budget (the newest stays)."""
        entries = self._entries
        while len(entries) > self.maxlen or (
            self._body_chars > self.max_body_chars and len(entries) > 1
        ):
            self._drop_oldest()

    def entries(
        self, key: str | None = None, path: str | None = None, since: int = 0
    ) -> list[dict[str, Any]]:
        """Entries newer than seq ``since``, of ``key`` and ``path`` when given, oldest first."""
        found: list[dict[str, Any]] = []
        for stored in reversed(self._entries):
            entry = _as_dict(stored)
            if entry["seq"] <= since:
                break
            if (key is None or entry.get("key") == key) and (path is None or entry["path"] == path):
                found.append(entry)
        found.reverse()
        return [public(e) for e in found]

    def newest(self) -> Iterator[dict[str, Any]]:
        """Entries newest first, with ``body`` as text: for cheap scans like the dashboard's
        feed. Use :func:`public` on an entry to get it as the readers see it."""
        return map(_as_dict, reversed(self._entries))

    @property
    def oldest_seq(self) -> int | None:
        return _seq(self._entries[0]) if self._entries else None

    def find(self, seq: int) -> dict[str, Any] | None:
        """The entry ``seq``, as readers see it (None once it has dropped off)."""
        for entry in reversed(self._entries):
            found = _seq(entry)
            if found == seq:
                return public(_as_dict(entry))
            if found < seq:
                break
        return None

    def stored(self) -> list[dict[str, Any]]:
        """Every entry as a dict with ``body`` as text, oldest first (for the state file:
        :meth:`restore` takes them back)."""
        return [_as_dict(e) for e in self._entries]

    def snapshot(self) -> Callable[[], list[dict[str, Any]]]:
        """:meth:`stored`, deferred: the entries are copied now (cheap: a recorded entry never
        changes) and turned into dicts when the result is called, from any thread."""
        entries = list(self._entries)
        return lambda: [_as_dict(e) for e in entries]

    def restore(self, entries: Iterable[dict[str, Any]], seq: int) -> None:
        """Replace the contents with ``entries`` (as :meth:`stored` gave them) and ``seq``.
        Entries saved by older versions, with a parsed body, are kept as they are."""
        self.clear()
        for entry in entries:
            body = entry.get("body")
            self._append(entry, body if isinstance(body, str) else None)
        self.seq = seq

    def clear(self) -> None:
        self._entries.clear()
        self._body_chars = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (public(_as_dict(e)) for e in self._entries)

    def _drop_oldest(self) -> None:
        entry = self._entries.popleft()
        if type(entry) is tuple:
            text = entry[6] if entry[6] is not None else entry[5]
        else:
            text = entry.get("body")
        if isinstance(text, str):
            self._body_chars -= len(text)


def _seq(entry: Stored) -> int:
    return entry[0] if type(entry) is tuple else entry["seq"]  # type: ignore[index,call-overload]


def _as_dict(entry: Stored) -> dict[str, Any]:
    """A stored entry as a dict, ``body`` as text (marked when it is JSON text)."""
    if type(entry) is not tuple:
        return entry  # type: ignore[return-value]
    (seq, method, path, query, key, body, json_body, status, error, task_id, rule, at, wall,
     latency_s) = entry  # fmt: skip
    out = {
        "method": method,
        "path": path,
        "query": query.decode("latin-1"),
        "key": key,
        "body": json_body if json_body is not None else body,
        "status": status,
        "error": error,
        "task_id": task_id,
        "rule": rule,
        "time": iso(at),
        "at": at,
        "wall": wall,
        "latency_ms": round(latency_s * 1000, 3),
        "seq": seq,
    }
    if json_body is not None:
        out[_JSON] = True
    return out


def public(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry as readers see it: a body that parsed as JSON is given back parsed."""
    if not entry.get(_JSON):
        return dict(entry)
    view = dict(entry)
    del view[_JSON]
    view["body"] = json.loads(view["body"])
    return view
