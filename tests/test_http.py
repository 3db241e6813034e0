"""JSON in and out: what the emulator writes must be what the standard library would write."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.errors import InvalidRequest
from emulator.http import MAX_JSON_DEPTH, decode, load_object, parse_object
from emulator.wire import dumps

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


def _standard(raw: bytes) -> object:
    """What the standard library path answers: the object, or the 400 message."""
    try:
        return parse_object(decode(raw))
    except InvalidRequest as exc:
        return exc.message


def _fast(raw: bytes) -> object:
    try:
        data, text = load_object(raw)
    except InvalidRequest as exc:
        return exc.message
    assert text == raw.decode("utf-8")
    return data


EDGE_CASES = [
    b"\xef\xbb\xbf{}",
    b'{"a": NaN}',
    b'{"a": 1e400}',
    b'{"a": -0}',
    b'{"n": 123456789012345678901234567890}',
    b'{"a": "\\ud800"}',
    b"[" * 1100 + b"]" * 1100,
    b'{"a":' * 1100 + b"1" + b"}" * 1100,
    b'{"a":1,"a":2}',
    b"\t{}\r\n",
    b"\x0c{}",
    b'{"a": 1.0}',
    b'{"t": 0.7, "n": -9223372036854775809}',
    b'{"t": 0.7, "n": 18446744073709551616}',
    b'{"t": 0.7, "n": 9223372036854775807, "m": -9223372036854775808}',
    b'{"t": 0.7, "p": "call 12345678901234567890"}',
    b'{"t": 2.2250738585072011e-308, "u": 4.9406564584124654e-324, "v": 1e-400}',
    b'{"t": 0.1e1, "u": 1.00000000000000011102230246251565404236316680908203125}',
    b'{"t": 1.7976931348623157e308, "u": 1.7976931348623159e308}',
]
JSON_TEXT = st.one_of(
    st.binary(max_size=40),
    st.builds(lambda v: json.dumps(v).encode(), JSON),
    st.builds(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass"), JSON),
    st.builds(
        lambda d, junk: json.dumps(d).encode()[:-1] + junk,
        st.dictionaries(st.text(max_size=5), JSON, max_size=3),
        st.sampled_from([b"}", b"} ", b",}", b"}}", b"\x00}", b"}\n", b" }\t", b"]"]),
    ),
    st.sampled_from(EDGE_CASES),
)


@given(JSON_TEXT)
def test_the_fast_body_reader_answers_as_the_standard_library(raw: bytes) -> None:
    assert repr(_fast(raw)) == repr(_standard(raw))  # repr: NaN-free, and 1 != 1.0 shows


@pytest.mark.parametrize("raw", EDGE_CASES)
def test_each_edge_case_reads_as_the_standard_library_reads_it(raw: bytes) -> None:
    assert repr(_fast(raw)) == repr(_standard(raw))


#: numbers as a client may spell them: any float, big and small integers, and decimal text
#: with many digits and exponents (what a correctly rounding reader must round alike)
NUMBER_TEXT = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers().map(str),
    st.builds(
        lambda sign, digits, point, exponent: (
            f"{sign}{digits[:point] or '0'}"
            f"{'.' + digits[point:] if digits[point:] else ''}{exponent}"
        ),
        st.sampled_from(["", "-"]),
        st.text(alphabet="0123456789", min_size=1, max_size=30).filter(lambda d: d[0] != "0"),
        st.integers(0, 30),
        st.sampled_from(["", "e5", "E-3", "e+300", "e-320", "e400", "e-400"]),
    ),
)


@given(st.lists(NUMBER_TEXT, min_size=1, max_size=4))
def test_bodies_with_numbers_read_as_the_standard_library_reads_them(numbers: list[str]) -> None:
    fields = ", ".join(f'"f{i}": {n}' for i, n in enumerate(numbers))
    raw = f'{{"model": "gemini", "temperature": 0.7, {fields}}}'.encode()
    assert repr(_fast(raw)) == repr(_standard(raw))


# -- hostile values (issue 15) ------------------------------------------------------------------


def _nested(depth: int) -> bytes:
    return b'{"model": "cogview-4", "prompt": "x", "extra": ' + b'{"a":' * depth + b"1" + (
        b"}" * depth
    ) + b"}"  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        pytest.param(b'{"n": ' + b"7" * 5000 + b"}", "more than 4300 digits", id="5000-digits"),
        pytest.param(_nested(1000), "nested more than", id="1000-deep"),
        pytest.param(_nested(MAX_JSON_DEPTH), "nested more than", id="just-too-deep"),
        pytest.param(
            b'{"a": ' + b"[" * 40 + b"1.5" + b"]" * 40 + b"}", "nested more than", id="deep-floats"
        ),
    ],
)
def test_hostile_values_are_a_400_on_both_readers(raw: bytes, needle: str) -> None:
    assert needle in str(_fast(raw)) and needle in str(_standard(raw))


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(_nested(MAX_JSON_DEPTH - 2), id="below-the-limit"),
        # as many brackets as the limit: orjson's answer is taken without walking it
        pytest.param(_nested(MAX_JSON_DEPTH - 1), id="deepest-allowed"),
        # more brackets than the limit, in text: walked, and shallow
        pytest.param(b'{"prompt": "' + b"[{" * 40 + b'", "extra": {"a": [1.5]}}', id="in-text"),
    ],
)
def test_nesting_up_to_the_limit_is_read(raw: bytes) -> None:
    data = _fast(raw)
    assert isinstance(data, dict) and data == _standard(raw)
