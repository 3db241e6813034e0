"""CORS for the emulated API, so browser apps on another origin can call it with ``fetch()``.

Every answer under ``/api/`` and ``/files/`` (errors and unknown paths included) to a request
that carries an ``Origin`` gets ``Access-Control-Allow-Origin`` (``*`` by default,
``--cors-origin`` narrows it to a list of origins) and exposes the headers clients read
(``Retry-After``, ``ETag``, ``Content-Length``, ``Accept-Ranges``). A preflight (``OPTIONS``
with ``Access-Control-Request-Method``) is answered ``204`` without a key: never billed,
rate-limited, journaled or counted as a poll. The control API gets no CORS at all
(:mod:`.guards`).
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import Message, Scope, Send

from .wire import API_PREFIX, FILES_PREFIX

__all__ = ["ALLOWED_METHODS", "EXPOSED_HEADERS", "Cors", "is_cross_origin_path", "is_preflight"]

ALLOWED_METHODS = b"GET, POST, OPTIONS"
EXPOSED_HEADERS = b"Retry-After, ETag, Content-Length, Accept-Ranges"
#: headers a preflight allows when it names none (what API clients send)
DEFAULT_ALLOWED_HEADERS = b"Authorization, Content-Type"
PREFLIGHT_MAX_AGE = b"600"
#: most bytes of a preflight's Access-Control-Request-Headers echoed back
MAX_REQUEST_HEADERS = 1024


def is_cross_origin_path(path: str) -> bool:
    """Whether ``path`` belongs to the emulated API (CORS applies), not the control API."""
    return path.startswith(API_PREFIX) or path.startswith(FILES_PREFIX)


class Cors:
    """The CORS policy: which origins may read the emulated API's answers."""

    def __init__(self, origins: Iterable[str] = ("*",)) -> None:
        listed = [o.strip().rstrip("/") for o in origins if o.strip()]
        self.any = not listed or "*" in listed
        self.origins = frozenset(o.encode("latin-1").lower() for o in listed)

    def allow(self, origin: bytes) -> bytes | None:
        """The ``Access-Control-Allow-Origin`` for a request from ``origin`` (None: none)."""
        if self.any:
            return b"*"
        return origin if origin.lower() in self.origins else None

    def headers(self, origin: bytes) -> list[tuple[bytes, bytes]]:
        """What every answer to ``origin`` carries."""
        allowed = self.allow(origin)
        if allowed is None:
            return [(b"vary", b"Origin")]
        out = [
            (b"access-control-allow-origin", allowed),
            (b"access-control-expose-headers", EXPOSED_HEADERS),
        ]
        if not self.any:
            out.append((b"vary", b"Origin"))
        return out

    def wrap(self, send: Send, origin: bytes) -> Send:
        """``send``, adding the CORS headers to the response's start."""
        extra = self.headers(origin)

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        return send_with_cors

    async def preflight(self, headers: dict[bytes, bytes], send: Send, origin: bytes) -> None:
        """Answer a preflight (``headers``: the request's, first value of each): 204, the
        methods, the headers the client asked for."""
        asked = headers.get(b"access-control-request-headers", DEFAULT_ALLOWED_HEADERS)
        out = self.headers(origin)
        if self.allow(origin) is not None:
            out += [
                (b"access-control-allow-methods", ALLOWED_METHODS),
                (b"access-control-allow-headers", asked[:MAX_REQUEST_HEADERS]),
                (b"access-control-max-age", PREFLIGHT_MAX_AGE),
            ]
        await send({"type": "http.response.start", "status": 204, "headers": out})
        await send({"type": "http.response.body", "body": b""})


def is_preflight(scope: Scope, headers: dict[bytes, bytes]) -> bool:
    return scope["method"] == "OPTIONS" and b"access-control-request-method" in headers
