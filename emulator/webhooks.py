"""Webhooks: POST a task's final body to its ``callback_url`` when the task ends.

Tasks run nothing in the background: the store notices that a task has ended on a sweep or a
poll, and calls :meth:`WebhookDispatcher.task_ended`. So that a webhook goes out even when
nobody polls, a task with a callback gets a timer on the server's event loop that sweeps the
store when the task ends (real clock); under the virtual clock, advancing it sweeps.

A delivery is an asyncio task on the server's event loop, with a minimal HTTP/1.1 client over
``asyncio.open_connection`` (stdlib only, no proxies): 5 s per attempt, retried with exponential
backoff on connection errors and non-2xx answers. Every attempt is in the request journal with
``kind: "webhook"``. A failed delivery never changes the task or the credits.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from . import __version__
from .journal import Entry
from .scenarios import WebhookEffect
from .tasks import State, Task, WebhookTarget, end_time, observe
from .wire import dumps, success

if TYPE_CHECKING:
    from .service import Emulator

__all__ = [
    "DEFAULT_ATTEMPTS",
    "DEFAULT_BACKOFF_S",
    "DEFAULT_TIMEOUT_S",
    "WebhookDispatcher",
    "WebhookTarget",
    "post_json",
]

DEFAULT_ATTEMPTS = 4
#: first retry after this many seconds, then twice as long each time (1, 2, 4 s)
DEFAULT_BACKOFF_S = 1.0
DEFAULT_TIMEOUT_S = 5.0
#: how much of a receiver's answer is read (and thrown away) before closing the connection
MAX_REPLY_BYTES = 64 * 1024
#: a sweep timer fires this much after the task's end, so the wall clock has surely passed it
SWEEP_SLACK_S = 0.002
#: most deliveries in flight at once on the server's loop (each holds a connection, or waits
#: to retry); the others wait their turn, in the order their tasks ended
MAX_CONCURRENT_DELIVERIES = 64
#: most deliveries waiting for their turn; past it a delivery is not sent, and journaled so
MAX_WAITING_DELIVERIES = 10_000

DROPPED = "not sent: dropped by the scenario (webhook.drop)"
QUEUE_FULL = (
    f"not sent: {MAX_WAITING_DELIVERIES} deliveries were already waiting for one of the "
    f"{MAX_CONCURRENT_DELIVERIES} delivery slots (the receivers are too slow)"
)
SELF_CALL = (
    "not sent: the callback URL leads to the emulator's own address (a webhook must never "
    "drive the emulator itself, e.g. its control API); not retried"
)
SCRIPTED_FAILURE = "not sent: failed by the scenario (webhook.fail_attempts)"

#: a listening socket bound to one of these is reached through any address of this machine
_ANY = ("0.0.0.0", "::", "")
#: a delivery not yet started: called, it gives the coroutine that delivers
Delivery = Callable[[], Coroutine[Any, Any, None]]


class WebhookDispatcher:
    """Delivers the webhooks of one emulator and keeps its running deliveries and timers."""

    def __init__(
        self,
        emulator: Emulator,
        *,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff_s: float = DEFAULT_BACKOFF_S,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.emulator = emulator
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        #: strong references: the loop keeps only weak ones to its tasks
        self._running: set[asyncio.Task[None]] = set()
        #: deliveries waiting for a slot, oldest first
        self._waiting: deque[Delivery] = deque()
        self.max_concurrent = MAX_CONCURRENT_DELIVERIES
        self.max_waiting = MAX_WAITING_DELIVERIES
        #: deliveries ever started, finished (delivered or given up) and not sent (queue full):
        #: every one started is running, waiting, finished or not sent (see :meth:`stats`)
        self.accepted = self.finished = self.not_sent = 0
        self._timers: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.TimerHandle]] = {}
        #: the loop of the last request that registered a callback (the server's loop)
        self._loop: asyncio.AbstractEventLoop | None = None
        #: bumped by cancel_all(), so a delivery started before a reset records nothing more
        self._generation = 0
        #: (host, port) of each socket the emulator listens on (set by the server at start-up):
        #: a delivery that connects to one of them is not sent
        self.own_addresses: list[tuple[str, int]] = []

    # -- task lifecycle -------------------------------------------------------------------

    def register(
        self,
        task: Task,
        url: str,
        base_url: str,
        words: Mapping[State, str],
        effect: WebhookEffect | None = None,
    ) -> None:
        """Give a new task a callback, and a timer so it fires even if nobody polls."""
        task.webhook = WebhookTarget(
            url, base_url, {state.value: word for state, word in words.items()}, effect
        )
        self._watch(task)

    def task_ended(self, task: Task, state: State) -> None:
        """Called once when the store notices ``task`` ended: start its delivery, if any."""
        target = task.webhook
        if target is None:
            return
        emulator = self.emulator
        view = observe(task, emulator.clock.now())
        words = {State(k): v for k, v in target.words.items()}
        data = emulator.callback_body(task, view, target.base_url, words)
        body = success(data)
        generation = self._generation
        self._spawn(
            lambda: self._deliver(task, target, body, generation),
            lambda: self._record(task, target, body, 0, None, QUEUE_FULL, 0.0),
        )

    def cancel_all(self) -> None:
        """Stop every running delivery and sweep timer (on reset); safe from any thread."""
        self._generation += 1
        self._waiting.clear()  # (each would return at once: its generation has passed)
        for delivery in list(self._running):
            _call_on(delivery.get_loop(), delivery.cancel)
        for loop, handle in list(self._timers.values()):
            _call_on(loop, handle.cancel)
        self._timers.clear()

    @property
    def running(self) -> int:
        """How many deliveries are in flight (sending, waiting for an answer or backing off)."""
        return len(self._running)

    def stats(self) -> dict[str, int]:
        """Counts of deliveries, for ``GET /_emulator/health``."""
        return {
            "accepted": self.accepted,
            "running": len(self._running),
            "waiting": len(self._waiting),
            "finished": self.finished,
            "not_sent": self.not_sent,
        }

    # -- timers ---------------------------------------------------------------------------

    def _watch(self, task: Task) -> None:
        end = end_time(task)
        if end is None:  # runs forever: never ends, never fires
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # created outside a request: the next sweep or poll will do
            return
        self._loop = loop
        now = self.emulator.clock.now()
        if end > now and self.emulator.clock.mode != "real":
            return  # virtual time: advancing the clock sweeps the store
        delay = end - now + SWEEP_SLACK_S if end > now else 0.0
        self._timers[task.id] = (loop, loop.call_later(delay, self._sweep, task.id))

    def _sweep(self, task_id: str) -> None:
        self._timers.pop(task_id, None)
        emulator = self.emulator
        emulator.settle()
        task = emulator.tasks.peek(task_id)
        if task is not None and task.finished_at is None:  # the timer beat the wall clock
            self._watch(task)

    # -- delivery -------------------------------------------------------------------------

    def _spawn(self, make: Delivery, refuse: Callable[[], None]) -> None:
        """Run a delivery on the server's loop: this thread's, else the loop that registered
        the callback (a sweep from another thread), else a thread of its own. ``refuse()``
        journals it as not sent when too many are waiting already."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            self._queue(make, refuse)
            return
        loop = self._loop
        if loop is not None and loop.is_running():
            with contextlib.suppress(RuntimeError):  # closed in between: use a thread
                loop.call_soon_threadsafe(self._queue, make, refuse)
                return
        threading.Thread(
            target=asyncio.run, args=(make(),), name="aio-emulator-webhook", daemon=True
        ).start()

    def _queue(self, make: Delivery, refuse: Callable[[], None]) -> None:
        """Start ``make`` if a slot is free, else let it wait (on the loop's thread)."""
        self.accepted += 1
        if len(self._running) < self.max_concurrent:
            self._start(make)
        elif len(self._waiting) < self.max_waiting:
            self._waiting.append(make)
        else:
            self.not_sent += 1
            refuse()

    def _start(self, make: Delivery) -> None:
        delivery = asyncio.get_running_loop().create_task(make())
        self._running.add(delivery)
        delivery.add_done_callback(self._ended)

    def _ended(self, delivery: asyncio.Task[None]) -> None:
        self._running.discard(delivery)
        self.finished += 1
        while self._waiting and len(self._running) < self.max_concurrent:
            self._start(self._waiting.popleft())

    async def _deliver(
        self, task: Task, target: WebhookTarget, body: dict[str, Any], generation: int
    ) -> None:
        effect = target.effect or WebhookEffect()
        if effect.drop:
            self._record(task, target, body, 0, None, DROPPED, 0.0)
            return
        if effect.delay_s > 0:
            await asyncio.sleep(effect.delay_s)
        payload = dumps(body)
        status: int | None
        error: str | None
        for attempt in range(1, self.attempts + 1):
            if generation != self._generation:
                return
            if attempt <= effect.fail_attempts:
                status, error, latency_ms = None, SCRIPTED_FAILURE, 0.0
            else:
                status, error, latency_ms = await self._attempt(target.url, payload)
            if generation != self._generation:
                return
            self._record(task, target, body, attempt, status, error, latency_ms)
            if error is SELF_CALL:
                return
            if error is None:
                if effect.duplicate:
                    status, error, latency_ms = await self._attempt(target.url, payload)
                    if generation == self._generation:
                        self._record(
                            task, target, body, attempt, status, error, latency_ms, duplicate=True
                        )
                return
            if attempt < self.attempts:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))

    async def _attempt(self, url: str, payload: bytes) -> tuple[int | None, str | None, float]:
        """(HTTP status or None, error or None, latency in ms) of one POST."""
        started = time.perf_counter()
        status: int | None = None
        try:
            status = await post_json(url, payload, timeout_s=self.timeout_s, refuse=self._is_self)
            error = None if 200 <= status < 300 else f"the receiver answered HTTP {status}"
        except SelfCall:
            error = SELF_CALL
        except TimeoutError:
            error = f"timed out after {self.timeout_s:g} s"
        except Exception as exc:  # any failure is the receiver's problem, never the server's
            error = f"{type(exc).__name__}: {exc}"[:500]
        return status, error, round((time.perf_counter() - started) * 1000, 3)

    def _is_self(self, peer: tuple[Any, ...], local: tuple[Any, ...]) -> bool:
        """Whether a connection from ``local`` to ``peer`` reached one of our own sockets (one
        bound to all interfaces is reached through any address of this machine)."""
        for host, port in self.own_addresses:
            if peer[1] == port and (peer[0] == host or (host in _ANY and peer[0] == local[0])):
                return True
        return False

    def _record(
        self,
        task: Task,
        target: WebhookTarget,
        body: dict[str, Any],
        attempt: int,
        status: int | None,
        error: str | None,
        latency_ms: float,
        *,
        duplicate: bool = False,
    ) -> None:
        journal = self.emulator.journal
        journal.append(
            Entry(
                journal.next_seq(), "POST", target.url, "", task.key, dumps(body).decode(), True,
                status, error, task.id, None, self.emulator.clock.now(), time.time(),
                latency_ms / 1000, "webhook", attempt, duplicate,
            )
        )  # fmt: skip


def _call_on(loop: asyncio.AbstractEventLoop, fn: Callable[[], object]) -> None:
    """``fn()`` on ``loop``'s thread: directly when already there, else scheduled."""
    try:
        current = asyncio.get_running_loop()
    except RuntimeError:
        current = None
    if current is loop:
        fn()
        return
    with contextlib.suppress(RuntimeError):  # the loop is closed: nothing runs there anymore
        loop.call_soon_threadsafe(fn)


# -- the HTTP client ----------------------------------------------------------------------------


class SelfCall(ConnectionError):
    """The URL led to an address the caller refused (the emulator's own)."""


async def post_json(
    url: str,
    payload: bytes,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    refuse: Callable[[tuple[Any, ...], tuple[Any, ...]], bool] | None = None,
) -> int:
    """POST ``payload`` as JSON to ``url`` (http or https); the answer's HTTP status.

    Raises ``TimeoutError`` when there is no status line within ``timeout_s``, ``OSError`` on
    connection errors (and a connection closed without an answer), ``ValueError`` for a bad
    URL or a reply that is not HTTP, and :class:`SelfCall`, before anything is sent, when
    ``refuse(peer address, local address)`` is true of the connection (checked once connected,
    so a host name that resolves to a refused address is caught too).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url[:200]!r}")
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    name = parts.hostname.encode("idna").decode("ascii")  # credentials of the URL are not sent
    host = f"[{name}]" if ":" in name else name
    if parts.port is not None:
        host += f":{parts.port}"
    target = quote(parts.path or "/", safe="/%:@!$&'()*+,;=~")
    if parts.query:
        target += "?" + quote(parts.query, safe="/%:@!$&'()*+,;=~?")
    head = (
        f"POST {target} HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n"
        f"User-Agent: aio-emulator/{__version__} (webhook)\r\n"
        "Connection: close\r\n\r\n"
    ).encode("ascii")
    context = ssl.create_default_context() if https else None
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(parts.hostname, port, ssl=context)
            peer, local = writer.get_extra_info("peername"), writer.get_extra_info("sockname")
            if refuse is not None and peer and local and refuse(peer, local):
                raise SelfCall(f"{url[:200]!r} leads to a refused address {peer[0]}:{peer[1]}")
            writer.write(head + payload)
            await writer.drain()
            line = await reader.readline()
        if not line:
            raise ConnectionError("the receiver closed the connection without an answer")
        fields = line.split()
        if len(fields) < 2 or not fields[0].startswith(b"HTTP/") or not fields[1].isdigit():
            raise ValueError(f"the reply is not HTTP: {line[:80]!r}")
        with contextlib.suppress(Exception):  # the status decides; read the rest politely
            async with asyncio.timeout(1.0):
                await _drain(reader)
        return int(fields[1])
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()


async def _drain(reader: asyncio.StreamReader) -> None:
    length: int | None = None
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            length = int(value.strip())
    if length is not None:
        await reader.readexactly(min(length, MAX_REPLY_BYTES))
    else:
        await reader.read(MAX_REPLY_BYTES)
