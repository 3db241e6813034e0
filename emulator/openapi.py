"""The OpenAPI 3.1 description of the emulated API and of the control API, built from the catalogue.

Every model's request schema comes from ``data/models.json`` (the same data the validator uses),
so the description cannot drift from what the emulator accepts. ``render_html`` turns the
document into a self-contained page (no CDN, no script) served at ``/_emulator/docs``.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import __version__
from .catalogue import Catalogue, Field, Model
from .openapi_parts import (
    SCHEMAS,
    SECURITY_SCHEMES,
    duration_schema,
    error_responses,
    field_schema,
    given,
    id_regex,
    json_response,
    nullable,
    operation,
    preflight,
    ref,
    success_schema,
)
from .scenarios.checks import ANSWERS, TOP_KEYS
from .scenarios.library import library
from .tasks import State
from .wire import (
    DEFAULT_STATUS_WORDS,
    ERROR_TYPES,
    FILES_PREFIX,
    KEY_PREFIX,
    TASKS_PREFIX,
)

__all__ = [
    "DEFAULT_STATUS_WORDS_DOC",
    "build_openapi",
    "openapi_document",
    "render_html",
    "routes",
]

#: The documented default words of ``data.status`` (a scenario may change them).
DEFAULT_STATUS_WORDS_DOC = tuple(dict.fromkeys(DEFAULT_STATUS_WORDS.values()))

STATES = tuple(state.value for state in State)
_API_ERRORS = (400, 401, 402, 404, 405, 413, 415, 429, 500, 503)


def schema_name(model_id: str) -> str:
    """A component name for a model id (``seedream/4.5-edit`` -> ``Create_seedream_4_5_edit``)."""
    return "Create_" + re.sub(r"[^A-Za-z0-9]+", "_", model_id).strip("_")


def model_schema(model: Model, aliases: list[str]) -> dict[str, Any]:
    """The request body of one ``model`` value (family ids that default to it included)."""
    names = [model.id, *aliases, *model.aliases]
    pricing = model.pricing
    unit = {"files": "per file", "duration": "per second", "task": "per task",
            "characters": f"per {pricing.per} characters"}[pricing.times]  # fmt: skip
    price = (
        f"{pricing.flat:g} credits {unit}"
        if pricing.flat is not None
        else f"credits {unit} by "
        + ", ".join(pricing.by)
        + ": "
        + "; ".join(f"{k} = {v:g}" for k, v in pricing.table.items())
    ) + (f", at least {pricing.min}" if pricing.min else "")
    return {
        "type": "object",
        "title": model.id,
        "description": (
            f"Family {model.family}; {price}; typical time {model.timing.min_s:g}-"
            f"{model.timing.max_s:g} s; webhook (callback_url) "
            f"{'supported' if model.webhook else 'not supported'}. Unknown fields are accepted "
            "and ignored unless the scenario is strict."
        ),
        "required": [
            *([] if model.id == model.route.default_model else ["model"]),  # (absent: the default)
            *(f.name for f in model.fields.values() if f.required),
        ],
        "properties": {
            "model": {"type": "string", "enum": names},
            **{name: field_schema(spec) for name, spec in model.fields.items()},
        },
        "additionalProperties": True,
        **({"allOf": [check_schema(rule, model) for rule in model.checks]} if model.checks else {}),
    }


def check_schema(rule: Mapping[str, Any], model: Model) -> dict[str, Any]:
    """A cross-field rule of the catalogue (``validation.CHECKS``) in JSON Schema (a field
    sent as null is not given); the sums no schema can state (shots' durations, characters in
    all) are said in words."""
    kind = rule["check"]
    if kind == "required_unless":
        return {"anyOf": [given(rule["field"]), _equals(model.fields[rule["unless"]], True)]}
    if kind == "shots":
        flag, shots = rule["flag"], rule["list"]
        low, high = rule["total"]
        return {
            "description": f"With {flag} true, {shots} is required and the durations of its "
            f"shots add up to {low} to {high} s.",
            "if": _equals(model.fields[flag], True),
            "then": given(shots),
        }
    if kind == "max_when":
        name, top = rule["field"], rule["max"]
        spec = model.fields[name]
        capped = duration_schema(spec, top) if spec.kind == "duration" else {"maximum": top}
        return {
            "description": f"{name} at most {top:g} when "
            + ", ".join(f"{k} is {v}" for k, v in rule["when"].items()),
            "if": {"allOf": [_equals(model.fields[k], v) for k, v in rule["when"].items()]},
            "then": {"properties": {name: capped if spec.required else nullable(capped)}},
        }
    if kind == "one_of":
        return {"oneOf": [given(name) for name in rule["fields"]]}
    if kind == "any_of":  # (an empty string gives nothing)
        return {"anyOf": [{"allOf": [given(name), {"properties": {name: {"minLength": 1}}}]}
                          for name in rule["fields"]]}  # fmt: skip
    if kind == "max_characters":
        return {"description": f"At most {rule['max']} characters of text in all "
                f"({', '.join(model.text_fields)})."}  # fmt: skip
    raise ValueError(f"model {model.id}: no schema for check {kind!r}")


def _equals(spec: Field, value: Any) -> dict[str, Any]:
    """A field has ``value``, given or by default (absent, or null)."""
    sent = {"required": [spec.name], "properties": {spec.name: {"const": value}}}
    return sent if spec.default != value else {"anyOf": [sent, {"not": given(spec.name)}]}


def _error_schemas() -> dict[str, Any]:
    return {
        "Error": {
            "type": "object",
            "description": "Every failure answers this envelope; error.code is the HTTP status.",
            "required": ["error"],
            "additionalProperties": False,
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message", "type"],
                    "additionalProperties": False,
                    "properties": {
                        "code": {"type": "integer", "minimum": 100, "maximum": 599},
                        "message": {"type": "string"},
                        "type": {
                            "type": "string",
                            "description": "Default types by status: "
                            + ", ".join(f"{k} {v}" for k, v in ERROR_TYPES.items())
                            + " (a scenario may inject others).",
                            "examples": sorted(set(ERROR_TYPES.values())),
                        },
                    },
                }
            },
        }
    }


def id_pattern(catalogue: Catalogue) -> str:
    """A pattern every task id of ``catalogue`` matches (its models' id formats)."""
    shapes = {id_regex(m.id_format) for m in catalogue.models.values()}
    return "^(" + "|".join(sorted(shapes)) + ")$"


def _task_schemas(catalogue: Catalogue) -> dict[str, Any]:
    status = {
        "type": "string",
        "minLength": 1,
        "description": "IN_PROGRESS while queued or running, then completed or failed "
        "(the documented words; a scenario's status_words may change them).",
        "examples": list(DEFAULT_STATUS_WORDS_DOC),
    }
    stamp = {"type": "string", "format": "date-time", "description": "ISO-8601 UTC"}
    outputs = sorted({(r.output.url_field, r.output.urls_field)
                      for r in catalogue.routes.values() if not r.output.clips})  # fmt: skip
    clip_outputs = sorted({(r.output.url_field, r.output.urls_field)
                           for r in catalogue.routes.values() if r.output.clips})  # fmt: skip
    clip = {
        "type": "object",
        "required": ["id", "audio_url", "image_url", "title", "duration"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "audio_url": {"type": "string"},
            "image_url": {"type": "string"},
            "title": {"type": "string"},
            "duration": {"type": "number", "minimum": 0},
        },
    }
    return {
        "BareCreateResponse": {
            "type": "object",
            "description": "The bare create answer an older page shows (a scenario's answers).",
            "required": ["task_id", "status", "model", "created_at"],
            "additionalProperties": False,
            "properties": {
                "task_id": {"type": "string"},
                "status": {"type": "string"},
                "model": {"type": "string"},
                "created_at": stamp,
            },
        },
        "CreateResponse": success_schema(
            {
                "type": "object",
                "required": ["task_id", "status"],
                "additionalProperties": False,
                "properties": {
                    "task_id": {"type": "string", "pattern": id_pattern(catalogue)},
                    "status": status,
                },
            }
        ),
        "TaskOutput": {
            "description": "What a finished task gives, by its route's output: images, videos "
            "or audio [choice: the non-image shapes are not documented].",
            "oneOf": [
                {
                    "type": "object",
                    "required": [one, many],
                    "additionalProperties": False,
                    "properties": {
                        one: {"type": "string"},
                        many: {"type": "array", "minItems": 1, "items": {"type": "string"}},
                    },
                }
                for one, many in outputs
            ]
            + [
                {
                    "type": "object",
                    "description": "Music: the clips with their covers and lengths",
                    "required": [one, many, "clips"],
                    "additionalProperties": False,
                    "properties": {
                        one: {"type": "string"},
                        many: {"type": "array", "minItems": 1, "items": {"type": "string"}},
                        "clips": {"type": "array", "minItems": 1, "items": clip},
                    },
                }
                for one, many in clip_outputs
            ],
        },
        "Task": {
            "type": "object",
            "description": "data of GET /api/v1/tasks/{task_id} [choice: not documented].",
            "required": [
                "task_id",
                "model",
                "status",
                "progress",
                "created_at",
                "updated_at",
                "output",
                "error",
                "credits_consumed",
            ],
            "additionalProperties": False,
            "properties": {
                "task_id": {"type": "string"},
                "model": {"type": "string"},
                "status": status,
                "progress": {"type": "integer", "minimum": 0, "maximum": 100},
                "created_at": stamp,
                "updated_at": stamp,
                "output": {"oneOf": [{"type": "null"}, ref("TaskOutput")]},
                "error": {"type": ["string", "null"]},
                "credits_consumed": {"type": "integer", "minimum": 0},
            },
        },
        "TaskResponse": success_schema(ref("Task")),
    }


def _control_schemas(task: Mapping[str, Any]) -> dict[str, Any]:
    scenario = {
        "anyOf": [
            {"type": "string", "enum": sorted(library())},
            {"type": "string", "pattern": r"[^/]\.ya?ml$", "description": "a YAML file's path"},
            {
                "type": "object",
                "description": "A scenario as a file holds it (its JSON Schema: "
                "`aio-emulator schema`)",
                "required": ["name"],
                "properties": {"name": {"type": "string"}},
                "propertyNames": {"enum": list(TOP_KEYS)},
            },
        ]
    }
    clock = {
        "type": "object",
        "required": ["mode", "now", "epoch"],
        "properties": {
            "mode": {"type": "string", "enum": ["real", "virtual"]},
            "now": {"type": "string"},
            "epoch": {"type": "number"},
        },
    }
    return {
        "Clock": clock,
        "Health": {
            "type": "object",
            "required": ["status", "version", "seed", "clock", "scenario", "tasks", "journal"],
            "properties": {
                "status": {"type": "string"},
                "version": {"type": "string"},
                "seed": {"type": "integer"},
                "clock": ref("Clock"),
                "scenario": {"type": "string"},
                "tasks": {"type": "integer", "minimum": 0},
                "journal": {"type": "integer", "minimum": 0},
            },
        },
        "Account": {
            "type": "object",
            "required": ["key", "credits", "reserved", "spent"],
            "properties": {
                "key": {"type": "string"},
                "credits": {"type": "integer"},
                "reserved": {"type": "integer"},
                "spent": {"type": "integer"},
            },
        },
        "Requests": {
            "type": "object",
            "required": ["requests"],
            "properties": {"requests": {"type": "array", "items": {"type": "object"}}},
        },
        "Tasks": {
            "type": "object",
            "required": ["tasks"],
            "properties": {
                "tasks": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "description": "A Task plus the emulator's bookkeeping.",
                        "required": [*task["required"], "key", "polls", "state"],
                        "properties": {
                            **task["properties"],
                            "key": {"type": "string"},
                            "polls": {"type": "integer", "minimum": 0},
                            "state": {"type": "string", "enum": list(STATES)},
                        },
                    },
                }
            },
        },
        "ScenarioInfo": {
            "type": "object",
            "required": ["name", "rules", "library"],
            "properties": {
                "name": {"type": "string"},
                "description": {"type": "string"},
                "source": {"type": "string"},
                "seed": {"type": ["integer", "null"]},
                "rules": {"type": "array", "items": {"type": "string"}},
                "warnings": {"type": "array", "items": {"type": "string"}},
                "reload_error": {"type": ["string", "null"]},
                "key_scenarios": {"type": "object", "additionalProperties": {"type": "string"}},
                "library": {"type": "array", "items": {"type": "string"}},
            },
        },
        "Status": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"type": "string"}},
        },
        "SetCredits": {
            "type": "object",
            "required": ["credits"],
            "properties": {"credits": {"type": "integer", "minimum": 0}},
        },
        "AdvanceClock": {
            "type": "object",
            "required": ["seconds"],
            "properties": {"seconds": {"type": "number", "minimum": 0, "exclusiveMaximum": 1e9}},
        },
        "UseScenario": {
            "type": "object",
            "description": "A ready scenario's name, a YAML file's path (on the server), a "
            "scenario as a file holds it, or a list of those applied in order; or the YAML "
            "itself as the body (Content-Type: application/yaml).",
            "required": ["scenario"],
            "properties": {
                "scenario": {
                    "anyOf": [
                        scenario,
                        {"type": "array", "minItems": 1, "items": scenario},
                    ]
                }
            },
        },
    }


#: per create route: the OpenAPI tag, the operation's summary, its id and request schema name
_CREATE_OPERATIONS = {
    "images": ("images", "Create an image generation task", "createGeneration", "CreateRequest"),
    "videos": ("videos", "Create a video generation task", "createVideo", "CreateVideoRequest"),
    "speech": ("speech", "Create a speech (text to speech) task", "createSpeech",
               "CreateSpeechRequest"),
    "music": ("music", "Generate music (Suno): two clips with covers", "createMusic",
              "CreateMusicRequest"),
    "remove-bg": ("tools", "Remove an image's background", "createRemoveBg",
                  "CreateRemoveBgRequest"),
    "upscale": ("tools", "Upscale an image", "createUpscale", "CreateUpscaleRequest"),
    "face-swap": ("tools", "Swap a face into an image", "createFaceSwap", "CreateFaceSwapRequest"),
}  # fmt: skip


def _operation(name: str) -> tuple[str, str, str, str]:
    """The tag, summary, operation id and request schema of create route ``name`` (a route
    the table does not know gets names made from its own)."""
    known = _CREATE_OPERATIONS.get(name)
    if known is not None:
        return known
    camel = "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name))
    return name, f"Create a {name} task", f"create{camel}", f"Create{camel}Request"


def _created(route: str) -> dict[str, Any]:
    """The 200 of a create route: the task to poll, or the forms a scenario's ``answers`` can
    switch the route to (the finished task body, the audio bytes, the bare create answer)."""
    forms = ANSWERS.get(route, ("task",))
    schemas = [ref("CreateResponse")]
    if "finished" in forms:
        schemas.append(ref("TaskResponse"))
    if "bare" in forms:
        schemas.append(ref("BareCreateResponse"))
    answer = json_response(schemas[0] if len(schemas) == 1 else {"oneOf": schemas}, "Task created")
    if "audio" in forms:
        answer["content"]["audio/mpeg"] = {"schema": {"type": "string"}}
    return answer


def _create_paths(catalogue: Catalogue, bearer: list[dict[str, list[str]]]) -> dict[str, Any]:
    """One create operation per route of the catalogue."""
    out: dict[str, Any] = {}
    for route in catalogue.routes.values():
        if not catalogue.route_models(route) or route.served_by is not None:
            continue
        tag, summary, operation_id, schema = _operation(route.name)
        out[route.path] = {
            "post": operation(
                summary,
                {
                    "200": {
                        **_created(route.name),
                        "links": {
                            "GetTask": {
                                "operationId": "getTask",
                                "parameters": {"task_id": "$response.body#/data/task_id"},
                            }
                        },
                    },
                    **error_responses(*_API_ERRORS),
                },
                operationId=operation_id,
                tags=[tag],
                security=bearer,
                requestBody={
                    "required": True,
                    "content": {"application/json": {"schema": ref(schema)}},
                },
            ),
            "options": preflight("preflight" + operation_id[len("create") :]),
        }
    return out


_FILE_CONTENT = {
    media: {"schema": {"type": "string"}}
    for media in ("image/png", "image/jpeg", "image/webp", "video/mp4", "audio/mpeg")
}


def _paths(catalogue: Catalogue) -> dict[str, Any]:
    bearer: list[dict[str, list[str]]] = [{"bearerAuth": []}]
    task_param = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"}}
    name_param = {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^(0|[1-9][0-9]{0,2})\\.(png|jpg|webp|mp4|mp3)$"},
    }
    control = {"tags": ["control"]}

    def body(name: str, **more: Any) -> dict[str, Any]:
        content = {"application/json": {"schema": ref(name)}, **more}
        return {"required": True, "content": content}

    def query(*names: str) -> list[dict[str, Any]]:
        return [{"name": name, "in": "query", "required": False, "schema": {"type": "string"},
                 "description": f"only the entries of this {name}"} for name in names]  # fmt: skip

    return {
        **_create_paths(catalogue, bearer),
        TASKS_PREFIX + "{task_id}": {
            "get": operation(
                "Poll a generation task",
                {
                    "200": {
                        **json_response(ref("TaskResponse"), "The task"),
                        "links": {
                            "GetImage": {
                                "operationId": "getImage",
                                "parameters": {
                                    "task_id": "$response.body#/data/task_id",
                                    "name": "0.png",
                                },
                            }
                        },
                    },
                    **error_responses(*_API_ERRORS),
                },
                operationId="getTask",
                tags=["images"],
                security=bearer,
                parameters=[task_param],
            ),
            "options": preflight("preflightTask", task_param),
        },
        FILES_PREFIX + "{task_id}/{name}": {
            "get": operation(
                "Download file n of a completed task ({n}.png, .jpg, .webp, .mp4 or .mp3, as "
                "its output's URLs name it); public, no key; Range requests answered with 206",
                {
                    "200": {"description": "The file", "content": _FILE_CONTENT},
                    "206": {
                        "description": "The part of the file a Range asked for",
                        "content": _FILE_CONTENT,
                    },
                    "304": {"description": "Not modified (If-None-Match matched the ETag)"},
                    **error_responses(404, 416, 429, 500, 503),
                },
                operationId="getImage",
                tags=["images"],
                parameters=[
                    task_param,
                    name_param,
                ],
            ),
            "options": preflight(
                "preflightImage", task_param, {**name_param, "schema": {"type": "string"}}
            ),
        },
        "/openapi.json": {
            "get": operation(
                "This document",
                {"200": json_response({"type": "object"}, "OpenAPI 3.1")},
                operationId="openapi",
                tags=["meta"],
            )
        },
        "/_emulator/docs": {
            "get": operation(
                "This document as a self-contained HTML page",
                {"200": {"description": "HTML", "content": {"text/html": {}}}},
                operationId="docs",
                **control,
            )
        },
        "/_emulator/health": {
            "get": operation("Health", {"200": json_response(ref("Health"), "ok")}, **control)
        },
        "/_emulator/reset": {
            "post": operation(
                "Forget every task, balance and journal entry",
                {"200": json_response(ref("Status"), "reset"), **error_responses(400)},
                **control,
            )
        },
        "/_emulator/keys/{key}": {
            "parameters": [
                {
                    "name": "key",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^" + KEY_PREFIX},
                }
            ],
            "get": operation(
                "A key's credits",
                {"200": json_response(ref("Account"), "account"), **error_responses(400)},
                **control,
            ),
            "put": operation(
                'Set a key\'s balance: {"credits": N}',
                {"200": json_response(ref("Account"), "account"), **error_responses(400, 413, 415)},
                requestBody=body("SetCredits"),
                **control,
            ),
        },
        "/_emulator/requests": {
            "get": operation(
                "The journal, oldest first",
                {"200": json_response(ref("Requests"), "journal")},
                parameters=[*query("key"), {**query("path")[0], "description": "only this path"}],
                **control,
            ),
            "delete": operation(
                "Clear it", {"200": json_response(ref("Requests"), "empty")}, **control
            ),
        },
        "/_emulator/tasks": {
            "get": operation(
                "Every task",
                {"200": json_response(ref("Tasks"), "tasks")},
                parameters=[{**query("key")[0], "description": "only the tasks of this key"}],
                **control,
            )
        },
        "/_emulator/scenario": {
            "get": operation(
                "The scenario", {"200": json_response(ref("ScenarioInfo"), "scenario")}, **control
            ),
            "put": operation(
                "Switch the scenario",
                {
                    "200": json_response(ref("ScenarioInfo"), "scenario"),
                    **error_responses(400, 409, 413, 415),
                },
                requestBody=body(
                    "UseScenario", **{"application/yaml": {"schema": {"type": "string"}}}
                ),
                **control,
            ),
        },
        "/_emulator/clock": {
            "get": operation("The clock", {"200": json_response(ref("Clock"), "clock")}, **control)
        },
        "/_emulator/clock/advance": {
            "post": operation(
                'Advance the virtual clock: {"seconds": N}',
                {
                    "200": json_response(ref("Clock"), "clock"),
                    **error_responses(400, 409, 413, 415),
                },
                requestBody=body("AdvanceClock"),
                **control,
            )
        },
    }


def build_openapi(catalogue: Catalogue | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``catalogue`` (the packaged one by default)."""
    from .chat.openapi import chat_paths, chat_schemas  # (imported here, not at start-up)
    from .music.openapi import music_paths, music_schemas

    catalogue = catalogue or Catalogue.default()
    aliases: dict[str, list[str]] = {}
    for family, default in catalogue.family_defaults.items():
        if family not in catalogue.models:
            aliases.setdefault(default, []).append(family)
    models = {
        schema_name(model.id): model_schema(model, aliases.get(model.id, []))
        for model in catalogue.models.values()
    }
    tasks = _task_schemas(catalogue)
    creates = {
        _operation(route.name)[3]: {
            "description": f"POST {route.path}: one schema per model value; `model` selects it.",
            "oneOf": [ref(schema_name(m.id)) for m in catalogue.route_models(route)],
        }
        for route in catalogue.routes.values()
        if catalogue.route_models(route) and route.served_by is None
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "API in One (emulator)",
            "version": __version__,
            "description": (
                "The emulated wire contract of https://apiin.one/api/v1 (images, videos, music, "
                "speech, image tools, chat), plus "
                "the emulator's own control API under /_emulator/. Request schemas are generated "
                "from the model catalogue the validator uses."
            ),
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": "images", "description": "Images: create, poll, download (any family)"},
            {"name": "videos", "description": "Video generation"},
            {"name": "speech", "description": "Text to speech"},
            {
                "name": "music",
                "description": "Music (Suno): generate, feed, extend, covers, "
                "upload-cover, timestamped lyrics",
            },
            {"name": "tools", "description": "Image tools: background removal, upscale, face swap"},
            {"name": "chat", "description": "OpenAI-compatible chat completions"},
            {"name": "cors", "description": "Preflights of browsers on another origin"},
            {"name": "control", "description": "The emulator's own control API"},
            {"name": "meta", "description": "This description"},
        ],
        "paths": {**_paths(catalogue), **music_paths(), **chat_paths()},
        "components": {
            "securitySchemes": SECURITY_SCHEMES,
            "schemas": {
                **creates,
                **models,
                **tasks,
                **_error_schemas(),
                **_control_schemas(tasks["Task"]),
                **music_schemas(id_pattern(catalogue), catalogue.names(catalogue.routes["music"])),
                **chat_schemas(),
            },
        },
    }


_DOCS: dict[int, tuple[bytes, bytes]] = {}


def openapi_document(catalogue: Catalogue) -> tuple[bytes, bytes]:
    """(JSON, HTML) of the document for ``catalogue``, built once per catalogue object."""
    cached = _DOCS.get(id(catalogue))
    if cached is None:
        spec = build_openapi(catalogue)
        cached = (
            json.dumps(spec, ensure_ascii=False, indent=1).encode(),
            render_html(spec).encode(),
        )
        _DOCS.clear()  # one emulator per process is the common case: keep memory flat
        _DOCS[id(catalogue)] = cached
    return cached


# -- the HTML page --------------------------------------------------------------------------

_CSS = """
body{font:15px/1.45 system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
code,pre{font:13px ui-monospace,monospace;background:#f4f4f4}pre{padding:.6em;overflow:auto}
h2{border-bottom:1px solid #ccc;margin-top:2em}h3{margin-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left;vertical-align:top}.m{font-weight:bold;color:#064}nav a{margin-right:1em}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _type_text(schema: Mapping[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].removeprefix(SCHEMAS)
        return f'<a href="#schema-{_e(name)}">{_e(name)}</a>'
    for alternatives in ("oneOf", "anyOf"):
        if alternatives in schema:
            return " | ".join(_type_text(s) for s in schema[alternatives])
    kind = schema.get("type", "any")
    text = " | ".join(kind) if isinstance(kind, list) else str(kind)
    if kind == "array" and "items" in schema:
        text = "array of " + _type_text(schema["items"])
    return _e(text)


def _constraints(schema: Mapping[str, Any]) -> str:
    parts = []
    if "enum" in schema:
        parts.append("one of " + ", ".join(f"<code>{_e(v)}</code>" for v in schema["enum"]))
    for key, label in (
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minimum", "min"),
        ("maximum", "max"),
        ("minItems", "min items"),
        ("maxItems", "max items"),
        ("pattern", "pattern"),
        ("const", "always"),
    ):
        if key in schema:
            parts.append(f"{label} <code>{_e(schema[key])}</code>")
    if "default" in schema:
        parts.append(f"default <code>{_e(schema['default'])}</code>")
    if "description" in schema:
        parts.append(_e(schema["description"]))
    return "; ".join(parts)


def _schema_table(schema: Mapping[str, Any]) -> str:
    props = schema.get("properties")
    if not props:
        return f"<p>{_type_text(schema)}</p>"
    required = set(schema.get("required", ()))
    rows = "".join(
        f"<tr><td><code>{_e(name)}</code>{' *' if name in required else ''}</td>"
        f"<td>{_type_text(sub)}</td><td>{_constraints(sub)}</td></tr>"
        for name, sub in props.items()
    )
    return f"<table><tr><th>field (* required)</th><th>type</th><th>notes</th></tr>{rows}</table>"


def render_html(spec: Mapping[str, Any]) -> str:
    """A readable, self-contained HTML rendering of ``spec`` (no external resources)."""
    info = spec["info"]
    out = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{_e(info['title'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(info['title'])} <small>{_e(info['version'])}</small></h1>",
        f"<p>{_e(info['description'])}</p>",
        '<nav><a href="#endpoints">Endpoints</a><a href="#schemas">Schemas</a>'
        '<a href="/openapi.json">openapi.json</a></nav>',
        '<h2 id="endpoints">Endpoints</h2>',
    ]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            out.append(
                f'<h3><span class="m">{method.upper()}</span> <code>{_e(path)}</code></h3>'
                f"<p>{_e(op.get('summary', ''))}"
                f"{' (Authorization: Bearer aio_...)' if op.get('security') else ''}</p>"
            )
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                out.append(f"<p>Request body: {_type_text(body['schema'])}</p>")
            rows = []
            for status, response in op["responses"].items():
                content = response.get("content", {})
                media = next(iter(content), "")
                schema = content.get(media, {}).get("schema")
                shown = _type_text(schema) if schema else ""
                rows.append(
                    f"<tr><td>{_e(status)}</td><td>{_e(response['description'])}</td>"
                    f"<td>{_e(media)}</td><td>{shown}</td></tr>"
                )
            out.append(
                "<table><tr><th>status</th><th>meaning</th><th>media</th><th>body</th></tr>"
                + "".join(rows)
                + "</table>"
            )
    out.append('<h2 id="schemas">Schemas</h2>')
    for name, schema in spec["components"]["schemas"].items():
        out.append(f'<h3 id="schema-{_e(name)}">{_e(name)}</h3>')
        if "description" in schema:
            out.append(f"<p>{_e(schema['description'])}</p>")
        out.append(_schema_table(schema))
    out.append("</body></html>")
    return "\n".join(out)


# -- routes ---------------------------------------------------------------------------------


async def openapi_json(request: Request) -> Response:
    spec, _ = openapi_document(request.app.state.emulator.catalogue)
    return Response(spec, media_type="application/json")


async def docs_page(request: Request) -> Response:
    _, page = openapi_document(request.app.state.emulator.catalogue)
    return Response(page, media_type="text/html; charset=utf-8")


routes = [
    Route("/openapi.json", openapi_json, methods=["GET"]),
    Route("/_emulator/docs", docs_page, methods=["GET"]),
]
