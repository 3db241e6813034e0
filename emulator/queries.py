"""The request journal as a test reads it: entries filtered by endpoint, status, model, key and
path, the polls of one task, with assertions on how often the client polled, and the webhook
deliveries.

Which endpoint a request went to is the emulated API's own routing (:func:`emulator.api.route`),
so a path is never classified here by a string of its own.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from .api import route
from .wire import CHAT_PATH

__all__ = [
    "ENDPOINTS",
    "RequestFilter",
    "backing_off_problem",
    "deliveries",
    "endpoint_of",
    "intervals",
    "polling_too_often",
]

#: what ``endpoint=`` can name: the emulated endpoints, webhook deliveries, and anything else
ENDPOINTS = ("create", "task", "image", "chat", "webhook", "unknown")
#: two times closer than this are the same time (the journal rounds nothing: floats do)
_EPSILON = 1e-6

Entry = Mapping[str, Any]


def endpoint_of(entry: Entry) -> str:
    """``create``, ``task``, ``image``, ``chat``, ``webhook`` (a delivery) or ``unknown`` (any
    other path)."""
    if entry.get("kind") == "webhook":
        return "webhook"
    if entry["path"] == CHAT_PATH:
        return "chat"
    found = route(entry["path"])
    return found[0].kind if found is not None else "unknown"


class RequestFilter:
    """What ``handle.requests(...)`` keeps; every option is keyword-only and optional.

    ``endpoint`` is one of :data:`ENDPOINTS`; ``status`` an int or a collection of them
    (``range(400, 500)``); ``model`` a model name or alias (a poll, a download and a webhook
    belong to their task's model, a chat call to the one it asked for); ``path`` a prefix of
    the path (a webhook's: its URL).
    """

    __slots__ = ("endpoint", "key", "method", "model", "path", "status", "task_id")

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        status: int | Collection[int] | None = None,
        model: str | None = None,
        key: str | None = None,
        path: str | None = None,
        method: str | None = None,
        task_id: str | None = None,
    ) -> None:
        if endpoint is not None and endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint: {endpoint!r} is not one of: {', '.join(ENDPOINTS)}")
        self.endpoint = endpoint
        self.status: Collection[int] | None = (status,) if isinstance(status, int) else status
        self.model = model
        self.key = key
        self.path = path
        self.method = method.upper() if method is not None else None
        self.task_id = task_id

    def select(
        self, entries: Iterable[Entry], model_of: Callable[[Entry], str | None]
    ) -> list[dict[str, Any]]:
        """The entries this filter keeps, in order; ``model_of`` names an entry's model."""
        return [dict(entry) for entry in entries if self.keeps(entry, model_of)]

    def keeps(self, entry: Entry, model_of: Callable[[Entry], str | None]) -> bool:
        return (
            (self.key is None or entry.get("key") == self.key)
            and (self.path is None or entry["path"].startswith(self.path))
            and (self.method is None or entry["method"] == self.method)
            and (self.status is None or entry["status"] in self.status)
            and (self.task_id is None or entry.get("task_id") == self.task_id)
            and (self.endpoint is None or endpoint_of(entry) == self.endpoint)
            and (self.model is None or model_of(entry) == self.model)
        )


def deliveries(entries: Iterable[Entry], task_id: str | None = None) -> list[dict[str, Any]]:
    """The webhook deliveries among journal ``entries`` (of ``task_id`` when given), oldest
    first: ``url``, ``task_id``, ``attempt`` (0: not sent), ``status`` (None: no answer),
    ``error``, ``body`` (the JSON sent), ``at`` (the emulator's clock) and ``duplicate``."""
    return [
        {
            "url": entry["path"],
            "task_id": entry.get("task_id"),
            "attempt": entry.get("attempt"),
            "status": entry["status"],
            "error": entry.get("error"),
            "body": entry.get("body"),
            "at": entry["at"],
            "duplicate": bool(entry.get("duplicate", False)),
        }
        for entry in entries
        if entry.get("kind") == "webhook" and (task_id is None or entry.get("task_id") == task_id)
    ]


def intervals(times: Iterable[float]) -> list[float]:
    """Seconds between consecutive times."""
    return [round(later - earlier, 6) for earlier, later in itertools.pairwise(times)]


def polling_too_often(task_id: str, gaps: list[float], seconds: float, clock: str) -> str | None:
    """Why polls ``gaps`` apart break "at most every ``seconds``" (None: they do not)."""
    short = [(n, gap) for n, gap in enumerate(gaps, start=1) if gap < seconds - _EPSILON]
    if not short:
        return None
    bullets = "\n".join(f"- poll {n} -> {n + 1}: {gap:g} s" for n, gap in short)
    return (
        f"task {task_id} was polled more often than every {seconds:g} s: {len(short)} of the "
        f"{len(gaps)} interval(s) between its {len(gaps) + 1} polls are shorter "
        f"({clock}):\n{bullets}\nintervals: {gaps}"
    )


def backing_off_problem(task_id: str, gaps: list[float], clock: str) -> str | None:
    """Why polls ``gaps`` apart do not show a client backing off (None: they do)."""
    if len(gaps) < 2:
        return (
            f"task {task_id} was polled {len(gaps) + 1} time(s): backing off shows only from 3 "
            "polls on. Give the task realistic timing (scenario='default') and let the client "
            "poll until it ends"
        )
    shrinking = [
        (n, earlier, later)
        for n, (earlier, later) in enumerate(itertools.pairwise(gaps), start=2)
        if later < earlier - _EPSILON
    ]
    if not shrinking:
        return None
    bullets = "\n".join(
        f"- poll {n} -> {n + 1}: {later:g} s, after {earlier:g} s before it"
        for n, earlier, later in shrinking
    )
    return (
        f"task {task_id} was not polled with back-off: the wait between polls shrank "
        f"{len(shrinking)} time(s) ({clock}):\n{bullets}\nintervals: {gaps}"
    )
