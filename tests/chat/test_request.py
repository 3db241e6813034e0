"""Validation of chat requests (emulator/chat/request.py): every message names the field."""

from __future__ import annotations

from typing import Any

import pytest

from emulator.chat.request import parse_request
from emulator.errors import InvalidRequest

USER = [{"role": "user", "content": "Hi"}]
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
]


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "gemini", "messages": USER, **fields}


def test_max_tokens_is_checked_beside_a_null_max_completion_tokens() -> None:
    with pytest.raises(InvalidRequest, match=r"^max_tokens: expected an integer of at least 1"):
        parse_request(body(max_completion_tokens=None, max_tokens=-2))
    assert parse_request(body(max_completion_tokens=None, max_tokens=7)).max_tokens == 7
    assert parse_request(body(max_completion_tokens=5, max_tokens=7)).max_tokens == 5


def test_defaults() -> None:
    request = parse_request(body())
    assert request.stream is None  # the scenario decides (true by default)
    assert (request.response_format, request.tool_choice, request.include_usage) == (
        "text",
        "none",
        False,
    )
    assert (request.include_thoughts, request.reasoning_effort) == (True, "high")


def test_every_role_and_field_is_accepted() -> None:
    messages = [
        {"role": "system", "content": "s"},
        {"role": "developer", "content": [{"type": "text", "text": "d"}]},
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]  # fmt: skip
    request = parse_request(
        body(
            messages=messages, stream=True, stream_options={"include_usage": True},
            temperature=0.2, top_p=1, max_tokens=50, stop=["\n\n"], include_thoughts=False,
            reasoning_effort="low", tools=TOOLS, tool_choice="auto", seed=3, n=1, user="me",
            response_format={"type": "json_object"},
        )
    )  # fmt: skip
    assert request.stream is True and request.include_usage
    assert request.tools[0].name == "get_weather" and request.tool_choice == "auto"
    assert (request.max_tokens, request.stop, request.seed) == (50, ("\n\n",), 3)
    assert request.response_format == "json_object"


def test_a_named_tool_choice_and_a_json_schema() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    request = parse_request(
        body(
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "out", "schema": schema, "strict": True},
            },
        )
    )
    assert request.tool_choice == "get_weather"
    assert request.json_schema == schema


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param(
            {"model": None}, r"^model: required \(the chat model is 'gemini'\)$", id="no-model"
        ),
        pytest.param(
            {"model": "gpt-4o"},
            r"^model: 'gpt-4o' is not a chat model; the chat model is 'gemini'$",
            id="other-model",
        ),
        pytest.param(
            {"messages": None}, r"^messages: required, a non-empty list", id="no-messages"
        ),
        pytest.param(
            {"messages": []},
            r"^messages: expected a non-empty list of messages, got an empty list$",
            id="empty-messages",
        ),
        pytest.param(
            {"messages": "hi"},
            r"^messages: expected a non-empty list of messages, got a string$",
            id="messages-not-a-list",
        ),
        pytest.param(
            {"messages": [{"role": "bot", "content": "x"}]},
            r"^messages\[0\]\.role: 'bot' is not one of: system, developer, user, assistant, tool$",
            id="bad-role",
        ),
        pytest.param(
            {"messages": [{"content": "x"}]},
            r"^messages\[0\]\.role: required, one of: system",
            id="no-role",
        ),
        pytest.param(
            {"messages": [{"role": "user"}]},
            r"^messages\[0\]\.content: required for a user message$",
            id="no-content",
        ),
        pytest.param(
            {"messages": [{"role": "user", "content": 3}]},
            r"^messages\[0\]\.content: expected a string or a list of content parts, got a number$",
            id="content-number",
        ),
        pytest.param(
            {"messages": [{"role": "tool", "content": "x"}]},
            r"^messages\[0\]\.tool_call_id: required",
            id="tool-without-id",
        ),
        pytest.param(
            {"messages": [{"role": "assistant"}]},
            r"^messages\[0\]\.content: required unless the message has tool_calls$",
            id="empty-assistant",
        ),
        pytest.param(
            {"stream": "yes"}, r"^stream: expected true or false, got 'yes'$", id="stream"
        ),
        pytest.param(
            {"stream_options": {"include_usage": 1}},
            r"^stream_options\.include_usage: expected true or false",
            id="include-usage",
        ),
        pytest.param(
            {"temperature": 3},
            r"^temperature: 3 is out of range \(allowed: 0 to 2\)$",
            id="temperature",
        ),
        pytest.param(
            {"top_p": "x"}, r"^top_p: expected a number from 0 to 1, got 'x'$", id="top-p"
        ),
        pytest.param(
            {"max_tokens": 0},
            r"^max_tokens: expected an integer of at least 1, got 0$",
            id="max-tokens",
        ),
        pytest.param(
            {"max_completion_tokens": 10, "max_tokens": "many"},
            r"^max_tokens: expected an integer of at least 1, got 'many'$",
            id="max-tokens-beside-the-newer-name",
        ),
        pytest.param(
            {"stop": ["a", "b", "c", "d", "e"]}, r"^stop: at most 4 sequences, got 5$", id="stop"
        ),
        pytest.param(
            {"reasoning_effort": "medium"},
            r"^reasoning_effort: 'medium' is not one of: low, high$",
            id="effort",
        ),
        pytest.param(
            {"response_format": {"type": "xml"}},
            r"^response_format\.type: 'xml' is not one of: text, json_object, json_schema$",
            id="format-type",
        ),
        pytest.param(
            {"response_format": "json"},
            r"^response_format: expected an object with a type, got a string$",
            id="format-string",
        ),
        pytest.param(
            {"response_format": {"type": "json_schema"}},
            r"^response_format\.json_schema: required for type json_schema",
            id="no-json-schema",
        ),
        pytest.param(
            {"response_format": {"type": "json_schema", "json_schema": {"name": "a b"}}},
            r"^response_format\.json_schema\.name: 'a b' is not a schema name",
            id="schema-name",
        ),
        pytest.param(
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "a", "schema": []},
                }
            },
            r"^response_format\.json_schema\.schema: expected a JSON Schema object, got a list$",
            id="schema-not-object",
        ),
        pytest.param(
            {"tools": [{"type": "retrieval"}]},
            r"^tools\[0\]\.type: expected 'function'",
            id="tool-type",
        ),
        pytest.param(
            {"tools": [{"type": "function", "function": {"name": "no spaces"}}]},
            r"^tools\[0\]\.function\.name: 'no spaces' is not a function name",
            id="tool-name",
        ),
        pytest.param(
            {"tool_choice": "required"},
            r"^tool_choice: 'required' needs tools, and the request has none$",
            id="required-without-tools",
        ),
        pytest.param(
            {"tools": TOOLS, "tool_choice": "always"},
            r"^tool_choice: 'always' is not one of: none, auto, required, or a function$",
            id="tool-choice",
        ),
        pytest.param(
            {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            r"^tool_choice\.function\.name: 'nope' is not in tools \(tools: get_weather\)$",
            id="unknown-tool",
        ),
    ],
)
def test_bad_requests_are_400_naming_the_field(fields: dict[str, Any], message: str) -> None:
    request = {k: v for k, v in body(**fields).items() if v is not None}
    with pytest.raises(InvalidRequest, match=message):
        parse_request(request)
