"""Running the app on a real socket with uvicorn: in the foreground (CLI) or in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .binding import bind
from .housekeeping import housekeeping
from .protocol import (
    BODY_TIMEOUT_S,
    DEFAULT_MAX_CONNECTIONS,
    HEADER_TIMEOUT_S,
    WRITE_TIMEOUT_S,
    limited,
)

__all__ = ["LiveServer", "Server", "bind", "uvicorn_config"]


class _QuietFaults(logging.Filter):
    """Scripted resets end requests without a response on purpose: not worth an error line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "returned without starting response" not in record.getMessage()


_QUIET_FAULTS = _QuietFaults()


def uvicorn_config(
    app: Any,
    *,
    header_timeout_s: float = HEADER_TIMEOUT_S,
    body_timeout_s: float = BODY_TIMEOUT_S,
    write_timeout_s: float = WRITE_TIMEOUT_S,
    max_connections: int | None = None,
    **overrides: Any,
) -> uvicorn.Config:
    """The server settings the emulator runs with: httptools (a dependency, through
    ``uvicorn[standard]``), uvloop when available, no access log (the request journal replaces
    it), bounded keep-alive and header sizes, deadlines for slow headers, bodies and readers,
    and a connection limit (by default the app's ``config.max_connections``, see
    :func:`emulator.protocol.limited`)."""
    if max_connections is None:
        emulator = getattr(getattr(app, "state", None), "emulator", None)
        max_connections = DEFAULT_MAX_CONNECTIONS if emulator is None else (
            emulator.config.max_connections
        )  # fmt: skip
    protocol = limited(
        HttpToolsProtocol, header_timeout_s, body_timeout_s, write_timeout_s=write_timeout_s,
        max_connections=max_connections,
    )  # fmt: skip
    options: dict[str, Any] = {
        "log_level": "warning",
        "access_log": False,
        "lifespan": "off",
        "timeout_keep_alive": 5,
        "timeout_graceful_shutdown": 5,
        "h11_max_incomplete_event_size": 64 * 1024,
        "ws": "none",  # no WebSocket endpoints: do not import a WebSocket stack at start-up
        "http": protocol,
    }
    options.update(overrides)
    config = uvicorn.Config(app, **options)
    logging.getLogger("uvicorn.error").addFilter(_QUIET_FAULTS)
    return config


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
        #: the last save, at shutdown, failed (the CLI then exits 1)
        self.final_save_failed = False
        self._autosave: asyncio.Task[None] | None = None
        self._housekeeping: asyncio.Task[None] | None = None

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        app_state: Any = getattr(self.config.app, "state", None)
        emulator = getattr(app_state, "emulator", None)
        if self.started and emulator is not None:
            emulator.webhooks.own_addresses = [  # never a webhook to ourselves
                sock.getsockname()[:2] for server in self.servers for sock in server.sockets
            ]
        if self.started and emulator is not None and self.housekeeping:
            self._housekeeping = asyncio.create_task(housekeeping(emulator, collect_garbage=True))
        if self.started and emulator is not None and emulator.config.state_file:
            from .state import Autosaver

            settings = emulator.config
            self.autosaver = Autosaver(emulator, settings.state_file, settings.state_interval_s)
            app_state.saves = self.autosaver.status  # shown by /_emulator/health
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
            self.autosaver.save_now()  # (never raises: a failure is logged and counted)
            self.final_save_failed = self.autosaver.status["failures"] > 0

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


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

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop serving requests (None unless started): work that touches the
        emulator's state runs there safely (``loop.call_soon_threadsafe``)."""
        servers = self._server.servers if self._server is not None else []
        return servers[0].get_loop() if servers else None

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
