"""The ``@pytest.mark.aio_emulator(...)`` marker: its options, checked, and how markers merge
(the closest to the test wins)."""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from typing import Any

import pytest

from .wire import KEY_PREFIX, is_api_key

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_SCENARIO",
    "DEFAULT_SEED",
    "MARKER",
    "MARKER_HELP",
    "OPTIONS",
    "REAL_BASE_URL",
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
OPTIONS = ("scenario", "clock", "seed", "credits", "keys", "api_key", "allow_unserved")
MARKER_HELP = (
    f"{MARKER}(*, scenario=None, clock=None, seed=None, credits=None, keys=None, "
    "api_key=None, allow_unserved=False): configure the API in One emulator for this test. "
    "scenario: a ready scenario name, a YAML path or a dict; clock: 'virtual' or 'real'; "
    "seed: int; credits: balance of the handle's api_key; keys: {key: credits}; "
    "allow_unserved: do not fail on requests the emulator could not serve (404, 401, 405)."
)


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
                f"{message}; its options (keyword-only) are: {', '.join(OPTIONS)}"
            ) from None
        except ValueError as exc:
            raise ValueError(f"@pytest.mark.{MARKER}: {exc}") from None
    return options
