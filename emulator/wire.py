"""The wire format of https://apiin.one, in one place: route paths, the success and error
envelopes, the ``data`` of a task, status words, and the constants clients see.

Every module that writes or reads what goes over the wire (the emulated API, webhooks, the
dashboard, the control API, verify, record, OpenAPI, the pytest plugin) takes it from here, so
no path, word or envelope is written twice.
"""

from __future__ import annotations

import functools
import json
import random
import uuid
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from .catalogue import DEFAULT_OUTPUT, Model
from .clock import iso
from .tasks import State, Task, TaskView

__all__ = [
    "API_PREFIX",
    "CHAT_PATH",
    "CONTROL_PREFIX",
    "CREATE_PATH",
    "DEFAULT_FAILURE",
    "DEFAULT_STATUS_WORDS",
    "ERROR_TYPES",
    "FILES_PREFIX",
    "KEY_PREFIX",
    "SCENARIO_HEADER",
    "TASKS_PREFIX",
    "Reply",
    "StatusWords",
    "clip_id",
    "clip_title",
    "clips",
    "created",
    "dumps",
    "error_body",
    "error_type",
    "file_url",
    "is_api_key",
    "json_reply",
    "send_reply",
    "status_words",
    "success",
    "task_data",
    "task_path",
]

# -- routes ---------------------------------------------------------------------------------

API_PREFIX = "/api/v1/"
CREATE_PATH = "/api/v1/images/generations"
TASKS_PREFIX = "/api/v1/tasks/"
#: OpenAI-compatible chat completions (served by emulator/chat/)
CHAT_PATH = "/api/v1/chat/completions"
#: where image files are served (public URLs, like a CDN's: no key needed)
FILES_PREFIX = "/files/"
CONTROL_PREFIX = "/_emulator/"
#: a request header choosing a ready scenario for that request only
SCENARIO_HEADER = b"x-emulator-scenario"


def task_path(task_id: str) -> str:
    return TASKS_PREFIX + task_id


def file_url(base_url: str, task_id: str, index: int, ext: str = "png") -> str:
    """The public URL of file ``index`` (an image, a video, a clip, a clip's cover) of a task,
    under ``base_url``."""
    return f"{base_url.rstrip('/')}{FILES_PREFIX}{task_id}/{index}.{ext}"


# -- clips (music) --------------------------------------------------------------------------


def clip_id(task: Task, index: int) -> str:
    """The id of clip ``index`` of a music task: a UUID drawn from the task's seed."""
    bits = random.Random(f"clip:{task.seed}:{task.id}:{index}").getrandbits(128)
    return str(uuid.UUID(int=bits, version=4))


def clip_title(task: Task) -> str:
    """A clip's title: the request's ``title``, else the start of its description or lyrics."""
    params = task.params
    text = params.get("title") or params.get("gpt_description_prompt") or params.get("prompt")
    return str(text or "Untitled")[:100]


def clips(task: Task, model: Model, base_url: str) -> list[dict[str, Any]]:
    """The clips of a finished music task: id, audio and cover URLs, title, length in s."""
    cover = model.output.cover
    title = clip_title(task)
    return [
        {
            "id": clip_id(task, i),
            "audio_url": file_url(base_url, task.id, i, model.file_ext(task.params)),
            "image_url": file_url(base_url, task.id, i, cover[0]) if cover else "",
            "title": title,
            "duration": model.file_seconds(task.params, task.seed, i),
        }
        for i in range(task.images)
    ]


# -- keys -----------------------------------------------------------------------------------

#: every API key of the real service starts with this
KEY_PREFIX = "aio_"


def is_api_key(text: str) -> bool:
    return text.startswith(KEY_PREFIX)


# -- words ----------------------------------------------------------------------------------

#: the ``error`` of a failed task when its script names none
DEFAULT_FAILURE = "Image generation failed"

#: internal state -> ``data.status`` on the wire (the documentation's own words)
DEFAULT_STATUS_WORDS: Mapping[State, str] = {
    State.QUEUED: "IN_PROGRESS",
    State.RUNNING: "IN_PROGRESS",
    State.SUCCEEDED: "completed",
    State.FAILED: "failed",
}

StatusWords = Mapping[State, str]


def status_words(overrides: Mapping[str, str]) -> StatusWords:
    """The documented words with a scenario's ``status_words`` (keyed by state name) over them;
    computed once when a scenario is loaded."""
    if not overrides:
        return DEFAULT_STATUS_WORDS
    return {state: overrides.get(state.value, DEFAULT_STATUS_WORDS[state]) for state in State}


#: HTTP status -> error ``type`` on the wire ([choice] in the contract; a scenario may override)
ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_credits",
    403: "permission_error",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "invalid_request_error",
    429: "rate_limit_exceeded",
    431: "invalid_request_error",
    500: "server_error",
    502: "server_error",
    503: "service_unavailable",
    504: "server_error",
}


def error_type(status: int) -> str:
    """The ``type`` of an error with ``status``: the table's, else by class (4xx, 5xx)."""
    return ERROR_TYPES.get(status) or ("invalid_request_error" if status < 500 else "server_error")


# -- bodies ---------------------------------------------------------------------------------


def success(data: Any) -> dict[str, Any]:
    """The success envelope every JSON answer of the real API has."""
    return {"code": 200, "message": "success", "data": data}


def created(task_id: str, words: StatusWords) -> dict[str, Any]:
    """The answer to a create: the new task's id and its first status."""
    return success({"task_id": task_id, "status": words[State.QUEUED]})


def error_body(status: int, message: str, type: str) -> dict[str, dict[str, Any]]:
    """The error envelope: ``{"error": {"code", "message", "type"}}``."""
    return {"error": {"code": status, "message": message, "type": type}}


def _file_urls(task: Task, model: Model | None, base_url: str) -> list[str]:
    """The URLs of a finished task's files under ``base_url`` (a list no reader changes)."""
    ext = model.file_ext(task.params) if model is not None else DEFAULT_OUTPUT.ext
    return _urls(base_url, task.id, ext, task.images)


@functools.lru_cache(maxsize=1024)
def _urls(base_url: str, task_id: str, ext: str, files: int) -> list[str]:
    """The file URLs of the tasks polled last (each poll of a finished task gives the same
    ones): kept here, bounded, rather than on every task held (benchmarks/README.md)."""
    return [file_url(base_url, task_id, i, ext) for i in range(files)]


def task_data(
    task: Task, view: TaskView, base_url: str, words: StatusWords, model: Model | None = None
) -> dict[str, Any]:
    """``data`` of ``GET /api/v1/tasks/{id}`` (and of a webhook), with file URLs under
    ``base_url``; ``output`` and the default failure reason as ``model``'s route has them
    (an image model's when None)."""
    state = view.state
    output: dict[str, Any] | None = None
    if state is State.SUCCEEDED:
        kind = model.output if model is not None else DEFAULT_OUTPUT
        urls = _file_urls(task, model, base_url)
        output = {kind.url_field: urls[0], kind.urls_field: urls}
        if kind.clips and model is not None:
            output["clips"] = clips(task, model, base_url)
    failure = model.route.failure if model is not None else DEFAULT_FAILURE
    return {
        "task_id": task.id,
        "model": task.model,
        "status": words[state],
        "progress": view.progress,
        "created_at": iso(task.created_at),
        "updated_at": iso(view.updated_at),
        "output": output,
        "error": (view.error or failure) if state is State.FAILED else None,
        "credits_consumed": task.credits if state is State.SUCCEEDED else 0,
    }


# -- encoding -------------------------------------------------------------------------------


def dumps(data: Any) -> bytes:
    """Compact UTF-8 JSON, as the real API writes it.

    orjson, falling back to the standard library for what orjson refuses: integers past 64
    bits and non-string keys (as text), lone surrogates from a client's JSON (as ``\\ud800``
    escapes, since they have no UTF-8 form).
    """
    try:
        return orjson.dumps(data)
    except TypeError:
        try:
            return _ENCODE(data).encode()
        except UnicodeEncodeError:
            return _ENCODE_ASCII(data).encode()


_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_ENCODE_ASCII = json.JSONEncoder(separators=(",", ":")).encode


class Reply(NamedTuple):
    """A complete HTTP response, headers as the ASGI scope spells them (lower-case bytes)."""

    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]


async def send_reply(send: Any, reply: Reply) -> None:
    """Send ``reply`` through an ASGI ``send``."""
    await send({"type": "http.response.start", "status": reply.status, "headers": reply.headers})
    await send({"type": "http.response.body", "body": reply.body})


def json_reply(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
    body = dumps(data)
    raw = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if headers:
        raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    return Reply(status, body, raw)
