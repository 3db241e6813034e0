"""The documentation page of chat completions (docs/api/chat.md): its examples are the files
the suite runs, its scenario snippet and example body are what the code accepts and answers,
and it names every request field the validator knows."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from emulator.scenarios import parse

from ..conftest import make_client

ROOT = Path(__file__).resolve().parent.parent.parent
PAGE = (ROOT / "docs" / "api" / "chat.md").read_text("utf-8")


def test_the_page_shows_both_sdk_examples_from_the_files_the_suite_runs() -> None:
    assert '```python\n--8<-- "tests/examples/test_openai_chat.py"\n```' in PAGE
    assert '```js\n--8<-- "tests/node/chat.mjs"\n```' in PAGE


def test_the_scenario_snippet_is_a_valid_chat_section() -> None:
    snippet = re.search(r"```yaml\n(chat:.*?)```", PAGE, re.S)
    assert snippet is not None
    scenario = parse({"name": "docs", **yaml.safe_load(snippet.group(1))})
    assert scenario.chat is not None and len(scenario.chat.rules) == 4


def test_the_documented_example_body_has_the_shape_of_an_answer() -> None:
    shown = re.search(r"```json\n(\{\"id\": \"chatcmpl_.*?)```", PAGE, re.S)
    assert shown is not None
    with make_client() as client:
        body = {
            "model": "gemini",
            "stream": False,
            "messages": [{"role": "user", "content": "Hi!"}],
        }
        answer = client.post(
            "/api/v1/chat/completions", json=body, headers={"Authorization": "Bearer aio_demo"}
        ).json()
    assert set(answer) == {
        "id",
        "object",
        "created",
        "model",
        "choices",
        "usage",
        "credits_consumed",
    }
    assert answer["usage"]["prompt_tokens"] == 4 and answer["credits_consumed"] == 1


def test_the_page_names_every_request_field_and_role() -> None:
    from emulator.chat.request import REASONING_EFFORTS, RESPONSE_FORMATS, ROLES, TOOL_CHOICES

    fields = ["model", "messages", "stream", "stream_options.include_usage", "temperature",
              "top_p", "max_tokens", "max_completion_tokens", "stop", "seed", "include_thoughts",
              "reasoning_effort", "tools", "tool_choice", "response_format"]  # fmt: skip
    words = [*fields, *ROLES, *RESPONSE_FORMATS, *REASONING_EFFORTS, *TOOL_CHOICES]
    assert [w for w in words if f"`{w}" not in PAGE and f'"{w}"' not in PAGE] == []
