"""The ASGI application: emulated endpoints first, then Starlette for the control API, docs and
everything else, one journal and one error envelope for both; CORS for the emulated API
(:mod:`.cors`), the control API's guards (:mod:`.guards`)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import api, control, dashboard, openapi
from .config import Config
from .cors import Cors, is_cross_origin_path, is_preflight
from .errors import APIError, method_not_allowed, server_error
from .faults import NetworkFault
from .guards import ControlGuard
from .service import Emulator
from .wire import API_PREFIX, CHAT_PATH, CONTROL_PREFIX, FILES_PREFIX

if TYPE_CHECKING:
    from .chat.handler import ChatEndpoint

__all__ = ["create_app"]


class EmulatorApp(Starlette):
    """Starlette, with the emulated endpoints served ahead of its router by :class:`api.API`
    and chat's handler (their hot path skips Starlette's routing and middleware)."""

    def __init__(self, emulator: Emulator, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state.emulator = emulator
        self.cors = Cors(emulator.config.cors_origins)
        self.api = api.API(emulator, self.cors)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            found = self.api.route(path)
            if found is not None:
                await self.api.serve(found[0], found[1], scope, receive, send)
                return
            if is_cross_origin_path(path):  # chat, or an unknown path of the API: readable
                headers = dict(reversed(scope["headers"]))
                origin = headers.get(b"origin")
                if origin is not None:
                    if is_preflight(scope, headers):
                        await self.cors.preflight(headers, send, origin)
                        return
                    send = self.cors.wrap(send, origin)
                if path == CHAT_PATH:
                    await self.chat(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)

    @functools.cached_property
    def chat(self) -> ChatEndpoint:
        """POST /api/v1/chat/completions (emulator/chat/), imported on first use. It streams
        and journals its answer, so it is an ASGI app of its own rather than an
        :class:`api.Endpoint`, whose handlers return one whole answer."""
        from .chat.handler import ChatEndpoint

        return ChatEndpoint(self.state.emulator)


def create_app(config: Config | None = None, *, emulator: Emulator | None = None) -> EmulatorApp:
    """Build the app with all its state (no lifespan needed, so in-process transports work)."""
    emulator = emulator or Emulator(config)
    app = EmulatorApp(
        emulator,
        routes=[*control.routes, *openapi.routes, *dashboard.routes],
        middleware=[
            Middleware(
                ControlGuard,
                bind_host=emulator.config.host,
                public_url=emulator.config.public_url,
                allowed_hosts=emulator.config.allowed_hosts,
                token=emulator.config.control_token,
            ),
            Middleware(JournalMiddleware, emulator=emulator),
        ],
        exception_handlers={
            APIError: _api_error,
            HTTPException: _http_error,
            Exception: _server_error,
        },
    )
    if emulator.config.state_file:
        from .state import load_into

        load_into(emulator, emulator.config.state_file)
    return app


class JournalMiddleware:
    """Journals what Starlette serves outside the control API (unknown paths) with the status
    it got; the emulated endpoints journal themselves (:class:`api.API`)."""

    def __init__(self, app: ASGIApp, emulator: Emulator) -> None:
        self.app = app
        self.emulator = emulator
        self.now = emulator.clock.now

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        call = api.Call(scope, receive)
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            state: dict[str, Any] = scope.get("state") or {}
            call.key = state.get("key")
            journal = self.emulator.journal
            entry = call.entry(journal.next_seq(), status, state.get("error"), self.now())
            journal.append(entry)


def _render(request: Request, error: APIError, headers: Any = None) -> Response:
    """``error`` as Starlette's answer (for what Starlette serves), noted for the journal."""
    request.state.error = error.message
    reply = error.reply()
    response = Response(reply.body, reply.status, media_type="application/json")
    if headers:
        response.headers.update(headers)
    return response


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return _render(request, exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        paths = request.app.state.emulator.catalogue.by_path
        creates = ", ".join(
            sorted({"/".join(p.removeprefix(API_PREFIX).split("/")[:2]) for p in paths})
        )
        error = APIError(
            f"Unknown path {request.method} {request.url.path[:200]!r}. The emulator serves "
            f"the API under {API_PREFIX} ({creates}, tasks/{{task_id}}, chat/completions: "
            f"every route is in /openapi.json), files under {FILES_PREFIX} and its control "
            f"API under {CONTROL_PREFIX}.",
            status=404,
        )
        return _render(request, error, exc.headers)
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return _render(request, method_not_allowed(request.method, request.url.path, allowed))
    return _render(request, APIError(str(exc.detail), status=exc.status_code), exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    emulator: Emulator = request.app.state.emulator
    if not isinstance(exc, NetworkFault):  # a scripted fault, not a bug
        emulator.record_server_error(exc)
    return _render(request, server_error(exc))
