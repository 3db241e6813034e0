"""The apps and live servers of one pytest session, one per clock and seed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import Config

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from .server import LiveServer

__all__ = ["PortsTaken", "ServerFactory"]


class ServerFactory:
    """The apps and live servers of one session (one per xdist worker), one per clock and seed.

    A test whose marker asks for another clock or seed than the session's config gets an app of
    its own, built on first use and kept for the session: an emulator's clock kind is fixed when
    it is built, so tests never swap clocks on a shared one.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._apps: dict[tuple[str, int | None], Starlette] = {}
        self._servers: dict[tuple[str, int | None, int, int], LiveServer] = {}

    def config_for(self, *, clock: str | None = None, seed: int | None = None) -> Config:
        """The session config with a test's clock and seed, when it sets them."""
        changes = {k: v for k, v in (("clock", clock), ("seed", seed)) if v is not None}
        return self.config.with_(**changes) if changes else self.config

    def app(self, config: Config) -> Starlette:
        key = (config.clock, config.seed)
        if key not in self._apps:
            from .app import create_app

            self._apps[key] = create_app(config)
        return self._apps[key]

    def server(self, config: Config, ports: tuple[int, int] | None = None) -> LiveServer:
        """The live server of ``config``'s app on the first free port of ``ports`` (default:
        ``config.port``; 0 is any free port), started on first use. Servers on other ports
        serve the same app: one emulator per clock and seed."""
        low, high = ports if ports is not None else (config.port, config.port)
        key = (config.clock, config.seed, low, high)
        if key not in self._servers:
            self._servers[key] = _listen(self.app(config), low, high)
        return self._servers[key]

    def close(self) -> None:
        for server in self._servers.values():
            server.stop()
        self._servers.clear()
        self._apps.clear()


def _listen(app: Starlette, low: int, high: int) -> LiveServer:
    """A live server of ``app`` on the first port from ``low`` to ``high`` it can bind."""
    from .server import LiveServer

    problem: OSError | None = None
    for port in range(low, high + 1):
        try:
            return LiveServer(app, port=port).start()
        except OSError as exc:
            problem = exc
    where = f"port {low}" if low == high else f"any port from {low} to {high}"
    reason = problem.strerror if problem is not None and problem.strerror else problem
    raise PortsTaken(
        f"the live emulator cannot listen on 127.0.0.1, {where}: {reason}. Another process, or "
        "another pytest-xdist worker, has it: give a range, e.g. "
        "@pytest.mark.aio_emulator(ports=(8700, 8799)), or port=0 for any free port"
    ) from problem


class PortsTaken(OSError):
    """No port the test asked for is free (the message says which and what to do)."""
