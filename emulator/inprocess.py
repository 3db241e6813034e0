"""In-process mode: respx answers httpx requests for https://apiin.one with the emulator's ASGI
app, for sync and async clients alike, without a socket.

Webhooks in-process are sent with httpx, so the respx routes of the test receive them (a host
with no route is reached over the network, as the live server does). They run on the loop the
bridge uses, never in a thread of their own and never while the test runs: a request or a
handle call that starts or resumes a delivery runs it before it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import ssl
import threading
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlsplit

from .handle import Checks, EmulatorHandle
from .marker import REAL_BASE_URL
from .media import RENDER_HERE
from .webhooks import (
    HEADERS,
    Refuse,
    SelfCall,
    Sender,
    WebhookDispatcher,
    check_url,
    post_json,
)

if TYPE_CHECKING:
    import httpx
    import respx
    from anyio.from_thread import BlockingPortal
    from starlette.applications import Starlette

    from .service import Emulator

__all__ = ["RespxEmulatorHandle"]

#: set while respx resolves a request of a sync client (see ``_sync_router``)
_SYNC_REQUEST: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "aio_emulator_sync_request", default=False
)

#: set while the bridge serves a request, whatever thread runs it: the webhook deliveries
#: the request starts are the bridge's to run (see ``_Host.holds``)
_SERVING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "aio_emulator_serving", default=False
)

#: set while a webhook is sent with httpx: a request the bridge would answer then is refused
#: (a webhook must never drive the emulator itself)
_DELIVERING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "aio_emulator_delivering", default=False
)

_T = TypeVar("_T")


class _ASGIBridge:
    """A respx side effect that answers with the ASGI app: awaited on the caller's event loop
    for an async client; for a sync client, run on a private event loop in the calling thread
    (or on a portal thread, when the thread already runs a loop).

    It calls the app itself rather than through ``httpx.ASGITransport``, which tries to import
    ``sniffio`` on every request (a failed import, about 0.2 ms, when sniffio is absent).
    """

    def __init__(self, app: Starlette, webhooks: WebhookDispatcher | None = None) -> None:
        self.app = app
        #: the deliveries this bridge drives (see :meth:`drive`)
        self.webhooks = webhooks
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exit = contextlib.ExitStack()
        self._portal: BlockingPortal | None = None
        self._portal_thread: int | None = None

    def __call__(self, request: httpx.Request) -> Any:
        if _SYNC_REQUEST.get():
            return self._run(self._serve(request))
        return self._serve(request)

    # -- webhook deliveries ---------------------------------------------------------------

    def drive(self) -> None:
        """Run the webhook deliveries that can go on now until each has finished or waits for
        a time still to come: on the private loop in a sync test, on the portal's when this
        thread runs a loop (an async test). Inside a delivery (a route's side effect calling
        the handle), nothing: the drain already running sees to them."""
        webhooks = self.webhooks
        if webhooks is None or not webhooks.has_work() or self._on_delivery_loop():
            return
        if _loop_running():
            self._portal_call(webhooks.drain)
        else:
            self._private_loop().run_until_complete(webhooks.drain())

    async def _drain(self) -> None:
        """:meth:`drive`, at the end of a request (on whichever loop serves it)."""
        webhooks = self.webhooks
        if webhooks is None or not webhooks.has_work():
            return
        if self._on_delivery_loop():
            await webhooks.drain()
        else:  # an async client: its loop waits, as a sync client waits for its answer
            self._portal_call(webhooks.drain)

    def _on_delivery_loop(self) -> bool:
        """Whether this thread runs the private loop or the portal's, now."""
        if threading.get_ident() == self._portal_thread:
            return True
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    async def _serve(self, request: httpx.Request) -> httpx.Response:
        import httpx

        from .faults import NetworkFault

        if _DELIVERING.get():
            raise SelfCall(f"{str(request.url)[:200]!r} is answered by the emulator itself")
        body = await request.aread()
        url = request.url
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "scheme": url.scheme,
            "path": url.path,
            "raw_path": url.raw_path.split(b"?")[0],
            "query_string": url.query,
            "server": (url.host, url.port or (443 if url.scheme == "https" else 80)),
            "client": ("127.0.0.1", 0),
            "root_path": "",
        }
        received = False
        status: int | None = None
        headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal received
            if received:  # the body is all sent: what follows is the client going away
                return {"type": "http.disconnect"}
            received = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Mapping[str, Any]) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status, headers = message["status"], list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        serving = _SERVING.set(True)
        try:
            await self.app(scope, receive, send)
        except NetworkFault as exc:  # a scenario cut the connection: a transport error
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        except Exception:  # a bug: the app answered 500 and kept the traceback for teardown
            status = status or 500
        finally:
            await self._drain()  # the webhooks this request started (a poll that ended a task)
            _SERVING.reset(serving)
        if status is None:  # a scenario 'hang': the client would time out, so it does at once
            raise httpx.ReadTimeout(
                "the emulator sent no response (scenario fault 'hang'); in-process, the "
                "client's timeout fires at once",
                request=request,
            )
        content = b"" if request.method == "HEAD" else b"".join(chunks)
        # (naming its request: respx copies a response that names none)
        return httpx.Response(
            status, headers=headers, stream=httpx.ByteStream(content), request=request
        )

    def _run(self, coroutine: Coroutine[Any, Any, httpx.Response]) -> httpx.Response:
        if not _loop_running():  # the usual case: a sync test, no event loop in this thread
            # this thread waits for this one answer and serves nothing else: files render here
            token = RENDER_HERE.set(True)
            try:
                return self._private_loop().run_until_complete(coroutine)
            finally:
                RENDER_HERE.reset(token)
        # a sync client inside an async test: this thread's loop is busy, use another thread
        return self._portal_call(functools.partial(_await, coroutine))

    def _private_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop

    def _portal_call(self, fn: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
        if self._portal is None:
            from anyio.from_thread import start_blocking_portal

            self._portal = self._exit.enter_context(start_blocking_portal())
            self._portal_thread = self._portal.call(threading.get_ident)
        return cast(_T, self._portal.call(fn))

    def close(self) -> None:
        """Cancel the deliveries still waiting (for a time the test never reached), then stop
        the portal and close the private loop."""
        webhooks = self.webhooks
        if webhooks is not None and self._portal is not None:
            self._portal.call(webhooks.abandon)
        if webhooks is not None and self._loop is not None and not _loop_running():
            self._loop.run_until_complete(webhooks.abandon())
        self._exit.close()
        self._portal = self._portal_thread = None
        if self._loop is not None:
            self._loop.close()
            self._loop = None


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def _await(coroutine: Coroutine[Any, Any, httpx.Response]) -> httpx.Response:
    return await coroutine


@functools.cache
def _sync_router() -> type[respx.MockRouter]:
    """A respx router that tells side effects whether the request comes from a sync client."""
    import respx

    class Router(respx.MockRouter):
        def handler(self, request: httpx.Request) -> httpx.Response:
            token = _SYNC_REQUEST.set(True)
            try:
                return super().handler(request)
            finally:
                _SYNC_REQUEST.reset(token)

    return Router


@functools.cache
def _served_route() -> Callable[..., respx.Route]:
    """A respx route answered by the bridge itself rather than through a side effect, for
    which respx inspects the callable's signature and copies its response on every request."""
    import respx
    from respx.models import SideEffectError

    class Served(respx.Route):
        def __init__(self, serve: Callable[[httpx.Request], Any], **lookups: Any) -> None:
            super().__init__(**lookups)
            self.serve = serve

        def resolve(self, request: httpx.Request, **kwargs: Any) -> Any:
            try:
                return self.serve(request)
            except Exception as error:  # recorded and raised as respx does a side effect's
                raise SideEffectError(self, origin=error) from error

    return Served


class _Wiring:
    """The bridge to one app and the respx router that reaches it for one base URL, kept on
    the app and reused by the handles of successive tests: building respx's router and route
    costs about 0.15 ms, and entering the router starts every test from the same state (what
    a test adds to it, routes or calls, is rolled back when it exits)."""

    def __init__(self, app: Starlette, webhooks: WebhookDispatcher, base_url: str) -> None:
        self.bridge = _ASGIBridge(app, webhooks)
        self.router = _sync_router()(assert_all_called=False, assert_all_mocked=True)
        url = urlsplit(base_url)
        where: dict[str, Any] = {"host": url.hostname}
        if url.port is not None:
            where["port"] = url.port
        self.router.add(_served_route()(self.bridge, **where))
        #: whether a handle holds it (one that has not left :meth:`RespxEmulatorHandle.mocking`)
        self.held = False

    @classmethod
    def take(cls, app: Starlette, webhooks: WebhookDispatcher, base_url: str) -> _Wiring:
        """The app's wiring for ``base_url``, or a new one while another handle holds it."""
        kept: dict[str, _Wiring] | None = getattr(app.state, "aio_emulator_wirings", None)
        if kept is None:
            kept = app.state.aio_emulator_wirings = {}
        wiring = kept.get(base_url)
        if wiring is None or wiring.held or wiring.bridge.webhooks is not webhooks:
            wiring = cls(app, webhooks, base_url)
            kept.setdefault(base_url, wiring)
        wiring.held = True
        return wiring


class RespxEmulatorHandle(EmulatorHandle):
    """The handle of in-process mode: httpx requests for https://apiin.one (or ``base_url``)
    reach the app."""

    def __init__(
        self,
        emulator: Emulator,
        app: Starlette,
        api_key: str,
        checks: Checks,
        *,
        places: Sequence[tuple[Path, str]] = (),
        base_url: str = REAL_BASE_URL,
    ) -> None:
        url = base_url.rstrip("/")
        self._wiring = wiring = _Wiring.take(app, emulator.webhooks, url)
        bridge = wiring.bridge
        super().__init__(emulator, url, api_key, checks, places=places, run=_Driving(bridge))
        #: answers an httpx request with the emulator (a respx side effect for other hosts)
        self.serve: Callable[[httpx.Request], Any] = bridge
        #: the respx router; add routes to it for other hosts the code under test calls (they
        #: last until the test ends)
        self.router = wiring.router

    def pass_through(self, url: str) -> None:
        """Let httpx requests for ``url`` (the live server's, in the same test) reach it."""
        parts = urlsplit(url)
        self.router.route(host=parts.hostname, port=parts.port).pass_through()

    @contextlib.contextmanager
    def mocking(self) -> Iterator[None]:
        """While inside: httpx requests for :attr:`url` reach the emulator (the router is
        active) and webhooks are delivered in process. The fixture enters it for the test;
        leaving it gives the router back to the app for the next test's handle."""
        webhooks = self.emulator.webhooks
        host = _Host()
        try:
            with self.router:
                webhooks.attach(host)
                try:
                    yield
                finally:
                    webhooks.attach(None)
        finally:
            self._wiring.bridge.close()
            self._wiring.held = False


class _Driving:
    """Runs a handle's work right here, between runs of the webhook deliveries that can go on:
    before, those whose time has come (what the work reads includes them), after, those the
    work started or resumed."""

    def __init__(self, bridge: _ASGIBridge) -> None:
        self.bridge = bridge

    def __call__(self, work: Callable[[], _T]) -> _T:
        self.bridge.drive()
        result = work()
        self.bridge.drive()
        return result


class _Host:
    """The in-process host of the emulator's webhook deliveries (see
    :class:`~emulator.webhooks.DeliveryHost`): those started by an in-process request or from
    the test's thread run when the bridge drives them; all are sent with httpx."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()
        self.sender: Sender = post_with_httpx

    def holds(self) -> bool:
        return _SERVING.get() or threading.get_ident() == self.thread


async def post_with_httpx(
    url: str, payload: bytes, *, timeout_s: float, refuse: Refuse | None = None
) -> int:
    """POST a webhook with ``httpx.AsyncClient``: respx routes of the test answer it without
    a socket; a host no router knows is reached over the network by
    :func:`~emulator.webhooks.post_json`, as on a live server. The same headers and body as
    ``post_json``; the answer's HTTP status. :class:`~emulator.webhooks.SelfCall` when the
    route leads to the emulator itself."""
    import httpx
    from respx.models import AllMockedAssertionError

    check_url(url)
    request = httpx.Request("POST", url, content=payload, headers=HEADERS)
    delivering = _DELIVERING.set(True)
    try:
        async with (
            asyncio.timeout(timeout_s),
            httpx.AsyncClient(verify=_tls(), trust_env=False, timeout=None) as client,
        ):
            response = await client.send(request, stream=True)
            await response.aclose()  # the status decides; the body is not read
    except AllMockedAssertionError:  # no route of any router: the network, as today
        return await post_json(url, payload, timeout_s=timeout_s, refuse=refuse)
    finally:
        _DELIVERING.reset(delivering)
    return response.status_code


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every webhook sent with httpx (building one costs milliseconds)."""
    return ssl.create_default_context()
