"""JSON in and out: what the emulator writes must be what the standard library would write."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from emulator.http import dumps

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(JSON)
def test_written_json_reads_back_as_the_same_value(value: object) -> None:
    assert json.loads(dumps(value)) == value


@given(st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(), inner, max_size=4), max_leaves=20))  # fmt: skip
def test_without_floats_the_bytes_are_the_standard_librarys(value: object) -> None:
    try:
        expected = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:  # a lone surrogate: no UTF-8 form, so it is escaped
        expected = json.dumps(value, separators=(",", ":")).encode()
    assert dumps(value) == expected


def test_what_orjson_refuses_is_still_written() -> None:
    assert dumps({"n": 10**30, 1: "a"}) == b'{"n":1000000000000000000000000000000,"1":"a"}'
    assert dumps({"p": "\ud800"}) == b'{"p":"\\ud800"}'
