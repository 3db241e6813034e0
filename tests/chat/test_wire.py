"""The answer on the wire (emulator/chat/wire.py): the object and its SSE framing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.chat.reply import Completion, ToolCall
from emulator.chat.usage import Usage
from emulator.chat.wire import (
    DONE,
    MAX_PIECE,
    Meta,
    chunks,
    completion_body,
    frame,
    pieces,
    wrapped,
)

META = Meta("chatcmpl_" + "0" * 24, 1767225600, "gemini")
USAGE = Usage(12, 156)


@given(st.text())
def test_pieces_join_back_to_the_text(text: str) -> None:
    parts = pieces(text)
    assert "".join(parts) == text
    assert all(len(p.strip()) <= MAX_PIECE for p in parts)


def test_pieces_are_words_with_their_spaces() -> None:
    assert pieces("Hello big  world") == ["Hello ", "big  ", "world"]
    assert pieces("x" * 20) == ["x" * 16, "x" * 4]


def test_the_completion_object() -> None:
    body = completion_body(META, Completion("Hi."), USAGE, 2)
    assert body == {
        "id": META.id, "object": "chat.completion", "created": META.created, "model": "gemini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 156, "total_tokens": 168},
        "credits_consumed": 2,
    }  # fmt: skip
    assert wrapped(body) == {"code": 200, "message": "success", "data": body}


def test_a_tool_call_completion_has_null_content() -> None:
    call = ToolCall("call_1", "get_weather", '{"city":"Paris"}')
    body = completion_body(META, Completion(None, (call,), "tool_calls"), USAGE, 2)
    message = body["choices"][0]["message"]
    assert message["content"] is None and body["choices"][0]["finish_reason"] == "tool_calls"
    assert message["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        }
    ]


@pytest.mark.parametrize("include_usage", [True, False])
def test_stream_order(include_usage: bool) -> None:
    stream = chunks(META, Completion("Hello big world"), USAGE, 2, include_usage=include_usage)
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == META.id for c in stream)
    assert stream[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    texts = [c["choices"][0]["delta"]["content"] for c in stream[1:4]]
    assert texts == ["Hello ", "big ", "world"]
    finish = stream[4]["choices"][0]
    assert finish == {"index": 0, "delta": {}, "finish_reason": "stop"}
    if include_usage:
        assert stream[5]["choices"] == [] and stream[5]["usage"]["total_tokens"] == 168
    assert len(stream) == 5 + include_usage
    assert stream[-1]["credits_consumed"] == 2
    assert all("credits_consumed" not in c for c in stream[:-1])


def test_a_streamed_tool_call_starts_with_id_and_name_then_argument_pieces() -> None:
    call = ToolCall("call_1", "get_weather", '{"city":"Paris","days":3}')
    stream = chunks(META, Completion(None, (call,), "tool_calls"), USAGE, 2, include_usage=False)
    assert stream[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    start = stream[1]["choices"][0]["delta"]["tool_calls"][0]
    assert start == {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    arguments = "".join(
        c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for c in stream[2:-1]
    )
    assert arguments == call.arguments
    assert stream[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_framing() -> None:
    event = frame({"a": "é"})
    assert event == 'data: {"a":"é"}\n\n'.encode()
    assert json.loads(event[len(b"data: ") :]) == {"a": "é"}
    assert DONE == b"data: [DONE]\n\n"
