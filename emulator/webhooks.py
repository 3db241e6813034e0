"""Webhooks: POST a task's final body to its ``callback_url`` when the task ends.

Tasks run nothing in the background: the store notices that a task has ended on a sweep or a
poll, and calls :meth:`WebhookDispatcher.task_ended`. So that a webhook goes out even when
nobody polls, a task with a callback gets a timer on the server's event loop that sweeps the
store when the task ends (real clock); under the virtual clock, advancing it sweeps (in-process,
the calls of the test settle the store: no timers).

A delivery is an asyncio task: 5 s per attempt, retried with exponential backoff on connection
errors and non-2xx answers, its ``delay`` and backoff waited on the emulator's clock (a virtual
clock's waits end when it is advanced, never by sleeping). Every attempt is in the request
journal with ``kind: "webhook"`` and the body sent. A failed delivery never changes the task or
the credits.

Where it runs and how it is sent: on a live server, on the server's event loop with a minimal
HTTP/1.1 client over ``asyncio.open_connection`` (:func:`post_json`, stdlib only, no proxies).
A :class:`DeliveryHost` (in-process mode) takes the deliveries started from its threads instead:
they wait until the host drives them (:meth:`WebhookDispatcher.drain`) and are sent with the
host's sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import itertools
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Protocol
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
    "HEADERS",
    "DeliveryHost",
    "SelfCall",
    "Sender",
    "WebhookDispatcher",
    "WebhookTarget",
    "post_json",
    "webhook_body",
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
#: a wait on the emulator's clock is over this close to its time (an epoch's float is only
#: good to about 0.2 µs: advancing by half the backoff twice must reach it)
CLOCK_EPSILON_S = 1e-6
#: the headers of every webhook POST besides ``Host`` and ``Content-Length``, whoever sends it
HEADERS = (
    ("Content-Type", "application/json"),
    ("User-Agent", f"aio-emulator/{__version__} (webhook)"),
    ("Connection", "close"),
)

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
#: whether a connection from the second address to the first reached a refused socket
Refuse = Callable[[tuple[Any, ...], tuple[Any, ...]], bool]


class Sender(Protocol):
    """Sends one webhook POST: the receiver's HTTP status (:func:`post_json` is one)."""

    def __call__(
        self, url: str, payload: bytes, *, timeout_s: float, refuse: Refuse | None = None
    ) -> Awaitable[int]: ...


class DeliveryHost(Protocol):
    """Runs the deliveries of an emulator that serves without a socket (in-process mode)."""

    #: how the host's deliveries are sent (every delivery while a host is attached)
    sender: Sender

    def holds(self) -> bool:
        """Whether a delivery started now, in this thread, is the host's to run (it then waits
        for :meth:`WebhookDispatcher.drain` on the host's loop)."""
        ...


def webhook_body(emulator: Emulator, task: Task) -> dict[str, Any]:
    """The body a task's webhook POSTs: what its status route (``GET /api/v1/tasks/{id}``, a
    music task's feed or upload-cover status) answers now, under the create's status words and
    base URL (the one place a webhook's body is built)."""
    target = task.webhook
    assert target is not None
    view = observe(task, emulator.clock.now())
    words = {State(k): v for k, v in target.words.items()}
    return success(emulator.callback_body(task, view, target.base_url, words))


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
        #: how deliveries are sent when no host is attached
        self.sender: Sender = post_json
        #: the in-process host, while one is attached (:meth:`attach`)
        self.host: DeliveryHost | None = None
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
        #: deliveries started for the host, not yet running (the next drain starts them)
        self._held: deque[tuple[Delivery, Callable[[], None]]] = deque()
        #: waits for a time on the virtual clock, (due, n, future, task), soonest first: woken
        #: by wake() when the clock moves; the host's waits (either clock) are woken by drain()
        self._alarms: list[tuple[float, int, asyncio.Future[None], asyncio.Task[Any]]] = []
        self._hosted: list[tuple[float, int, asyncio.Future[None], asyncio.Task[Any]]] = []
        self._order = itertools.count()
        #: the host's deliveries waiting for a time not come yet: a drain does not wait for them
        self._parked: set[asyncio.Task[Any]] = set()
        #: drains waiting for a delivery to park
        self._watchers: set[asyncio.Future[None]] = set()

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
        body = webhook_body(self.emulator, task)
        generation = self._generation
        host = self.host
        sender = host.sender if host is not None else self.sender
        hosted = host is not None and host.holds()
        self._spawn(
            lambda: self._deliver(task, target, body, generation, sender, hosted),
            lambda: self._record(task, target, body, 0, None, QUEUE_FULL, 0.0),
            hosted,
        )

    def cancel_all(self) -> None:
        """Stop every running delivery and sweep timer (on reset); safe from any thread."""
        self._generation += 1
        self._waiting.clear()  # (each would return at once: its generation has passed)
        self._held.clear()
        self._alarms.clear()
        self._hosted.clear()
        self._parked.clear()
        for delivery in list(self._running):
            if delivery.get_loop().is_closed():  # (it will never run again: forget it)
                self._running.discard(delivery)
            else:
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

    # -- the emulator's clock -------------------------------------------------------------

    def wake(self) -> None:
        """Resume the deliveries whose wait on the virtual clock is over (called when it moves;
        from any thread: each resumes on its own loop)."""
        now = self.emulator.clock.now() + CLOCK_EPSILON_S
        alarms = self._alarms
        while alarms and alarms[0][0] <= now:
            future = heapq.heappop(alarms)[2]
            _call_on(future.get_loop(), functools.partial(_resolve, future))

    async def _until(self, due: float, hosted: bool) -> None:
        """Wait until the emulator's clock reaches ``due``: an asyncio sleep on a live server's
        real clock; else until :meth:`wake` (virtual clock) or a drain (the host's) sees it."""
        clock = self.emulator.clock
        now = clock.now()
        if now + CLOCK_EPSILON_S >= due:
            return
        if not hosted and clock.mode == "real":
            await asyncio.sleep(due - now)
            return
        future = asyncio.get_running_loop().create_future()
        task = asyncio.current_task()
        assert task is not None
        alarms = self._hosted if hosted else self._alarms
        heapq.heappush(alarms, (due, next(self._order), future, task))
        if hosted:
            self._parked.add(task)
            for watcher in self._watchers:
                _resolve(watcher)
        try:
            await future
        finally:
            self._parked.discard(task)

    # -- the host (in-process mode) -------------------------------------------------------

    def attach(self, host: DeliveryHost | None) -> None:
        """Make ``host`` run the deliveries started from its threads (None: no host)."""
        self.host = host

    def has_work(self) -> bool:
        """Whether a drain has something to do now: deliveries held for the host, or one of
        the host's waits over."""
        hosted = self._hosted
        now = self.emulator.clock.now() + CLOCK_EPSILON_S
        return bool(self._held) or bool(hosted and hosted[0][0] <= now)

    async def drain(self) -> None:
        """On the host's loop: start the held deliveries and run them, and those whose wait is
        over, until each has finished or waits for a time still to come."""
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        while True:
            now = self.emulator.clock.now() + CLOCK_EPSILON_S
            hosted = self._hosted
            while hosted and hosted[0][0] <= now:
                _, _, future, task = heapq.heappop(hosted)
                self._parked.discard(task)
                _call_on(future.get_loop(), functools.partial(_resolve, future))
            while self._held:
                self._queue(*self._held.popleft())
            busy = [
                d for d in self._running
                if d.get_loop() is loop and d not in self._parked and d is not me
            ]  # fmt: skip
            if not busy:
                return
            parked = loop.create_future()
            self._watchers.add(parked)
            try:
                await asyncio.wait([*busy, parked], return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._watchers.discard(parked)

    async def abandon(self) -> None:
        """On the host's loop, as the host goes away: cancel its deliveries on this loop and
        wait for them to end."""
        loop = asyncio.get_running_loop()
        self._held.clear()
        mine = [d for d in self._running if d.get_loop() is loop]
        for delivery in mine:
            delivery.cancel()
        await asyncio.gather(*mine, return_exceptions=True)
        self._hosted = [alarm for alarm in self._hosted if alarm[2].get_loop() is not loop]
        heapq.heapify(self._hosted)

    # -- timers ---------------------------------------------------------------------------

    def _watch(self, task: Task) -> None:
        end = end_time(task)
        if end is None:  # runs forever: never ends, never fires
            return
        if self.host is not None and self.host.holds():  # the host's calls settle the store
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

    def _spawn(self, make: Delivery, refuse: Callable[[], None], hosted: bool = False) -> None:
        """Run a delivery: held for the host's next drain (``hosted``); else on the server's
        loop: this thread's, else the loop that registered the callback (a sweep from another
        thread), else a thread of its own. ``refuse()`` journals it as not sent when too many
        are waiting already."""
        if hosted:
            self._held.append((make, refuse))
            return
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
        self,
        task: Task,
        target: WebhookTarget,
        body: dict[str, Any],
        generation: int,
        sender: Sender,
        hosted: bool,
    ) -> None:
        effect = target.effect or WebhookEffect()
        if effect.drop:
            self._record(task, target, body, 0, None, DROPPED, 0.0)
            return
        clock = self.emulator.clock
        if effect.delay_s > 0:  # after the task's end, on the emulator's clock
            ended = task.finished_at if task.finished_at is not None else clock.now()
            await self._until(ended + effect.delay_s, hosted)
        payload = dumps(body)
        status: int | None
        error: str | None
        for attempt in range(1, self.attempts + 1):
            if generation != self._generation:
                return
            if attempt <= effect.fail_attempts:
                status, error, latency_ms = None, SCRIPTED_FAILURE, 0.0
            else:
                status, error, latency_ms = await self._attempt(target.url, payload, sender)
            if generation != self._generation:
                return
            self._record(task, target, body, attempt, status, error, latency_ms)
            if error is SELF_CALL:
                return
            if error is None:
                if effect.duplicate:
                    status, error, latency_ms = await self._attempt(target.url, payload, sender)
                    if generation == self._generation:
                        self._record(
                            task, target, body, attempt, status, error, latency_ms, duplicate=True
                        )
                return
            if attempt < self.attempts:
                await self._until(clock.now() + self.backoff_s * 2 ** (attempt - 1), hosted)

    async def _attempt(
        self, url: str, payload: bytes, sender: Sender
    ) -> tuple[int | None, str | None, float]:
        """(HTTP status or None, error or None, latency in ms) of one POST."""
        started = time.perf_counter()
        status: int | None = None
        try:
            if sender is not post_json and await self._leads_here(url):
                raise SelfCall(url)
            status = await sender(url, payload, timeout_s=self.timeout_s, refuse=self._is_self)
            error = None if 200 <= status < 300 else f"the receiver answered HTTP {status}"
        except SelfCall:
            error = SELF_CALL
        except TimeoutError:
            error = f"timed out after {self.timeout_s:g} s"
        except Exception as exc:  # any failure is the receiver's problem, never the server's
            error = f"{type(exc).__name__}: {exc}"[:500]
        return status, error, round((time.perf_counter() - started) * 1000, 3)

    async def _leads_here(self, url: str) -> bool:
        """Whether ``url`` names one of our sockets, checked before another sender than
        :func:`post_json` (which checks the address it connected to) sends it; the name is
        resolved only when its port is one of theirs."""
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if not parts.hostname or all(own != port for _, own in self.own_addresses):
            return False
        loop = asyncio.get_running_loop()
        found = await loop.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
        return any(self._is_self(info[4][:2], info[4][:2]) for info in found)

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


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


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


def check_url(url: str) -> None:
    """``ValueError`` unless ``url`` is an http(s) URL with a host (what every sender takes)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url[:200]!r}")


async def post_json(
    url: str,
    payload: bytes,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    refuse: Refuse | None = None,
) -> int:
    """POST ``payload`` as JSON to ``url`` (http or https); the answer's HTTP status.

    Raises ``TimeoutError`` when there is no status line within ``timeout_s``, ``OSError`` on
    connection errors (and a connection closed without an answer), ``ValueError`` for a bad
    URL or a reply that is not HTTP, and :class:`SelfCall`, before anything is sent, when
    ``refuse(peer address, local address)`` is true of the connection (checked once connected,
    so a host name that resolves to a refused address is caught too).
    """
    check_url(url)
    parts = urlsplit(url)
    assert parts.hostname is not None
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    name = parts.hostname.encode("idna").decode("ascii")  # credentials of the URL are not sent
    host = f"[{name}]" if ":" in name else name
    if parts.port is not None:
        host += f":{parts.port}"
    target = quote(parts.path or "/", safe="/%:@!$&'()*+,;=~")
    if parts.query:
        target += "?" + quote(parts.query, safe="/%:@!$&'()*+,;=~?")
    (_, content_type), (_, agent), (_, connection) = HEADERS
    head = (
        f"POST {target} HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(payload)}\r\n"
        f"User-Agent: {agent}\r\n"
        f"Connection: {connection}\r\n\r\n"
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
