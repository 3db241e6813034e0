"""The control API under /_emulator/: health, reset, balances, the request journal, the clock."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import __version__
from .clock import iso
from .errors import InvalidRequest
from .http import json_response, read_body, read_json_object
from .scenarios import ScenarioError, library
from .service import Emulator
from .wire import KEY_PREFIX, is_api_key

__all__ = ["routes"]

CONTROL_BODY_LIMIT = 64 * 1024
#: tracebacks of emulator bugs shown by health, newest last
SERVER_ERRORS_SHOWN = 10


def _emulator(request: Request) -> Emulator:
    emulator: Emulator = request.app.state.emulator
    return emulator


async def health(request: Request) -> Response:
    emulator = _emulator(request)
    return json_response(
        {
            "status": "ok",
            "version": __version__,
            "seed": emulator.seed,
            "clock": _clock(emulator),
            "scenario": emulator.scenario.scenario.name,
            "tasks": len(emulator.tasks),
            "journal": len(emulator.journal),
            "server_errors": emulator.server_errors[-SERVER_ERRORS_SHOWN:],
            "state": getattr(request.app.state, "saves", None),  # the state file's last saves
            "webhooks": emulator.webhooks.stats(),
        }
    )


async def reset(request: Request) -> Response:
    emulator = _emulator(request)
    try:
        start = await emulator.scenarios.read_start()  # (a file: read in a worker thread)
    except ScenarioError as exc:
        raise InvalidRequest(
            f"Nothing was reset: the start scenario cannot be read: {exc}"
        ) from exc
    emulator.reset(start)
    return json_response({"status": "reset"})


async def key_account(request: Request) -> Response:
    emulator = _emulator(request)
    key = request.path_params["key"]
    if not is_api_key(key):
        raise InvalidRequest(
            f"key: {key[:80]!r} is not an API key (keys start with '{KEY_PREFIX}')"
        )
    if request.method == "PUT":
        body = await read_json_object(request, CONTROL_BODY_LIMIT)
        credits = body.get("credits")
        if isinstance(credits, float) and credits.is_integer():
            credits = int(credits)  # 100.0 is an integer in JSON (and JSON Schema)
        if isinstance(credits, bool) or not isinstance(credits, int) or credits < 0:
            raise InvalidRequest(
                f"credits: expected a non-negative integer, got {credits!r}. "
                'Send {"credits": 100}.'
            )
        return json_response(emulator.set_balance(key, credits).as_dict())
    return json_response(emulator.account(key).as_dict())


async def requests(request: Request) -> Response:
    emulator = _emulator(request)
    if request.method == "DELETE":
        emulator.journal.clear()
        return json_response({"requests": []})
    key = request.query_params.get("key")
    path = request.query_params.get("path")
    return json_response({"requests": emulator.journal.entries(key=key, path=path)})


async def tasks(request: Request) -> Response:
    emulator = _emulator(request)
    key = request.query_params.get("key")
    return json_response({"tasks": emulator.task_listing(str(request.base_url), key)})


async def clock(request: Request) -> Response:
    return json_response(_clock(_emulator(request)))


async def advance_clock(request: Request) -> Response:
    emulator = _emulator(request)
    if emulator.clock.mode != "virtual":
        emulator.advance(0)  # (409, saying how to start it with a virtual clock)
    body = await read_json_object(request, CONTROL_BODY_LIMIT)
    seconds = body.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds < 1e9:
        raise InvalidRequest(
            f'seconds: expected a number from 0 to 1e9, got {seconds!r}. Send {{"seconds": 30}}.'
        )
    emulator.advance(float(seconds))
    return json_response(_clock(emulator))


async def scenario(request: Request) -> Response:
    """GET: the server's scenario. PUT: switch it, from ``{"scenario": NAME_OR_PATH_OR_OBJECT}``
    or a YAML body (Content-Type: application/yaml), read and parsed in a worker thread (409
    when a switch asked for later took effect first)."""
    emulator = _emulator(request)
    if request.method == "PUT":
        media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        try:
            if media in ("application/yaml", "application/x-yaml", "text/yaml"):
                declared = request.headers.get("content-length")
                raw = await read_body(declared, request.receive, CONTROL_BODY_LIMIT)
                await emulator.scenarios.switch_to_yaml(raw.decode("utf-8", "replace"), "<request>")
            else:
                body = await read_json_object(request, CONTROL_BODY_LIMIT)
                spec = body.get("scenario")
                items: list[Any] = spec if isinstance(spec, list) and spec else [spec]
                if not all(isinstance(item, str | dict) and "\0" not in item for item in items):
                    raise InvalidRequest(
                        "scenario: expected a ready scenario name, a file path, an object or a "
                        'list of those, e.g. {"scenario": "outage"} or '
                        '{"scenario": ["rate-limited", "instant"]}. Ready: '
                        + ", ".join(sorted(library()))
                    )
                await emulator.scenarios.switch(items)  # (files: read in a worker thread)
        except ScenarioError as exc:
            raise InvalidRequest(f"Invalid scenario: {exc}") from exc
    return json_response(_scenario(emulator))


def _scenario(emulator: Emulator) -> dict[str, Any]:
    current = emulator.scenario.scenario
    return {
        "name": current.name,
        "description": current.description,
        "source": current.source,
        "seed": emulator.scenario.seed,
        "rules": [rule.label for rule in current.rules],
        "warnings": list(current.warnings),
        "reload_error": emulator.scenarios.reload_error,
        "key_scenarios": {k: r.scenario.name for k, r in emulator.scenarios.by_key.items()},
        "library": sorted(library()),
    }


def _clock(emulator: Emulator) -> dict[str, Any]:
    now = emulator.clock.now()
    return {"mode": emulator.clock.mode, "now": iso(now), "epoch": now}


routes = [
    Route("/_emulator/health", health, methods=["GET"]),
    Route("/_emulator/reset", reset, methods=["POST"]),
    Route("/_emulator/keys/{key}", key_account, methods=["GET", "PUT"]),
    Route("/_emulator/requests", requests, methods=["GET", "DELETE"]),
    Route("/_emulator/tasks", tasks, methods=["GET"]),
    Route("/_emulator/scenario", scenario, methods=["GET", "PUT"]),
    Route("/_emulator/clock", clock, methods=["GET"]),
    Route("/_emulator/clock/advance", advance_clock, methods=["POST"]),
]
