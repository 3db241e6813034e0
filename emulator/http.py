"""HTTP plumbing shared by the emulated API and the control API: JSON bodies and responses."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Message, Receive

from .errors import InvalidRequest, RequestTooLarge, UnsupportedMediaType
from .wire import dumps

__all__ = [
    "MAX_JSON_DEPTH",
    "decode",
    "dumps",
    "json_response",
    "load_object",
    "parse_object",
    "read_body",
    "read_json_body",
    "read_json_object",
]


#: deepest nesting a JSON body may have (the API's own bodies are 2 levels deep): deeper ones
#: get 400, so that nothing the emulator keeps is too deep for the JSON readers of the journal
MAX_JSON_DEPTH = 32


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A Starlette response of ``data`` as the real API writes JSON."""
    return Response(dumps(data), status, headers=headers, media_type="application/json")


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    """The body of a Starlette request as a JSON object (see :func:`read_json_body`)."""
    headers = request.headers
    raw = await read_json_body(
        headers.get("content-type"), headers.get("content-length"), request.receive, limit
    )
    return load_object(raw)[0]


async def read_json_body(
    content_type: str | bytes | None, declared: str | bytes | None, receive: Receive, limit: int
) -> bytes:
    """The raw body of a request that must be JSON (given its Content-Type and Content-Length
    headers, as text or as the bytes of the ASGI scope): 415 for another media type, 413 past
    ``limit`` (refused before reading it all)."""
    if content_type != b"application/json" and content_type != "application/json":
        if isinstance(content_type, bytes):
            content_type = content_type.decode("latin-1")
        _check_media_type(content_type)
    return await read_body(declared, receive, limit)


async def read_body(declared: str | bytes | None, receive: Receive, limit: int) -> bytes:
    """The raw body of a request (given its Content-Length header), 413 past ``limit``:
    refused before it is read all, so a huge body never sits in memory."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(_too_large(limit))
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        body: bytes = message.get("body", b"")  # the usual case: the whole body in one message
        if len(body) > limit:
            raise RequestTooLarge(_too_large(limit))
        return body
    return await _read_chunks(receive, message, limit)


def _check_media_type(content_type: str | None) -> None:
    if content_type is None or content_type.partition(";")[0].strip().lower() != "application/json":
        shown = repr(content_type[:100]) if content_type else "none"
        raise UnsupportedMediaType(
            f"Content-Type must be application/json (got {shown}). "
            "Send the header 'Content-Type: application/json'."
        )


def load_object(raw: bytes) -> tuple[dict[str, Any], str]:
    """``raw`` as a JSON object, and as text: orjson when its answer is exactly the standard
    library's, else the standard library (its error messages; integers past 64 bits, which
    orjson turns into floats, stay integers).

    orjson reads numbers as the standard library does except an integer outside 64 bits (19
    digits or more), which it reads as a float: a body with a float (``temperature: 0.7``) is
    orjson's unless it has a run of 19 digits (``tests/test_http.py`` compares the readers)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    if type(data) is dict:
        floats = nested = False
        for item in data.values():  # a flat body (the usual) is decided by this one pass
            kind = type(item)
            if kind is float:
                floats = True
            elif kind is dict or kind is list:
                nested = True
                break
        if nested:  # looked into only as far as needed
            if raw.count(b"{") + raw.count(b"[") > MAX_JSON_DEPTH:  # (else it is not too deep)
                _check_depth(data)
            if not _may_hold_a_long_integer(raw) or not _has_floats(data):
                return data, raw.decode()
        elif not floats or not _may_hold_a_long_integer(raw):
            return data, raw.decode()
    text = decode(raw)
    return parse_object(text), text


def _has_floats(data: dict[str, Any]) -> bool:
    """Whether ``data`` holds a float, at any depth."""
    stack: list[Any] = [data]
    while stack:
        value = stack.pop()
        for item in value.values() if type(value) is dict else value:
            kind = type(item)
            if kind is float:
                return True
            if kind is dict or kind is list:
                stack.append(item)
    return False


def _may_hold_a_long_integer(raw: bytes) -> bool:
    """Whether ``raw`` has a run of 19 digits (counted first: most bodies have fewer digits in
    all, and counting is several times cheaper than the search)."""
    digits = len(raw) - len(raw.translate(None, _DIGITS))
    return digits >= _LONG_DIGITS and _LONG_NUMBER.search(raw) is not None


_DIGITS = b"0123456789"
_LONG_DIGITS = 19
_LONG_NUMBER = re.compile(rb"[0-9]{%d}" % _LONG_DIGITS)


def _check_depth(data: Any) -> None:
    level = [data]
    for _ in range(MAX_JSON_DEPTH):
        level = [v for item in level if isinstance(item, dict | list)
                 for v in (item.values() if isinstance(item, dict) else item)]  # fmt: skip
        if not any(isinstance(v, dict | list) for v in level):
            return
    raise _too_deep()


def _too_deep() -> InvalidRequest:
    return InvalidRequest(
        f"Malformed JSON body: nested more than {MAX_JSON_DEPTH} levels deep "
        "(the API's bodies are flat objects)"
    )


def decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest("Malformed JSON body: it is not valid UTF-8") from exc


def parse_object(text: str) -> dict[str, Any]:
    """``text`` as a JSON object, or 400 saying where it is malformed or what it is instead."""
    try:
        data = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"Malformed JSON body: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except RecursionError as exc:
        raise _too_deep() from exc
    except ValueError as exc:  # Python's limit on the digits of an integer
        raise InvalidRequest(
            f"Malformed JSON body: a number has more than {sys.get_int_max_str_digits()} digits"
        ) from exc
    if not isinstance(data, dict):
        kind = {
            list: "an array",
            str: "a string",
            int: "a number",
            float: "a number",
            bool: "a boolean",
            type(None): "null",
        }.get(type(data), "not an object")
        raise InvalidRequest(f"The request body must be a JSON object, got {kind}")
    _check_depth(data)
    return data


async def _read_chunks(receive: Receive, message: Message, limit: int) -> bytes:
    """The rest of a body sent in several messages (``message`` is the first), stopping as
    soon as it passes ``limit`` (ASGI messages read directly: Starlette's stream wrapper costs
    more than the rest of a create)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(_too_large(limit))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
        message = await receive()


def _reject_constant(name: str) -> Any:
    raise InvalidRequest(f"Malformed JSON body: {name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _too_large(limit: int) -> str:
    return f"Request body is larger than the limit of {limit} bytes"
