"""JSON Schema instances (emulator/chat/schema.py): every one is checked with jsonschema."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from emulator.chat.schema import SchemaError, instance

CHECKER = Draft202012Validator.FORMAT_CHECKER

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 2, "maxLength": 40},
        "age": {"type": "integer", "minimum": 0, "maximum": 130},
        "email": {"type": "string", "format": "email"},
        "tags": {
            "type": "array",
            "items": {"type": "string"},
            "minItems": 1,
            "maxItems": 5,
            "uniqueItems": True,
        },
        "role": {"enum": ["admin", "user"]},
        "nickname": {"type": ["string", "null"]},
    },
    "required": ["name", "age", "email", "tags", "role", "nickname"],
    "additionalProperties": False,
}
TREE = {
    "$defs": {
        "node": {
            "type": "object",
            "properties": {
                "value": {"type": "integer"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
            },
            "required": ["value", "children"],
            "additionalProperties": False,
        }
    },
    "$ref": "#/$defs/node",
}
LINKED = {
    "definitions": {
        "item": {
            "anyOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "properties": {"next": {"$ref": "#/definitions/item"}},
                    "required": ["next"],
                },
            ]
        }
    },
    "type": "object",
    "properties": {"head": {"$ref": "#/definitions/item"}},
    "required": ["head"],
}

SCHEMAS = [
    pytest.param(PERSON, id="strict-object"),
    pytest.param(TREE, id="recursive-ref"),
    pytest.param(LINKED, id="recursive-anyof-definitions"),
    pytest.param({}, id="anything"),
    pytest.param({"const": "fixed"}, id="const"),
    pytest.param({"type": "string", "pattern": r"^[A-Z]{3}-\d{4}$"}, id="pattern"),
    pytest.param(
        {"type": "string", "pattern": r"^(red|green|blue)(\.[a-z_]+)?$"}, id="pattern-groups"
    ),
    pytest.param({"type": "string", "pattern": r"[^abc]x+"}, id="pattern-negated"),
    pytest.param({"type": "string", "minLength": 30, "maxLength": 31}, id="long-string"),
    pytest.param({"type": "string", "maxLength": 1}, id="short-string"),
    pytest.param(
        {"type": "integer", "exclusiveMinimum": 5, "exclusiveMaximum": 7}, id="exclusive-integer"
    ),
    pytest.param({"type": "integer", "minimum": 10, "multipleOf": 7}, id="integer-multiple"),
    pytest.param({"type": "number", "minimum": 0.5, "maximum": 0.75}, id="number-range"),
    pytest.param(
        {"type": "number", "multipleOf": 0.1, "minimum": 1, "maximum": 2}, id="number-multiple"
    ),
    pytest.param({"type": "number", "exclusiveMaximum": -3}, id="number-below"),
    pytest.param(
        {
            "type": "array",
            "prefixItems": [{"type": "integer"}, {"type": "boolean"}],
            "items": False,
        },
        id="tuple",
    ),
    pytest.param(
        {"type": "array", "items": {"enum": [1, 2, 3]}, "minItems": 3, "uniqueItems": True},
        id="unique-enum",
    ),
    pytest.param({"type": "object", "minProperties": 3}, id="min-properties"),
    pytest.param(
        {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
            "maxProperties": 1,
        },
        id="max-properties",
    ),
    pytest.param(
        {
            "allOf": [
                {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                {"properties": {"b": {"type": "boolean"}}, "required": ["b"]},
            ]
        },
        id="all-of",
    ),
    pytest.param({"oneOf": [{"type": "string"}, {"type": "integer"}]}, id="one-of-disjoint"),
    *(
        pytest.param({"type": "string", "format": f}, id=f"format-{f}")
        for f in (
            "date",
            "date-time",
            "time",
            "email",
            "uri",
            "uuid",
            "ipv4",
            "ipv6",
            "hostname",
            "duration",
        )
    ),
]


@pytest.mark.parametrize("schema", SCHEMAS)
@pytest.mark.parametrize("seed", range(8))
def test_instances_validate(schema: dict[str, Any], seed: int) -> None:
    value = instance(schema, random.Random(seed))
    Draft202012Validator(schema, format_checker=CHECKER).validate(value)


def test_the_same_seed_gives_the_same_instance() -> None:
    assert instance(PERSON, random.Random(4)) == instance(PERSON, random.Random(4))
    assert len({str(instance(PERSON, random.Random(s))) for s in range(10)}) > 1


def test_a_reference_outside_the_schema_is_refused() -> None:
    with pytest.raises(SchemaError, match=r"only references inside the schema"):
        instance({"$ref": "https://example.com/s.json"}, random.Random(0))
    with pytest.raises(SchemaError, match=r"nothing at '\$defs'"):
        instance({"$ref": "#/$defs/missing"}, random.Random(0))


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        pytest.param({"type": "foo"}, r"type 'foo' is not one of: string, integer", id="bad-type"),
        pytest.param(
            {"type": "array", "minItems": "x"},
            r"cannot generate an instance \(ValueError",
            id="bad-keyword",
        ),
    ],
)
def test_a_schema_it_cannot_follow_is_a_schema_error(schema: dict[str, Any], message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        instance(schema, random.Random(0))


# -- property: schemas of the structured-output subset --------------------------------------


def _bounded_pair(low: int, high: int) -> st.SearchStrategy[tuple[int, int]]:
    return st.tuples(st.integers(low, high), st.integers(0, high - low)).map(
        lambda p: (p[0], p[0] + p[1])
    )


LEAVES = st.one_of(
    _bounded_pair(0, 20).map(lambda p: {"type": "string", "minLength": p[0], "maxLength": p[1]}),
    _bounded_pair(-1000, 1000).map(lambda p: {"type": "integer", "minimum": p[0], "maximum": p[1]}),
    _bounded_pair(-50, 50).map(lambda p: {"type": "number", "minimum": p[0], "maximum": p[1]}),
    st.sampled_from([{"type": "boolean"}, {"type": "null"}, {"type": ["string", "null"]}]),
    st.lists(
        st.one_of(st.integers(), st.text(max_size=5)), min_size=1, max_size=4, unique=True
    ).map(lambda e: {"enum": e}),
    st.sampled_from(["date", "email", "uuid", "ipv4"]).map(
        lambda f: {"type": "string", "format": f}
    ),
    st.sampled_from([r"^\d{3}$", r"^[a-z]+-[0-9]{2,4}$", r"^(yes|no)$"]).map(
        lambda p: {"type": "string", "pattern": p}
    ),
)


def _composite(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    names = st.text("abcdefgh", min_size=1, max_size=4)
    objects = st.dictionaries(names, children, max_size=4).flatmap(
        lambda props: st.builds(
            lambda required, closed: {
                "type": "object",
                "properties": props,
                "required": required,
                "additionalProperties": not closed,
            },
            st.lists(st.sampled_from(sorted(props)), unique=True) if props else st.just([]),
            st.booleans(),
        )
    )
    arrays = st.tuples(children, _bounded_pair(0, 4)).map(
        lambda t: {"type": "array", "items": t[0], "minItems": t[1][0], "maxItems": t[1][1]}
    )
    unions = st.lists(children, min_size=1, max_size=3).map(lambda options: {"anyOf": options})
    return st.one_of(objects, arrays, unions)


SCHEMA_STRATEGY = st.recursive(LEAVES, _composite, max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=SCHEMA_STRATEGY, seed=st.integers(0, 2**32))
def test_every_generated_instance_validates(schema: dict[str, Any], seed: int) -> None:
    value = instance(schema, random.Random(seed))
    Draft202012Validator(schema, format_checker=CHECKER).validate(value)
