"""Example: code under test asks API in One's chat model through the official OpenAI SDK.

The SDK talks httpx, so ``aio_emulator_respx`` serves it in-process at the real base URL;
``aio_emulator`` serves it (or any other client) on a live socket.
"""

import json

import openai
import pytest

API = "https://apiin.one/api/v1"


def summarise(client: openai.OpenAI, text: str) -> str:
    """Stream a summary and return the whole text."""
    stream = client.chat.completions.create(
        model="gemini",
        messages=[{"role": "system", "content": "Summarise."}, {"role": "user", "content": text}],
        stream=True,  # the route streams unless told otherwise; say it either way
    )
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def extract_city(client: openai.OpenAI, text: str) -> dict:
    """Structured output: a JSON object valid against a schema."""
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
        "required": ["city", "country"],
        "additionalProperties": False,
    }
    completion = client.chat.completions.create(
        model="gemini",
        messages=[{"role": "user", "content": text}],
        response_format={"type": "json_schema", "json_schema": {"name": "place", "schema": schema}},
        stream=False,
    )
    return json.loads(completion.choices[0].message.content)


def test_summarise_in_process(aio_emulator_respx):
    client = openai.OpenAI(base_url=API, api_key=aio_emulator_respx.api_key)
    summary = summarise(client, "The quick brown fox jumps over the lazy dog.")
    assert "quick brown fox" in summary  # the placeholder quotes the question
    [entry] = aio_emulator_respx.requests(endpoint="chat", model="gemini")
    completion = entry["response"]["completion"]  # the chat.completion the chunks add up to
    assert completion["choices"][0]["message"]["content"] == summary
    assert completion["credits_consumed"] == entry["response"]["charged"] == 1


def test_extract_city_live(aio_emulator):
    client = openai.OpenAI(base_url=f"{aio_emulator.url}/api/v1", api_key=aio_emulator.api_key)
    place = extract_city(client, "I live in Bergen.")
    assert set(place) == {"city", "country"}


SCRIPTED = {
    "name": "scripted-chat",
    "chat": {
        "rules": [
            {"match": {"contains": "bergen"}, "reply": '{"city": "Bergen", "country": "Norway"}'}
        ]
    },
}


@pytest.mark.aio_emulator(scenario=SCRIPTED)  # a scripted answer instead of the placeholder
def test_extract_city_scripted(aio_emulator_respx):
    client = openai.OpenAI(base_url=API, api_key=aio_emulator_respx.api_key)
    assert extract_city(client, "I live in Bergen.") == {"city": "Bergen", "country": "Norway"}
