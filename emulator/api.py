"""The emulated endpoints of https://apiin.one: create a task, poll it, download its images.

Each handler reads as a straight line: authenticate, parse, let the scenario decide (latency,
error, fault), then do the work and render the answer.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .engine import Decision, ScenarioRuntime, as_api_error
from .engine import Request as RuleRequest
from .errors import NotFound
from .faults import FaultResponse
from .http import json_response, read_json_object
from .service import Emulator
from .tasks import State

__all__ = ["SCENARIO_HEADER", "routes"]

SCENARIO_HEADER = "x-emulator-scenario"


def _emulator(request: Request) -> Emulator:
    return request.app.state.emulator


def _base_url(request: Request) -> str:
    """Where the client reached us (request.url would parse the whole URL: too slow here)."""
    scope = request.scope
    host = request.headers.get("host")
    if not host:
        server = scope.get("server") or ("localhost", None)
        host = f"{server[0]}:{server[1]}" if server[1] else server[0]
    return f"{scope['scheme']}://{host}"


def _runtime(request: Request, emulator: Emulator, key: str | None) -> ScenarioRuntime:
    return emulator.runtime_for(key, request.headers.get(SCENARIO_HEADER))


async def _apply(request: Request, decision: Decision) -> None:
    """Latency, then an injected HTTP error, before any work is done."""
    if decision.rule is not None:
        request.state.rule = decision.rule
    if decision.latency_s > 0:
        await asyncio.sleep(decision.latency_s)
    if decision.error is not None:
        raise as_api_error(decision.error)


def _answer(decision: Decision, data: Any, **headers: str) -> Response:
    if decision.fault is None:
        return json_response(data, headers=headers or None)
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    return FaultResponse(decision.fault, body, options=decision.fault_options)


def _early_fault(decision: Decision) -> Response | None:
    """A reset or a hang happens before the request is processed (nothing is created)."""
    if decision.fault in ("reset", "hang"):
        return FaultResponse(decision.fault, b"", options=decision.fault_options)
    return None


async def create_generation(request: Request) -> Response:
    emulator = _emulator(request)
    key = emulator.authenticate(request.headers.get("authorization"))
    request.state.key = key
    body = await read_json_object(request, emulator.config.max_body_bytes)
    request.state.body = body
    runtime = _runtime(request, emulator, key)
    decision = runtime.decide(RuleRequest("create", key, request.headers, body))
    await _apply(request, decision)
    if (early := _early_fault(decision)) is not None:
        return early
    validated = emulator.validate(body, strict=runtime.scenario.strict)
    task = emulator.create_task(
        key, validated, effect=decision.task, runtime=runtime, base_url=_base_url(request)
    )
    request.state.task_id = task.id
    status = runtime.status_words(emulator.status_words)[State.QUEUED]
    return _answer(
        decision,
        {"code": 200, "message": "success", "data": {"task_id": task.id, "status": status}},
    )


async def get_task(request: Request) -> Response:
    emulator = _emulator(request)
    key = emulator.authenticate(request.headers.get("authorization"))
    request.state.key = key
    task_id = request.path_params["task_id"]
    request.state.task_id = task_id[:200]
    task = emulator.find(key, task_id)
    runtime = _runtime(request, emulator, key)
    decision = runtime.decide(RuleRequest("task", key, request.headers, model=task.model))
    await _apply(request, decision)
    if (early := _early_fault(decision)) is not None:
        return early
    view = emulator.tasks.poll(task, emulator.clock.now())
    words = runtime.status_words(emulator.status_words)
    data = emulator.task_body(task, view, _base_url(request), words)
    return _answer(decision, {"code": 200, "message": "success", "data": data})


async def get_image(request: Request) -> Response:
    emulator = _emulator(request)
    task_id = request.path_params["task_id"]
    name = request.path_params["name"]
    request.state.task_id = task_id[:200]
    index_text, _, ext = name.partition(".")
    if ext != "png" or not index_text.isdigit() or len(index_text) > 3:
        raise NotFound(
            f"No image at this URL: expected /files/{{task_id}}/{{n}}.png, got {name[:80]!r}"
        )
    task = emulator.tasks.get(task_id)
    key = task.key if task is not None else None
    runtime = _runtime(request, emulator, key)
    model = task.model if task is not None else None
    decision = runtime.decide(RuleRequest("image", key, request.headers, model=model))
    await _apply(request, decision)
    if (early := _early_fault(decision)) is not None:
        return early
    image = emulator.image(task_id, int(index_text))
    headers = {"etag": image.etag, "cache-control": "public, max-age=3600"}
    if request.headers.get("if-none-match") == image.etag:
        return Response(status_code=304, headers=headers)
    if decision.fault is not None:
        return FaultResponse(decision.fault, image.body, options=decision.fault_options,
                             media_type="image/png")  # fmt: skip
    if request.method == "HEAD":
        headers["content-length"] = str(len(image.body))
        return Response(status_code=200, headers=headers, media_type="image/png")
    return Response(image.body, headers=headers, media_type="image/png")


routes = [
    Route("/api/v1/images/generations", create_generation, methods=["POST"]),
    Route("/api/v1/tasks/{task_id}", get_task, methods=["GET"]),
    Route("/files/{task_id}/{name}", get_image, methods=["GET", "HEAD"]),
]
