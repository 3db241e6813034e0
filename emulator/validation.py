"""Validation of a create request body against the model catalogue.

Plain values in, plain values out: a dict parsed from JSON becomes a :class:`CreateRequest`,
or an :class:`~emulator.errors.InvalidRequest` whose message names the field and what is allowed.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .catalogue import Catalogue, Field, Model, Route
from .errors import InvalidRequest

__all__ = [
    "CHECKS", "MAX_URL_LENGTH", "URL_PATTERN", "CreateRequest", "check_fields", "validate_create",
]  # fmt: skip

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
    #: how many files the task gives (images, clips)
    images: int
    credits: int
    #: the length of its video or audio, in seconds (0 for an image)
    duration_s: float = 0.0


def validate_create(
    body: Mapping[str, Any],
    catalogue: Catalogue,
    *,
    strict: bool = False,
    route: Route | None = None,
) -> CreateRequest:
    """Check ``body`` against the catalogue (the models of ``route``, default the image
    route); raise InvalidRequest naming the first bad field."""
    if route is None:
        route = catalogue.routes["images"]
    name = body.get("model", route.default_model)
    if name is None:
        raise InvalidRequest("model: is required. Allowed: " + _allowed(catalogue, route, strict))
    if not isinstance(name, str):
        raise InvalidRequest(f"model: expected a string, got {_type_name(name)}")
    model = catalogue.resolve(name, route)
    if model is None or (strict and model.undocumented):
        raise InvalidRequest(
            f"model: {_short(name)} is not a known model of POST {route.path}"
            + (" (strict mode)" if model is not None else "")
            + ". Allowed: "
            + _allowed(catalogue, route, strict)
        )
    params, given = _fields(body, model.fields, model.id, strict, "")
    # every field given is the model's (the common case) when they number one more ("model")
    unknown = () if len(body) == 1 + given else _unknown(body, model, strict)
    if strict and unknown:
        allowed = ", ".join(["model", *_documented(model.fields)])
        raise InvalidRequest(
            f"{unknown[0]}: unknown field for model {model.id} (strict mode). Allowed: {allowed}"
        )
    for check in model.checks:
        CHECKS[check["check"]](check, params, model, strict)
    width, height, files, credits, seconds = model.measures(params)
    return CreateRequest(model, params, unknown, width, height, files, credits, seconds)


def check_fields(
    body: Mapping[str, Any], fields: Mapping[str, Field], strict: bool, also: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``body``'s known ``fields`` checked, defaults applied (for bodies without a catalogue
    model: Suno's extend and upload-cover); in strict mode a field that is neither one of
    ``fields`` nor of ``also`` (checked by the caller) is a 400, as on a create."""
    params, given = _fields(body, fields, "", strict, "")
    if strict and len(body) != given:
        allowed = [*_documented(fields), *also]
        unknown = [k for k in body if k not in allowed]
        if unknown:
            raise InvalidRequest(
                f"{unknown[0]}: unknown field (strict mode). Allowed: {', '.join(allowed)}"
            )
    return params


def _allowed(catalogue: Catalogue, route: Route, strict: bool) -> str:
    names = catalogue.names(route)
    if strict:
        names = [n for n in names if not (m := catalogue.resolve(n)) or not m.undocumented]
    return ", ".join(names)


def _documented(fields: Mapping[str, Field]) -> list[str]:
    return [name for name, spec in fields.items() if not spec.lenient]


def _fields(
    body: Mapping[str, Any], fields: Mapping[str, Field], model: str, strict: bool, where: str
) -> tuple[dict[str, Any], int]:
    """The known fields of ``body`` checked, defaults applied (``where``: the path of a
    nested object, for messages), and how many of them ``body`` gave."""
    params: dict[str, Any] = {}
    given = 0
    for spec in fields.values():
        if strict and spec.lenient:
            continue  # an unknown field in strict mode: reported with the others
        value = body.get(spec.name, _MISSING)
        if value is not _MISSING:
            given += 1
        if value is not None and value is not _MISSING:
            params[spec.name] = _CHECKS[spec.kind](spec, value, strict, where + spec.name)
        elif value is None and spec.kind in _URL_KINDS:  # the API's schema has no null URL
            raise InvalidRequest(f"{where}{spec.name}: expected a URL string, got null")
        elif spec.required:
            owner = f" for model {model}" if model else ""
            raise InvalidRequest(f"{where}{spec.name}: is required{owner}")
        elif spec.default is not None:
            params[spec.name] = _default(spec)
    return params, given


def _default(spec: Field) -> Any:
    if spec.kind == "duration":
        return int(spec.default)
    return spec.default


def _unknown(body: Mapping[str, Any], model: Model, strict: bool) -> tuple[str, ...]:
    fields = model.fields
    return tuple(
        k for k in body if k != "model" and (k not in fields or (strict and fields[k].lenient))
    )


def _check_string(spec: Field, value: Any, strict: bool, label: str) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"{label}: expected a string, got {_type_name(value)}")
    n = len(value)
    if spec.min_length is not None and n < spec.min_length:
        raise InvalidRequest(f"{label}: must be at least {spec.min_length} characters (got {n})")
    if spec.max_length is not None and n > spec.max_length:
        raise InvalidRequest(f"{label}: must be at most {spec.max_length} characters (got {n})")
    if strict and spec.strict_max_length is not None and n > spec.strict_max_length:
        raise InvalidRequest(
            f"{label}: must be at most {spec.strict_max_length} characters in strict mode "
            f"(got {n}; {spec.max_length} outside it)"
        )
    return value


def _check_enum(spec: Field, value: Any, strict: bool, label: str) -> str:
    if not isinstance(value, str) or value not in spec.values:
        raise InvalidRequest(f"{label}: {_short(value)} is not one of: {', '.join(spec.values)}")
    return sys.intern(value)  # one string per allowed value, not one per task held


def _check_integer(spec: Field, value: Any, strict: bool, label: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 4.0 is an integer in JSON (and JSON Schema), as in JS backends
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{label}: expected an integer, got {_type_name(value)}")
    if spec.values and value not in spec.values:
        raise InvalidRequest(f"{label}: {value} is not one of: {', '.join(map(str, spec.values))}")
    _check_range(spec, value, label)
    return value


def _check_number(spec: Field, value: Any, strict: bool, label: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequest(f"{label}: expected a number, got {_type_name(value)}")
    _check_range(spec, value, label)
    return float(value)


def _check_range(spec: Field, value: float, label: str) -> None:
    if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
        raise InvalidRequest(
            f"{label}: {value} is out of range (allowed: {_num(spec.min)} to {_num(spec.max)})"
        )


def _num(value: float | None) -> str:
    return "any" if value is None else f"{value:g}"


def _check_boolean(spec: Field, value: Any, strict: bool, label: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidRequest(f"{label}: expected true or false, got {_type_name(value)}")
    return value


def _check_duration(spec: Field, value: Any, strict: bool, label: str) -> int:
    """A length in whole seconds. Strict: the documented JSON type and values only. Lenient
    (what real clients send): a number or a numeric string, any whole number of seconds from
    1 to the documented maximum."""
    documented = spec.values or None
    if strict:
        wanted = str if spec.type == "string" else int
        ok = isinstance(value, wanted) and not isinstance(value, bool)
        if ok and documented:
            ok = value in documented
        if ok and not documented:
            ok = (spec.min is None or value >= spec.min) and (spec.max is None or value <= spec.max)
        if not ok:
            raise InvalidRequest(
                f"{label}: {_shown(value)} is not allowed (strict mode): {_durations(spec)}"
            )
        return int(value)
    number: Any = value
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,4}(\.0+)?", value.strip()):
        number = float(value)
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    if isinstance(number, bool) or not isinstance(number, int):
        raise InvalidRequest(
            f"{label}: expected a whole number of seconds, got {_shown(value)}. "
            f"Allowed: {_durations(spec)}"
        )
    top = spec.max if spec.max is not None else max(float(v) for v in documented or (0,))
    if number < 1 or number > top:
        raise InvalidRequest(
            f"{label}: {number} seconds is out of range (allowed: 1 to {_num(top)}; "
            f"documented: {_durations(spec)})"
        )
    return number


def _durations(spec: Field) -> str:
    """The documented durations of ``spec``, as a message lists them."""
    if spec.values:
        return ", ".join(repr(v) if spec.type == "string" else str(v) for v in spec.values)
    return f"{_num(spec.min)} to {_num(spec.max)}"


def _check_object_list(spec: Field, value: Any, strict: bool, label: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise InvalidRequest(f"{label}: expected an array of objects, got {_type_name(value)}")
    _check_count(spec, value, label, "item")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidRequest(f"{label}[{i}]: expected an object, got {_type_name(item)}")
        out.append(_fields(item, spec.item, "", strict, f"{label}[{i}].")[0])
    return out


def _check_array(spec: Field, value: Any, strict: bool, label: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidRequest(f"{label}: expected an array, got {_type_name(value)}")
    _check_count(spec, value, label, "item")
    return value


def _check_count(spec: Field, value: list[Any], label: str, what: str) -> None:
    if spec.max_items is not None and len(value) > spec.max_items:
        raise InvalidRequest(
            f"{label}: at most {spec.max_items} {what}s are allowed (got {len(value)})"
        )
    if spec.min_items is not None and len(value) < spec.min_items:
        raise InvalidRequest(f"{label}: at least {spec.min_items} {what}(s) required")


def _check_url(spec: Field, value: Any, strict: bool = False, name: str | None = None) -> str:
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


def _check_url_list(spec: Field, value: Any, strict: bool, label: str) -> list[str]:
    if not isinstance(value, list):
        raise InvalidRequest(f"{label}: expected an array of URLs, got {_type_name(value)}")
    _check_count(spec, value, label, "URL")
    return [_check_url(spec, item, strict, f"{label}[{i}]") for i, item in enumerate(value)]


_CHECKS: dict[str, Callable[[Field, Any, bool, str], Any]] = {
    "string": _check_string,
    "enum": _check_enum,
    "integer": _check_integer,
    "number": _check_number,
    "boolean": _check_boolean,
    "duration": _check_duration,
    "url": _check_url,
    "url_list": _check_url_list,
    "object_list": _check_object_list,
    "array": _check_array,
}


# -- rules across fields (named by a model's ``checks`` in the catalogue) -------------------


def _required_unless(rule: Mapping[str, Any], params: Mapping[str, Any], model: Model,
                     strict: bool) -> None:  # fmt: skip
    """``field`` is required unless the boolean ``unless`` is true (kling-3's prompt)."""
    if not params.get(rule["unless"]) and rule["field"] not in params:
        raise InvalidRequest(
            f"{rule['field']}: is required for model {model.id} unless {rule['unless']} is true"
        )


def _shots(rule: Mapping[str, Any], params: Mapping[str, Any], model: Model,
           strict: bool) -> None:  # fmt: skip
    """With the boolean ``flag`` on, ``list`` must hold shots whose durations add up to a
    length in [total_min, total_max] (kling-3's multi-shot mode)."""
    if not params.get(rule["flag"]):
        return
    shots = params.get(rule["list"])
    if not shots:
        raise InvalidRequest(f"{rule['list']}: is required when {rule['flag']} is true")
    total = sum(int(shot.get("duration", 0)) for shot in shots)
    low, high = rule["total"]
    if not low <= total <= high:
        raise InvalidRequest(
            f"{rule['list']}: the shots' durations add up to {total} s (allowed: {low} to {high})"
        )


def _max_when(rule: Mapping[str, Any], params: Mapping[str, Any], model: Model,
              strict: bool) -> None:  # fmt: skip
    """``field`` at most ``max`` when the fields of ``when`` have those values (hailuo's
    1080P only up to 6 s)."""
    when = rule["when"]
    if all(params.get(k) == v for k, v in when.items()) and params[rule["field"]] > rule["max"]:
        condition = ", ".join(f"{k} {v}" for k, v in when.items())
        raise InvalidRequest(
            f"{rule['field']}: {params[rule['field']]} is out of range with {condition} "
            f"(allowed: at most {rule['max']})"
        )


def _one_of(rule: Mapping[str, Any], params: Mapping[str, Any], model: Model,
            strict: bool) -> None:  # fmt: skip
    """Exactly one of ``fields`` is given (speech: ``dialogue`` or ``text``)."""
    names = [name for name in rule["fields"] if name in params]
    if strict and (strict_fields := [n for n in names if model.fields[n].lenient]):
        names = [n for n in names if n not in strict_fields]
    if len(names) != 1:
        given = " and ".join(names) if names else "neither"
        raise InvalidRequest(
            f"{' or '.join(rule['fields'])}: give exactly one for model {model.id} (got {given})"
        )


def _any_of(rule: Mapping[str, Any], params: Mapping[str, Any], model: Model,
            strict: bool) -> None:  # fmt: skip
    """At least one of ``fields`` is given (Suno: ``gpt_description_prompt`` or ``prompt``)."""
    if not any(params.get(name) for name in rule["fields"]):
        raise InvalidRequest(
            f"{' or '.join(rule['fields'])}: give at least one for model {model.id}"
        )


def _max_characters(rule: Mapping[str, Any], params: Mapping[str, Any], model: Model,
                    strict: bool) -> None:  # fmt: skip
    """At most ``max`` characters of text in all (speech)."""
    count = model.characters(params)
    if count > rule["max"]:
        raise InvalidRequest(
            f"{', '.join(model.text_fields)}: {count} characters in all (allowed: at most "
            f"{rule['max']})"
        )


Check = Callable[[Mapping[str, Any], Mapping[str, Any], Model, bool], None]
#: the rules across fields a catalogue entry can name in its ``checks``
CHECKS: dict[str, Check] = {
    "required_unless": _required_unless,
    "shots": _shots,
    "max_when": _max_when,
    "one_of": _one_of,
    "any_of": _any_of,
    "max_characters": _max_characters,
}


def _type_name(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    """A value as a message shows it: strings quoted and cut, numbers and booleans as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)[:40]
    return _short(value)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value) if isinstance(value, str) else _type_name(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"
