"""Schema conformance: check a response against the emulator's OpenAPI description.

The document is built once per session and each (path, method, status) validator once, on first
use, so checking every response the tests see costs microseconds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from emulator.openapi import build_openapi

__all__ = ["SPEC", "ConformanceError", "check_response", "problems", "schema_validator"]

SPEC_URI = "urn:aio-emulator:openapi"
#: emulator-only paths the description may not cover (UI pages); the emulated API is always checked
UNDESCRIBED_PREFIX = "/_emulator/"
SPEC: dict[str, Any] = build_openapi()
_REGISTRY: Registry = Registry().with_resource(
    SPEC_URI, Resource.from_contents(SPEC, default_specification=DRAFT202012)
)
_VALIDATORS: dict[str, Draft202012Validator] = {}
#: (regex, template), literal templates first so /_emulator/clock/advance beats a template
_PATHS: list[tuple[re.Pattern[str], str]] = sorted(
    (
        (re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(p)) + "$"), p)
        for p in SPEC["paths"]
    ),
    key=lambda item: "{" in item[1],
)


class ConformanceError(AssertionError):
    """A response that the OpenAPI description does not allow."""


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def schema_validator(pointer: str) -> Draft202012Validator:
    """A cached validator of the schema at JSON pointer ``pointer`` inside the document."""
    validator = _VALIDATORS.get(pointer)
    if validator is None:
        validator = Draft202012Validator(
            {"$ref": f"{SPEC_URI}#/{pointer}"},
            registry=_REGISTRY,
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )
        _VALIDATORS[pointer] = validator
    return validator


def _template(path: str) -> str | None:
    for regex, template in _PATHS:
        if regex.match(path):
            return template
    return None


def _validate(pointer: str, body: Any, where: str) -> list[str]:
    errors = sorted(schema_validator(pointer).iter_errors(body), key=lambda e: list(e.path))
    return [
        f"{where}: {'/'.join(map(str, e.absolute_path)) or '<body>'}: {e.message[:300]}"
        for e in errors
    ]


def problems(
    method: str,
    path: str,
    status: int,
    headers: Mapping[str, str],
    content: bytes,
) -> list[str]:
    """Every way this response breaks the description (empty when it conforms)."""
    method = method.lower()
    where = f"{method.upper()} {path} -> {status}"
    error_pointer = _pointer("components", "schemas", "Error")
    template = _template(path)
    media = headers.get("content-type", "").partition(";")[0].strip().lower()
    op = None
    if template is not None:
        item = SPEC["paths"][template]
        op = item.get("get" if method == "head" else method)
    if template is None and path.startswith(UNDESCRIBED_PREFIX):
        return []  # emulator pages outside the description (e.g. a dashboard): not checked
    if op is None:  # unknown path or method: only the error envelope is allowed
        if status < 400:
            return [f"{where}: undocumented path or method answered {status}"]
        if method == "head":
            return []
        return _json_problems(error_pointer, media, content, where)
    responses = op["responses"]
    code = str(status) if str(status) in responses else "default"
    if code not in responses:
        return [f"{where}: status {status} is not documented (documented: {list(responses)})"]
    declared = responses[code].get("content")
    if not declared or method == "head":
        return []
    if media not in declared:
        return [f"{where}: content-type {media!r} is not documented ({list(declared)})"]
    if "schema" not in declared[media] or media != "application/json":
        return []
    op_method = "get" if method == "head" else method
    pointer = _pointer(
        "paths", template or "", op_method, "responses", code, "content", media, "schema"
    )
    return _json_problems(pointer, media, content, where)


def _json_problems(pointer: str, media: str, content: bytes, where: str) -> list[str]:
    if media != "application/json":
        return [f"{where}: expected application/json, got {media!r}"]
    try:
        body = json.loads(content)
    except ValueError as exc:
        return [f"{where}: body is not JSON ({exc})"]
    return _validate(pointer, body, where)


def response_problems(response: Any) -> list[str]:
    """What an httpx response breaks in the description (empty when it conforms)."""
    request = response.request
    return problems(
        request.method,
        request.url.path,
        response.status_code,
        response.headers,
        response.content,
    )


def raise_problems(found: list[str]) -> None:
    raise ConformanceError("response breaks the OpenAPI description:\n" + "\n".join(found))


def check_response(response: Any) -> None:
    """Raise ConformanceError if an httpx response breaks the description."""
    found = response_problems(response)
    if found:
        raise_problems(found)
