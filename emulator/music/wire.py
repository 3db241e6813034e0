"""The wire format of the Suno routes, in one place: their paths, error types and messages, and
every body they answer (feed, cover and upload-cover status, lyrics, the creates' answers).

Imported by :mod:`emulator.api` for the paths at start-up, so it stays light: no handler code.
The generic parts (a music task's ``/tasks/{id}`` body, its clips) are :mod:`emulator.wire`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..catalogue import Model
from ..clock import iso
from ..tasks import State, Task, TaskView
from ..wire import clip_id, clip_title, clips, file_url, success

__all__ = [
    "BAD_PARAMS",
    "FEED_PATH",
    "INTERNAL_PARAMS",
    "LYRICS_MISSING",
    "LYRICS_NOT_FOUND",
    "MUSIC_PATHS",
    "NOT_FOUND",
    "SUNO_ERROR_TYPES",
    "UPLOAD_PREFIX",
    "callback_data",
    "cover_created",
    "cover_status",
    "feed_data",
    "suno_created",
    "upload_created",
    "upload_status",
]

MUSIC_PREFIX = "/api/v1/audio/music"
FEED_PATH = MUSIC_PREFIX + "/feed"
#: path -> (operation of emulator.music.handlers, endpoint kind for scenarios, methods)
MUSIC_PATHS: Mapping[str, tuple[str, str, tuple[str, ...]]] = {
    FEED_PATH: ("feed", "task", ("GET", "HEAD")),
    MUSIC_PREFIX + "/extend": ("extend", "create", ("POST",)),
    MUSIC_PREFIX + "/cover/generate": ("cover", "create", ("POST",)),
    MUSIC_PREFIX + "/cover/status": ("cover-status", "task", ("GET", "HEAD")),
    MUSIC_PREFIX + "/upload-cover/generate": ("upload-cover", "create", ("POST",)),
    MUSIC_PREFIX + "/upload-cover/status": ("upload-cover-status", "task", ("GET", "HEAD")),
    MUSIC_PREFIX + "/timestamped-lyrics": ("lyrics", "create", ("POST",)),
}
#: [doc] the Suno routes' 400 type (401 and 404 are the usual ones)
SUNO_ERROR_TYPES: Mapping[int, str] = {400: "bad_request"}
#: upload-cover task ids start so (generate and extend: ``gen``)
UPLOAD_PREFIX = "upl"
#: params the emulator adds to a music task (not echoed in ``request_body``)
INTERNAL_PARAMS = frozenset({"clip_seconds"})

# [doc] messages
BAD_PARAMS = "Cover already generated for this task, or invalid params"
NOT_FOUND = "Original music task or cover task not found"
LYRICS_MISSING = "Missing task_id or audio_id"
LYRICS_NOT_FOUND = "Audio or lyrics not found"

#: state -> the feed's ``data.type`` and the upload-cover status word
_TYPES = {
    State.QUEUED: "IN_PROGRESS",
    State.RUNNING: "IN_PROGRESS",
    State.SUCCEEDED: "SUCCESS",
    State.FAILED: "FAILED",
}
COMPLETE_MESSAGE = "All generated successfully."


def suno_created(task_id: str) -> dict[str, Any]:
    """The answer to generate and extend: the usual envelope, ``IN_PROGRESS``."""
    return success({"task_id": task_id, "status": "IN_PROGRESS"})


def upload_created(task_id: str) -> dict[str, Any]:
    """[doc] upload-cover answers ``data`` = ``{"task_id"}`` only."""
    return success({"task_id": task_id})


def _msg(data: Any) -> dict[str, Any]:
    """[doc] the cover routes' envelope says ``msg``, not ``message``."""
    return {"code": 200, "msg": "success", "data": data}


def cover_created(task_id: str) -> dict[str, Any]:
    return _msg({"taskId": task_id})


def cover_status(task: Task, view: TaskView, base_url: str) -> dict[str, Any]:
    """``GET …/cover/status``: its two images once done ([] until then)."""
    done = view.state is State.SUCCEEDED
    images = [file_url(base_url, task.id, i) for i in range(task.images)] if done else []
    return _msg(
        {
            "taskId": task.id,
            "status": _TYPES[view.state],
            "images": images,
            "created_at": iso(task.created_at),
        }
    )


def feed_clips(task: Task, view: TaskView, model: Model, base_url: str) -> list[dict[str, Any]]:
    """The clips of the feed by stage: ``text`` (no audio yet), clip 0 ``first`` from the
    output's ``first_at`` percent, ``complete`` at the end; ``error`` when failed."""
    state = view.state
    first_at = model.output.first_at
    done = clips(task, model, base_url) if state is State.SUCCEEDED else None
    error = (view.error or model.route.failure) if state is State.FAILED else ""
    out = []
    for i in range(task.images):
        clip: dict[str, Any] = {
            "id": clip_id(task, i),
            "audio_url": "",
            "image_url": "",
            "status": "text",
            "title": clip_title(task),
            "duration": None,
            "model_name": task.model,
            "extra_message": "",
            "fail_message": error,
            "error_message": error,
        }
        if done is not None:
            clip.update(done[i], status="complete", extra_message=COMPLETE_MESSAGE)
        elif state is State.FAILED:
            clip["status"] = "error"
        elif (
            i == 0
            and first_at is not None
            and state is State.RUNNING
            and (view.progress >= first_at)
        ):
            ext = model.file_ext(task.params)
            clip.update(status="first", audio_url=file_url(base_url, task.id, 0, ext))
        out.append(clip)
    return out


def request_body(task: Task) -> dict[str, Any]:
    """[choice] the request as validated (defaults applied), ``model`` the sub-model."""
    params = {k: v for k, v in task.params.items() if k not in INTERNAL_PARAMS}
    return {"model": task.model, **params}


def feed_data(task: Task, view: TaskView, model: Model, base_url: str) -> dict[str, Any]:
    """``data`` of ``GET /audio/music/feed`` (and of a generate or extend webhook)."""
    return {
        "type": _TYPES[view.state],
        "request_body": request_body(task),
        "response_data": feed_clips(task, view, model, base_url),
        "created_at": iso(task.created_at),
    }


def upload_status(task: Task, view: TaskView, model: Model, base_url: str) -> dict[str, Any]:
    """``data`` of ``GET …/upload-cover/status`` (and of an upload-cover webhook)."""
    return {
        "task_id": task.id,
        "status": _TYPES[view.state],
        "response_data": feed_clips(task, view, model, base_url),
        "created_at": iso(task.created_at),
    }


def callback_data(task: Task, view: TaskView, model: Model, base_url: str) -> dict[str, Any]:
    """[choice] a music webhook's ``data``: the body of the task's documented status route."""
    if task.id.startswith(UPLOAD_PREFIX):
        return upload_status(task, view, model, base_url)
    return feed_data(task, view, model, base_url)
