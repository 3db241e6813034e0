"""The chat route in the OpenAPI description: its path item and component schemas, merged into
the document by :func:`emulator.openapi.build_openapi`."""

from __future__ import annotations

from typing import Any

from .core import CHAT_PATH, error_responses, object_schema, preflight, ref
from .request import (
    MAX_STOP,
    NAME_PATTERN,
    REASONING_EFFORTS,
    RESPONSE_FORMATS,
    ROLES,
    TOOL_CHOICES,
)
from .usage import chat_model

__all__ = ["chat_paths", "chat_schemas"]

ERRORS = (400, 401, 402, 405, 413, 415, 429, 500, 503)


#: one server-sent event: ``data`` is a chat.completion.chunk as JSON text, or ``[DONE]``
_SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {"type": "string", "contentMediaType": "application/json"},
        "event": {"const": "message"},
    },
}


def chat_paths() -> dict[str, Any]:
    return {
        CHAT_PATH: {
            "options": preflight("preflightChat"),
            "post": {
                "summary": "Create a chat completion (OpenAI-compatible; SSE unless stream: false)",
                "operationId": "createChatCompletion",
                "tags": ["chat"],
                "security": [{"bearerAuth": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref("ChatCompletionRequest")}},
                },
                "responses": {
                    "200": {
                        "description": (
                            "stream false: the chat.completion object (a scenario may wrap it in "
                            "{code, message, data}); otherwise server-sent events, one "
                            "chat.completion.chunk per `data:` line, then `data: [DONE]`"
                        ),
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        ref("ChatCompletion"),
                                        ref("WrappedChatCompletion"),
                                    ]
                                }
                            },
                            "text/event-stream": {"schema": _SSE_EVENT},
                        },
                    },
                    **error_responses(*ERRORS),
                },
            },
        }
    }


def chat_schemas() -> dict[str, Any]:
    model = chat_model()
    usage = {
        "type": "object",
        "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
        "properties": {
            name: {"type": "integer", "minimum": 0}
            for name in ("prompt_tokens", "completion_tokens", "total_tokens")
        },
    }
    tool_call = {
        "type": "object",
        "required": ["id", "type", "function"],
        "properties": {
            "id": {"type": "string"},
            "type": {"const": "function"},
            "function": {
                "type": "object",
                "required": ["name", "arguments"],
                "properties": {"name": {"type": "string"}, "arguments": {"type": "string"}},
            },
        },
    }
    message = {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"const": "assistant"},
            "content": {"type": ["string", "null"]},
            "tool_calls": {"type": "array", "items": tool_call},
        },
    }
    completion = {
        "type": "object",
        "required": ["id", "object", "created", "model", "choices", "usage", "credits_consumed"],
        "properties": {
            "id": {"type": "string", "pattern": "^chatcmpl_[0-9a-f]{24}$"},
            "object": {"const": "chat.completion"},
            "created": {"type": "integer"},
            "model": {"enum": [model.id, model.upstream]},
            "choices": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["index", "message", "finish_reason"],
                    "properties": {
                        "index": {"type": "integer"},
                        "message": message,
                        "finish_reason": {"enum": ["stop", "length", "tool_calls"]},
                    },
                },
            },
            "usage": usage,
            "credits_consumed": {"type": "integer"},
        },
    }
    request = _request_schema(model.id)
    return {
        "ChatCompletionRequest": request,
        "ChatCompletion": completion,
        "WrappedChatCompletion": {
            "type": "object",
            "required": ["code", "message", "data"],
            "properties": {
                "code": {"const": 200},
                "message": {"type": "string"},
                "data": ref("ChatCompletion"),
            },
        },
    }


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema``, or null (an optional field sent as null counts as not sent)."""
    return {"anyOf": [schema, {"type": "null"}]}


def _function(properties: dict[str, Any]) -> dict[str, Any]:
    """A ``function`` object: its ``name`` required, among ``properties``."""
    return object_schema(["name"], properties)


def _tool(properties: dict[str, Any]) -> dict[str, Any]:
    """``{"type": "function", "function": {...}}``, the function's ``properties`` given: a
    tool, or a ``tool_choice`` naming one."""
    return object_schema(
        ["type", "function"], {"type": {"const": "function"}, "function": _function(properties)}
    )


def _request_schema(model_id: str) -> dict[str, Any]:
    """What :func:`~.request.parse_request` accepts, field by field (unknown fields are
    ignored; a tool the ``tool_choice`` object names must be among ``tools``, which no schema
    can say)."""
    name = {"type": "string", "pattern": f"^{NAME_PATTERN}$"}
    part = {
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"type": "string"}},
        "if": {"properties": {"type": {"const": "text"}}},
        "then": {"required": ["text"], "properties": {"text": {"type": "string"}}},
    }
    content = {"anyOf": [{"type": "string"}, {"type": "array", "items": part}]}
    call = object_schema(["function"], {"function": _function({"name": {"type": "string"}})})
    assistant = {  # content, or tool calls (or both)
        "properties": {"content": _nullable(content), "tool_calls": _nullable(
            {"type": "array", "items": call})},
        "anyOf": [
            {"required": ["content"], "properties": {"content": content}},
            {"required": ["tool_calls"],
             "properties": {"tool_calls": {"type": "array", "minItems": 1}}},
        ],
    }  # fmt: skip
    message = {
        "type": "object",
        "required": ["role"],
        "properties": {"role": {"enum": list(ROLES)}},
        "allOf": [
            {
                "if": {"properties": {"role": {"const": "assistant"}}},
                "then": assistant,
                "else": {"required": ["content"], "properties": {"content": content}},
            },
            {
                "if": {"properties": {"role": {"const": "tool"}}},
                "then": {"required": ["tool_call_id"],
                         "properties": {"tool_call_id": {"type": "string"}}},
            },
        ],
    }  # fmt: skip
    tool = _tool({"name": name, "parameters": {"type": "object"}})
    json_schema = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": name,
            "schema": {"type": "object"},
            "strict": _nullable({"type": "boolean"}),
        },
    }
    response_format = {
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"enum": list(RESPONSE_FORMATS)}},
        "if": {"properties": {"type": {"const": "json_schema"}}},
        "then": {"required": ["json_schema"], "properties": {"json_schema": json_schema}},
    }
    chosen = _tool({"name": {"type": "string"}})
    boolean = _nullable({"type": "boolean"})
    tokens = _nullable({"type": "integer", "minimum": 1})
    return {
        "type": "object",
        "required": ["model", "messages"],
        "properties": {
            "model": {"const": model_id},
            "messages": {"type": "array", "minItems": 1, "items": message},
            "stream": {**boolean, "default": True},
            "stream_options": _nullable(
                {"type": "object", "properties": {"include_usage": boolean}}
            ),
            "temperature": _nullable({"type": "number", "minimum": 0, "maximum": 2}),
            "top_p": _nullable({"type": "number", "minimum": 0, "maximum": 1}),
            "max_tokens": tokens,
            "max_completion_tokens": tokens,
            "stop": _nullable(
                {
                    "anyOf": [
                        {"type": "string", "minLength": 1},
                        {
                            "type": "array",
                            "maxItems": MAX_STOP,
                            "items": {"type": "string", "minLength": 1},
                        },
                    ]
                }
            ),
            "seed": _nullable({"type": "integer"}),
            "include_thoughts": {**boolean, "default": True},
            "reasoning_effort": {"enum": list(REASONING_EFFORTS), "default": "high"},
            "tools": _nullable({"type": "array", "items": tool}),
            "tool_choice": _nullable({"anyOf": [{"enum": list(TOOL_CHOICES)}, chosen]}),
            "response_format": _nullable(response_format),
        },
        # "auto" and "required" need a tool to call
        "if": {
            "required": ["tool_choice"],
            "properties": {"tool_choice": {"enum": ["auto", "required"]}},
        },
        "then": {"required": ["tools"], "properties": {"tools": {"type": "array", "minItems": 1}}},
    }
