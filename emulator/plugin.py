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
from typing import TYPE_CHECKING, Any

import pytest

from .config import Config
from .factory import ServerFactory
from .handle import AioEmulatorError, Checks, EmulatorHandle
from .inprocess import RespxEmulatorHandle
from .marker import (
    DEFAULT_API_KEY,
    DEFAULT_SCENARIO,
    DEFAULT_SEED,
    MARKER,
    MARKER_HELP,
    REAL_BASE_URL,
    marker_options,
)

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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)


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


def _prepare(item: pytest.Item, emulator: Emulator, options: Mapping[str, Any]) -> Checks:
    """Reset the emulator and apply the test's options, once per emulator per test."""
    for handle in item.stash.get(_HANDLES, []):
        if handle.emulator is emulator:  # both fixtures in one test: one emulator, one reset
            return handle._checks
    emulator.reset()  # back to the config's scenario, balances, clock and seed
    if "scenario" in options:
        emulator.use_scenario(options["scenario"])
    for key, balance in dict(options.get("keys", {})).items():
        emulator.set_balance(key, balance)
    emulator.open_account(_api_key(options))  # the handle's key is valid, even if only known
    if "credits" in options:  # keys are (Config.only_known_keys)
        emulator.set_balance(_api_key(options), options["credits"])
    return Checks(allow_unserved=options.get("allow_unserved", False))


def _run(item: pytest.Item, handle: EmulatorHandle) -> Iterator[Any]:
    item.stash.setdefault(_HANDLES, []).append(handle)
    yield handle
    problems = handle._problems()  # what happened after the test body, during teardown
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)
