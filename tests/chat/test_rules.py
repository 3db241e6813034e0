"""The chat: section of scenarios (emulator/chat/rules.py): validation with file:line, matching."""

from __future__ import annotations

import pytest

from emulator.chat.rules import DEFAULT, ChatCall, ChatScenario
from emulator.scenarios import ScenarioError, loads


def chat(text: str) -> ChatScenario:
    scenario = loads("name: t\n" + text, source="t.yaml")
    assert scenario.chat is not None
    return scenario.chat


def call(
    text: str = "hello",
    key: str = "aio_a",
    headers: dict[str, str] | None = None,
    model: str = "gemini",
) -> ChatCall:
    body = {
        "model": model,
        "messages": [{"role": "system", "content": "weather"}, {"role": "user", "content": text}],
    }
    return ChatCall(key, headers or {}, body)


def test_settings() -> None:
    c = chat(
        "chat:\n  body: wrapped\n  stream: false\n  timing: {ttft_ms: 250, tokens_per_second: 40}\n"
    )
    assert (c.wrapped, c.stream_default, c.tokens_per_second) == (True, False, 40.0)
    assert c.ttft is not None and c.ttft.a == 0.25
    assert (DEFAULT.wrapped, DEFAULT.stream_default, DEFAULT.ttft, DEFAULT.rules) == (
        False,
        True,
        None,
        (),
    )
    assert loads("name: t\n").chat is None


RULES = """\
chat:
  rules:
    - name: weather
      match: {contains: [Weather, forecast]}
      tool_call: {name: get_weather, arguments: {city: Paris}}
    - match: {regex: "^hel+o"}
      reply: Hi there.
      fault: {cut_after: 2}
    - match: {key: aio_b, header: {name: X-Trace}}
      error: {status: 429, headers: {Retry-After: 3}}
    - match: {model: gpt-4o}
      error: {status: 404, message: "model not found"}
"""


def test_the_first_matching_rule_decides() -> None:
    c = chat(RULES)
    weather = c.decide(call("What's the WEATHER?"))
    assert weather.rule == "chat.rules[0] (weather)"
    assert weather.tool_call == ("get_weather", {"city": "Paris"})
    hello = c.decide(call("Hello you"))
    assert (hello.reply, hello.cut_after, hello.rule) == ("Hi there.", 2, "chat.rules[1]")
    assert c.decide(call("bye", key="aio_b")).error is None  # no header
    limited = c.decide(call("bye", key="aio_b", headers={"x-trace": "1"})).error
    assert limited is not None and limited.status == 429 and limited.headers == {"Retry-After": "3"}
    assert c.decide(call("bye", model="gpt-4o")).error.status == 404  # type: ignore[union-attr]
    assert c.decide(call("bye")).rule is None  # the system message's "weather" is not matched


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param(
            "chat: 3\n", "t.yaml:2: chat: expected a mapping, got an integer", id="not-a-mapping"
        ),
        pytest.param(
            "chat:\n  bodies: bare\n",
            "t.yaml:3: chat.bodies: unknown key (allowed: body, stream, timing, rules)",
            id="unknown-key",
        ),
        pytest.param(
            "chat:\n  body: naked\n",
            "t.yaml:3: chat.body: 'naked' is not one of: bare, wrapped",
            id="body",
        ),
        pytest.param(
            "chat:\n  stream: maybe\n",
            "t.yaml:3: chat.stream: expected true or false, got a string",
            id="stream",
        ),
        pytest.param(
            "chat:\n  timing: {tokens_per_second: 0}\n",
            "t.yaml:3: chat.timing.tokens_per_second: 0 is out of range (allowed: 0.001 to 100000)",
            id="rate",
        ),
        pytest.param(
            "chat:\n  rules:\n    - match: {contains: x}\n",
            "t.yaml:4: chat.rules[0]: a chat rule needs an effect (allowed: reply, tool_call, error, fault)",
            id="no-effect",
        ),
        pytest.param(
            "chat:\n  rules:\n    - reply: a\n      error: {status: 500}\n",
            "t.yaml:4: chat.rules[0]: give at most one of reply, tool_call, error (got reply, error)",
            id="two-answers",
        ),
        pytest.param(
            "chat:\n  rules:\n    - reply: a\n      fault: {cut_after: 1, malformed_at: 2}\n",
            "t.yaml:5: chat.rules[0].fault: give exactly one of: cut_after, malformed_at",
            id="two-faults",
        ),
        pytest.param(
            "chat:\n  rules:\n    - reply: a\n      fault: {explode: 1}\n",
            "t.yaml:5: chat.rules[0].fault.explode: unknown key (allowed: cut_after, malformed_at)",
            id="bad-fault",
        ),
        pytest.param(
            "chat:\n  rules:\n    - reply: a\n      match: {regex: '(a'}\n",
            "t.yaml:5: chat.rules[0].match.regex: not a valid regular expression",
            id="bad-regex",
        ),
        pytest.param(
            "chat:\n  rules:\n    - reply: a\n      match: {prompt: x}\n",
            "t.yaml:5: chat.rules[0].match.prompt: unknown key (allowed: contains, regex, model, key, header)",
            id="bad-match",
        ),
        pytest.param(
            "chat:\n  rules:\n    - tool_call: {arguments: {a: 1}}\n",
            "t.yaml:4: chat.rules[0].tool_call.name: expected a string, got nothing",
            id="tool-without-name",
        ),
        pytest.param(
            "chat:\n  rules:\n    - error: {status: 200}\n",
            "t.yaml:4: chat.rules[0].error.status: 200 is out of range (allowed: 400 to 599)",
            id="error-status",
        ),
    ],
)
def test_problems_name_file_line_and_path(text: str, problem: str) -> None:
    with pytest.raises(ScenarioError) as failure:
        loads("name: t\n" + text, source="t.yaml")
    assert any(p.startswith(problem) for p in failure.value.problems), failure.value.problems


def test_general_rules_can_target_chat_calls() -> None:
    scenario = loads(
        "name: t\nrules:\n  - match: {endpoint: chat}\n    rate_limit: {capacity: 1, per_second: 1}\n"
    )
    assert scenario.rules[0].match.endpoint == "chat"


@pytest.mark.parametrize(
    ("endpoint", "warnings"),
    [
        pytest.param("chat", 0, id="chat"),
        pytest.param("any", 0, id="any"),
        pytest.param("create", 1, id="create: no create sends gemini"),
    ],
)
def test_a_general_rule_on_the_chat_model_is_not_warned_where_chat_calls_meet_it(
    endpoint: str, warnings: int
) -> None:
    text = f"name: t\nrules:\n  - match: {{endpoint: {endpoint}, model: gemini}}\n    latency: 5\n"
    assert len(loads(text, source="t.yaml").warnings) == warnings
