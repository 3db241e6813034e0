"""Validation of a create request body against the model catalogue.

Plain values in, plain values out: a dict parsed from JSON becomes a :class:`CreateRequest`,
or an :class:`~emulator.errors.InvalidRequest` whose message names the field and what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .catalogue import Catalogue, Field, Model
from .errors import InvalidRequest

__all__ = ["MAX_URL_LENGTH", "URL_PATTERN", "CreateRequest", "validate_create"]

MAX_URL_LENGTH = 4096
_PORT = "[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]"
#: the URLs the checks below accept, as a JSON Schema pattern (for the OpenAPI description):
#: a host, a port from 1 to 65535, no credentials, no space or control character
_HOST = r"[^\x00-\x20\x7f-\x9f/?#@:\[\]\\]+"
_REST = r"([/?#][^\x00-\x20\x7f-\x9f]*)?"
URL_PATTERN = f"^https?://{_HOST}(:({_PORT}))?{_REST}$"
_UNSAFE = re.compile(r"[\x00-\x20\x7f-\x9f]")
_MISSING = object()
_URL_KINDS = frozenset({"url", "url_list"})
_JSON_TYPES = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    dict: "object",
    type(None): "null",
}


@dataclass(slots=True)  # immutable by convention (frozen: benchmarks/README.md)
class CreateRequest:
    """A valid create request: the resolved model, every known field with defaults applied."""

    model: Model
    #: built for this request by validation: the task owns it
    params: dict[str, Any]
    unknown_fields: tuple[str, ...]
    width: int
    height: int
    images: int
    credits: int


def validate_create(
    body: Mapping[str, Any], catalogue: Catalogue, *, strict: bool = False
) -> CreateRequest:
    """Check ``body`` against the catalogue; raise InvalidRequest naming the first bad field."""
    name = body.get("model")
    if name is None:
        raise InvalidRequest("model: is required. Allowed: " + ", ".join(catalogue.names()))
    if not isinstance(name, str):
        raise InvalidRequest(f"model: expected a string, got {_type_name(name)}")
    model = catalogue.resolve(name)
    if model is None:
        raise InvalidRequest(
            f"model: {_short(name)} is not a known model. Allowed: " + ", ".join(catalogue.names())
        )
    params: dict[str, Any] = {}
    known = 1  # "model"
    for spec in model.fields.values():
        value = body.get(spec.name, _MISSING)
        if value is not _MISSING:
            known += 1
        if value is not None and value is not _MISSING:
            params[spec.name] = _CHECKS[spec.kind](spec, value)
        elif value is None and spec.kind in _URL_KINDS:  # the API's schema has no null URL
            raise InvalidRequest(f"{spec.name}: expected a URL string, got null")
        elif spec.required:
            raise InvalidRequest(f"{spec.name}: is required for model {model.id}")
        elif spec.default is not None:
            params[spec.name] = spec.default
    unknown = () if len(body) == known else _unknown(body, model)
    if strict and unknown:
        allowed = ", ".join(["model", *model.fields])
        raise InvalidRequest(
            f"{unknown[0]}: unknown field for model {model.id} (strict mode). Allowed: {allowed}"
        )
    width, height = model.pixel_size(params)
    images = model.image_count(params)
    credits = model.pricing.per_image(params) * images
    return CreateRequest(model, params, unknown, width, height, images, credits)


def _unknown(body: Mapping[str, Any], model: Model) -> tuple[str, ...]:
    return tuple(k for k in body if k != "model" and k not in model.fields)


def _check_string(spec: Field, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"{spec.name}: expected a string, got {_type_name(value)}")
    n = len(value)
    if spec.min_length is not None and n < spec.min_length:
        raise InvalidRequest(
            f"{spec.name}: must be at least {spec.min_length} characters (got {n})"
        )
    if spec.max_length is not None and n > spec.max_length:
        raise InvalidRequest(f"{spec.name}: must be at most {spec.max_length} characters (got {n})")
    return value


def _check_enum(spec: Field, value: Any) -> str:
    if not isinstance(value, str) or value not in spec.values:
        raise InvalidRequest(
            f"{spec.name}: {_short(value)} is not one of: {', '.join(spec.values)}"
        )
    return value


def _check_integer(spec: Field, value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 4.0 is an integer in JSON (and JSON Schema), as in JS backends
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{spec.name}: expected an integer, got {_type_name(value)}")
    if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
        raise InvalidRequest(
            f"{spec.name}: {value} is out of range (allowed: {spec.min} to {spec.max})"
        )
    return value


def _check_url(spec: Field, value: Any, name: str | None = None) -> str:
    label = name or spec.name
    if not isinstance(value, str):
        raise InvalidRequest(f"{label}: expected a URL string, got {_type_name(value)}")
    if not value.startswith(("http://", "https://")) or len(value) > MAX_URL_LENGTH:
        raise InvalidRequest(
            f"{label}: {_short(value)} is not an http(s) URL of at most {MAX_URL_LENGTH} characters"
        )
    problem = _url_problem(value)
    if problem is not None:
        raise InvalidRequest(f"{label}: {problem}")
    return value


def _url_problem(url: str) -> str | None:
    """What makes an http(s) URL unusable by a client (None: nothing). Credentials are refused,
    not dropped: a receiver expecting them would never get them, and they would be kept in
    clear in the journal; the message does not repeat them."""
    if _UNSAFE.search(url):
        return f"{_short(url)} contains a space or a control character"
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return f"{_short(url)} is not a valid URL"
    if "@" in parts.netloc:
        return "must not carry credentials (user:password@): the emulator never sends them"
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        return f"{_short(url)} has an invalid port (allowed: 1 to 65535)"
    if not parts.hostname:
        return f"{_short(url)} has no host"
    return None


def _check_url_list(spec: Field, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise InvalidRequest(f"{spec.name}: expected an array of URLs, got {_type_name(value)}")
    if spec.max_items is not None and len(value) > spec.max_items:
        raise InvalidRequest(
            f"{spec.name}: at most {spec.max_items} URLs are allowed (got {len(value)})"
        )
    if spec.min_items is not None and len(value) < spec.min_items:
        raise InvalidRequest(f"{spec.name}: at least {spec.min_items} URL(s) required")
    return [_check_url(spec, item, f"{spec.name}[{i}]") for i, item in enumerate(value)]


_CHECKS = {
    "string": _check_string,
    "enum": _check_enum,
    "integer": _check_integer,
    "url": _check_url,
    "url_list": _check_url_list,
}


def _type_name(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value) if isinstance(value, str) else _type_name(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"
