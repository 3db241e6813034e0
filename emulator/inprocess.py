"""In-process mode: respx answers httpx requests for https://apiin.one with the emulator's ASGI
app, for sync and async clients alike, without a socket."""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .api import route
from .handle import Checks, EmulatorHandle
from .marker import REAL_BASE_URL

if TYPE_CHECKING:
    import asyncio

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


class _ASGIBridge:
    """A respx side effect that answers with the ASGI app: awaited on the caller's event loop
    for an async client; for a sync client, run on a private event loop in the calling thread
    (or on a portal thread, when the thread already runs a loop).

    It calls the app itself rather than through ``httpx.ASGITransport``, which tries to import
    ``sniffio`` on every request (a failed import, about 0.2 ms, when sniffio is absent). For a
    sync client it first runs the app's coroutine without the event loop: a request that
    never waits (a poll, a create, a cached download) ends there, and only one that waits
    (latency, a render) goes on in the loop (``_Resume``), which saves the loop's round trip.
    """

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exit = contextlib.ExitStack()
        self._portal: BlockingPortal | None = None

    def __call__(self, request: httpx.Request) -> Any:
        if _SYNC_REQUEST.get():
            # the emulated endpoints need no task of the loop; Starlette's (the control API,
            # through anyio) do, so they start in the loop
            stepped = route(request.url.path) is not None
            return self._run(self._serve(request), step=stepped)
        return self._serve(request)

    async def _serve(self, request: httpx.Request) -> httpx.Response:
        import httpx

        from .faults import NetworkFault

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

        try:
            await self.app(scope, receive, send)
        except NetworkFault as exc:  # a scenario cut the connection: a transport error
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        except Exception:  # a bug: the app answered 500 and kept the traceback for teardown
            status = status or 500
        if status is None:  # a scenario 'hang': the client would time out, so it does at once
            raise httpx.ReadTimeout(
                "the emulator sent no response (scenario fault 'hang'); in-process, the "
                "client's timeout fires at once",
                request=request,
            )
        content = b"" if request.method == "HEAD" else b"".join(chunks)
        # with its request, respx does not copy the response; with content, it is read
        return httpx.Response(status, headers=headers, content=content, request=request)

    def _run(
        self, coroutine: Coroutine[Any, Any, httpx.Response], *, step: bool = False
    ) -> httpx.Response:
        if not _loop_running():  # the usual case: a sync test, no event loop in this thread
            import asyncio

            if self._loop is None:
                self._loop = asyncio.new_event_loop()
            if not step:
                return self._loop.run_until_complete(coroutine)
            asyncio.events._set_running_loop(self._loop)  # what the app asks for, it gets
            try:
                waiting_on = coroutine.send(None)
            except StopIteration as done:  # answered without waiting
                return done.value  # type: ignore[no-any-return]
            except BaseException:
                coroutine.close()
                raise
            finally:
                asyncio.events._set_running_loop(None)
            response: httpx.Response = self._loop.run_until_complete(_Resume(coroutine, waiting_on))
            return response
        # a sync client inside an async test: this thread's loop is busy, use another thread
        if self._portal is None:
            from anyio.from_thread import start_blocking_portal

            self._portal = self._exit.enter_context(start_blocking_portal())
        return self._portal.call(functools.partial(_await, coroutine))

    def close(self) -> None:
        self._exit.close()
        if self._loop is not None:
            self._loop.close()
            self._loop = None


class _Resume:
    """The rest of a coroutine that was started outside the loop and now waits on ``pending``
    (what it yielded: a future of the loop, or None for ``sleep(0)``), as an awaitable the
    loop runs: it hands ``pending`` to the loop's task, then relays sends and throws."""

    def __init__(self, coroutine: Coroutine[Any, Any, Any], pending: Any) -> None:
        self.coroutine = coroutine
        self.pending = pending

    def __await__(self) -> Any:
        pending = self.pending
        while True:
            try:
                sent = yield pending
            except BaseException as exc:  # the task cancelled: the coroutine gets it
                try:
                    pending = self.coroutine.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    pending = self.coroutine.send(sent)
                except StopIteration as done:
                    return done.value


def _loop_running() -> bool:
    import asyncio

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
def _route() -> type[respx.Route]:
    """A respx route that calls the emulator's side effect directly: respx's generic path
    inspects the side effect's signature on every request (``inspect.getfullargspec``) and
    checks what it returned; any other side effect a test sets goes the generic way."""
    import respx
    from respx.models import SideEffectError

    class Route(respx.Route):
        def resolve(self, request: httpx.Request, **kwargs: Any) -> Any:
            effect = self._side_effect
            if not isinstance(effect, _ASGIBridge) or kwargs:
                return super().resolve(request, **kwargs)
            try:
                return effect(request)
            except Exception as error:  # as respx reports a side effect's error
                raise SideEffectError(self, origin=error) from error

    return Route


class RespxEmulatorHandle(EmulatorHandle):
    """The handle of in-process mode: httpx requests for https://apiin.one reach the app."""

    def __init__(self, emulator: Emulator, app: Starlette, api_key: str, checks: Checks):
        super().__init__(emulator, REAL_BASE_URL, api_key, checks)
        #: answers an httpx request with the emulator (a respx side effect for other hosts)
        self.serve: Callable[[httpx.Request], Any] = _ASGIBridge(app)
        #: the respx router; add routes to it for other hosts the code under test calls
        self.router = _sync_router()(assert_all_called=False, assert_all_mocked=True)
        route = _route()(host="apiin.one")
        self.router.routes.add(route)
        route.mock(side_effect=self.serve)

    @contextlib.contextmanager
    def _mocking(self) -> Iterator[None]:
        try:
            with self.router:
                yield
        finally:
            self.serve.close()  # type: ignore[attr-defined]
