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

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .config import Config
from .factory import PortsTaken, ServerFactory
from .handle import AioEmulatorError, Checks, Direct, EmulatorHandle, OnLoop
from .inprocess import RespxEmulatorHandle
from .marker import (
    DEFAULT_API_KEY,
    DEFAULT_SCENARIO,
    DEFAULT_SEED,
    MARKER,
    MARKER_HELP,
    REAL_BASE_URL,
    find_scenario,
    marker_options,
)
from .scenarios import ScenarioError

if TYPE_CHECKING:
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

_HANDLES = pytest.StashKey[list[EmulatorHandle]]()
_OPTIONS_KEY = pytest.StashKey[dict[str, Any]]()
#: the ini option naming the live server's port or port range for the session
PORTS_INI = "aio_emulator_ports"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        PORTS_INI,
        "the live emulator's port, or a range to take the first free port from "
        "(8765, or 8700-8799); a marker's port or ports wins",
        default="",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Check the markers of every test, even one that uses no fixture of the plugin."""
    __tracebackhide__ = True
    if item.get_closest_marker(MARKER) is not None:
        item.stash[_OPTIONS_KEY] = _read_options(item)


def _read_options(item: pytest.Item) -> dict[str, Any]:
    """The merged marker options, with relative scenario paths found from the test file."""
    __tracebackhide__ = True
    options = marker_options(item)
    if "scenario" in options:
        try:
            options["scenario"] = find_scenario(options["scenario"], _places(item))
        except ValueError as exc:
            raise _failure(str(exc)) from None
    return options


def _places(item: pytest.Item) -> list[tuple[Path, str]]:
    """Where a relative scenario path is looked for: next to the test file, then the rootdir."""
    places = [(item.path.parent, "next to the test file")]
    if item.config.rootpath != item.path.parent:
        places.append((item.config.rootpath, "the rootdir"))
    return places


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Fail a passing test whose emulator raised or could not serve a request; attach the
    emulator's tracebacks to a test that failed anyway."""
    handles = _unique(item.stash.get(_HANDLES, []))
    try:
        result = yield
    except BaseException:
        for handle in handles:
            for problem in [*handle.problems(), *handle.hints()]:
                item.add_report_section("call", MARKER, problem)
        raise
    problems = [problem for handle in handles for problem in handle.problems()]
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)
    return result


def _let_live_through(handles: list[EmulatorHandle]) -> None:
    """With both fixtures in one test, respx lets requests for the live server through."""
    for mock in handles:
        if isinstance(mock, RespxEmulatorHandle):
            for live in handles:
                if not isinstance(live, RespxEmulatorHandle):
                    mock.pass_through(live.url)


def _unique(handles: list[EmulatorHandle]) -> list[EmulatorHandle]:
    seen: dict[int, EmulatorHandle] = {}
    for handle in handles:
        seen.setdefault(id(handle.checks), handle)
    return list(seen.values())


@pytest.fixture(scope="session")
def aio_emulator_config() -> Config:
    """The configuration every test starts from (override this fixture to change it): the
    virtual clock, seed 0, the ``instant`` scenario (tasks finish on their first poll), every
    ``aio_`` key valid with 1,000,000 credits, the live server on any free port (``port=0``)."""
    return Config(seed=DEFAULT_SEED, clock="virtual", scenario=DEFAULT_SCENARIO, port=0)


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
    try:
        live = aio_emulator_server.server(config, _ports(request.config, options))
    except PortsTaken as exc:
        raise _failure(str(exc)) from None
    run = OnLoop(live.loop) if live.loop is not None else Direct()
    checks = _prepare(request.node, app.state.emulator, options, run)
    handle = EmulatorHandle(
        app.state.emulator, live.url, _api_key(options), checks, places=_places(request.node),
        run=run,
    )  # fmt: skip
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
            "aio_emulator_respx needs respx: pip install 'apiinone-emulator[pytest]'"
        ) from exc
    options, config = _options(request.node, aio_emulator_server)
    app = aio_emulator_server.app(config)
    checks = _prepare(request.node, app.state.emulator, options, Direct())
    handle = RespxEmulatorHandle(
        app.state.emulator,
        app,
        _api_key(options),
        checks,
        places=_places(request.node),
        base_url=options.get("base_url", REAL_BASE_URL),
    )
    with handle.mocking():
        yield from _run(request.node, handle)


def _options(item: pytest.Item, factory: ServerFactory) -> tuple[dict[str, Any], Config]:
    options = item.stash.get(_OPTIONS_KEY, None)
    if options is None:
        options = item.stash[_OPTIONS_KEY] = _read_options(item)
    return options, factory.config_for(clock=options.get("clock"), seed=options.get("seed"))


def _ports(config: pytest.Config, options: Mapping[str, Any]) -> tuple[int, int] | None:
    """The marker's port or range, else the ini option's, else None (the config's port)."""
    __tracebackhide__ = True
    if "ports" in options:
        low, high = options["ports"]
        return int(low), int(high)
    if "port" in options:
        return options["port"], options["port"]
    text = str(config.getini(PORTS_INI)).strip()
    if not text:
        return None
    low_text, _, high_text = text.partition("-")
    try:
        low, high = int(low_text), int(high_text or low_text)
    except ValueError:
        low = high = -1
    if not 0 <= low <= high <= 65535:
        raise pytest.UsageError(
            f"{PORTS_INI}: {text!r} is not a port or a range such as 8700-8799"
        ) from None
    return low, high


def _api_key(options: Mapping[str, Any]) -> str:
    return str(options.get("api_key", DEFAULT_API_KEY))


def _prepare(
    item: pytest.Item, emulator: Emulator, options: Mapping[str, Any], run: Direct | OnLoop
) -> Checks:
    """Reset the emulator and apply the test's options, once per emulator per test (through
    ``run``: on the live server's loop, or right here)."""
    for handle in item.stash.get(_HANDLES, []):
        if handle.emulator is emulator:  # both fixtures in one test: one emulator, one reset
            return handle.checks
    try:
        run(lambda: _reset(emulator, options))
    except ScenarioError as exc:
        raise _failure(f"the marker's scenario cannot be used:\n{exc}") from None
    return Checks(allow_unserved=options.get("allow_unserved", False))


def _reset(emulator: Emulator, options: Mapping[str, Any]) -> None:
    emulator.reset()  # back to the config's scenario, balances, clock and seed
    if "scenario" in options:
        emulator.use_scenario(options["scenario"])
    for key, balance in dict(options.get("keys", {})).items():
        emulator.set_balance(key, balance)
    emulator.open_account(_api_key(options))  # the handle's key is valid, even if only known
    if "credits" in options:  # keys are (Config.only_known_keys)
        emulator.set_balance(_api_key(options), options["credits"])


def _failure(message: str) -> BaseException:
    """A setup error that shows ``message`` alone (raise it ``from None``: no traceback of the
    plugin, no chained exception)."""
    return pytest.fail.Exception(f"{MARKER}: {message}", pytrace=False)


def _run(item: pytest.Item, handle: EmulatorHandle) -> Iterator[Any]:
    handles = item.stash.setdefault(_HANDLES, [])
    handles.append(handle)
    _let_live_through(handles)
    yield handle
    problems = handle.problems()  # what happened after the test body, during teardown
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)
