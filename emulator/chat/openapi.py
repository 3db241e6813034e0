"""The chat route in the OpenAPI description: its path item and component schemas, merged into
the document by :func:`emulator.openapi.build_openapi`."""

from __future__ import annotations

from typing import Any

from .core import CHAT_PATH, error_responses, preflight, ref
from .request import REASONING_EFFORTS, RESPONSE_FORMATS, ROLES, TOOL_CHOICES
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
    request_message = {
        "type": "object",
        "required": ["role"],
        "properties": {
            "role": {"enum": list(ROLES)},
            "content": {"type": ["string", "array", "null"]},
            "tool_calls": {"type": "array"},
            "tool_call_id": {"type": "string"},
        },
    }
    request = {
        "type": "object",
        "required": ["model", "messages"],
        "properties": {
            "model": {"const": model.id},
            "messages": {"type": "array", "minItems": 1, "items": request_message},
            "stream": {"type": "boolean", "default": True},
            "stream_options": {
                "type": "object",
                "properties": {"include_usage": {"type": "boolean"}},
            },
            "temperature": {"type": "number", "minimum": 0, "maximum": 2},
            "top_p": {"type": "number", "minimum": 0, "maximum": 1},
            "max_tokens": {"type": "integer", "minimum": 1},
            "max_completion_tokens": {"type": "integer", "minimum": 1},
            "stop": {"type": ["string", "array"]},
            "seed": {"type": "integer"},
            "include_thoughts": {"type": "boolean", "default": True},
            "reasoning_effort": {"enum": list(REASONING_EFFORTS), "default": "high"},
            "tools": {"type": "array", "items": {"type": "object"}},
            "tool_choice": {
                "oneOf": [{"enum": list(TOOL_CHOICES)}, {"type": "object"}],
            },
            "response_format": {
                "type": "object",
                "required": ["type"],
                "properties": {"type": {"enum": list(RESPONSE_FORMATS)}},
            },
        },
    }
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
