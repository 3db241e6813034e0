"""The Suno routes besides generate in the OpenAPI description: their path items and component
schemas, merged into the document by :func:`emulator.openapi.build_openapi` (generate is a
catalogue route: described with the other creates)."""

from __future__ import annotations

from typing import Any

from ..openapi_parts import (
    error_responses,
    field_schema,
    given,
    id_regex,
    json_response,
    nullable,
    object_schema,
    operation,
    preflight,
    ref,
    success_schema,
)
from .handlers import rules
from .wire import MUSIC_PATHS

__all__ = ["music_paths", "music_schemas"]

_ERRORS = (400, 401, 402, 404, 405, 413, 415, 429, 500, 503)
_STATUS = {"type": "string", "enum": ["IN_PROGRESS", "SUCCESS", "FAILED"]}
_STAMP = {"type": "string", "format": "date-time"}
_URL = {"type": "string"}

#: operation -> (summary, operationId, request schema or None (a GET with ?task_id=), answer)
_OPERATIONS = {
    "feed": (
        "Poll a music task (generate, extend or upload-cover): its clips by stage; 0 credits",
        "getMusicFeed",
        None,
        "MusicFeedResponse",
    ),
    "extend": (
        "Extend a clip of a finished music task: two new clips",
        "extendMusic",
        "ExtendMusicRequest",
        "CreateResponse",
    ),
    "cover": (
        "Generate the cover art of a finished music task (once, 1 credit)",
        "createMusicCover",
        "MusicCoverRequest",
        "MusicCoverCreated",
    ),
    "cover-status": ("Poll a cover task; 0 credits", "getMusicCover", None, "MusicCoverStatus"),
    "upload-cover": (
        "A new rendition of an audio (audio_id): two clips",
        "createUploadCover",
        "UploadCoverRequest",
        "UploadCoverCreated",
    ),
    "upload-cover-status": (
        "Poll an upload-cover task; 0 credits",
        "getUploadCover",
        None,
        "UploadCoverStatusResponse",
    ),
    "lyrics": (
        "Timestamped lyrics of a finished clip (synchronous, 2 credits)",
        "getTimestampedLyrics",
        "TimestampedLyricsRequest",
        "TimestampedLyricsResponse",
    ),
}


def music_paths() -> dict[str, Any]:
    bearer: list[dict[str, list[str]]] = [{"bearerAuth": []}]
    out: dict[str, Any] = {}
    for path, (operation_name, _, methods) in MUSIC_PATHS.items():
        summary, operation_id, request, response = _OPERATIONS[operation_name]
        extra: dict[str, Any] = {}
        if request is None:
            names = ("task_id", "workId", "taskId") if operation_name == "feed" else (
                "task_id", "taskId")  # fmt: skip
            extra["parameters"] = [
                {
                    "name": "task",
                    "in": "query",
                    "required": True,
                    "style": "form",
                    "explode": True,  # (each property is a query parameter of its own)
                    "schema": {**_id(*names), "additionalProperties": True},
                    "description": "The task's id as task_id, or an older page's name for it ("
                    + ", ".join(names[1:])
                    + "): the first of them given",
                }
            ]
        else:
            extra["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(request)}},
            }
        operation_object = operation(
            summary,
            {"200": json_response(ref(response), "The answer"), **error_responses(*_ERRORS)},
            operationId=operation_id,
            tags=["music"],
            security=bearer,
            **extra,
        )
        out[path] = {method.lower(): operation_object for method in methods if method != "HEAD"} | {
            "options": preflight("preflight" + operation_id[0].upper() + operation_id[1:])
        }
    return out


def _body(fields: Any, description: str, models: list[str]) -> dict[str, Any]:
    """A request of ``fields``: ``model`` one of the music ``models``, and a prompt when
    ``custom_mode`` is true."""
    properties = {name: field_schema(spec) for name, spec in fields.items()}
    properties["model"] = nullable({"type": "string", "enum": models})
    return object_schema(
        [f.name for f in fields.values() if f.required],
        properties,
        description=description,
        additionalProperties=True,
        **{
            "if": {"required": ["custom_mode"], "properties": {"custom_mode": {"const": True}}},
            "then": given("prompt"),
        },
    )


def _id(*names: str) -> dict[str, Any]:
    """A body naming a task: the first of ``names`` it holds, a non-empty string."""
    return object_schema(
        [], {name: {"type": "string", "minLength": 1} for name in names},
        anyOf=[{"required": [name]} for name in names],
    )  # fmt: skip


def music_schemas(id_pattern: str, models: list[str]) -> dict[str, Any]:
    """The music routes' schemas (``models``: the ``model`` values of the music route)."""
    r = rules()
    clip = object_schema(
        [
            "id",
            "audio_url",
            "image_url",
            "status",
            "title",
            "duration",
            "model_name",
            "extra_message",
            "fail_message",
            "error_message",
        ],
        {
            "id": {"type": "string", "format": "uuid"},
            "audio_url": _URL,
            "image_url": _URL,
            "status": {"type": "string", "enum": ["text", "first", "complete", "error"]},
            "title": {"type": "string"},
            "duration": {"type": ["number", "null"]},
            "model_name": {"type": "string"},
            "extra_message": {"type": "string"},
            "fail_message": {"type": "string"},
            "error_message": {"type": "string"},
        },
        additionalProperties=False,
    )
    clips = {"type": "array", "items": ref("MusicClip")}
    upload_id = {"type": "string", "pattern": "^" + id_regex(r.upload_id[0]) + "$"}
    msg = {"code": {"const": 200}, "msg": {"type": "string"}}
    return {
        "MusicClip": clip,
        "MusicFeedResponse": success_schema(
            object_schema(
                ["type", "request_body", "response_data", "created_at"],
                {
                    "type": _STATUS,
                    "request_body": {"type": "object"},
                    "response_data": clips,
                    "created_at": _STAMP,
                },
                additionalProperties=False,
            )
        ),
        "ExtendMusicRequest": _body(
            r.extend_fields,
            "Extend a clip (custom_mode true: prompt required; false: inherit the origin's fields)",
            models,
        ),
        "UploadCoverRequest": _body(r.upload_fields, "A new rendition of audio_id", models),
        "MusicCoverRequest": {
            **_id("task_id", "taskId"),
            "description": "The music task's id, as task_id or (older pages) taskId",
        },
        "MusicCoverCreated": object_schema(
            ["code", "msg", "data"],
            {
                **msg,
                "data": object_schema(
                    ["taskId"], {"taskId": {"type": "string", "pattern": id_pattern}}
                ),
            },
            additionalProperties=False,
        ),
        "MusicCoverStatus": object_schema(
            ["code", "msg", "data"],
            {
                **msg,
                "data": object_schema(
                    ["taskId", "status", "images", "created_at"],
                    {
                        "taskId": {"type": "string"},
                        "status": _STATUS,
                        "images": {"type": "array", "items": _URL},
                        "created_at": _STAMP,
                    },
                    additionalProperties=False,
                ),
            },
            additionalProperties=False,
        ),
        "UploadCoverCreated": success_schema(
            object_schema(["task_id"], {"task_id": upload_id}, additionalProperties=False)
        ),
        "UploadCoverStatusResponse": success_schema(
            object_schema(
                ["task_id", "status", "response_data", "created_at"],
                {
                    "task_id": upload_id,
                    "status": _STATUS,
                    "response_data": clips,
                    "created_at": _STAMP,
                },
                additionalProperties=False,
            )
        ),
        "TimestampedLyricsRequest": object_schema(
            ["task_id", "audio_id"],
            {name: {"type": "string", "minLength": 1} for name in ("task_id", "audio_id")},
        ),
        "TimestampedLyricsResponse": success_schema(
            object_schema(
                ["text", "lyricParams", "waveform"],
                {
                    "text": {"type": "string"},
                    "lyricParams": {
                        "type": "array",
                        "items": {
                            "oneOf": [
                                object_schema(
                                    ["text", "metadata", "type"],
                                    {
                                        "text": {"type": "string"},
                                        "metadata": {"type": "object"},
                                        "type": {"const": "segment_break"},
                                    },
                                ),
                                object_schema(
                                    ["text", "start", "end", "type"],
                                    {
                                        "text": {"type": "string"},
                                        "start": {"type": "number"},
                                        "end": {"type": "number"},
                                        "type": {"const": "lyric"},
                                    },
                                ),
                            ]
                        },
                    },
                    "waveform": {
                        "type": "array",
                        "minItems": r.waveform,
                        "maxItems": r.waveform,
                        "items": {"type": "number", "minimum": 0, "maximum": 1},
                    },
                },
                additionalProperties=False,
            )
        ),
    }
