"""Conditional and byte-range answers for the files the emulator serves (``/files/...``).

Browsers' ``<video>``/``<audio>`` and media players seek with ``Range`` requests, so a file is
answered as a good static server or CDN would (RFC 9110 §13-14): :func:`file_reply` turns the
request's method and headers, the file and its ETag into a complete :class:`~.wire.Reply`.
It does no I/O and never raises.

The rules, in the order they apply:

- ``If-None-Match`` (``*``, one tag or a list) matching the ETag by weak comparison
  (``W/"x"`` matches ``"x"``) -> 304, before any Range.
- ``If-Range`` other than our ETag by strong comparison (another tag, a weak one, a date: the
  file has no Last-Modified) -> the Range is ignored.
- ``Range`` -> 206 of one span (``Content-Range: bytes a-b/size``), a last byte past the end
  clamped. Several ranges are coalesced when they overlap or touch; if they still make more
  than one span the whole file is answered (200: RFC-allowed, and browsers never ask for
  several). Unsatisfiable ranges among satisfiable ones are dropped.
- Nothing satisfiable (first byte >= size, ``-0``, any range of an empty file) -> 416 with
  ``Content-Range: bytes */size`` and the error envelope.
- A Range that is not valid ``bytes=`` syntax (strict RFC grammar: optional whitespace only
  around the value and its list elements), another unit, more than :data:`MAX_RANGES` ranges
  or a value longer than :data:`MAX_HEADER` -> ignored (200), as the RFC allows.
- ``HEAD`` -> the same status and headers as ``GET`` (Content-Length included), no body.

Every answer carries ``Accept-Ranges: bytes`` and the caller's ``extra`` headers; every answer
but the 416 carries the ETag.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from .errors import APIError
from .wire import Reply

__all__ = ["MAX_HEADER", "MAX_RANGES", "file_reply"]

#: a Range longer than this (bytes) is ignored: real ones are a few dozen bytes
MAX_HEADER = 1024
#: a Range asking for more ranges than this is ignored (as Starlette's FileResponse does)
MAX_RANGES = 100

_OWS = b" \t"
#: one range-spec after its whitespace is stripped: ``first-[last]`` or ``-suffix``
_SPEC = re.compile(rb"([0-9]*)-([0-9]*)")
#: the quoted part of each entity-tag of an If-None-Match list (its ``W/`` left aside)
_TAG = re.compile(rb'"[^"]*"')

Span = tuple[int, int]  # [start, stop) of the body


def file_reply(
    method: str,
    headers: Mapping[bytes, bytes],
    body: bytes,
    etag: str,
    content_type: bytes,
    extra: Sequence[tuple[bytes, bytes]] = (),
) -> Reply:
    """The answer to a GET or HEAD of a file: 200, 206, 304 or 416.

    ``headers`` are the request's (lower-case names, first value of each), ``etag`` the file's
    quoted strong ETag, ``extra`` headers for every answer (such as Cache-Control).
    """
    tag = etag.encode("latin-1")
    common = [(b"accept-ranges", b"bytes"), *extra]
    if _none_match(headers.get(b"if-none-match"), tag):
        return Reply(304, b"", [(b"etag", tag), *common])
    head = method.upper() == "HEAD"
    size = len(body)
    span = _span(headers, tag, size)
    if span is not None and span[0] == span[1]:
        error = APIError(
            f"Range not satisfiable: the file is {size} bytes long",
            status=416,
            headers={"Content-Range": f"bytes */{size}"},
        ).reply()
        return Reply(416, b"" if head else error.body, error.headers + common)
    status, part, more = 200, body, []
    if span is not None:
        start, stop = span
        status, part = 206, body[start:stop]
        more = [(b"content-range", b"bytes %d-%d/%d" % (start, stop - 1, size))]
    answer = [(b"etag", tag), *common, (b"content-type", content_type)]
    answer += [(b"content-length", b"%d" % len(part)), *more]
    return Reply(status, b"" if head else part, answer)


def _none_match(value: bytes | None, tag: bytes) -> bool:
    """Whether If-None-Match ``value`` matches ``tag`` (weak comparison: ``W/`` ignored)."""
    if value is None:
        return False
    value = value.strip(_OWS)
    return value == b"*" or tag.removeprefix(b"W/") in _TAG.findall(value)


def _span(headers: Mapping[bytes, bytes], tag: bytes, size: int) -> Span | None:
    """The one span to answer (an empty one: nothing satisfiable), or None for the whole file."""
    value = headers.get(b"range")
    if value is None:
        return None
    if_range = headers.get(b"if-range")
    if if_range is not None and (tag.startswith(b"W/") or if_range.strip(_OWS) != tag):
        return None
    spans = _parse(value, size)
    if spans is None:
        return None
    if not spans:
        return (size, size)
    return _coalesce(spans)


def _parse(value: bytes, size: int) -> list[Span] | None:
    """The satisfiable spans of a Range ``value``, clamped to ``size``; None when the header
    is to be ignored (invalid, another unit, too long, too many ranges)."""
    if len(value) > MAX_HEADER:
        return None
    unit, equals, specs = value.strip(_OWS).partition(b"=")
    if not equals or unit.lower() != b"bytes" or specs.count(b",") >= MAX_RANGES:
        return None
    spans: list[Span] = []
    seen = False
    for element in specs.split(b","):
        element = element.strip(_OWS)
        if not element:  # empty list elements are allowed (RFC 9110 §5.6.1.2)
            continue
        match = _SPEC.fullmatch(element)
        if match is None:
            return None
        first, last = match.groups()
        if first:
            start = int(first)
            if last and int(last) < start:  # an invalid range-spec: the whole set is invalid
                return None
            stop = min(int(last) + 1, size) if last else size
        elif last:  # suffix: the last n bytes
            start, stop = max(size - int(last), 0), size
        else:  # a lone "-"
            return None
        seen = True
        if start < stop:
            spans.append((start, stop))
    return spans if seen else None


def _coalesce(spans: list[Span]) -> Span | None:
    """The one span that ``spans`` make when overlapping or touching ones are merged, or None
    when they stay apart."""
    spans.sort()
    start, stop = spans[0]
    for a, b in spans[1:]:
        if a > stop:
            return None
        stop = max(stop, b)
    return (start, stop)
