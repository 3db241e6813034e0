"""The building blocks of the OpenAPI description: references, the success envelope, a
catalogue field's schema, operations, their JSON and error responses, and CORS preflights.

One home for them, shared by :mod:`emulator.openapi` (the document) and the parts the chat and
music packages add to it, so every operation is described the same way.
"""

from __future__ import annotations

import re
from typing import Any

from .catalogue import Field
from .validation import MAX_URL_LENGTH, URL_PATTERN
from .wire import ERROR_TYPES

__all__ = [
    "CONTROL_SECURITY",
    "NO_NULL_KINDS",
    "SCHEMAS",
    "SECURITY_SCHEMES",
    "duration_schema",
    "error_responses",
    "field_schema",
    "given",
    "id_regex",
    "json_response",
    "nullable",
    "object_schema",
    "operation",
    "preflight",
    "ref",
    "success_schema",
]

#: where the document's component schemas are, as a ``$ref`` names them
SCHEMAS = "#/components/schemas/"


def ref(name: str) -> dict[str, str]:
    """A reference to the component schema ``name``."""
    return {"$ref": SCHEMAS + name}


def success_schema(data: dict[str, Any]) -> dict[str, Any]:
    """The API's success envelope ``{"code": 200, "message", "data"}`` around ``data``."""
    return {
        "type": "object",
        "required": ["code", "message", "data"],
        "additionalProperties": False,
        "properties": {
            "code": {"type": "integer", "const": 200},
            "message": {"type": "string"},
            "data": data,
        },
    }


#: the field kinds whose null the validator refuses (a null URL is no URL); an optional field
#: of any other kind sent as null counts as not sent
NO_NULL_KINDS = ("url", "url_list")


def field_schema(spec: Field) -> dict[str, Any]:
    """The JSON Schema of one catalogue field: what the validator accepts (null for an optional
    field but a URL)."""
    url = {"type": "string", "pattern": URL_PATTERN, "maxLength": MAX_URL_LENGTH}
    if spec.kind == "string":
        out: dict[str, Any] = {"type": "string"}
        if spec.min_length is not None:
            out["minLength"] = spec.min_length
        if spec.max_length is not None:
            out["maxLength"] = spec.max_length
    elif spec.kind == "enum":
        out = {"type": "string", "enum": list(spec.values)}
    elif spec.kind in ("integer", "number"):  # the JSON Schema types of the same names
        out = {"type": spec.kind}
        if spec.min is not None:
            out["minimum"] = spec.min
        if spec.max is not None:
            out["maximum"] = spec.max
        if spec.values:
            out["enum"] = list(spec.values)
    elif spec.kind == "boolean":
        out = {"type": "boolean"}
    elif spec.kind == "duration":
        out = duration_schema(spec)
    elif spec.kind == "url":
        out = dict(url)
    elif spec.kind == "object_list":
        out = {
            "type": "array",
            "items": {
                "type": "object",
                "required": [f.name for f in spec.item.values() if f.required],
                "properties": {name: field_schema(f) for name, f in spec.item.items()},
            },
        }
    else:  # url_list, array
        out = {"type": "array", "items": dict(url) if spec.kind == "url_list" else {}}
    if spec.kind in ("url_list", "object_list", "array"):
        if spec.min_items is not None:
            out["minItems"] = spec.min_items
        if spec.max_items is not None:
            out["maxItems"] = spec.max_items
    if spec.default is not None:
        out["default"] = spec.default
    if spec.lenient:
        out["description"] = "Sent by real clients, on no public page: refused in strict mode."
    return out if spec.required or spec.kind in NO_NULL_KINDS else nullable(out)


def object_schema(required: list[str], properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An object with ``required`` keys among ``properties`` (and any other keyword of JSON
    Schema in ``extra``)."""
    return {"type": "object", "required": required, "properties": properties, **extra}


def given(name: str) -> dict[str, Any]:
    """Field ``name`` is given: present, and not null (a null counts as not sent)."""
    return {"required": [name], "properties": {name: {"not": {"type": "null"}}}}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema``, or null: an optional field sent as null counts as not sent."""
    if "anyOf" in schema:
        return {**schema, "anyOf": [*schema["anyOf"], {"type": "null"}]}
    out = dict(schema)
    kind = out.get("type")
    out["type"] = [*kind, "null"] if isinstance(kind, list) else [kind, "null"]
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    return out


def duration_schema(spec: Field, top: float | None = None) -> dict[str, Any]:
    """A duration field (at most ``top`` seconds when given): what the lenient default
    accepts, any whole number of seconds from 1 to the maximum as a number or a numeric
    string, with the documented values (all that strict mode takes) first."""
    if spec.values:
        values = [v for v in spec.values if top is None or float(v) <= top]
        documented: dict[str, Any] = {"type": spec.type, "enum": values}
        most = max(float(v) for v in spec.values)
    else:
        documented = {"type": "integer", "minimum": spec.min, "maximum": spec.max}
        most = float(spec.max or 0)
    most = int(most if top is None else min(most, top))
    if top is not None and not spec.values:
        documented["maximum"] = most
    # a numeric string of at most 4 digits (leading zeros count), spaces around it allowed
    seconds = "|".join(f"0{{0,{4 - len(str(n))}}}{n}" for n in range(1, most + 1))
    return {
        "anyOf": [
            documented,
            {"type": "integer", "minimum": 1, "maximum": most},
            {"type": "string", "pattern": rf"^\s*(?:{seconds})(?:\.0+)?\s*$"},
        ],
        "description": (
            "Seconds: the documented values (the first form, all that strict mode accepts), or "
            f"outside strict mode any whole number of seconds from 1 to {most}, as a number or "
            "a numeric string (the price is that of the next documented duration)."
        ),
    }


def id_regex(id_format: str) -> str:
    """A regular expression of the ids an id format (``gen%033xbksv``) makes."""
    return re.sub(r"%0(\d+)x", r"[0-9a-f]{\1}", re.escape(id_format))


def json_response(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A response object whose body is JSON of ``schema``."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error_responses(*statuses: int) -> dict[str, Any]:
    """The error envelope under each of ``statuses``, and as the default (any other status a
    scenario injects)."""
    out: dict[str, Any] = {}
    for status in statuses:
        out[str(status)] = json_response(
            ref("Error"), f"{status} {ERROR_TYPES.get(status, 'error')}"
        )
    out["default"] = json_response(
        ref("Error"), "Any other status a scenario injects: the envelope"
    )
    return out


#: the control token, when the server has one (``--control-token``): either header, or none
CONTROL_SECURITY: list[dict[str, list[str]]] = [
    {"controlToken": []},
    {"controlTokenHeader": []},
    {},
]
SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "description": "aio_... key"},
    "controlToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "The control token, for /_emulator/ calls when the server has one",
    },
    "controlTokenHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Emulator-Token",
        "description": "The control token, in a header of its own",
    },
}


def operation(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An operation object; a control API one (tag ``control``) also gets the guards'
    refusals (401, 403, 415) and the control token as its optional security."""
    if extra.get("tags") == ["control"]:  # every control call meets the guards
        extra = {"security": CONTROL_SECURITY, **extra}
        responses = {
            **responses,
            "401": json_response(
                ref("Error"), "Control token missing or wrong (with a control token)"
            ),
            "403": json_response(
                ref("Error"),
                "A Host the control API does not answer, or a change from another origin",
            ),
            "415": json_response(ref("Error"), "A change sent as a form or plain text"),
        }
    return {"summary": summary, "responses": responses, **extra}


def preflight(operation_id: str, *parameters: dict[str, Any]) -> dict[str, Any]:
    """A CORS preflight of an emulated route: answered without a key, never journaled."""
    header = {"type": "string"}
    return operation(
        "CORS preflight of a browser on another origin (no key; never billed or journaled)",
        {
            "204": {
                "description": "Allowed: the methods and the headers the browser asked for",
                "headers": {
                    name: {"schema": header}
                    for name in (
                        "Access-Control-Allow-Origin",
                        "Access-Control-Allow-Methods",
                        "Access-Control-Allow-Headers",
                        "Access-Control-Max-Age",
                    )
                },
            },
            **error_responses(405),
        },
        operationId=operation_id,
        tags=["cors"],
        parameters=[
            *parameters,
            {"name": "Origin", "in": "header", "required": True, "schema": header},
            {
                "name": "Access-Control-Request-Method",
                "in": "header",
                "required": True,
                "schema": header,
            },
        ],
    )
