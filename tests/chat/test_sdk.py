"""The official OpenAI Python SDK against the chat route, on a live socket (``aio_emulator``)
and in-process (``aio_emulator_respx``: respx hands the SDK's httpx requests to the app)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel

from emulator.plugin import EmulatorHandle

pytestmark = pytest.mark.parametrize("mode", ["live", "respx"])
QUESTION = [{"role": "user", "content": "What is the capital of Norway?"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "minLength": 1},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "unit", "days"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}


@pytest.fixture
def emulator(request: pytest.FixtureRequest, mode: str) -> EmulatorHandle:
    name = "aio_emulator" if mode == "live" else "aio_emulator_respx"
    handle: EmulatorHandle = request.getfixturevalue(name)
    return handle


def sdk(emulator: EmulatorHandle, **options: Any) -> openai.OpenAI:
    options.setdefault("api_key", emulator.api_key)
    return openai.OpenAI(base_url=f"{emulator.url}/api/v1", **options)


def test_streamed_text_equals_the_non_streamed_text(emulator: EmulatorHandle) -> None:
    client = sdk(emulator)
    whole = client.chat.completions.create(model="gemini", messages=QUESTION, stream=False)
    text = whole.choices[0].message.content
    assert text and "capital of Norway" in text and whole.choices[0].finish_reason == "stop"
    assert whole.usage is not None and whole.usage.total_tokens > 0
    stream = client.chat.completions.create(
        model="gemini", messages=QUESTION, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert chunks[-1].usage == whole.usage
    assert emulator.credits() == 1_000_000 - 2


def test_json_schema_output_validates(emulator: EmulatorHandle) -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "population": {"type": "integer", "minimum": 0},
            "districts": {"type": "array", "items": {"$ref": "#/$defs/district"}},
        },
        "required": ["city", "population", "districts"],
        "additionalProperties": False,
        "$defs": {
            "district": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "area_km2": {"type": ["number", "null"]},
                },
                "required": ["name", "area_km2"],
                "additionalProperties": False,
            }
        },
    }
    completion = sdk(emulator).chat.completions.create(
        model="gemini",
        messages=QUESTION,
        stream=False,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": schema, "strict": True},
        },
    )
    Draft202012Validator(schema).validate(json.loads(completion.choices[0].message.content or ""))


class Capital(BaseModel):
    country: str
    capital: str
    population_millions: float


def test_the_sdk_parse_helper_gets_a_valid_pydantic_object(emulator: EmulatorHandle) -> None:
    # parse() sends no `stream`, and the route streams by default: ask for the whole answer
    completion = sdk(emulator).chat.completions.parse(
        model="gemini", messages=QUESTION, response_format=Capital, extra_body={"stream": False}
    )
    assert isinstance(completion.choices[0].message.parsed, Capital)


def test_a_forced_tool_call_then_the_answer(emulator: EmulatorHandle) -> None:
    client = sdk(emulator)
    completion = client.chat.completions.create(
        model="gemini", messages=QUESTION, stream=False, tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )  # fmt: skip
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = choice.message.tool_calls[0]  # type: ignore[index]
    Draft202012Validator(WEATHER["function"]["parameters"]).validate(
        json.loads(call.function.arguments)
    )
    messages = [
        *QUESTION,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 4}'},
    ]
    answer = client.chat.completions.create(
        model="gemini", messages=messages, tools=[WEATHER], stream=False
    )
    assert answer.choices[0].finish_reason == "stop" and "temperature" in (
        answer.choices[0].message.content or ""
    )


def test_a_streamed_tool_call_accumulates(emulator: EmulatorHandle) -> None:
    client = sdk(emulator)
    with client.chat.completions.stream(
        model="gemini", messages=QUESTION, tools=[WEATHER], tool_choice="required"
    ) as stream:
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"
    Draft202012Validator(WEATHER["function"]["parameters"]).validate(
        json.loads(call.function.arguments)
    )


@pytest.mark.aio_emulator(allow_unserved=True)  # the 401 is on purpose
def test_authentication_error(emulator: EmulatorHandle) -> None:
    with pytest.raises(openai.AuthenticationError, match="keys start with 'aio_'"):
        sdk(emulator, api_key="sk-not-an-aio-key").chat.completions.create(
            model="gemini", messages=QUESTION, stream=False
        )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"messages": []}, "messages: expected a non-empty list", id="no-messages"),
        pytest.param(
            {"messages": [{"role": "robot", "content": "hi"}]},
            r"messages\[0\]\.role: 'robot' is not one of",
            id="bad-role",
        ),
        pytest.param(
            {"response_format": {"type": "yaml"}},
            r"response_format\.type: 'yaml' is not one of",
            id="bad-format",
        ),
        pytest.param(
            {"model": "gpt-4o"}, "model: 'gpt-4o' is not a chat model", id="unknown-model"
        ),
    ],
)
def test_bad_request_error(emulator: EmulatorHandle, fields: dict[str, Any], message: str) -> None:
    body: dict[str, Any] = {"model": "gemini", "messages": QUESTION, "stream": False, **fields}
    with pytest.raises(openai.BadRequestError, match=message) as failure:
        sdk(emulator).chat.completions.create(**body)
    assert failure.value.status_code == 400


@pytest.mark.aio_emulator(credits=4)
def test_insufficient_credits(emulator: EmulatorHandle) -> None:
    with pytest.raises(openai.APIStatusError, match="costs 5 credits and the key has 4") as failure:
        sdk(emulator).chat.completions.create(model="gemini", messages=QUESTION, stream=False)
    assert failure.value.status_code == 402
    assert emulator.credits() == 4


LIMITED = {
    "name": "limited",
    "rules": [{"match": {"endpoint": "chat"}, "rate_limit": {"capacity": 1, "per_second": 0.5}}],
}


@pytest.mark.aio_emulator(scenario=LIMITED)
def test_rate_limit_error_with_retry_after(emulator: EmulatorHandle) -> None:
    client = sdk(emulator, max_retries=0)
    client.chat.completions.create(model="gemini", messages=QUESTION, stream=False)
    with pytest.raises(openai.RateLimitError, match="Rate limit exceeded") as failure:
        client.chat.completions.create(model="gemini", messages=QUESTION, stream=True)
    assert failure.value.response.headers["retry-after"] == "2"


SCRIPTED = {
    "name": "scripted",
    "chat": {
        "rules": [
            {"match": {"contains": "norway"}, "reply": "Oslo."},
            {
                "match": {"contains": "break"},
                "reply": "one two three four",
                "fault": {"cut_after": 2},
            },
            {"match": {"contains": "boom"}, "error": {"status": 500}},
        ]
    },
}


@pytest.mark.aio_emulator(scenario=SCRIPTED)
def test_scripted_replies_errors_and_a_cut_stream(emulator: EmulatorHandle, mode: str) -> None:
    client = sdk(emulator, max_retries=0)
    assert (
        client.chat.completions.create(model="gemini", messages=QUESTION, stream=False)
        .choices[0]
        .message.content
        == "Oslo."
    )
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="gemini", messages=[{"role": "user", "content": "boom"}], stream=False
        )
    received: list[str] = []
    with pytest.raises((httpx.RemoteProtocolError, openai.APIConnectionError)):
        stream = client.chat.completions.create(
            model="gemini", messages=[{"role": "user", "content": "break"}], stream=True
        )
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    if mode == "live":  # over a socket the first chunks arrive before the cut
        assert received == ["", "one "]
    assert emulator.credits() == 1_000_000 - 1


@pytest.mark.anyio
async def test_the_async_client(emulator: EmulatorHandle) -> None:
    client = openai.AsyncOpenAI(base_url=f"{emulator.url}/api/v1", api_key=emulator.api_key)
    whole = await client.chat.completions.create(model="gemini", messages=QUESTION, stream=False)
    stream = await client.chat.completions.create(model="gemini", messages=QUESTION, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == whole.choices[0].message.content
    await client.close()
