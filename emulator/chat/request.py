"""Validation of a chat completion request: the body -> :class:`ChatRequest`, or a 400 whose
message names the field and what is allowed.

Fields the OpenAI API defines and the emulator does not interpret (``n``, ``user``,
``frequency_penalty``, ...) are accepted and ignored; the journal keeps them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .core import InvalidRequest
from .usage import chat_model

__all__ = ["MAX_STOP", "NAME_PATTERN", "ROLES", "ChatRequest", "Tool", "parse_request"]

ROLES = ("system", "developer", "user", "assistant", "tool")
RESPONSE_FORMATS = ("text", "json_object", "json_schema")
REASONING_EFFORTS = ("low", "high")
TOOL_CHOICES = ("none", "auto", "required")
#: a function or schema name, as OpenAI allows them
NAME_PATTERN = "[A-Za-z0-9_-]{1,64}"
_FUNCTION_NAME = re.compile(NAME_PATTERN)
MAX_STOP = 4


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    parameters: Mapping[str, Any]  # a JSON Schema ({} when the tool takes anything)


@dataclass(slots=True)  # immutable by convention (frozen: benchmarks/README.md)
class ChatRequest:
    """A validated request. ``stream`` is None when the body does not say (the scenario's
    default decides); ``tool_choice`` is ``none``/``auto``/``required`` or a tool's name."""

    model: str
    messages: tuple[Mapping[str, Any], ...]
    stream: bool | None = None
    include_usage: bool = False
    response_format: str = "text"
    json_schema: Mapping[str, Any] | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: str = "auto"
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    include_thoughts: bool = True
    reasoning_effort: str = "high"

    def tool(self, name: str) -> Tool | None:
        return next((t for t in self.tools if t.name == name), None)

    def last(self, *roles: str) -> Mapping[str, Any] | None:
        """The newest message with one of ``roles``."""
        for message in self.messages[::-1]:
            if message["role"] in roles:
                return message
        return None


def parse_request(body: Mapping[str, Any]) -> ChatRequest:
    model = chat_model()
    name = body.get("model")
    if name is None:
        raise InvalidRequest(f"model: required (the chat model is {model.id!r})")
    if name != model.id:
        raise InvalidRequest(
            f"model: {_show(name)} is not a chat model; the chat model is {model.id!r}"
        )
    tools = _tools(body.get("tools"))
    format_type, schema = _response_format(body.get("response_format"))
    stream_options = body.get("stream_options")
    if stream_options is not None and not isinstance(stream_options, dict):
        raise InvalidRequest(f"stream_options: expected an object, got {_kind(stream_options)}")
    include_usage = _bool(
        (stream_options or {}).get("include_usage"), "stream_options.include_usage"
    )
    _number(body.get("temperature"), "temperature", 0, 2)
    _number(body.get("top_p"), "top_p", 0, 1)
    for field in ("max_tokens", "max_completion_tokens"):  # each checked; the newer name wins
        value = body.get(field)
        if value is not None and (not _is_int(value) or value < 1):
            raise InvalidRequest(f"{field}: expected an integer of at least 1, got {_show(value)}")
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    seed = body.get("seed")
    if seed is not None and not _is_int(seed):
        raise InvalidRequest(f"seed: expected an integer, got {_show(seed)}")
    effort = body.get("reasoning_effort", "high")
    if effort not in REASONING_EFFORTS:
        raise InvalidRequest(
            f"reasoning_effort: {_show(effort)} is not one of: {', '.join(REASONING_EFFORTS)}"
        )
    return ChatRequest(
        model=model.id,
        messages=_messages(body.get("messages")),
        stream=_bool(body.get("stream"), "stream"),
        include_usage=bool(include_usage),
        response_format=format_type,
        json_schema=schema,
        tools=tools,
        tool_choice=_tool_choice(body.get("tool_choice"), tools),
        max_tokens=int(max_tokens) if max_tokens is not None else None,
        stop=_stop(body.get("stop")),
        seed=int(seed) if seed is not None else None,
        include_thoughts=_bool(body.get("include_thoughts"), "include_thoughts") is not False,
        reasoning_effort=str(effort),
    )


# -- messages -------------------------------------------------------------------------------


def _messages(raw: Any) -> tuple[Mapping[str, Any], ...]:
    if raw is None:
        raise InvalidRequest("messages: required, a non-empty list of {role, content} objects")
    if not isinstance(raw, list) or not raw:
        shown = "an empty list" if raw == [] else _kind(raw)
        raise InvalidRequest(f"messages: expected a non-empty list of messages, got {shown}")
    for i, message in enumerate(raw):
        _message(message, i)
    return tuple(raw)


def _message(message: Any, i: int) -> None:
    """Check ``messages[i]`` (its path is spelt out only for an error: most calls have none)."""
    if not isinstance(message, dict):
        raise InvalidRequest(
            f"{_at(i)}: expected an object with role and content, got {_kind(message)}"
        )
    role = message.get("role")
    if role not in ROLES:
        problem = "required, one of" if role is None else f"{_show(role)} is not one of"
        raise InvalidRequest(f"{_at(i)}.role: {problem}: {', '.join(ROLES)}")
    content = message.get("content")
    if role == "assistant":
        calls = message.get("tool_calls")
        if calls is not None:
            _tool_calls(calls, f"{_at(i)}.tool_calls")
        if content is None and not calls:
            raise InvalidRequest(f"{_at(i)}.content: required unless the message has tool_calls")
        if content is not None:
            _content(content, i)
        return
    if content is None:
        raise InvalidRequest(f"{_at(i)}.content: required for a {role} message")
    _content(content, i)
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        raise InvalidRequest(f"{_at(i)}.tool_call_id: required (a string) for a tool message")


def _at(i: int) -> str:
    return f"messages[{i}]"


def _content(content: Any, i: int) -> None:
    if isinstance(content, str):
        return
    path = f"{_at(i)}.content"
    if not isinstance(content, list):
        raise InvalidRequest(
            f"{path}: expected a string or a list of content parts, got {_kind(content)}"
        )
    for n, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise InvalidRequest(f"{path}[{n}]: expected a content part object with a type")
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise InvalidRequest(f"{path}[{n}].text: required (a string) for a text part")


def _tool_calls(calls: Any, path: str) -> None:
    if not isinstance(calls, list):
        raise InvalidRequest(f"{path}: expected a list, got {_kind(calls)}")
    for i, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest(f"{path}[{i}].function.name: required (a string)")


# -- tools and formats ----------------------------------------------------------------------


def _tools(raw: Any) -> tuple[Tool, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidRequest(f"tools: expected a list of function tools, got {_kind(raw)}")
    tools: list[Tool] = []
    for i, tool in enumerate(raw):
        path = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise InvalidRequest(f"{path}.type: expected 'function' (the only tool type)")
        function = tool.get("function")
        if not isinstance(function, dict):
            raise InvalidRequest(f"{path}.function: required, an object with a name")
        name = _name(function.get("name"), f"{path}.function.name", "a function name")
        parameters = function.get("parameters", {})
        if not isinstance(parameters, dict):
            raise InvalidRequest(f"{path}.function.parameters: expected a JSON Schema object")
        description = function.get("description", "")
        tools.append(Tool(name, description if isinstance(description, str) else "", parameters))
    return tuple(tools)


def _tool_choice(raw: Any, tools: tuple[Tool, ...]) -> str:
    if raw is None:
        return "auto" if tools else "none"
    if isinstance(raw, dict):
        function = raw.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if raw.get("type") != "function" or not isinstance(name, str):
            raise InvalidRequest(
                "tool_choice: expected 'none', 'auto', 'required' or "
                '{"type": "function", "function": {"name": ...}}'
            )
        if name not in {t.name for t in tools}:
            names = ", ".join(t.name for t in tools) or "none"
            raise InvalidRequest(
                f"tool_choice.function.name: {name!r} is not in tools (tools: {names})"
            )
        return name
    if raw not in TOOL_CHOICES:
        raise InvalidRequest(
            f"tool_choice: {_show(raw)} is not one of: {', '.join(TOOL_CHOICES)}, or a function"
        )
    if raw != "none" and not tools:
        raise InvalidRequest(f"tool_choice: {raw!r} needs tools, and the request has none")
    return str(raw)


def _response_format(raw: Any) -> tuple[str, Mapping[str, Any] | None]:
    if raw is None:
        return "text", None
    if not isinstance(raw, dict):
        raise InvalidRequest(f"response_format: expected an object with a type, got {_kind(raw)}")
    kind = raw.get("type")
    if kind not in RESPONSE_FORMATS:
        raise InvalidRequest(
            f"response_format.type: {_show(kind)} is not one of: {', '.join(RESPONSE_FORMATS)}"
        )
    if kind != "json_schema":
        return str(kind), None
    spec = raw.get("json_schema")
    if not isinstance(spec, dict):
        raise InvalidRequest(
            "response_format.json_schema: required for type json_schema "
            "(an object with name and schema)"
        )
    _name(spec.get("name"), "response_format.json_schema.name", "a schema name")
    schema = spec.get("schema", {})
    if not isinstance(schema, dict):
        raise InvalidRequest(
            "response_format.json_schema.schema: expected a JSON Schema object, "
            f"got {_kind(schema)}"
        )
    _bool(spec.get("strict"), "response_format.json_schema.strict")
    return "json_schema", schema


def _stop(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(s, str) and s for s in items):
        raise InvalidRequest("stop: expected a string or a list of non-empty strings")
    if len(items) > MAX_STOP:
        raise InvalidRequest(f"stop: at most {MAX_STOP} sequences, got {len(items)}")
    return tuple(items)


# -- scalars --------------------------------------------------------------------------------


def _name(value: Any, path: str, what: str) -> str:
    """A function or schema name, as OpenAI allows them."""
    if not isinstance(value, str) or not _FUNCTION_NAME.fullmatch(value):
        raise InvalidRequest(
            f"{path}: {_show(value)} is not {what} (1 to 64 of a-z, A-Z, 0-9, _ and -)"
        )
    return value


def _bool(value: Any, path: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise InvalidRequest(f"{path}: expected true or false, got {_show(value)}")
    return value


def _number(value: Any, path: str, low: float, high: float) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise InvalidRequest(
            f"{path}: expected a number from {low:g} to {high:g}, got {_show(value)}"
        )
    if not low <= value <= high:
        raise InvalidRequest(f"{path}: {value} is out of range (allowed: {low:g} to {high:g})")


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _kind(value: Any) -> str:
    return {
        bool: "a boolean", int: "a number", float: "a number", str: "a string",
        list: "a list", dict: "an object", type(None): "null",
    }.get(type(value), type(value).__name__)  # fmt: skip
