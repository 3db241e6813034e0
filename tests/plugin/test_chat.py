"""Both fixtures serve the OpenAI SDK's chat calls, and the after-test checks cover them."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

EXAMPLE = Path(__file__).parent.parent / "examples" / "test_openai_chat.py"


def test_the_documented_example_passes_with_both_fixtures(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_example=EXAMPLE.read_text("utf-8"))
    suite.runpytest().assert_outcomes(passed=3)


@pytest.mark.parametrize("mode", ["aio_emulator", "aio_emulator_respx"])
def test_a_chat_call_with_a_bad_key_fails_the_test_naming_it(
    suite: pytest.Pytester, mode: str
) -> None:
    suite.makepyfile(
        f"""
import openai
import pytest


def test_it({mode}):
    client = openai.OpenAI(base_url={mode}.url + "/api/v1", api_key="sk-openai-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="gemini", messages=[{{"role": "user", "content": "hi"}}], stream=False)
"""
    )
    result = suite.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*aio_emulator: the emulator could not serve 1 request(s):",
            "- POST /api/v1/chat/completions -> 401: Invalid API key: keys start with 'aio_'",
            "If this is on purpose, mark the test @pytest.mark.aio_emulator(allow_unserved=True).",
        ]
    )
