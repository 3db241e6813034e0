"""The request journal: what each client sent and what the emulator answered, newest last.

One record type, :class:`Entry`, for every request to the emulator's API and every webhook
delivery, with the answer too where it matters to a reader (chat). Entries are kept as they were
built (a NamedTuple: no per-entry dict, and the garbage collector never walks them) with bodies
as the text that was sent; a body is parsed and a time formatted only when someone reads the
entry. Bounded by count and by the size of the bodies and answers it keeps (oldest entries drop
off), so a long session's memory stays flat.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from .clock import iso

__all__ = ["DEFAULT_JOURNAL_BODY_CHARS", "DEFAULT_JOURNAL_SIZE", "Entry", "Journal", "redact"]

DEFAULT_JOURNAL_SIZE = 10_000
#: most characters of request bodies the journal keeps (a full journal of 1 MiB bodies would
#: otherwise hold 10 GiB); past it the oldest entries drop off
DEFAULT_JOURNAL_BODY_CHARS = 64 * 1024 * 1024
#: the marker, in :meth:`Journal.stored` dicts, of a ``body`` that is JSON text
_JSON = "_json"

#: the user:password@ part of a URL in a body's text (``//`` possibly JSON-escaped as ``\/\/``)
_CREDENTIALS = re.compile(r"(https?:(?:\\?/){2})[^/?#@\s\"\\]*@", re.IGNORECASE)


def redact(text: str) -> str:
    """A request body as the journal keeps it: URLs' credentials (``user:pass@``, refused by
    validation, never sent) replaced by ``***@``, so no secret is kept in clear or shown by
    the dashboard."""
    if "@" not in text:  # nearly every body: no scan
        return text
    return _CREDENTIALS.sub(r"\1***@", text)


class Entry(NamedTuple):
    """One request (``kind`` "request"), chat call (``kind`` "chat") or webhook delivery
    (``kind`` "webhook")."""

    seq: int
    method: str
    #: the request's path; a webhook's URL
    path: str
    query: str
    key: str | None
    #: the body as the text that was sent (None: none, or not journaled)
    body: str | None
    #: True when ``body`` is JSON text (readers get it back parsed)
    json: bool
    #: the status answered (None: a webhook attempt that got no answer)
    status: int | None
    error: str | None
    task_id: str | None
    #: the scenario rule that decided the answer
    rule: str | None
    #: the emulator's clock (virtual or real) when it was journaled
    at: float
    #: the wall clock then
    wall: float
    latency_s: float
    kind: str = "request"
    #: a webhook's attempt number (0: not sent at all)
    attempt: int | None = None
    #: a webhook sent a second time on purpose (scenario ``webhook.duplicate``)
    duplicate: bool = False
    #: the answer as JSON text, for endpoints whose answer matters to a reader (chat: the
    #: ``chat.completion`` object, whether it was streamed or wrapped, ``ttft_ms``, the credits
    #: charged, and what a fault let through); readers get it back parsed under ``response``
    response: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The entry as readers see it: ``body`` parsed when it is JSON."""
        out = self._stored()
        if out.pop(_JSON, False):
            out["body"] = json.loads(out["body"])
        if self.response is not None:
            out["response"] = json.loads(self.response)
        return out

    def _stored(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "key": self.key,
            "body": self.body,
            "status": self.status,
            "error": self.error,
            "task_id": self.task_id,
            "rule": self.rule,
            "time": iso(self.at),
            "at": self.at,
            "wall": self.wall,
            "latency_ms": round(self.latency_s * 1000, 3),
            "seq": self.seq,
        }
        if self.kind != "request":
            out["kind"] = self.kind
            out["attempt"] = self.attempt
        if self.duplicate:
            out["duplicate"] = True
        if self.json and self.body is not None:
            out[_JSON] = True
        if self.response is not None:
            out["response"] = self.response
        return out

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> Entry:
        """An entry from a :meth:`Journal.stored` dict (a state file's). Bodies that older
        versions saved parsed are kept as JSON text."""
        body = data.get("body")
        is_json = bool(data.get(_JSON))
        if body is not None and not isinstance(body, str):
            body, is_json = json.dumps(body, ensure_ascii=False, separators=(",", ":")), True
        latency_ms = data.get("latency_ms")
        response = data.get("response")
        if response is not None and not isinstance(response, str):
            response = json.dumps(response, ensure_ascii=False, separators=(",", ":"))
        return cls(
            int(data["seq"]),
            str(data.get("method", "")),
            str(data.get("path", "")),
            str(data.get("query", "")),
            data.get("key"),
            body,
            is_json,
            data.get("status"),
            data.get("error"),
            data.get("task_id"),
            data.get("rule"),
            float(data.get("at", 0.0)),
            float(data.get("wall", 0.0)),
            float(latency_ms) / 1000 if isinstance(latency_ms, int | float) else 0.0,
            str(data.get("kind", "request")),
            data.get("attempt"),
            bool(data.get("duplicate", False)),
            response,
        )


class Journal:
    def __init__(
        self, maxlen: int = DEFAULT_JOURNAL_SIZE, max_body_chars: int = DEFAULT_JOURNAL_BODY_CHARS
    ) -> None:
        self.maxlen = maxlen
        self.max_body_chars = max_body_chars
        self._entries: deque[Entry] = deque()
        self._body_chars = 0
        self.seq = 0  # of the newest entry ever recorded: a reset empties the journal, not this

    def next_seq(self) -> int:
        """The number of the entry about to be appended (entries are numbered from 1)."""
        self.seq += 1
        return self.seq

    def append(self, entry: Entry) -> None:
        """Keep ``entry`` (numbered with :meth:`next_seq`), dropping the oldest past the
        bounds."""
        entries = self._entries
        entries.append(entry)
        if entry.body is not None:
            self._body_chars += len(entry.body)
        if entry.response is not None:  # (answers count against the same budget)
            self._body_chars += len(entry.response)
        if len(entries) > self.maxlen or self._body_chars > self.max_body_chars:
            self._trim()

    def _trim(self) -> None:
        """Drop the oldest entries past the count or the body budget (the newest stays)."""
        entries = self._entries
        while len(entries) > self.maxlen or (
            self._body_chars > self.max_body_chars and len(entries) > 1
        ):
            oldest = entries.popleft()
            if oldest.body is not None:
                self._body_chars -= len(oldest.body)
            if oldest.response is not None:
                self._body_chars -= len(oldest.response)

    def entries(
        self, key: str | None = None, path: str | None = None, since: int = 0
    ) -> list[dict[str, Any]]:
        """Entries newer than seq ``since``, of ``key`` and ``path`` when given, oldest first,
        as readers see them."""
        found: list[Entry] = []
        for entry in reversed(self._entries):
            if entry.seq <= since:
                break
            if (key is None or entry.key == key) and (path is None or entry.path == path):
                found.append(entry)
        found.reverse()
        return [e.as_dict() for e in found]

    def newest(self) -> Iterator[Entry]:
        """Entries newest first: for cheap scans like the dashboard's feed."""
        return reversed(self._entries)

    @property
    def oldest_seq(self) -> int | None:
        return self._entries[0].seq if self._entries else None

    def find(self, seq: int) -> Entry | None:
        """The entry ``seq`` (None once it has dropped off)."""
        for entry in reversed(self._entries):
            if entry.seq == seq:
                return entry
            if entry.seq < seq:
                break
        return None

    def stored(self) -> list[dict[str, Any]]:
        """Every entry as a plain dict with ``body`` as text, oldest first (for the state
        file: :meth:`restore` takes them back)."""
        return [e._stored() for e in self._entries]

    def snapshot(self) -> Callable[[], list[dict[str, Any]]]:
        """:meth:`stored`, deferred: the entries are copied now (cheap: an entry never changes
        once recorded) and turned into dicts when the result is called, from any thread."""
        entries = list(self._entries)
        return lambda: [e._stored() for e in entries]

    def restore(self, entries: Iterable[Mapping[str, Any]], seq: int) -> None:
        """Replace the contents with ``entries`` (as :meth:`stored` gave them) and ``seq``."""
        self.clear()
        for data in entries:
            self.append(Entry.from_stored(data))
        self.seq = seq

    def clear(self) -> None:
        self._entries.clear()
        self._body_chars = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (e.as_dict() for e in self._entries)
