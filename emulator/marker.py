"""The ``@pytest.mark.aio_emulator(...)`` marker: its options, checked, and how markers merge
(the closest to the test wins)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from .scenarios import library
from .wire import KEY_PREFIX, is_api_key

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_SCENARIO",
    "DEFAULT_SEED",
    "MARKER",
    "MARKER_HELP",
    "OPTIONS",
    "REAL_BASE_URL",
    "find_scenario",
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
OPTIONS = (
    "scenario", "clock", "seed", "credits", "keys", "api_key", "allow_unserved", "port", "ports",
    "base_url",
)  # fmt: skip
MARKER_HELP = (
    f"{MARKER}(*, scenario=None, clock=None, seed=None, credits=None, keys=None, "
    "api_key=None, allow_unserved=False, port=None, ports=None, base_url=None): configure the "
    "API in One emulator for this test. "
    "scenario: a ready scenario name, a YAML path, a dict, or a list of those applied in "
    "order; clock: 'virtual' or 'real'; "
    "seed: int; credits: balance of the handle's api_key; keys: {key: credits}; "
    "allow_unserved: do not fail on requests the emulator could not serve (404, 401, 405); "
    "port: the live server's port; ports: (low, high), the first free one; "
    "base_url: the host aio_emulator_respx answers for (default https://apiin.one)."
)


def _aio_emulator_marker(
    *,
    scenario: str | PathLike[str] | Mapping[str, Any] | Sequence[Any] | None = _UNSET,
    clock: str | None = _UNSET,
    seed: int | None = _UNSET,
    credits: int | None = _UNSET,
    keys: Mapping[str, int] | None = _UNSET,
    api_key: str | None = _UNSET,
    allow_unserved: bool = _UNSET,
    port: int | None = _UNSET,
    ports: tuple[int, int] | None = _UNSET,
    base_url: str | None = _UNSET,
) -> dict[str, Any]:
    """The options one marker sets (and only those), checked. ``None`` means the default."""
    given = {k: v for k, v in locals().items() if v is not _UNSET and v is not None}
    if "scenario" in given:
        given["scenario"] = _scenario(given["scenario"])
    if given.get("clock", "virtual") not in ("virtual", "real"):
        raise ValueError(f"clock: {given['clock']!r} is not one of: virtual, real")
    for name in ("seed", "credits"):
        value = given.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name}: expected an integer, got {value!r}")
    if given.get("credits", 0) < 0:
        raise ValueError(f"credits: must not be negative, got {given['credits']}")
    for key, balance in dict(given.get("keys", {})).items():
        if not isinstance(key, str) or not is_api_key(key):
            raise ValueError(f"keys: {key!r} is not an API key (keys start with '{KEY_PREFIX}')")
        if isinstance(balance, bool) or not isinstance(balance, int) or balance < 0:
            raise ValueError(
                f"keys: credits of {key!r} must be a non-negative int, got {balance!r}"
            )
    if not is_api_key(str(given.get("api_key", KEY_PREFIX))):
        raise ValueError(f"api_key: {given['api_key']!r} does not start with '{KEY_PREFIX}'")
    if not isinstance(given.get("allow_unserved", False), bool):
        raise ValueError(f"allow_unserved: expected True or False, got {given['allow_unserved']!r}")
    _check_ports(given)
    url = urlsplit(str(given.get("base_url", "https://apiin.one")))
    if url.scheme not in ("http", "https") or not url.hostname or url.path not in ("", "/"):
        raise ValueError(
            f"base_url: expected a scheme and a host such as 'https://staging.apiin.one', got "
            f"{given['base_url']!r}"
        )
    return given


def _check_ports(given: Mapping[str, Any]) -> None:
    if "port" in given and "ports" in given:
        raise ValueError("port and ports: give one of them, not both")
    port = given.get("port", 0)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(
            f"port: expected a port number from 0 (any free one) to 65535, got {port!r}"
        )
    ports = given.get("ports", (1, 1))
    if (
        not isinstance(ports, list | tuple)
        or len(ports) != 2
        or not all(isinstance(p, int) and not isinstance(p, bool) for p in ports)
        or not 1 <= ports[0] <= ports[1] <= 65535
    ):
        raise ValueError(
            f"ports: expected (low, high) with 1 <= low <= high <= 65535, got {ports!r}"
        )


def _scenario(spec: Any) -> Any:
    """A scenario option: one spec, or a non-empty list of them (applied in order)."""
    items = spec if isinstance(spec, list | tuple) else [spec]
    for item in items:
        if not isinstance(item, str | PathLike | Mapping):
            raise ValueError(
                "scenario: expected a ready scenario's name, a YAML path, a dict or a list of "
                f"those, got {item!r}"
            )
    if not items:
        raise ValueError("scenario: an empty list names no scenario")
    return list(spec) if isinstance(spec, list | tuple) else spec


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
                f"{message}; its options (keyword-only) are: {', '.join(OPTIONS)}"
            ) from None
        except ValueError as exc:
            raise ValueError(f"@pytest.mark.{MARKER}: {exc}") from None
    return options


def find_scenario(spec: Any, places: Sequence[tuple[Path, str]]) -> Any:
    """``spec`` with every relative file path in it made absolute: found in the first of
    ``places`` (folder, what it is) that has it; ``ValueError`` naming every place tried."""
    if isinstance(spec, list | tuple):
        return [find_scenario(item, places) for item in spec]
    if isinstance(spec, Mapping) or (isinstance(spec, str) and spec in library()):
        return spec
    path = Path(spec)
    if path.is_absolute():
        return spec
    tried = [(folder / path, what) for folder, what in places]
    for candidate, _ in tried:
        if candidate.is_file():
            return str(candidate)
    looked = "\n".join(f"- {candidate} ({what})" for candidate, what in tried)
    if path.suffix not in (".yaml", ".yml"):
        return spec  # a misspelt ready name more likely than a file: loading it says so
    raise ValueError(f"scenario file {str(spec)!r} not found; looked in:\n{looked}")
