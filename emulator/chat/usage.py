"""The chat model's data, token counts and credits.

No tokenizer: a token is about four characters of English, so a text of n characters counts
``ceil(n / 4)`` tokens and every prompt message adds 3 for its framing (role, separators). The
settled price is ``max(1, ceil(prompt / 1000 + completion / 100))`` credits, which gives the
documented example (12 prompt + 156 completion tokens: 2 credits).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any, NamedTuple

__all__ = ["ChatModel", "Usage", "chat_model", "credits_for", "message_tokens", "text_tokens"]

#: tokens every prompt message costs beyond its text
MESSAGE_OVERHEAD = 3


class ChatModel(NamedTuple):
    """The one chat model (``emulator/data/chat.json``)."""

    id: str
    upstream: str  # the name the wrapped body shows
    context_tokens: int
    reserve_credits: int
    prompt_tokens_per_credit: int
    completion_tokens_per_credit: int


class Usage(NamedTuple):
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@functools.cache
def chat_model() -> ChatModel:
    text = resources.files("emulator").joinpath("data/chat.json").read_text("utf-8")
    data = json.loads(text)
    return ChatModel(**{name: data[name] for name in ChatModel._fields})


def text_tokens(text: str) -> int:
    """``ceil(len(text) / 4)``."""
    return -(-len(text) // 4)


def message_tokens(messages: Iterable[Mapping[str, Any]]) -> int:
    """Prompt tokens of validated messages: their text, tool call names and arguments, plus
    :data:`MESSAGE_OVERHEAD` each."""
    total = 0
    for message in messages:
        total += MESSAGE_OVERHEAD + text_tokens(content_text(message.get("content")))
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            total += text_tokens(str(function.get("name", "")))
            total += text_tokens(str(function.get("arguments", "")))
    return total


def content_text(content: Any) -> str:
    """The text of a message's content: a string, or the ``text`` of its parts (other parts,
    such as images, count as nothing)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def credits_for(usage: Usage, model: ChatModel | None = None) -> int:
    """``max(1, ceil(prompt / 1000 + completion / 100))`` (integer arithmetic: no float
    rounding at the boundaries)."""
    model = model or chat_model()
    p, c = model.prompt_tokens_per_credit, model.completion_tokens_per_credit
    scale = p * c  # ceil(a/p + b/c) == ceil((a*c + b*p) / (p*c))
    return max(1, -(-(usage.prompt_tokens * c + usage.completion_tokens * p) // scale))
