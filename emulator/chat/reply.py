"""What the assistant answers: a seeded placeholder, a JSON value, or a tool call.

The answer is a function of the request's content (messages, format, tools, its ``seed``) and
the emulator's seed, never of ``stream``, the clock or earlier calls: the same request gives
the same answer, streamed or not.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from .core import InvalidRequest, dumps
from .request import ChatRequest, Tool
from .schema import SchemaError, instance
from .usage import content_text, text_tokens

__all__ = ["Completion", "ToolCall", "compose", "json_text", "placeholder", "request_seed"]

MIN_WORDS, MAX_WORDS = 20, 60
EXCERPT_WORDS, EXCERPT_CHARS = 12, 80
_SENTENCES = (
    "A real model would answer here; this is a seeded placeholder.",
    "The same request and seed always give these same words.",
    "Streamed or not, the text is identical, piece for piece.",
    "Usage and credits are counted as the real service counts them.",
    "Scenario rules can script any reply, tool call, error or broken stream.",
    "Nothing left this machine to produce it.",
    "Tests can rely on it staying the same from run to run.",
)

_SENTENCE_WORDS = tuple(tuple(sentence.split()) for sentence in _SENTENCES)


class ToolCall(NamedTuple):
    id: str
    name: str
    arguments: str  # JSON text, as the wire carries it


class Completion(NamedTuple):
    """The assistant's message: ``content`` (None with tool calls) and why it ended."""

    content: str | None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str = "stop"

    @property
    def text(self) -> str:
        """What the completion tokens are counted from: the content, or the calls' arguments."""
        if self.content is not None:
            return self.content
        return "".join(call.arguments for call in self.tool_calls)


def request_seed(seed: int, body: Mapping[str, Any]) -> int:
    """A 64-bit seed from the emulator's seed and the parts of the body that shape the answer
    (``stream``, sampling settings and unknown fields do not)."""
    shaping = [seed, *(body.get(k) for k in _SHAPING)]
    try:
        text = orjson.dumps(shaping, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # what orjson refuses (integers past 64 bits): the standard library
        text = json.dumps(shaping, sort_keys=True, ensure_ascii=False, default=str).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big")


_SHAPING = ("messages", "response_format", "tools", "tool_choice", "seed")


def compose(request: ChatRequest, seed: int, model: str) -> Completion:
    """The default answer to ``request`` (``seed``: from :func:`request_seed`). Text needs no
    generator (building one costs more than the rest of the answer); JSON values do."""
    tool = _tool_to_call(request)
    if tool is not None:
        return Completion(None, (tool_call(tool, random.Random(seed)),), "tool_calls")
    if request.response_format == "json_object":
        content = json_text({"reply": placeholder(request, seed, model), "model": model})
    elif request.response_format == "json_schema":
        schema = request.json_schema or {}
        value = _instance(schema, random.Random(seed), "response_format.json_schema.schema")
        content = json_text(value)
    else:
        content = placeholder(request, seed, model)
    return limit(Completion(content), request)


def tool_call(tool: Tool, rng: random.Random, arguments: Any = None) -> ToolCall:
    """A call of ``tool``: the given arguments, or an instance of its parameters schema."""
    if arguments is None:
        schema: Any = tool.parameters or {"type": "object"}
        if "type" not in schema and not any(k in schema for k in ("properties", "$ref", "anyOf")):
            schema = {**schema, "type": "object"}
        arguments = _instance(schema, rng, f"tools[{tool.name}].function.parameters")
    return ToolCall(f"call_{rng.getrandbits(96):024x}", tool.name, json_text(arguments))


def limit(completion: Completion, request: ChatRequest) -> Completion:
    """``stop`` sequences (plain text answers) and ``max_tokens`` (finish_reason ``length``)."""
    content = completion.content
    if content is None:
        return completion
    if request.response_format == "text":
        cuts = [content.find(s) for s in request.stop if s in content]
        if cuts:
            return Completion(content[: min(cuts)], (), "stop")
    if request.max_tokens is not None and text_tokens(content) > request.max_tokens:
        return Completion(content[: request.max_tokens * 4], (), "length")
    return completion


def placeholder(request: ChatRequest, seed: int, model: str) -> str:
    """20 to 60 readable words naming the emulator and the model, quoting the last message."""
    last = request.messages[-1]
    source = "The tool returned" if last["role"] == "tool" else "You wrote"
    message = last if last["role"] == "tool" else (request.last("user") or last)
    intro = (
        f"This is the API in One emulator answering as {model}. {source}: “{_excerpt(message)}”."
    )
    parts, said = [intro], intro.count(" ") + 1  # its words: the excerpt is single-spaced
    # the words still to add: whole sentences, then the start of one
    left = max(MIN_WORDS + seed % (MAX_WORDS - MIN_WORDS + 1), said) - said
    count = len(_SENTENCES)  # 7, a prime: every step from 1 to 6 visits them all
    start, step = (seed >> 16) % count, 1 + (seed >> 24) % (count - 1)
    for k in range(count):  # 7 sentences: 60 words and more
        if left <= 0:
            break
        i = (start + k * step) % count
        words = _SENTENCE_WORDS[i]
        parts.append(_SENTENCES[i] if len(words) <= left else " ".join(words[:left]))
        left -= len(words)
    text = " ".join(parts)
    return text if text.endswith((".", "”.")) else text.rstrip(",;:") + "."


def _excerpt(message: Mapping[str, Any]) -> str:
    """The message's first words, single-spaced, with "…" if that is not all of it (split
    no further than needed: a long message is not cut into a string per word)."""
    words = content_text(message.get("content")).split(maxsplit=EXCERPT_WORDS)
    more = len(words) > EXCERPT_WORDS
    text = " ".join(words[:EXCERPT_WORDS])
    if len(text) > EXCERPT_CHARS:
        text, more = text[:EXCERPT_CHARS].rstrip(), True
    return text + ("…" if more else "")


def _tool_to_call(request: ChatRequest) -> Tool | None:
    """The tool the answer calls: the one ``tool_choice`` names; with ``required``, or
    ``auto`` right after a user message, the tool named in that message or else the first."""
    choice = request.tool_choice
    if not request.tools or choice == "none":
        return None
    named = request.tool(choice)
    if named is not None:
        return named
    if choice == "auto" and request.messages[-1]["role"] != "user":
        return None
    said = content_text((request.last("user") or {}).get("content")).lower()
    for tool in request.tools:
        if tool.name.lower() in said or tool.name.lower().replace("_", " ") in said:
            return tool
    return request.tools[0]


def _instance(schema: Any, rng: random.Random, field: str) -> Any:
    try:
        return instance(schema, rng)
    except SchemaError as exc:
        raise InvalidRequest(f"{field}: {exc}") from exc


def json_text(value: Any) -> str:
    """``value`` as compact JSON text, encoded as the wire encodes it."""
    return dumps(value).decode()
