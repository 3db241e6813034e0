"""The pytest plugin: the emulator as fixtures, on a live socket or in-process through respx.

Registered through the ``pytest11`` entry point, so it is active once the package is installed.
Every name shares the prefix ``aio_emulator``:

- ``aio_emulator_config`` (session, override it in a conftest): the :class:`Config` every test
  starts from: virtual clock, seed 0, the ``instant`` scenario.
- ``aio_emulator_server`` (session): the :class:`ServerFactory` of this session (of this xdist
  worker): one app, and one live server on ``127.0.0.1:0``, per clock and seed, built on first use.
- ``aio_emulator`` (function): an :class:`EmulatorHandle` on the live server, reset for the test.
- ``aio_emulator_respx`` (function): a :class:`RespxEmulatorHandle`: respx routes every httpx
  request for ``https://apiin.one`` to the app in-process, sync and async clients alike.
- ``@pytest.mark.aio_emulator(...)``: per-test options, keyword-only, the closest marker wins.

After the test, exceptions raised inside the emulator and requests it could not serve (unknown
path, bad key, wrong method) fail the test.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import itertools
import math
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from os import PathLike
from typing import TYPE_CHECKING, Any

import pytest

from .clock import VirtualClock
from .config import Config

if TYPE_CHECKING:
    import asyncio

    import httpx
    import respx
    from anyio.from_thread import BlockingPortal
    from starlette.applications import Starlette

    from .clock import Clock
    from .server import LiveServer
    from .service import Emulator

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_SCENARIO",
    "DEFAULT_SEED",
    "MARKER",
    "REAL_BASE_URL",
    "AioEmulatorError",
    "EmulatorHandle",
    "RespxEmulatorHandle",
    "ServerFactory",
    "marker_options",
]

MARKER = "aio_emulator"
#: the key a handle hands out (any ``aio_`` key is valid unless the config says otherwise)
DEFAULT_API_KEY = "aio_pytest"
#: the real service, which ``aio_emulator_respx`` answers for
REAL_BASE_URL = "https://apiin.one"
DEFAULT_SEED = 0
#: tasks finish on their first poll unless a test asks for realistic timing
DEFAULT_SCENARIO = "instant"

_UNSET: Any = object()
_OPTIONS = ("scenario", "clock", "seed", "credits", "keys", "api_key", "allow_unserved")
_MARKER_HELP = (
    f"{MARKER}(*, scenario=None, clock=None, seed=None, credits=None, keys=None, "
    "api_key=None, allow_unserved=False): configure the API in One emulator for this test. "
    "scenario: a ready scenario name, a YAML path or a dict; clock: 'virtual' or 'real'; "
    "seed: int; credits: balance of the handle's api_key; keys: {key: credits}; "
    "allow_unserved: do not fail on requests the emulator could not serve (404, 401, 405)."
)


class AioEmulatorError(RuntimeError):
    """A handle method cannot do what was asked (the message says why and what to do)."""


# -- the marker ---------------------------------------------------------------------------


def _aio_emulator_marker(
    *,
    scenario: str | PathLike[str] | Mapping[str, Any] | None = _UNSET,
    clock: str | None = _UNSET,
    seed: int | None = _UNSET,
    credits: int | None = _UNSET,
    keys: Mapping[str, int] | None = _UNSET,
    api_key: str | None = _UNSET,
    allow_unserved: bool = _UNSET,
) -> dict[str, Any]:
    """The options one marker sets (and only those), checked. ``None`` means the default."""
    given = {k: v for k, v in locals().items() if v is not _UNSET and v is not None}
    if given.get("clock", "virtual") not in ("virtual", "real"):
        raise ValueError(f"clock: {given['clock']!r} is not one of: virtual, real")
    for name in ("seed", "credits"):
        value = given.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name}: expected an integer, got {value!r}")
    if given.get("credits", 0) < 0:
        raise ValueError(f"credits: must not be negative, got {given['credits']}")
    for key, balance in dict(given.get("keys", {})).items():
        if not isinstance(key, str) or not key.startswith("aio_"):
            raise ValueError(f"keys: {key!r} is not an API key (keys start with 'aio_')")
        if isinstance(balance, bool) or not isinstance(balance, int) or balance < 0:
            raise ValueError(
                f"keys: credits of {key!r} must be a non-negative int, got {balance!r}"
            )
    if not str(given.get("api_key", "aio_")).startswith("aio_"):
        raise ValueError(f"api_key: {given['api_key']!r} does not start with 'aio_'")
    if not isinstance(given.get("allow_unserved", False), bool):
        raise ValueError(f"allow_unserved: expected True or False, got {given['allow_unserved']!r}")
    return given


def marker_options(item: pytest.Item) -> dict[str, Any]:
    """The merged options of every ``aio_emulator`` marker on ``item``: the closest wins."""
    __tracebackhide__ = True
    options: dict[str, Any] = {}
    for marker in reversed(list(item.iter_markers(MARKER))):
        try:
            options |= _aio_emulator_marker(*marker.args, **marker.kwargs)
        except TypeError as exc:
            message = str(exc).replace(_aio_emulator_marker.__name__, f"@pytest.mark.{MARKER}")
            raise TypeError(
                f"{message}; its options (keyword-only) are: {', '.join(_OPTIONS)}"
            ) from None
        except ValueError as exc:
            raise ValueError(f"@pytest.mark.{MARKER}: {exc}") from None
    return options


# -- the session factory ------------------------------------------------------------------


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


# -- the handle ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Checks:
    """What the after-test checks have already reported (shared by handles on one emulator)."""

    allow_unserved: bool
    journal_seq: int = 0
    server_errors: int = 0


class EmulatorHandle:
    """One test's view of the emulator: where it is, a key to use, and control over it."""

    def __init__(self, emulator: Emulator, url: str, api_key: str, checks: _Checks) -> None:
        self.emulator = emulator
        #: base URL to hand to the code under test
        self.url = url
        #: a valid API key (its balance is the marker's ``credits`` when set)
        self.api_key = api_key
        self._checks = checks

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} key={self.api_key!r}>"

    @property
    def headers(self) -> dict[str, str]:
        """The ``Authorization`` header of :attr:`api_key`."""
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def clock(self) -> Clock:
        return self.emulator.clock

    def now(self) -> float:
        """The emulator's time (seconds since the Unix epoch)."""
        return self.emulator.clock.now()

    def use_scenario(self, spec: str | PathLike[str] | Mapping[str, Any]) -> None:
        """Switch to a ready scenario by name, a scenario YAML file or a dict, from now on."""
        self.emulator.use_scenario(spec)

    # -- time -----------------------------------------------------------------------------

    def advance(self, seconds: float) -> float:
        """Move the virtual clock ``seconds`` forward; returns the new time. Pass it to the
        code under test as its ``sleep`` and back-off costs no real time."""
        clock = self._virtual_clock("advance()")
        now = clock.advance(seconds)
        self.emulator.tasks.sweep(now)
        return now

    def settle(self) -> float:
        """Advance the virtual clock until every task has finished; returns the seconds moved.

        Raises :class:`AioEmulatorError` naming the tasks that never finish on their own.
        """
        from .tasks import end_time, observe

        self._virtual_clock("settle()")
        now = self.now()
        pending = [
            task
            for task in self.emulator.tasks
            if task.finished_at is None and not observe(task, now).state.terminal
        ]
        endless = [task.id for task in pending if end_time(task) is None]
        if endless:
            raise AioEmulatorError(
                f"settle(): {len(endless)} task(s) never finish on their own in this scenario: "
                f"{', '.join(endless)}. Advance by a fixed time with advance(seconds) instead."
            )
        target = max((end_time(task) or now for task in pending), default=now)
        seconds = max(0.0, target - now)
        while now + seconds < target:  # float rounding must not stop a hair short of the end
            seconds = math.nextafter(seconds, math.inf)
        self.advance(seconds)
        return seconds

    def _virtual_clock(self, what: str) -> VirtualClock:
        clock = self.emulator.clock
        if not isinstance(clock, VirtualClock):
            raise AioEmulatorError(
                f"{what} needs the virtual clock, and this test runs on the real clock. "
                f"Drop clock='real' from @pytest.mark.{MARKER}(...) (the virtual clock is the "
                "default), or wait for real time to pass."
            )
        return clock

    # -- credits --------------------------------------------------------------------------

    def set_credits(self, key: str, credits: int) -> None:
        """Set ``key``'s balance."""
        self.emulator.ledger.set_balance(key, credits)

    def credits(self, key: str | None = None) -> int:
        """The balance of ``key`` (default: :attr:`api_key`), after settling ended tasks."""
        self.emulator.tasks.sweep(self.now())
        return self.emulator.ledger.account(key or self.api_key).balance

    def account(self, key: str | None = None) -> dict[str, object]:
        """``{"key", "credits", "reserved", "spent"}`` of ``key`` (default: :attr:`api_key`)."""
        self.emulator.tasks.sweep(self.now())
        return self.emulator.ledger.account(key or self.api_key).as_dict()

    # -- what happened --------------------------------------------------------------------

    def requests(self, key: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        """The request journal of this test, oldest first (``method``, ``path``, ``status``,
        ``body``, ``error``, ``task_id``, ``at`` (emulator time), ``wall``, ...)."""
        return self.emulator.journal.entries(key=key, path=path)

    def polls(self, task_id: str) -> int:
        """How many times the task was polled (``GET /api/v1/tasks/{task_id}``)."""
        return len(self._polls(task_id))

    def poll_intervals(self, task_id: str, *, wall: bool = False) -> list[float]:
        """Seconds between consecutive polls of the task, on the emulator's clock (virtual
        time moved by :meth:`advance`, or real time), or on the wall clock if ``wall``."""
        field = "wall" if wall else "at"
        times = [entry[field] for entry in self._polls(task_id)]
        return [round(later - earlier, 6) for earlier, later in itertools.pairwise(times)]

    def _polls(self, task_id: str) -> list[dict[str, Any]]:
        path = f"/api/v1/tasks/{task_id}"
        return [e for e in self.emulator.journal.entries(path=path) if e["method"] == "GET"]

    def tasks(self, key: str | None = None) -> list[dict[str, Any]]:
        """Every task as its wire body plus ``key``, ``polls`` and ``state``, oldest first."""
        return self.emulator.task_listing(self.url, key)

    def task(self, task_id: str) -> dict[str, Any]:
        """One task as in :meth:`tasks` (``KeyError`` if there is no such task)."""
        for body in self.tasks():
            if body["task_id"] == task_id:
                return body
        raise KeyError(f"no task {task_id!r}; tasks: {[t['task_id'] for t in self.tasks()]}")

    def unserved(self) -> list[dict[str, Any]]:
        """Journal entries the emulator could not serve: unknown path, bad key, wrong method."""
        return [entry for entry in self.requests() if _unserved(entry)]

    # -- after the test -------------------------------------------------------------------

    def _problems(self) -> list[str]:
        """New problems since the last call: server tracebacks, then unserved requests."""
        checks = self._checks
        problems: list[str] = []
        errors = self.emulator.server_errors[checks.server_errors :]
        checks.server_errors = len(self.emulator.server_errors)
        if errors:
            problems.append(
                f"{MARKER}: the emulator raised {len(errors)} exception(s) while serving this "
                "test (the client got a 500). This is a bug in the emulator; its traceback:\n\n"
                + "\n".join(errors)
            )
        entries = self.emulator.journal.entries(since=checks.journal_seq)
        if entries:
            checks.journal_seq = entries[-1]["seq"]
        unserved = [e for e in entries if _unserved(e)]
        if unserved and not checks.allow_unserved:
            bullets = "\n".join(f"- {_describe(entry)}" for entry in unserved)
            problems.append(
                f"{MARKER}: the emulator could not serve {len(unserved)} request(s):\n{bullets}\n"
                f"If this is on purpose, mark the test "
                f"@pytest.mark.{MARKER}(allow_unserved=True)."
            )
        return problems


def _emulated_path(path: str) -> bool:
    from .api import route

    return route(path) is not None


def _unserved(entry: Mapping[str, Any]) -> bool:
    if entry.get("rule") or entry.get("kind") == "webhook":  # on purpose, or not a request
        return False
    status = entry["status"]
    return status in (401, 405) or (status == 404 and not _emulated_path(entry["path"]))


def _describe(entry: Mapping[str, Any]) -> str:
    query = f"?{entry['query']}" if entry.get("query") else ""
    return f"{entry['method']} {entry['path']}{query} -> {entry['status']}: {entry.get('error')}"


# -- in-process: respx --------------------------------------------------------------------

#: set while respx resolves a request of a sync client (see ``_sync_router``)
_SYNC_REQUEST: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "aio_emulator_sync_request", default=False
)


class _ASGIBridge:
    """A respx side effect that answers with the ASGI app: awaited on the caller's event loop
    for an async client; for a sync client, run on a private event loop in the calling thread
    (or on a portal thread, when the thread already runs a loop).

    It calls the app itself rather than through ``httpx.ASGITransport``, which tries to import
    ``sniffio`` on every request (a failed import, about 0.2 ms, when sniffio is absent).
    """

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exit = contextlib.ExitStack()
        self._portal: BlockingPortal | None = None

    def __call__(self, request: httpx.Request) -> Any:
        if _SYNC_REQUEST.get():
            return self._run(self._serve(request))
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
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(content))

    def _run(self, coroutine: Coroutine[Any, Any, httpx.Response]) -> httpx.Response:
        if not _loop_running():  # the usual case: a sync test, no event loop in this thread
            import asyncio

            if self._loop is None:
                self._loop = asyncio.new_event_loop()
            return self._loop.run_until_complete(coroutine)
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


class RespxEmulatorHandle(EmulatorHandle):
    """The handle of in-process mode: httpx requests for https://apiin.one reach the app."""

    def __init__(self, emulator: Emulator, app: Starlette, api_key: str, checks: _Checks):
        super().__init__(emulator, REAL_BASE_URL, api_key, checks)
        #: answers an httpx request with the emulator (a respx side effect for other hosts)
        self.serve: Callable[[httpx.Request], Any] = _ASGIBridge(app)
        #: the respx router; add routes to it for other hosts the code under test calls
        self.router = _sync_router()(assert_all_called=False, assert_all_mocked=True)
        self.router.route(host="apiin.one").mock(side_effect=self.serve)

    @contextlib.contextmanager
    def _mocking(self) -> Iterator[None]:
        try:
            with self.router:
                yield
        finally:
            self.serve.close()  # type: ignore[attr-defined]


# -- fixtures and hooks -------------------------------------------------------------------

_HANDLES = pytest.StashKey[list[EmulatorHandle]]()
_OPTIONS_KEY = pytest.StashKey[dict[str, Any]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _MARKER_HELP)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Check the markers of every test, even one that uses no fixture of the plugin."""
    __tracebackhide__ = True
    if item.get_closest_marker(MARKER) is not None:
        item.stash[_OPTIONS_KEY] = marker_options(item)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Fail a passing test whose emulator raised or could not serve a request; attach the
    emulator's tracebacks to a test that failed anyway."""
    handles = _unique(item.stash.get(_HANDLES, []))
    try:
        result = yield
    except BaseException:
        for handle in handles:
            for problem in handle._problems():
                item.add_report_section("call", MARKER, problem)
        raise
    problems = [problem for handle in handles for problem in handle._problems()]
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)
    return result


def _unique(handles: list[EmulatorHandle]) -> list[EmulatorHandle]:
    seen: dict[int, EmulatorHandle] = {}
    for handle in handles:
        seen.setdefault(id(handle._checks), handle)
    return list(seen.values())


@pytest.fixture(scope="session")
def aio_emulator_config() -> Config:
    """The configuration every test starts from (override this fixture to change it): the
    virtual clock, seed 0, the ``instant`` scenario (tasks finish on their first poll), every
    ``aio_`` key valid with 1,000,000 credits."""
    return Config(seed=DEFAULT_SEED, clock="virtual", scenario=DEFAULT_SCENARIO)


@pytest.fixture(scope="session")
def aio_emulator_server(aio_emulator_config: Config) -> Iterator[ServerFactory]:
    """The session's apps and live servers (one set per xdist worker), stopped at the end."""
    factory = ServerFactory(aio_emulator_config)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def aio_emulator(
    request: pytest.FixtureRequest,
    aio_emulator_server: ServerFactory,
) -> Iterator[EmulatorHandle]:
    """A handle on the live emulator (``.url`` is ``http://127.0.0.1:<port>``), reset for
    this test and configured by its ``@pytest.mark.aio_emulator(...)`` markers."""
    options, config = _options(request.node, aio_emulator_server)
    app = aio_emulator_server.app(config)
    url = aio_emulator_server.server(config).url
    checks = _prepare(request.node, app.state.emulator, options)
    handle = EmulatorHandle(app.state.emulator, url, _api_key(options), checks)
    yield from _run(request.node, handle)


@pytest.fixture
def aio_emulator_respx(
    request: pytest.FixtureRequest,
    aio_emulator_server: ServerFactory,
) -> Iterator[RespxEmulatorHandle]:
    """Like ``aio_emulator``, in-process: respx routes httpx requests for https://apiin.one
    (``httpx.Client`` and ``httpx.AsyncClient``) to the emulator app, without a socket."""
    try:
        import respx  # noqa: F401
    except ImportError as exc:  # pragma: no cover - respx is a test extra
        raise AioEmulatorError(
            "aio_emulator_respx needs respx: pip install 'apiinone-emulator[test]' or respx"
        ) from exc
    options, config = _options(request.node, aio_emulator_server)
    app = aio_emulator_server.app(config)
    checks = _prepare(request.node, app.state.emulator, options)
    handle = RespxEmulatorHandle(app.state.emulator, app, _api_key(options), checks)
    with handle._mocking():
        yield from _run(request.node, handle)


def _options(item: pytest.Item, factory: ServerFactory) -> tuple[dict[str, Any], Config]:
    options = item.stash.get(_OPTIONS_KEY, None)
    if options is None:
        options = item.stash[_OPTIONS_KEY] = marker_options(item)
    return options, factory.config_for(clock=options.get("clock"), seed=options.get("seed"))


def _api_key(options: Mapping[str, Any]) -> str:
    return str(options.get("api_key", DEFAULT_API_KEY))


def _prepare(item: pytest.Item, emulator: Emulator, options: Mapping[str, Any]) -> _Checks:
    """Reset the emulator and apply the test's options, once per emulator per test."""
    for handle in item.stash.get(_HANDLES, []):
        if handle.emulator is emulator:  # both fixtures in one test: one emulator, one reset
            return handle._checks
    emulator.reset()  # back to the config's scenario, balances, clock and seed
    if "scenario" in options:
        emulator.use_scenario(options["scenario"])
    for key, balance in dict(options.get("keys", {})).items():
        emulator.ledger.set_balance(key, balance)
    emulator.ledger.account(_api_key(options))  # the handle's key is valid, even if only known
    if "credits" in options:  # keys are (Config.only_known_keys)
        emulator.ledger.set_balance(_api_key(options), options["credits"])
    return _Checks(allow_unserved=options.get("allow_unserved", False))


def _run(item: pytest.Item, handle: EmulatorHandle) -> Iterator[Any]:
    item.stash.setdefault(_HANDLES, []).append(handle)
    yield handle
    problems = handle._problems()  # what happened after the test body, during teardown
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)
