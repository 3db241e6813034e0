"""Token counts and credits (emulator/chat/usage.py)."""

from __future__ import annotations

import pytest

from emulator.chat.usage import (
    MESSAGE_OVERHEAD,
    Usage,
    chat_model,
    credits_for,
    message_tokens,
    text_tokens,
)


@pytest.mark.parametrize(
    ("text", "tokens"), [("", 0), ("a", 1), ("abcd", 1), ("abcde", 2), ("x" * 400, 100)]
)
def test_a_token_is_four_characters_rounded_up(text: str, tokens: int) -> None:
    assert text_tokens(text) == tokens


def test_each_message_adds_three_tokens_to_its_text() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},  # 9 chars: 3 tokens
        {"role": "user", "content": [{"type": "text", "text": "abcd"}, {"type": "image_url"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"function": {"name": "get", "arguments": '{"a":1}'}}],
        },
    ]
    assert message_tokens(messages) == 3 * MESSAGE_OVERHEAD + 3 + 1 + (1 + 2)


@pytest.mark.parametrize(
    ("prompt", "completion", "credits"),
    [
        pytest.param(12, 156, 2, id="the-documented-example"),
        pytest.param(0, 0, 1, id="never-below-one"),
        pytest.param(1000, 0, 1, id="1000-prompt-tokens-are-one-credit"),
        pytest.param(1001, 0, 2, id="past-it-rounds-up"),
        pytest.param(0, 100, 1, id="100-completion-tokens-are-one-credit"),
        pytest.param(500, 50, 1, id="halves-add-up-exactly"),
        pytest.param(128_000, 4000, 168, id="a-full-context"),
    ],
)
def test_credits_are_max_1_ceil_prompt_per_1000_plus_completion_per_100(
    prompt: int, completion: int, credits: int
) -> None:
    assert credits_for(Usage(prompt, completion)) == credits


def test_the_model_data() -> None:
    model = chat_model()
    assert (model.id, model.upstream, model.reserve_credits) == ("gemini", "gemini-3-flash", 5)
    assert Usage(3, 4).as_dict() == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
