"""Instances of a JSON Schema, generated deterministically from a seeded generator.

Covers the subset OpenAI structured outputs and function ``parameters`` use: ``type`` (one or a
list), ``properties``/``required``/``additionalProperties``, ``items``/``prefixItems``,
``enum``, ``const``, ``anyOf``/``oneOf``/``allOf``, ``$ref`` into the same document (``$defs``,
``definitions``, recursion included), ``minimum``/``maximum`` (and exclusive ones),
``multipleOf``, ``minLength``/``maxLength``, ``pattern`` (generated from the regex),
``minItems``/``maxItems``/``uniqueItems``, ``minProperties``/``maxProperties`` and the common
``format`` values. Keywords outside it are ignored. Past :data:`MAX_DEPTH` nested schemas the
generator takes the shortest way out (required properties only, the fewest items, a branch
that does not recurse), so recursive schemas end.
"""

from __future__ import annotations

import json
import math
import random
import re
import string
from collections.abc import Mapping
from re import _parser as sre  # type: ignore[attr-defined]
from typing import Any

__all__ = ["MAX_DEPTH", "SchemaError", "instance"]

MAX_DEPTH = 6
TYPES = ("string", "integer", "number", "boolean", "null", "object", "array")
#: repetitions a regex's open-ended quantifier (``*``, ``+``, ``{n,}``) adds at most
OPEN_REPEAT = 3
WORDS = (
    "alpha", "bravo", "cedar", "delta", "ember", "fjord", "grove", "harbor", "iris", "juniper",
    "kestrel", "lumen", "meadow", "nectar", "orbit", "pebble", "quartz", "river", "summit",
    "tundra", "umber", "violet", "willow", "xenon", "yarrow", "zephyr",
)  # fmt: skip


class SchemaError(ValueError):
    """A schema the generator cannot follow (a ``$ref`` outside the document)."""


def instance(schema: Mapping[str, Any] | bool, rng: random.Random) -> Any:
    """A value valid against ``schema``, the same for the same schema and generator state.
    Raises :class:`SchemaError` for a schema it cannot follow (a bad ``type``, a ``$ref``
    outside the document, a keyword of the wrong kind)."""
    try:
        return _Generator(schema, rng).value(schema, 0)
    except SchemaError:
        raise
    except (TypeError, ValueError, KeyError, RecursionError) as exc:
        raise SchemaError(f"cannot generate an instance ({type(exc).__name__}: {exc})") from exc


class _Generator:
    def __init__(self, root: Mapping[str, Any] | bool, rng: random.Random) -> None:
        self.root = root
        self.rng = rng

    def value(self, schema: Any, depth: int) -> Any:
        if schema is True or schema == {}:
            return self.words(1, 3)
        if not isinstance(schema, Mapping):
            return None
        if "$ref" in schema:
            return self.value(self.resolve(schema["$ref"]), depth + 1)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return self.rng.choice(schema["enum"])
        if isinstance(schema.get("allOf"), list):
            return self.value(_merge(schema, [self.deref(s) for s in schema["allOf"]]), depth + 1)
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list) and schema[key]:
                return self.value(self.branch(schema[key], depth), depth + 1)
        kind = self.kind(schema, depth)
        if kind not in TYPES:
            raise SchemaError(f"type {kind!r} is not one of: {', '.join(TYPES)}")
        return getattr(self, "_" + kind)(schema, depth)

    # -- choices ----------------------------------------------------------------------------

    def kind(self, schema: Mapping[str, Any], depth: int) -> str:
        declared = schema.get("type")
        if isinstance(declared, list) and declared:
            if depth >= MAX_DEPTH and "null" in declared:
                return "null"
            return str(self.rng.choice(declared))
        if isinstance(declared, str):
            return declared
        if "properties" in schema or "required" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
        if "minimum" in schema or "maximum" in schema:
            return "number"
        return "string"

    def branch(self, options: list[Any], depth: int) -> Any:
        if depth >= MAX_DEPTH:  # the way out of a recursion: a branch without a $ref
            flat = [o for o in options if "$ref" not in json.dumps(o)]
            if flat:
                return flat[0]
        return self.rng.choice(options)

    def resolve(self, ref: Any) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise SchemaError(
                f"$ref {ref!r}: only references inside the schema (#/...) are followed"
            )
        node: Any = self.root
        for part in filter(None, ref[1:].split("/")):
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise SchemaError(f"$ref {ref!r}: nothing at {part!r}")
        return node

    def deref(self, schema: Any) -> Any:
        while isinstance(schema, Mapping) and "$ref" in schema:
            schema = self.resolve(schema["$ref"])
        return schema

    def words(self, low: int, high: int) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(low, high)))

    # -- types ------------------------------------------------------------------------------

    def _null(self, schema: Mapping[str, Any], depth: int) -> None:
        return None

    def _boolean(self, schema: Mapping[str, Any], depth: int) -> bool:
        return self.rng.random() < 0.5

    def _object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties") or {}
        required = [k for k in schema.get("required") or () if isinstance(k, str)]
        most = schema.get("maxProperties")
        out: dict[str, Any] = {}
        for name in required:
            out[name] = self.value(properties.get(name, {}), depth + 1)
        for name, sub in properties.items():
            if name in out or depth >= MAX_DEPTH or self.rng.random() < 0.5:
                continue
            if isinstance(most, int) and len(out) >= most:
                break
            out[name] = self.value(sub, depth + 1)
        extra = schema.get("additionalProperties", True)
        least = schema.get("minProperties")
        n = 0
        while isinstance(least, int) and len(out) < least and extra is not False:
            n += 1
            name = f"extra_{n}"
            if name not in properties:
                out[name] = self.value(extra if isinstance(extra, Mapping) else {}, depth + 1)
        for name, sub in properties.items():  # minProperties with additionalProperties: false
            if isinstance(least, int) and len(out) < least and name not in out:
                out[name] = self.value(sub, depth + 1)
        return out

    def _array(self, schema: Mapping[str, Any], depth: int) -> list[Any]:
        prefix = schema.get("prefixItems") or []
        items = schema.get("items", {})
        low = int(schema.get("minItems", 0))
        high = schema.get("maxItems")
        high = int(high) if isinstance(high, int | float) else None
        if depth >= MAX_DEPTH:
            count = low
        else:
            base = max(low, 1 if high is None or high >= 1 else 0)
            count = self.rng.randint(base, base + 2)
        if high is not None:
            count = min(count, high)
        if items is False:
            count = min(count, len(prefix))
        out: list[Any] = []
        seen: set[str] = set()
        attempts = 0
        while len(out) < count and attempts < count * 10 + 10:
            attempts += 1
            sub = prefix[len(out)] if len(out) < len(prefix) else items
            value = self.value(sub, depth + 1)
            if schema.get("uniqueItems"):
                key = json.dumps(value, sort_keys=True)
                if key in seen:
                    continue
                seen.add(key)
            out.append(value)
        return out

    def _integer(self, schema: Mapping[str, Any], depth: int) -> int:
        low, high = _bounds(schema)
        low_i = (
            math.floor(low) + 1
            if schema.get("exclusiveMinimum") == low and low == int(low)
            else math.ceil(low)
        )
        high_i = (
            math.ceil(high) - 1
            if schema.get("exclusiveMaximum") == high and high == int(high)
            else math.floor(high)
        )
        step = schema.get("multipleOf")
        if isinstance(step, int | float) and not isinstance(step, bool) and step > 0:
            first, last = math.ceil(low_i / step), math.floor(high_i / step)
            for k in _spread(self.rng, first, last):
                value = k * step
                if value == int(value) and _divides(int(value), step):
                    return int(value)
            return 0
        return self.rng.randint(low_i, max(low_i, high_i))

    def _number(self, schema: Mapping[str, Any], depth: int) -> float | int:
        low, high = _bounds(schema)
        step = schema.get("multipleOf")
        if isinstance(step, int | float) and not isinstance(step, bool) and step > 0:
            for k in _spread(self.rng, math.ceil(low / step), math.floor(high / step)):
                value = k * step
                if _inside(value, schema) and _divides(value, step):
                    return value
            return 0
        for _ in range(20):
            value = round(self.rng.uniform(low, high), 2)
            if _inside(value, schema):
                return value
        return (low + high) / 2

    def _string(self, schema: Mapping[str, Any], depth: int) -> str:
        fmt = schema.get("format")
        if isinstance(fmt, str) and fmt in _FORMATS:
            return _FORMATS[fmt](self.rng)
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            try:
                return _Regex(self.rng).text(pattern)
            except (re.error, _Unsupported):
                pass  # an unusual pattern: plain words (may not match)
        low = int(schema.get("minLength", 0))
        high = schema.get("maxLength")
        text = self.words(1, 3)
        while len(text) < low:
            text += " " + self.rng.choice(WORDS)
        if isinstance(high, int | float):
            text = text[: int(high)].rstrip() or text[: int(high)]
        if len(text) < low:
            text = text.ljust(low, "x")
        return text


def _bounds(schema: Mapping[str, Any]) -> tuple[float, float]:
    lows = [v for v in (_num(schema, "minimum"), _num(schema, "exclusiveMinimum")) if v is not None]
    highs = [
        v for v in (_num(schema, "maximum"), _num(schema, "exclusiveMaximum")) if v is not None
    ]
    low = max(lows) if lows else None
    high = min(highs) if highs else None
    if low is None and high is None:
        return 0.0, 100.0
    if low is None:
        return (high or 0.0) - 100.0, high or 0.0
    if high is None:
        return low, low + 100.0
    return low, high


def _num(schema: Mapping[str, Any], key: str) -> float | None:
    value = schema.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _inside(value: float, schema: Mapping[str, Any]) -> bool:
    low, high = _num(schema, "minimum"), _num(schema, "maximum")
    above, below = _num(schema, "exclusiveMinimum"), _num(schema, "exclusiveMaximum")
    return not (
        (low is not None and value < low)
        or (high is not None and value > high)
        or (above is not None and value <= above)
        or (below is not None and value >= below)
    )


def _divides(value: float, step: float) -> bool:
    """What a JSON Schema validator checks for ``multipleOf`` (float quotients included)."""
    quotient = value / step
    return math.isfinite(quotient) and int(quotient) == quotient


def _spread(rng: random.Random, first: int, last: int) -> list[int]:
    """Candidates from ``first`` to ``last``, a seeded one first."""
    if last < first:
        return []
    pick = rng.randint(first, last)
    return [pick, *range(first, min(last, first + 50) + 1)]


def _merge(schema: Mapping[str, Any], parts: list[Any]) -> dict[str, Any]:
    """``allOf`` as one schema: keywords of every part, properties and required combined."""
    out: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for part in parts:
        if not isinstance(part, Mapping):
            continue
        for key, value in part.items():
            if key == "properties":
                out["properties"] = {**out.get("properties", {}), **value}
            elif key == "required":
                out["required"] = [*out.get("required", []), *value]
            else:
                out.setdefault(key, value)
    return out


# -- formats --------------------------------------------------------------------------------


def _date(rng: random.Random) -> str:
    return f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _time(rng: random.Random) -> str:
    return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


_FORMATS = {
    "date": _date,
    "time": _time,
    "date-time": lambda rng: f"{_date(rng)}T{_time(rng)}",
    "duration": lambda rng: f"PT{rng.randint(1, 59)}M",
    "email": lambda rng: f"{rng.choice(WORDS)}{rng.randint(1, 99)}@example.com",
    "idn-email": lambda rng: f"{rng.choice(WORDS)}@example.com",
    "hostname": lambda rng: f"{rng.choice(WORDS)}.example.com",
    "idn-hostname": lambda rng: f"{rng.choice(WORDS)}.example.com",
    "ipv4": lambda rng: f"192.0.2.{rng.randint(1, 254)}",
    "ipv6": lambda rng: f"2001:db8::{rng.randint(1, 0xFFFF):x}",
    "uri": lambda rng: f"https://example.com/{rng.choice(WORDS)}",
    "uri-reference": lambda rng: f"/{rng.choice(WORDS)}",
    "iri": lambda rng: f"https://example.com/{rng.choice(WORDS)}",
    "url": lambda rng: f"https://example.com/{rng.choice(WORDS)}",
    "uuid": _uuid,
}


# -- regex ----------------------------------------------------------------------------------


class _Unsupported(Exception):
    pass


_CATEGORIES = {
    "CATEGORY_DIGIT": string.digits,
    "CATEGORY_WORD": string.ascii_letters + string.digits + "_",
    "CATEGORY_SPACE": " ",
    "CATEGORY_NOT_DIGIT": string.ascii_letters,
    "CATEGORY_NOT_WORD": "-",
    "CATEGORY_NOT_SPACE": string.ascii_letters,
}
_PRINTABLE = string.ascii_letters + string.digits


class _Regex:
    """A string matched by a regex, from Python's own regex parser's tree."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.groups: dict[int, str] = {}

    def text(self, pattern: str) -> str:
        return self.emit(sre.parse(pattern))

    def emit(self, items: Any) -> str:
        return "".join(self.item(op, arg) for op, arg in items)

    def item(self, op: Any, arg: Any) -> str:
        name = str(op)
        if name == "LITERAL":
            return chr(arg)
        if name == "NOT_LITERAL":
            return next(c for c in _PRINTABLE if ord(c) != arg)
        if name == "ANY":
            return self.rng.choice(_PRINTABLE)
        if name == "IN":
            return self.charset(arg)
        if name == "CATEGORY":
            return self.rng.choice(_CATEGORIES[str(arg)])
        if name == "BRANCH":
            return self.emit(self.rng.choice(arg[1]))
        if name == "SUBPATTERN":
            group, *_, body = arg
            text = self.emit(body)
            if group is not None:
                self.groups[group] = text
            return text
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, body = arg
            high = low + OPEN_REPEAT if high == sre.MAXREPEAT else high
            return "".join(self.emit(body) for _ in range(self.rng.randint(low, max(low, high))))
        if name == "AT":
            return ""
        if name == "GROUPREF":
            return self.groups.get(arg, "")
        raise _Unsupported(name)

    def charset(self, items: Any) -> str:
        if items and str(items[0][0]) == "NEGATE":
            banned = self.charset_members(items[1:])
            return next(c for c in _PRINTABLE if c not in banned)
        return self.rng.choice(self.charset_members(items))

    def charset_members(self, items: Any) -> str:
        members = ""
        for op, arg in items:
            name = str(op)
            if name == "LITERAL":
                members += chr(arg)
            elif name == "RANGE":
                low, high = arg
                members += "".join(chr(c) for c in range(low, min(high, low + 200) + 1))
            elif name == "CATEGORY":
                members += _CATEGORIES[str(arg)]
            else:
                raise _Unsupported(name)
        return members or "x"
