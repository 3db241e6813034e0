"""The emulated endpoints of https://apiin.one: create a task, poll it, download its images."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .errors import NotFound
from .http import json_response, read_json_object
from .service import Emulator
from .tasks import State

__all__ = ["routes"]


def _emulator(request: Request) -> Emulator:
    return request.app.state.emulator


def _base_url(request: Request) -> str:
    scheme = request.url.scheme
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return f"{scheme}://{host}"


async def create_generation(request: Request) -> Response:
    emulator = _emulator(request)
    key = emulator.authenticate(request.headers.get("authorization"))
    request.state.key = key
    body = await read_json_object(request, emulator.config.max_body_bytes)
    request.state.body = body
    task = emulator.create_task(key, emulator.validate(body))
    request.state.task_id = task.id
    status = emulator.status_words[State.QUEUED]
    return json_response(
        {"code": 200, "message": "success", "data": {"task_id": task.id, "status": status}}
    )


async def get_task(request: Request) -> Response:
    emulator = _emulator(request)
    key = emulator.authenticate(request.headers.get("authorization"))
    request.state.key = key
    task_id = request.path_params["task_id"]
    request.state.task_id = task_id
    task, view = emulator.poll(key, task_id)
    data = emulator.task_body(task, view, _base_url(request))
    return json_response({"code": 200, "message": "success", "data": data})


async def get_image(request: Request) -> Response:
    emulator = _emulator(request)
    task_id = request.path_params["task_id"]
    name = request.path_params["name"]
    request.state.task_id = task_id
    index_text, _, ext = name.partition(".")
    if ext != "png" or not index_text.isdigit() or len(index_text) > 3:
        raise NotFound(f"No image at this URL: expected /files/{{task_id}}/{{n}}.png, got {name!r}")
    image = emulator.image(task_id, int(index_text))
    headers = {
        "etag": image.etag,
        "cache-control": "public, max-age=3600",
    }
    if request.headers.get("if-none-match") == image.etag:
        return Response(status_code=304, headers=headers)
    if request.method == "HEAD":
        headers["content-length"] = str(len(image.body))
        return Response(status_code=200, headers=headers, media_type="image/png")
    return Response(image.body, headers=headers, media_type="image/png")


routes = [
    Route("/api/v1/images/generations", create_generation, methods=["POST"]),
    Route("/api/v1/tasks/{task_id}", get_task, methods=["GET"]),
    Route("/files/{task_id}/{name}", get_image, methods=["GET", "HEAD"]),
]
