"""POST /api/v1/chat/completions through the app (emulator/chat/handler.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from emulator.faults import NetworkFault

from ..conftest import AUTH, KEY, Client, make_client

PATH = "/api/v1/chat/completions"
HELLO = [{"role": "user", "content": "Hello, can you summarise the plot of Hamlet for me?"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["C", "F"]}},
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}


def chat(
    client: Client, key: str = KEY, headers: dict[str, str] | None = None, **fields: Any
) -> Any:
    body = {"model": "gemini", "messages": HELLO, **fields}
    return client.post(
        PATH, json=body, headers={"Authorization": f"Bearer {key}", **(headers or {})}
    )


def events(response: Any) -> list[Any]:
    """The ``data:`` payloads of an SSE body, parsed (``[DONE]`` kept as the string)."""
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = response.content.split(b"\n\n")
    assert frames[-1] == b""
    out: list[Any] = []
    for raw in frames[:-1]:
        assert raw.startswith(b"data: "), raw
        payload = raw[len(b"data: ") :]
        out.append("[DONE]" if payload == b"[DONE]" else json.loads(payload))
    return out


def streamed_text(response: Any) -> str:
    return "".join(
        c["choices"][0]["delta"].get("content") or "" for c in events(response)[:-1] if c["choices"]
    )


def assembled(chunks: list[Any]) -> dict[str, Any]:
    """The chat.completion a stream's chunks add up to, accumulated as the SDKs do."""
    message: dict[str, Any] = {"role": "assistant", "content": None}
    calls: dict[int, dict[str, Any]] = {}
    out: dict[str, Any] = {}
    for chunk in chunks:
        out.update({k: v for k, v in chunk.items() if k != "choices"}, object="chat.completion")
        for choice in chunk["choices"]:
            delta = choice["delta"]
            if delta.get("content") is not None:
                message["content"] = (message["content"] or "") + delta["content"]
            for part in delta.get("tool_calls") or ():
                call = calls.setdefault(part["index"], {"function": {"arguments": ""}})
                call.update({k: v for k, v in part.items() if k not in ("index", "function")})
                call["function"].setdefault("name", part["function"].get("name"))
                call["function"]["arguments"] += part["function"]["arguments"]
            out["choices"] = [{"index": 0, "message": message,
                               "finish_reason": choice["finish_reason"]}]  # fmt: skip
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return out


def last_entry(client: Client) -> dict[str, Any]:
    return client.app.state.emulator.journal.entries()[-1]  # type: ignore[attr-defined,no-any-return]


def use(client: Client, text: str) -> None:
    """Switch the client's emulator to the scenario in YAML ``text``."""
    client.app.state.emulator.use_scenario(yaml.safe_load(text))  # type: ignore[attr-defined]


def credits(client: Client, key: str = KEY) -> dict[str, Any]:
    return client.app.state.emulator.ledger.account(key).as_dict()  # type: ignore[attr-defined,no-any-return]


# -- the answer -----------------------------------------------------------------------------


def test_a_non_streamed_completion(client: Client) -> None:
    response = chat(client, stream=False)
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == "gemini"
    assert body["id"].startswith("chatcmpl_") and len(body["id"]) == len("chatcmpl_") + 24
    assert body["created"] == 1767225600  # the virtual clock
    message = body["choices"][0]["message"]
    assert message["role"] == "assistant" and body["choices"][0]["finish_reason"] == "stop"
    words = message["content"].split()
    assert 20 <= len(words) <= 60
    assert "emulator" in message["content"] and "gemini" in message["content"]
    assert "summarise the plot of Hamlet" in message["content"]
    usage = body["usage"]
    assert usage["prompt_tokens"] == 3 + -(-len(HELLO[0]["content"]) // 4)
    assert usage["completion_tokens"] == -(-len(message["content"]) // 4)
    assert body["credits_consumed"] == 1
    assert credits(client) == {"key": KEY, "credits": 1_000_000 - 1, "reserved": 0, "spent": 1}


def test_streaming_is_the_default_and_adds_up_to_the_same_text(client: Client) -> None:
    whole = chat(client, stream=False).json()
    response = chat(client, stream_options={"include_usage": True})  # no `stream`: SSE
    stream = events(response)
    assert stream[-1] == "[DONE]"
    assert stream[0]["choices"][0]["delta"]["role"] == "assistant"
    assert streamed_text(response) == whole["choices"][0]["message"]["content"]
    assert stream[-3]["choices"][0]["finish_reason"] == "stop"
    assert stream[-2]["choices"] == [] and stream[-2]["usage"] == whole["usage"]
    assert stream[-2]["credits_consumed"] == whole["credits_consumed"]
    assert credits(client)["spent"] == 2 * whole["credits_consumed"]


def test_the_same_request_gives_the_same_reply_and_the_seed_changes_it(client: Client) -> None:
    first = chat(client, stream=False).json()
    again = chat(client, stream=False).json()
    assert first["choices"] == again["choices"] and first["id"] != again["id"]
    other = chat(client, stream=False, seed=9).json()
    assert other["choices"] != first["choices"]
    with make_client(seed=2) as elsewhere:
        assert chat(elsewhere, stream=False).json()["choices"] != first["choices"]


def test_a_long_reply_is_cut_at_max_tokens_and_stop(client: Client) -> None:
    cut = chat(client, stream=False, max_tokens=3).json()
    assert cut["choices"][0]["finish_reason"] == "length"
    assert cut["usage"]["completion_tokens"] == 3
    stopped = chat(client, stream=False, stop=["emulator"]).json()
    assert stopped["choices"][0]["message"]["content"] == "This is the API in One "


def test_json_object_and_json_schema(client: Client) -> None:
    obj = chat(client, stream=False, response_format={"type": "json_object"}).json()
    assert isinstance(json.loads(obj["choices"][0]["message"]["content"]), dict)
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "year": {"type": "integer", "minimum": 1500, "maximum": 1700},
            "characters": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        },
        "required": ["title", "year", "characters"],
        "additionalProperties": False,
    }
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "play", "schema": schema, "strict": True},
    }
    whole = chat(client, stream=False, response_format=response_format).json()
    content = whole["choices"][0]["message"]["content"]
    Draft202012Validator(schema).validate(json.loads(content))
    assert streamed_text(chat(client, stream=True, response_format=response_format)) == content


def test_a_forced_tool_call_then_the_tool_result(client: Client) -> None:
    choice = {"type": "function", "function": {"name": "get_weather"}}
    body = chat(client, stream=False, tools=[WEATHER_TOOL], tool_choice=choice).json()
    choice0 = body["choices"][0]
    assert choice0["finish_reason"] == "tool_calls" and choice0["message"]["content"] is None
    call = choice0["message"]["tool_calls"][0]
    assert call["id"].startswith("call_") and call["function"]["name"] == "get_weather"
    arguments = json.loads(call["function"]["arguments"])
    Draft202012Validator(WEATHER_TOOL["function"]["parameters"]).validate(arguments)
    assert body["usage"]["completion_tokens"] == -(-len(call["function"]["arguments"]) // 4)
    follow_up = [
        *HELLO,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "Sunny, 21 C"},
    ]
    answer = chat(client, stream=False, messages=follow_up, tools=[WEATHER_TOOL]).json()
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert "Sunny, 21 C" in answer["choices"][0]["message"]["content"]


@pytest.mark.parametrize("tool_choice", ["required", "auto", None])
def test_required_or_auto_after_a_user_message_calls_a_tool(
    client: Client, tool_choice: str | None
) -> None:
    other = {"type": "function", "function": {"name": "search", "parameters": {}}}
    fields = {"tool_choice": tool_choice} if tool_choice else {}
    messages = [{"role": "user", "content": "Use get_weather for Oslo"}]
    body = chat(
        client, stream=False, messages=messages, tools=[other, WEATHER_TOOL], **fields
    ).json()
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    none = chat(client, stream=False, tools=[WEATHER_TOOL], tool_choice="none").json()
    assert none["choices"][0]["finish_reason"] == "stop"


def test_a_streamed_tool_call(client: Client) -> None:
    whole = chat(client, stream=False, tools=[WEATHER_TOOL], tool_choice="required").json()
    stream = events(chat(client, stream=True, tools=[WEATHER_TOOL], tool_choice="required"))
    deltas = [c["choices"][0]["delta"] for c in stream[1:-2]]
    arguments = "".join(d["tool_calls"][0]["function"]["arguments"] for d in deltas)
    assert arguments == whole["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    assert stream[-2]["choices"][0]["finish_reason"] == "tool_calls"


# -- errors and credits ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        pytest.param({}, 401, "Missing API key", id="no-key"),
        pytest.param(
            {"Authorization": "Bearer sk-openai"}, 401, "keys start with 'aio_'", id="openai-key"
        ),
    ],
)
def test_authentication(client: Client, headers: dict[str, str], status: int, message: str) -> None:
    response = client.post(PATH, json={"model": "gemini", "messages": HELLO}, headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["type"] == "authentication_error"
    assert message in response.json()["error"]["message"]


def test_bad_requests_and_wrong_methods(client: Client) -> None:
    response = chat(client, messages=[])
    assert response.status_code == 400
    assert response.json() == {"error": {"code": 400, "type": "invalid_request_error",
                               "message": "messages: expected a non-empty list of messages, got an empty list"}}  # fmt: skip
    assert chat(client, model="gpt-4o").json()["error"]["message"].startswith("model: 'gpt-4o'")
    wrong = client.get(PATH, headers=AUTH)
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    text = client.post(PATH, content=b"hi", headers={**AUTH, "Content-Type": "text/plain"})
    assert text.status_code == 415
    broken = client.post(PATH, content=b"{", headers={**AUTH, "Content-Type": "application/json"})
    assert broken.status_code == 400 and "Malformed JSON" in broken.json()["error"]["message"]
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#/nowhere"}}}
    bad_schema = chat(client, stream=False, response_format=schema)
    assert bad_schema.status_code == 400
    assert bad_schema.json()["error"]["message"].startswith(
        "response_format.json_schema.schema: $ref"
    )
    too_long = chat(client, messages=[{"role": "user", "content": "x" * 520_000}])
    assert (
        too_long.status_code == 400
        and "128000-token context" in too_long.json()["error"]["message"]
    )
    assert credits(client)["spent"] == 0 and credits(client)["reserved"] == 0


def test_5_credits_are_needed_up_front_and_the_excess_is_charged(client: Client) -> None:
    emulator = client.app.state.emulator  # type: ignore[attr-defined]
    emulator.ledger.set_balance(KEY, 4)
    short = chat(client, stream=False)
    assert short.status_code == 402 and short.json()["error"]["type"] == "insufficient_credits"
    assert "costs 5 credits and the key has 4" in short.json()["error"]["message"]
    emulator.ledger.set_balance(KEY, 5)
    big = [{"role": "user", "content": "x" * 40_000}]  # 10,003 prompt tokens: 11 credits
    body = chat(client, stream=False, messages=big).json()
    assert body["credits_consumed"] == 11
    assert credits(client) == {"key": KEY, "credits": -6, "reserved": 0, "spent": 11}


def test_general_rules_rate_limit_chat_calls_with_retry_after(client: Client) -> None:
    use(
        client,
        "name: limited\nrules:\n  - match: {endpoint: chat}\n    rate_limit: {capacity: 1, per_second: 0.01}\n",
    )
    assert chat(client, stream=False).status_code == 200
    limited = chat(client, stream=False)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "100"
    assert limited.json()["error"]["type"] == "rate_limit_exceeded"
    assert credits(client)["spent"] == 1  # the limited call cost nothing
    client.advance(99)  # the bucket refills on the emulator's (virtual) clock
    assert chat(client, stream=False).status_code == 429
    client.advance(1)
    assert chat(client, stream=False).status_code == 200


def test_the_scenario_answers_before_the_body_is_checked_but_after_the_key(client: Client) -> None:
    use(client, "name: down\nrules:\n  - match: {endpoint: chat}\n    error: {status: 503}\n")
    assert chat(client, messages=[]).status_code == 503  # an invalid body meets the outage
    broken = client.post(PATH, content=b"{", headers={**AUTH, "Content-Type": "application/json"})
    assert broken.status_code == 503
    assert chat(client, key="nope").status_code == 401
    assert credits(client)["reserved"] == credits(client)["spent"] == 0


SCRIPTED = r"""
name: scripted
chat:
  rules:
    - name: hello
      match: {contains: hello}
      reply: "Hi! I am scripted."
    - match: {regex: '^weather in (\w+)'}
      tool_call: {name: get_weather, arguments: {city: Oslo, unit: C}}
    - match: {contains: overload}
      error: {status: 503, message: "Model overloaded", headers: {Retry-After: 7}}
    - match: {contains: cut}
      reply: "one two three four five six"
      fault: {cut_after: 3}
    - match: {contains: garble}
      reply: "one two three"
      fault: {malformed_at: 2}
"""


def test_scripted_replies_tool_calls_and_errors(client: Client) -> None:
    use(client, SCRIPTED)
    hello = chat(client, stream=False)  # HELLO starts with "Hello"
    assert hello.json()["choices"][0]["message"]["content"] == "Hi! I am scripted."
    assert streamed_text(chat(client)) == "Hi! I am scripted."
    weather = chat(client, stream=False, messages=[{"role": "user", "content": "Weather in Oslo?"}])
    call = weather.json()["choices"][0]["message"]["tool_calls"][0]["function"]
    assert call == {"name": "get_weather", "arguments": '{"city":"Oslo","unit":"C"}'}
    down = chat(client, stream=False, messages=[{"role": "user", "content": "overload"}])
    assert down.status_code == 503 and down.headers["retry-after"] == "7"
    assert down.json()["error"]["message"] == "Model overloaded"
    entries = client.app.state.emulator.journal.entries()  # type: ignore[attr-defined]
    assert entries[-1]["rule"] == "chat.rules[2]" and entries[0]["rule"] == "chat.rules[0] (hello)"
    assert credits(client)["spent"] == 3  # the error cost nothing


def test_a_stream_cut_after_n_chunks_is_not_charged(client: Client) -> None:
    use(client, SCRIPTED)
    with pytest.raises(NetworkFault, match="cut_after"):  # in-process, the cut raises
        chat(client, messages=[{"role": "user", "content": "cut"}])
    assert credits(client) == {"key": KEY, "credits": 1_000_000, "reserved": 0, "spent": 0}
    entry = last_entry(client)
    answer = entry["response"]
    assert entry["status"] == 200
    message = answer["completion"]["choices"][0]["message"]  # the answer the stream was of
    assert message["content"] == "one two three four five six"
    assert (answer["fault"], answer["cut"], answer["charged"]) == ("cut_after", True, 0)
    frames = answer["sent"].split("\n\n")  # what the client really got: 3 chunks, no [DONE]
    assert len(frames) == 4 and frames[-1] == "" and "[DONE]" not in answer["sent"]
    sent = [json.loads(f[len("data: ") :]) for f in frames[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in sent) == "one two "


def test_a_cut_whole_answer_journals_the_half_that_was_sent(client: Client) -> None:
    use(client, SCRIPTED)
    with pytest.raises(NetworkFault, match="mid-body"):
        chat(client, stream=False, messages=[{"role": "user", "content": "cut"}])
    answer = last_entry(client)["response"]
    whole = json.dumps(answer["completion"], ensure_ascii=False, separators=(",", ":"))
    assert (answer["fault"], answer["cut"], answer["stream"]) == ("cut_after", True, False)
    assert answer["sent"] == whole[: len(whole.encode()) // 2]  # (ASCII: bytes are characters)


def test_a_malformed_chunk(client: Client) -> None:
    use(client, SCRIPTED)
    response = chat(client, messages=[{"role": "user", "content": "garble"}])
    frames = response.content.split(b"\n\n")
    json.loads(frames[0][len(b"data: ") :])
    with pytest.raises(json.JSONDecodeError):
        json.loads(frames[1][len(b"data: ") :])
    assert frames[-2] == b"data: [DONE]"
    assert credits(client)["spent"] == 0
    answer = last_entry(client)["response"]
    assert (answer["fault"], answer["cut"], answer["charged"]) == ("malformed_at", False, 0)
    assert answer["sent"] == response.text  # the broken chunk as it went out
    assert answer["completion"]["choices"][0]["message"]["content"] == "one two three"
    whole = chat(client, stream=False, messages=[{"role": "user", "content": "garble"}])
    with pytest.raises(json.JSONDecodeError):
        json.loads(whole.content)
    answer = last_entry(client)["response"]
    assert answer["fault"] == "malformed_at" and answer["sent"] == whole.text


def test_a_stream_fault_past_the_last_chunk_breaks_nothing(client: Client) -> None:
    use(client, "name: late\nchat:\n  rules:\n    - reply: one two\n"
                "      fault: {malformed_at: 999}\n")  # fmt: skip
    response = chat(client)
    assert [c["choices"][0]["delta"] for c in events(response)[:-1]][1:3] == [
        {"content": "one "}, {"content": "two"}]  # fmt: skip
    answer = last_entry(client)["response"]
    assert (answer["fault"], answer["cut"], answer["sent"]) == (None, False, None)
    assert answer["charged"] == credits(client)["spent"] == 1  # charged: it went through whole


def test_a_general_fault_breaks_chat_answers_too(client: Client) -> None:
    use(client, "name: f\nrules:\n  - match: {endpoint: chat}\n    fault: truncated_json\n")
    client.check_schema = False
    response = chat(client, stream=False)
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    assert credits(client)["spent"] == 0
    answer = last_entry(client)["response"]
    assert (answer["fault"], answer["cut"], answer["sent"]) == (
        "truncated_json",
        False,
        response.text,
    )
    streamed = chat(client, stream=True)
    assert last_entry(client)["response"]["sent"] == streamed.text != ""
    use(client, "name: r\nrules:\n  - match: {endpoint: chat}\n    fault: reset\n")
    with pytest.raises(NetworkFault):  # in-process, a reset raises; the body is never read
        chat(client, messages=[])
    entry = client.app.state.emulator.journal.entries()[-1]  # type: ignore[attr-defined]
    assert entry["rule"] == "rules[0]" and "response" not in entry
    assert credits(client) == {"key": KEY, "credits": 1_000_000, "reserved": 0, "spent": 0}


def test_the_wrapped_form_and_the_stream_default_come_from_the_scenario(client: Client) -> None:
    use(client, "name: w\nchat: {body: wrapped, stream: false}\n")
    body = chat(client).json()  # no `stream`: this scenario answers whole
    assert body["code"] == 200 and body["message"] == "success"
    assert body["data"]["object"] == "chat.completion" and body["data"]["model"] == "gemini-3-flash"
    answer = last_entry(client)["response"]
    assert answer["completion"] == body["data"] and answer["wrapped"] is True
    assert chat(client, stream=True).headers["content-type"].startswith("text/event-stream")


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


TIMED = "name: timed\nchat: {timing: {ttft_ms: 400, tokens_per_second: 50}}\n"


def test_time_to_first_token_and_tokens_per_second_on_a_real_clock() -> None:
    with make_client(clock="real") as client:
        use(client, TIMED)
        sleeps = client.app.chat.sleep = Sleeps()  # type: ignore[attr-defined]
        response = chat(client, messages=[{"role": "user", "content": "Hi"}])
        pieces = [c for c in events(response)[1:-2]]
        assert sleeps.calls[0] == 0.4
        assert len(sleeps.calls) == 1 + len(pieces)  # ttft, then each piece
        assert all(
            s == pytest.approx(0.02 * max(1, -(-len(p["choices"][0]["delta"]["content"]) // 4)))
            for s, p in zip(sleeps.calls[1:], pieces, strict=False)
        )
        whole = chat(client, stream=False, messages=[{"role": "user", "content": "Hi"}])
        assert whole.status_code == 200 and len(sleeps.calls) == 1 + len(pieces)  # not paced


def test_a_virtual_clock_sends_at_once_and_journals_the_planned_time(client: Client) -> None:
    use(client, TIMED)
    sleeps = client.app.chat.sleep = Sleeps()  # type: ignore[attr-defined]
    chat(client)
    assert sleeps.calls == []
    assert last_entry(client)["response"]["ttft_ms"] == 400


def test_the_journal_keeps_the_request_and_the_full_reply(client: Client) -> None:
    whole = chat(client, stream=False, temperature=0.5).json()
    streamed = events(chat(client, stream=True))
    tool = events(chat(client, tools=[WEATHER_TOOL], tool_choice="required"))
    entries = client.app.state.emulator.journal.entries(path=PATH)  # type: ignore[attr-defined]
    first, second, third = entries
    assert first["kind"] == "chat" and first["key"] == KEY and first["status"] == 200
    assert first["body"] == {
        "model": "gemini",
        "messages": HELLO,
        "stream": False,
        "temperature": 0.5,
    }
    answer = first["response"]
    assert answer == {"completion": whole, "stream": False, "wrapped": False, "ttft_ms": None,
                      "charged": 1, "fault": None, "cut": False, "sent": None}  # fmt: skip
    for entry, chunks in ((second, streamed), (third, tool)):  # what the chunks add up to
        completion = entry["response"]["completion"]
        assert chunks[-1] == "[DONE]" and entry["response"]["stream"] is True
        assert {k: v for k, v in completion.items() if k != "usage"} == assembled(chunks[:-1])
    same = second["response"]["completion"] | {"id": whole["id"]}  # (the same request)
    assert same == whole  # usage included, though the stream carried no usage chunk
    [call] = third["response"]["completion"]["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather" and json.loads(call["function"]["arguments"])


def test_chat_calls_in_the_control_journal_and_the_state_file(
    client: Client, tmp_path: Any
) -> None:
    from emulator.state import dump, load_into

    chat(client, stream=False)
    listed = client.get("/_emulator/requests").json()["requests"]  # conforms to the description
    assert listed[0]["kind"] == "chat" and listed[0]["response"]["completion"]["choices"]
    path = tmp_path / "state.json"
    path.write_bytes(dump(client.app.state.emulator))  # type: ignore[attr-defined]
    with make_client() as restored:
        load_into(restored.app.state.emulator, str(path))  # type: ignore[attr-defined]
        assert restored.get("/_emulator/requests").json()["requests"] == listed


def test_the_scenario_header_applies_to_chat_calls(client: Client) -> None:
    down = chat(client, stream=False, headers={"X-Emulator-Scenario": "outage"})
    assert down.status_code == 503 and down.headers["retry-after"] == "30"
    entry = client.app.state.emulator.journal.entries()[-1]  # type: ignore[attr-defined]
    assert entry["rule"] == "rules[0] (outage)" and "response" not in entry  # no answer
    assert credits(client)["spent"] == 0


def test_browsers_on_another_origin_may_call_chat(client: Client) -> None:
    page = {"Origin": "http://127.0.0.1:5173"}
    asked = {**page, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization, content-type, x-stainless-os"}  # fmt: skip
    preflight = client.options(PATH, headers=asked)
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == "*"
    assert "x-stainless-os" in preflight.headers["access-control-allow-headers"]
    assert client.app.state.emulator.journal.entries() == []  # type: ignore[attr-defined]
    for answer in (chat(client, headers=page), chat(client, headers=page, messages=[])):
        assert answer.headers["access-control-allow-origin"] == "*"  # a stream, an error
    assert "retry-after" in answer.headers["access-control-expose-headers"].lower()
