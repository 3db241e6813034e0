"""Who may use the control API (``/_emulator/``): the user's own tools, never a web page on
another origin.

- **Host names.** The control API answers only requests whose ``Host`` is a loopback name
  (``localhost``, ``*.localhost``, ``127.x.x.x``, ``[::1]``), the host the server is bound to,
  the ``--public-url`` host or a host named with ``--allow-host``: a DNS-rebinding page, whose
  requests carry its own host name, cannot read the journal or drive the emulator.
- **Foreign pages.** A call that changes state (any method but GET and HEAD) is refused when it
  comes from another origin (its ``Origin`` is not the ``Host`` it was sent to, or
  ``Sec-Fetch-Site: cross-site``), and when its body is a form or plain text: the kinds of
  request a page can send elsewhere without a CORS preflight. The control API answers no
  preflight, so a browser never lets a page send it anything else.
- **The control token**, when one is set: every control call must carry it.

Each refusal is an error in the API's envelope saying what to do.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import APIError, AuthenticationError, UnsupportedMediaType
from .wire import CONTROL_PREFIX, send_reply

__all__ = ["ControlGuard", "host_name", "is_loopback_name"]

#: request methods that change nothing
SAFE_METHODS = frozenset({"GET", "HEAD"})
#: media types a page may POST to another origin without a preflight (CORS "simple" requests)
SIMPLE_MEDIA_TYPES = frozenset(
    {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"}
)
#: a bind address that means "every interface": it names no host
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})


def host_name(host: str) -> str:
    """The name part of a ``Host`` header or URL netloc (no port, brackets or case)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback_name(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class ControlGuard:
    """ASGI middleware in front of the control API (other paths pass straight through)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        bind_host: str = "127.0.0.1",
        public_url: str | None = None,
        allowed_hosts: Iterable[str] = (),
        token: str | None = None,
    ) -> None:
        self.app = app
        hosts = {host_name(h) for h in allowed_hosts}
        if host_name(bind_host) not in WILDCARD_HOSTS:
            hosts.add(host_name(bind_host))
        if public_url:
            hosts.add(host_name(urlsplit(public_url).netloc))
        self.hosts = frozenset(hosts)
        #: the origin pages served through --public-url have (they may change state)
        self.public_origin = _origin(public_url) if public_url else None
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/_emulator" or path.startswith(CONTROL_PREFIX)):
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is not None:
            await send_reply(send, refusal.reply())
            return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> APIError | None:
        """Why this control call is refused (None: it is not)."""
        headers = dict(reversed(scope["headers"]))  # (first value wins, as in Starlette)
        host = headers.get(b"host", b"").decode("latin-1")
        name = host_name(host)
        if not (is_loopback_name(name) or name in self.hosts):
            return APIError(
                f"The control API answers loopback host names and the server's own, not "
                f"{host[:100]!r}. To reach it by that name, start the emulator with "
                f"--allow-host {name[:100]} (or --public-url).",
                status=403,
            )
        if scope["method"] not in SAFE_METHODS:
            origin = headers.get(b"origin")
            own = (_origin(f"{scope.get('scheme', 'http')}://{host}"), self.public_origin)
            sent = _origin(origin.decode("latin-1")) if origin is not None else None
            foreign = origin is not None and (sent is None or sent not in own)
            if foreign or headers.get(b"sec-fetch-site") == b"cross-site":
                return APIError(
                    "Control calls that change the emulator are refused from pages on another "
                    "origin. Call it from your own tools (curl, a test, the dashboard it serves).",
                    status=403,
                )
            media = headers.get(b"content-type", b"").decode("latin-1")
            if media.partition(";")[0].strip().lower() in SIMPLE_MEDIA_TYPES:
                return UnsupportedMediaType(
                    f"Control calls that change the emulator take JSON, not {media[:80]!r}: "
                    "send 'Content-Type: application/json' (or no body)."
                )
        if self.token is not None:
            given = headers.get(b"x-emulator-token")
            if given is None:
                bearer = headers.get(b"authorization", b"")
                given = bearer[7:] if bearer[:7].lower() == b"bearer " else b""
            if not hmac.compare_digest(given.strip(), self.token):
                return AuthenticationError(
                    "Missing or wrong control token: /_emulator/ calls need the header "
                    "'Authorization: Bearer <token>' or 'X-Emulator-Token: <token>'",
                    headers={"WWW-Authenticate": 'Bearer realm="aio-emulator control"'},
                )
        return None


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host name, port) of a URL, the port its scheme's default when it names none
    (None: not a URL with a host, as ``Origin: null``)."""
    parts = urlsplit(url.strip().lower())
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.scheme, host_name(parts.netloc), port
