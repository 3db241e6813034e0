"""The ceiling of our stack: bare Starlette routes answering the emulator's paths with stubs.

Same paths and bodies as the emulator, none of its work: the create and poll routes return a
constant dict through ``JSONResponse`` (what a hand-written stub does), the download route
returns the same PNG bytes the emulator served, read from a file once at start-up. Videos: the
create route answers a kling-3 task id, and a poll of a task id ending in ``_kling3`` answers a
completed kling-3 task (the one test a stub serving both kinds on one route needs).
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = [
    "CHAT_BODY",
    "CREATE_BODY",
    "TASK_BODY",
    "VIDEO_CREATE_BODY",
    "VIDEO_TASK_BODY",
    "create_app",
]

CREATE_BODY = {
    "code": 200,
    "message": "success",
    "data": {"task_id": "n17a1b2c3d4e5f60718_cogview4", "status": "IN_PROGRESS"},
}
_IMAGE_URL = "http://127.0.0.1:8000/files/n17a1b2c3d4e5f60718_cogview4/0.png"
TASK_BODY = {
    "code": 200,
    "message": "success",
    "data": {
        "task_id": "n17a1b2c3d4e5f60718_cogview4",
        "model": "cogview-4",
        "status": "completed",
        "progress": 100,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:21Z",
        "output": {"image_url": _IMAGE_URL, "image_urls": [_IMAGE_URL]},
        "error": None,
        "credits_consumed": 4,
    },
}

VIDEO_CREATE_BODY = {
    "code": 200,
    "message": "success",
    "data": {"task_id": "n75a1b2c3d4e5f60718_kling3", "status": "IN_PROGRESS"},
}
_VIDEO_URL = "http://127.0.0.1:8000/files/n75a1b2c3d4e5f60718_kling3/0.mp4"
VIDEO_TASK_BODY = {
    "code": 200,
    "message": "success",
    "data": {
        "task_id": "n75a1b2c3d4e5f60718_kling3",
        "model": "kling-3",
        "status": "completed",
        "progress": 100,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        "output": {"video_url": _VIDEO_URL, "video_urls": [_VIDEO_URL]},
        "error": None,
        "credits_consumed": 300,
    },
}

#: what a hand-written chat stub answers (the shape of the emulator's non-streamed answer)
CHAT_BODY = {
    "id": "chatcmpl_000000000000000000000000",
    "object": "chat.completion",
    "created": 1767225600,
    "model": "gemini",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "This is a stub reply. " * 4},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 22, "total_tokens": 34},
    "credits_consumed": 1,
}


def create_app(png: bytes = b"") -> Starlette:
    """The bare app; ``png`` is the body of every ``GET /files/{task_id}/{name}``."""

    async def create(request: Request) -> Response:
        return JSONResponse(CREATE_BODY)

    async def task(request: Request) -> Response:
        if request.path_params["task_id"].endswith("_kling3"):
            return JSONResponse(VIDEO_TASK_BODY)
        return JSONResponse(TASK_BODY)

    async def video(request: Request) -> Response:
        return JSONResponse(VIDEO_CREATE_BODY)

    async def image(request: Request) -> Response:
        return Response(png, media_type="image/png")

    async def chat(request: Request) -> Response:
        return JSONResponse(CHAT_BODY)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/api/v1/images/generations", create, methods=["POST"]),
            Route("/api/v1/tasks/{task_id}", task, methods=["GET"]),
            Route("/files/{task_id}/{name}", image, methods=["GET"]),
            Route("/api/v1/chat/completions", chat, methods=["POST"]),
            # last, so the routes of the image workloads match as before it was added
            Route("/api/v1/videos/generations", video, methods=["POST"]),
            Route("/_emulator/health", health, methods=["GET"]),
        ]
    )


def load_app(png_path: str | None) -> Starlette:
    """The bare app serving the PNG at ``png_path`` (empty body when None)."""
    return create_app(Path(png_path).read_bytes() if png_path else b"")
