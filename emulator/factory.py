"""The apps and live servers of one pytest session, one per clock and seed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import Config

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from .server import LiveServer

__all__ = ["ServerFactory"]


class ServerFactory:
    """The apps and live servers of one session (one per xdist worker), one per clock and seed.

    A test whose marker asks for another clock or seed than the session's config gets an app of
    its own, built on first use and kept for the session: an emulator's clock kind is fixed when
    it is built, so tests never swap clocks on a shared one.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._apps: dict[tuple[str, int | None], Starlette] = {}
        self._servers: dict[tuple[str, int | None], LiveServer] = {}

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

    def server(self, config: Config) -> LiveServer:
        """The live server of ``config``'s app, started on a free loopback port on first use."""
        key = (config.clock, config.seed)
        if key not in self._servers:
            from .server import LiveServer

            self._servers[key] = LiveServer(self.app(config)).start()
        return self._servers[key]

    def close(self) -> None:
        for server in self._servers.values():
            server.stop()
        self._servers.clear()
        self._apps.clear()
