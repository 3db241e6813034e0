"""Running the app on a real socket with uvicorn: in the foreground (CLI) or in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import threading
import time
from typing import Any

import uvicorn
from uvicorn.protocols.http.auto import AutoHTTPProtocol

__all__ = [
    "LiveServer",
    "Server",
    "bind",
    "collect_young",
    "freeze_startup_objects",
    "housekeeping",
    "uvicorn_config",
]


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0 picks a free one), bound before uvicorn starts so the real
    port is known and there is no race to find a free port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


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


#: housekeeping steps between full collections (about 100 s)
FULL_COLLECTION_EVERY = 2000


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


class _QuietFaults(logging.Filter):
    """Scripted resets end requests without a response on purpose: not worth an error line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "returned without starting response" not in record.getMessage()


#: a connection must complete a request's headers within this many seconds of opening (or of
#: its previous response), else it is closed: slow-loris clients cannot pile up
HEADER_TIMEOUT_S = 10.0
#: and the request's body within this many seconds of its headers (1 MiB, the largest body
#: accepted, in 30 s is 35 KB/s)
BODY_TIMEOUT_S = 30.0
#: most bytes a request line and headers may take (httptools has no limit of its own)
MAX_HEADER_BYTES = 64 * 1024
_TOO_LARGE = b'{"error":{"code":431,"message":"Request headers are larger than 65536 bytes",' \
    b'"type":"invalid_request_error"}}'  # fmt: skip
_TOO_LARGE_RESPONSE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TOO_LARGE), _TOO_LARGE)
)


def _header_deadline(
    base: type[asyncio.Protocol], timeout_s: float, body_timeout_s: float
) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools or h11) closing connections whose request headers,
    or then body, do not arrive in time (uvicorn only times out idle keep-alive connections,
    not slow ones). A body cut off this way reaches the app as a disconnect."""

    class HeaderDeadline(base):  # type: ignore[valid-type,misc]
        _deadline: asyncio.TimerHandle | None = None
        _body_deadline: asyncio.TimerHandle | None = None
        _body_cycle: Any = None
        _header_bytes = 0

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:
                self._header_bytes = 0  # a request is being answered: the rest is its body
                if cycle.more_body and cycle is not self._body_cycle:  # body still to come
                    self._body_cycle = cycle
                    self._body_deadline = self.loop.call_later(
                        body_timeout_s, self._expire_body, cycle
                    )
                return
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES and not self.transport.is_closing():
                self.transport.write(_TOO_LARGE_RESPONSE)
                self.transport.close()

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm_deadline()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._cancel_body_deadline()
            self._arm_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._cancel_body_deadline()
            super().connection_lost(exc)

        def _cancel_body_deadline(self) -> None:
            if self._body_deadline is not None:
                self._body_deadline.cancel()
                self._body_deadline = None

        def _expire_body(self, cycle: Any) -> None:
            self._body_deadline = None
            if self.cycle is cycle and cycle.more_body and not self.transport.is_closing():
                self.transport.close()  # the body stopped arriving

        def _arm_deadline(self) -> None:
            self._header_bytes = 0
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self.loop.call_later(timeout_s, self._expire, self.cycle)

        def _expire(self, cycle: Any) -> None:
            self._deadline = None
            if self.cycle is cycle and not self.transport.is_closing():
                self.transport.close()  # no new request since the deadline was set

    HeaderDeadline.__name__ = HeaderDeadline.__qualname__ = f"HeaderDeadline{base.__name__}"
    return HeaderDeadline


def uvicorn_config(
    app: Any,
    *,
    header_timeout_s: float = HEADER_TIMEOUT_S,
    body_timeout_s: float = BODY_TIMEOUT_S,
    **overrides: Any,
) -> uvicorn.Config:
    """The server settings the emulator runs with: uvloop/httptools when available, no access
    log (the request journal replaces it), bounded keep-alive and header sizes, deadlines for
    slow headers and bodies."""
    options: dict[str, Any] = {
        "log_level": "warning",
        "access_log": False,
        "lifespan": "off",
        "timeout_keep_alive": 5,
        "timeout_graceful_shutdown": 5,
        "h11_max_incomplete_event_size": 64 * 1024,
        "ws": "none",  # no WebSocket endpoints: do not import a WebSocket stack at start-up
        "http": _header_deadline(AutoHTTPProtocol, header_timeout_s, body_timeout_s),
    }
    options.update(overrides)
    config = uvicorn.Config(app, **options)
    logging.getLogger("uvicorn.error").addFilter(_QUIET_FAULTS)
    return config


_QUIET_FAULTS = _QuietFaults()


#: how often a serving process settles ended tasks in the background, and at most how many
#: at a time before letting requests in again
HOUSEKEEPING_S = 0.05
HOUSEKEEPING_BATCH = 256


async def housekeeping(emulator: Any, *, collect_garbage: bool = False) -> None:
    """Settle tasks that ended and forget expired ones between requests, in small steps, so
    the first requests after a quiet spell do not pay for everything that ended meanwhile
    (each request still settles a bounded number itself, which covers in-process use). With
    ``collect_garbage``, also runs the garbage collector's schedule (:func:`collect_young`)."""
    step = 0
    while True:
        await asyncio.sleep(HOUSEKEEPING_S)
        while emulator.tasks.settle(limit=HOUSEKEEPING_BATCH):
            await asyncio.sleep(0)
        if collect_garbage:
            step += 1
            collect_young(step)


class Server(uvicorn.Server):
    """uvicorn's server, stopping cleanly (exit status 0) on SIGINT or SIGTERM instead of
    re-raising the signal once shut down. ``on_started`` runs once it accepts connections.

    With ``housekeeping`` (the CLI, a process that only serves) it also settles ended tasks in
    the background and runs the garbage collector on a schedule; not for the pytest plugin's
    live server, whose test thread may sweep the same store and whose process is the user's."""

    def __init__(
        self, config: uvicorn.Config, on_started: Any = None, *, housekeeping: bool = False
    ) -> None:
        super().__init__(config)
        self.on_started = on_started
        self.housekeeping = housekeeping
        self.autosaver: Any = None
        self._autosave: asyncio.Task[None] | None = None
        self._housekeeping: asyncio.Task[None] | None = None

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        emulator = getattr(getattr(self.config.app, "state", None), "emulator", None)
        if self.started and emulator is not None and self.housekeeping:
            self._housekeeping = asyncio.create_task(housekeeping(emulator, collect_garbage=True))
            emulator.media.use_process_pool()  # renders on every core, off the event loop
        if self.started and emulator is not None and emulator.config.state_file:
            from .state import Autosaver

            settings = emulator.config
            self.autosaver = Autosaver(emulator, settings.state_file, settings.state_interval_s)
            self._autosave = asyncio.create_task(self.autosaver.run())
        if self.on_started is not None and self.started:
            self.on_started()

    async def shutdown(self, sockets: Any = None) -> None:
        """uvicorn's shutdown (in-flight requests get ``timeout_graceful_shutdown``), then the
        last save of the state file."""
        await super().shutdown(sockets)
        for task in (self._housekeeping, self._autosave):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.autosaver is not None:
            self.autosaver.save_now()
        emulator = getattr(getattr(self.config.app, "state", None), "emulator", None)
        if emulator is not None:
            emulator.media.close()  # the render pool's processes, if it started

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[override]
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class LiveServer:
    """uvicorn in a background thread on 127.0.0.1 (a free port by default)."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> LiveServer:
        self._socket = bind(self.host, self.port)
        self.port = self._socket.getsockname()[1]
        self._server = Server(uvicorn_config(self.app))
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=f"aio-emulator:{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the emulator server thread exited during start-up")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the emulator server did not start within {timeout} s")
            time.sleep(0.001)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
