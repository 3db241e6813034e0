"""The chat answer on the wire: the ``chat.completion`` object, and the same answer as a
stream of ``chat.completion.chunk`` objects framed as server-sent events.

Stream order (what the OpenAI SDKs parse): a chunk whose delta is ``{"role": "assistant"}``,
one chunk per content piece (or per tool call start and argument piece), a chunk with empty
delta and the ``finish_reason``, a ``choices: []`` chunk with ``usage`` when
``stream_options.include_usage`` is set; ``credits_consumed`` rides on the last of them; then
``data: [DONE]``. The pieces concatenate to exactly the non-streamed content.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from .core import dumps, success
from .reply import Completion
from .usage import Usage

__all__ = ["DONE", "Meta", "chunks", "completion_body", "frame", "pieces", "wrapped"]

DONE = b"data: [DONE]\n\n"
#: the longest content piece of a stream (a run of text without spaces is cut to this)
MAX_PIECE = 16
_PIECES = re.compile(rf"\s*\S{{1,{MAX_PIECE}}}\s*|\s+")


class Meta(NamedTuple):
    """What every object of one answer shares."""

    id: str
    created: int
    model: str


def completion_body(
    meta: Meta, completion: Completion, usage: Usage, credits: int
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": completion.content}
    if completion.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in completion.tool_calls
        ]
    return {
        "id": meta.id,
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "choices": [{"index": 0, "message": message, "finish_reason": completion.finish_reason}],
        "usage": usage.as_dict(),
        "credits_consumed": credits,
    }


def wrapped(body: dict[str, Any]) -> dict[str, Any]:
    """The ``{code, message, data}`` form an older documentation page shows (the success
    envelope of the image endpoints)."""
    return success(body)


def pieces(text: str) -> list[str]:
    """``text`` cut into word-sized pieces (leading and trailing spaces kept) that join back
    to exactly ``text``."""
    return _PIECES.findall(text) if text else []


def chunks(
    meta: Meta, completion: Completion, usage: Usage, credits: int, *, include_usage: bool
) -> list[dict[str, Any]]:
    """The stream of ``completion``, as chunk objects (see the module docstring)."""
    out = [
        _chunk(
            meta, {"role": "assistant", "content": "" if completion.content is not None else None}
        )
    ]
    if completion.content is not None:
        out += [_chunk(meta, {"content": piece}) for piece in pieces(completion.content)]
    for index, call in enumerate(completion.tool_calls):
        start = {"index": index, "id": call.id, "type": "function",
                 "function": {"name": call.name, "arguments": ""}}  # fmt: skip
        out.append(_chunk(meta, {"tool_calls": [start]}))
        out += [
            _chunk(meta, {"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            for piece in pieces(call.arguments)
        ]
    out.append(_chunk(meta, {}, completion.finish_reason))
    if include_usage:
        out.append({**_head(meta), "choices": [], "usage": usage.as_dict()})
    out[-1]["credits_consumed"] = credits
    return out


def frame(chunk: dict[str, Any]) -> bytes:
    """One server-sent event: ``data: <json>`` and a blank line."""
    return b"data: " + dumps(chunk) + b"\n\n"


def _head(meta: Meta) -> dict[str, Any]:
    return {
        "id": meta.id,
        "object": "chat.completion.chunk",
        "created": meta.created,
        "model": meta.model,
    }


def _chunk(meta: Meta, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        **_head(meta),
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
